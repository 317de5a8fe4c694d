"""Out-of-scope scores (higher = more likely out of scope) and the choice of one on validation.

* ``maxprob``: 1 - the intent classifier's top probability (the baseline; on CLINC150 a plain
  softmax threshold misses many out-of-scope queries - Larson et al. 2019).
* ``mahalanobis``: the smallest Mahalanobis distance from the message's embedding to an intent's
  mean, with one covariance shared by all intents (Ledoit-Wolf shrinkage) - the distance score
  Lee et al. 2018 and Podolskiy et al. 2021 found stronger than softmax thresholds.
* ``mahalanobis_tuned``: the same distance on the features of the intent classifier's own
  fine-tuned encoder (its pooled sentence embedding), when the classifier has one (``finetune``
  or a fusion with it) - Podolskiy et al.'s setting: fine-tuning pulls each intent's messages
  together, so a message far from every intent stands out more than on the untouched backbone
  (CLINC150 test AUROC 0.979 against 0.946 - benchmarks/README.md).
* ``knn``: 1 - the mean cosine similarity to the ``k`` nearest training messages.
* ``oos_class``: the probability of an explicit ``oos`` class, from a classifier trained with
  the out-of-scope examples as one more class (only when such examples are given).

* ``combined``: the mean of the other scores, each standardised by its mean and spread on the
  in-scope validation messages. The scores err on different messages (a near-duplicate of a
  training message with a low top probability, a confident classifier far from every training
  message); on CLINC150 their mean separates better than any one (test AUROC 0.980 against
  0.965 for the best single score - benchmarks/README.md).

``choose`` keeps the score that does best on validation at its own threshold (AUROC reported
beside it). The threshold is, by default, the one with the best out-of-scope F1; with
``target_precision`` it is the one with the highest recall whose precision reaches the target.
Precision depends on how common out-of-scope messages are, and a validation set rarely has
the share live traffic has (CLINC150: 3 % of validation, 18 % of test), so ``share`` (the
expected out-of-scope share of the traffic, when the user knows it) reweights the validation
messages to that share before precision and F1 are computed. Without out-of-scope validation
messages there is nothing to compare on: the configured score is used (default
``mahalanobis``) and its threshold hands off a set share of in-scope validation messages
(``in_scope_rejection``, default 5%).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from ...search import VectorIndex, normalise


class Mahalanobis:
    def __init__(self, means: np.ndarray, whiten: np.ndarray):
        self.means, self.whiten = means, whiten  # distance = |(x - mu) W|^2
        self._m = means @ whiten

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.means": self.means, f"{prefix}.whiten": self.whiten}

    @classmethod
    def from_arrays(cls, arrays: dict, prefix: str) -> "Mahalanobis | None":
        """The score saved by ``to_arrays(prefix)``, or None when the arrays hold none."""
        if f"{prefix}.means" not in arrays:
            return None
        return cls(arrays[f"{prefix}.means"], arrays[f"{prefix}.whiten"])

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


def best_threshold(scores: np.ndarray, is_oos: np.ndarray, *, share: float | None = None,
                   target_precision: float | None = None) -> tuple[float, dict]:
    """The threshold (flag when score >= t) with the best OOS F1 on validation - or, with
    ``target_precision``, the highest recall whose precision reaches it (the best F1 when none
    does, said in the result) - and its precision, recall and F1. ``share``: weigh the OOS
    messages so they make up this share of the total (None: as they come)."""
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], is_oos[order].astype(bool)
    pos, neg = int(t.sum()), int((~t).sum())
    w = share / (1 - share) * neg / max(pos, 1) if share is not None and pos and neg else 1.0
    tp = np.cumsum(t) * w
    fp = np.cumsum(~t)
    last = np.r_[s[1:] != s[:-1], True]  # only cut between distinct scores
    prec = tp / np.maximum(tp + fp, 1e-12)
    rec = tp / max(pos * w, 1e-12)
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0)
    f1 = np.where(last, f1, -1)
    extra: dict = {}
    reach = np.flatnonzero(last & (prec >= target_precision)) if target_precision else []
    if len(reach):
        i = int(reach.max())  # the lowest threshold (most recall) still at the target
    else:
        i = int(np.argmax(f1))
        if target_precision:
            extra["target_missed"] = (f"no threshold reaches precision {target_precision:g} on "
                                      "validation: the best F1 is used")
    # the threshold halfway to the next lower score, so a small shift does not flip the edge case
    nxt = s[i + 1] if i + 1 < len(s) else s[i] - 1e-6
    thr = float((s[i] + nxt) / 2) if nxt < s[i] else float(s[i])
    return thr, {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                 **extra}


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


class Combined:
    """The mean of several scores, each standardised on in-scope validation messages."""

    def __init__(self, parts: list[str], mean: list[float], std: list[float]):
        self.parts, self.mean, self.std = list(parts), list(mean), list(std)

    @classmethod
    def fit(cls, in_scope: dict[str, np.ndarray]) -> "Combined":
        parts = sorted(in_scope)
        return cls(parts, [float(np.mean(in_scope[p])) for p in parts],
                   [float(np.std(in_scope[p])) or 1.0 for p in parts])

    def score(self, scores: dict[str, np.ndarray]) -> np.ndarray:
        return np.mean([(np.asarray(scores[p], np.float64) - m) / s
                        for p, m, s in zip(self.parts, self.mean, self.std)], axis=0)

    def to_json(self) -> dict:
        return {"parts": self.parts, "mean": self.mean, "std": self.std}


def choose(valid_scores: dict[str, np.ndarray], is_oos: np.ndarray, fallback: str,
           in_scope_rejection: float, *, share: float | None = None,
           target_precision: float | None = None) -> tuple[str, float, dict]:
    """(method, threshold, report per method). With ``target_precision`` the method with the
    most recall at the target wins, else the best F1; ties go to the higher AUROC."""
    report: dict[str, dict] = {}
    if is_oos.any():
        for name, sc in valid_scores.items():
            thr, prf = best_threshold(sc, is_oos, share=share, target_precision=target_precision)
            report[name] = {"threshold": thr, "auroc": auroc(sc, is_oos), **prf}

        def merit(n: str) -> tuple:
            r = report[n]
            if target_precision:
                return ("target_missed" not in r, round(r["recall"], 9), r["auroc"] or 0)
            return (round(r["f1"], 9), r["auroc"] or 0)

        best = max(report, key=merit)
        rule = (f"the most out-of-scope recall at precision >= {target_precision:g}"
                if target_precision else "the best out-of-scope F1")
        if share is not None:
            rule += f", validation reweighted to an out-of-scope share of {share:g}"
        report[best]["rule"] = rule
        return best, report[best]["threshold"], report
    sc = valid_scores[fallback]
    thr = float(np.quantile(sc, 1 - in_scope_rejection))
    report[fallback] = {"threshold": thr, "rule": f"no out-of-scope validation examples: the "
                        f"threshold hands off {in_scope_rejection:.0%} of in-scope validation "
                        "messages"}
    return fallback, thr, report
