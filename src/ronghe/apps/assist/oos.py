"""Out-of-scope scores (higher = more likely out of scope) and the choice of one on validation.

* ``maxprob``: 1 - the intent classifier's top probability (the baseline; on CLINC150 a plain
  softmax threshold misses many out-of-scope queries - Larson et al. 2019).
* ``mahalanobis``: the smallest Mahalanobis distance from the message's embedding to an intent's
  mean, with one covariance shared by all intents (Ledoit-Wolf shrinkage) - the distance score
  Lee et al. 2018 and Podolskiy et al. 2021 found stronger than softmax thresholds.
* ``knn``: 1 - the mean cosine similarity to the ``k`` nearest training messages.
* ``oos_class``: the probability of an explicit ``oos`` class, from a classifier trained with
  the out-of-scope examples as one more class (only when such examples are given).

``choose`` keeps the score with the best out-of-scope F1 at its best threshold on validation
(AUROC reported beside it). Without out-of-scope validation messages there is nothing to
compare on: the configured score is used (default ``mahalanobis``) and its threshold hands off a
set share of in-scope validation messages (``in_scope_rejection``, default 5%).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from ...search import VectorIndex, normalise


class Mahalanobis:
    def __init__(self, means: np.ndarray, whiten: np.ndarray):
        self.means, self.whiten = means, whiten  # distance = |(x - mu) W|^2
        self._m = means @ whiten

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, n_classes: int) -> "Mahalanobis":
        from sklearn.covariance import LedoitWolf

        X = normalise(X).astype(np.float64)
        means = np.stack([X[y == c].mean(0) for c in range(n_classes)])
        cov = LedoitWolf().fit(X - means[y]).covariance_
        vals, vecs = np.linalg.eigh(cov)
        whiten = vecs / np.sqrt(np.maximum(vals, 1e-12))
        return cls(means.astype(np.float32), whiten.astype(np.float32))

    def score(self, X: np.ndarray) -> np.ndarray:
        z = normalise(X) @ self.whiten
        d = (z ** 2).sum(1)[:, None] - 2 * z @ self._m.T + (self._m ** 2).sum(1)[None, :]
        return d.min(1)


class Knn:
    def __init__(self, vectors: np.ndarray, k: int, kind: str = "auto", hnsw_above: int = 200_000):
        self.index = VectorIndex(vectors, kind, hnsw_above)
        self.k = k

    def score(self, X: np.ndarray) -> np.ndarray:
        sims, _ = self.index.search(X, self.k)
        return 1.0 - sims.mean(1)


def maxprob(proba: np.ndarray) -> np.ndarray:
    return 1.0 - proba.max(1)


def best_threshold(scores: np.ndarray, is_oos: np.ndarray) -> tuple[float, dict]:
    """The threshold (flag when score >= t) with the best OOS F1 on validation; its P/R/F1."""
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], is_oos[order].astype(bool)
    tp = np.cumsum(t)
    fp = np.cumsum(~t)
    pos = t.sum()
    last = np.r_[s[1:] != s[:-1], True]  # only cut between distinct scores
    prec = tp / np.maximum(tp + fp, 1)
    rec = tp / max(pos, 1)
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0)
    f1 = np.where(last, f1, -1)
    i = int(np.argmax(f1))
    # the threshold halfway to the next lower score, so a small shift does not flip the edge case
    nxt = s[i + 1] if i + 1 < len(s) else s[i] - 1e-6
    thr = float((s[i] + nxt) / 2) if nxt < s[i] else float(s[i])
    return thr, {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i])}


def rates(scores: np.ndarray, is_oos: np.ndarray, threshold: float) -> dict:
    flagged = scores >= threshold
    tp = int((flagged & is_oos).sum())
    p = tp / max(int(flagged.sum()), 1)
    r = tp / max(int(is_oos.sum()), 1)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "flagged_in_scope": float(flagged[~is_oos].mean()) if (~is_oos).any() else 0.0}


def auroc(scores: np.ndarray, is_oos: np.ndarray) -> float | None:
    if is_oos.all() or not is_oos.any():
        return None
    return float(roc_auc_score(is_oos.astype(int), scores))


def choose(valid_scores: dict[str, np.ndarray], is_oos: np.ndarray, fallback: str,
           in_scope_rejection: float) -> tuple[str, float, dict]:
    """(method, threshold, report per method)."""
    report: dict[str, dict] = {}
    if is_oos.any():
        for name, sc in valid_scores.items():
            thr, prf = best_threshold(sc, is_oos)
            report[name] = {"threshold": thr, "auroc": auroc(sc, is_oos), **prf}
        best = max(report, key=lambda n: (round(report[n]["f1"], 9), report[n]["auroc"] or 0))
        return best, report[best]["threshold"], report
    sc = valid_scores[fallback]
    thr = float(np.quantile(sc, 1 - in_scope_rejection))
    report[fallback] = {"threshold": thr, "rule": f"no out-of-scope validation examples: the "
                        f"threshold hands off {in_scope_rejection:.0%} of in-scope validation "
                        "messages"}
    return fallback, thr, report
