"""Two-sample tests for drift, each returning its effect size beside its p-value.

Why effect sizes: with thousands of items every test finds *some* difference (Evidently #50,
#509; alibi-detect's p-values on large batches), and with a few dozen items nothing is
significant. A drift alarm here needs both: p below ``alpha`` *and* an effect above a threshold a
person can read (a classifier's AUC, Cramer's V, points of confidence).

- ``mmd``: kernel maximum mean discrepancy on embeddings (RBF kernel, bandwidth by the median
  heuristic on the pooled sample), p-value from label permutations (vectorised: one matrix
  product for all permutations).
- ``c2st``: classifier two-sample test - a logistic regression learns to tell current from
  reference embeddings; its cross-validated AUC is the effect (0.5 = indistinguishable), the
  p-value is the Mann-Whitney test of its out-of-fold scores (AUC is the U statistic scaled).
- ``label_shift``: chi-square test on predicted-label counts; Cramer's V and the total
  variation distance (the share of predictions that would have to change label).
- ``confidence_drop``: one-sided Mann-Whitney test that the current top-class probabilities
  are lower; the effect is the drop of the mean.
"""

from __future__ import annotations

import numpy as np


def _sq_dists(Z: np.ndarray) -> np.ndarray:
    sq = (Z * Z).sum(1)
    d = sq[:, None] + sq[None, :] - 2.0 * (Z @ Z.T)
    np.maximum(d, 0.0, out=d)
    return d


def mmd(X: np.ndarray, Y: np.ndarray, *, permutations: int = 500, seed: int = 0) -> dict:
    """MMD^2 (V-statistic, RBF kernel) between ``X`` (reference) and ``Y`` (current) with a
    permutation p-value. ``effect`` is MMD from the unbiased MMD^2 estimate, in kernel units:
    about 0 for equal distributions, at most sqrt(2)."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    n, m = len(X), len(Y)
    Z = np.vstack([X, Y])
    D = _sq_dists(Z)
    off = D[~np.eye(len(Z), dtype=bool)]
    bandwidth = float(np.median(off)) or 1.0
    K = np.exp(-D / bandwidth)
    del D
    rng = np.random.default_rng(seed)
    # column 0: the observed split; then ``permutations`` shuffled ones
    signs = np.empty((n + m, permutations + 1))
    base = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    signs[:, 0] = base
    for j in range(1, permutations + 1):
        signs[:, j] = rng.permutation(base)
    stats = np.einsum("ij,ij->j", signs, K @ signs)
    observed = float(stats[0])
    null = stats[1:]
    p = (1 + int((null >= observed).sum())) / (permutations + 1)
    # the effect: the unbiased estimate (the V-statistic above is biased upwards by ~1/n)
    kxx = (K[:n, :n].sum() - n) / (n * (n - 1))
    kyy = (K[n:, n:].sum() - m) / (m * (m - 1))
    unbiased = float(kxx + kyy - 2 * K[:n, n:].mean())
    return {"test": "mmd", "statistic": observed, "mmd2_unbiased": unbiased,
            "effect": float(np.sqrt(max(unbiased, 0.0))),
            "p_value": p, "null_mean": float(null.mean()), "bandwidth": bandwidth,
            "permutations": permutations}


def c2st(X: np.ndarray, Y: np.ndarray, *, folds: int = 5, seed: int = 0) -> dict:
    """Classifier two-sample test: cross-validated AUC of a logistic regression telling ``Y``
    (current) from ``X`` (reference), balanced class weights; p-value of the out-of-fold scores
    by the one-sided Mann-Whitney U test. ``scores`` are the current items' out-of-fold scores
    (how reference-unlike each one looks)."""
    from scipy.stats import mannwhitneyu
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    Z = np.vstack([X, Y]).astype(np.float64)
    y = np.concatenate([np.zeros(len(X)), np.ones(len(Y))])
    k = int(min(folds, len(X), len(Y)))
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced",
                                                             max_iter=1000))
    scores = cross_val_predict(clf, Z, y, cv=StratifiedKFold(k, shuffle=True, random_state=seed),
                               method="decision_function")
    u, p = mannwhitneyu(scores[y == 1], scores[y == 0], alternative="greater")
    auc = float(u) / (len(X) * len(Y))
    return {"test": "c2st", "auc": auc, "effect": auc, "p_value": float(p), "folds": k,
            "scores": scores[y == 1]}


def label_shift(ref_labels: list, cur_labels: list, classes: list) -> dict:
    """Chi-square test of predicted-label counts, reference vs current."""
    from scipy.stats import chi2_contingency

    keys = [str(c) for c in classes]
    ref = np.array([sum(1 for x in ref_labels if str(x) == k) for k in keys], dtype=float)
    cur = np.array([sum(1 for x in cur_labels if str(x) == k) for k in keys], dtype=float)
    used = (ref + cur) > 0
    table = np.vstack([ref[used], cur[used]])
    if table.shape[1] < 2:
        chi2, p = 0.0, 1.0
    else:
        chi2, p, _, _ = chi2_contingency(table, correction=False)
    n = table.sum()
    v = float(np.sqrt(chi2 / n)) if n else 0.0  # 2 rows: min(rows, cols) - 1 = 1
    ref_share = ref / max(ref.sum(), 1)
    cur_share = cur / max(cur.sum(), 1)
    return {"test": "chi2", "chi2": float(chi2), "p_value": float(p), "cramers_v": v,
            "effect": v, "tvd": float(0.5 * np.abs(ref_share - cur_share).sum()),
            "reference": dict(zip(keys, ref_share.round(4).tolist())),
            "current": dict(zip(keys, cur_share.round(4).tolist()))}


def confidence_drop(ref_conf: np.ndarray, cur_conf: np.ndarray) -> dict:
    """One-sided Mann-Whitney test that current top-class probabilities are lower."""
    from scipy.stats import mannwhitneyu

    _, p = mannwhitneyu(ref_conf, cur_conf, alternative="greater")
    drop = float(np.mean(ref_conf) - np.mean(cur_conf))
    return {"test": "mann-whitney", "reference_mean": float(np.mean(ref_conf)),
            "current_mean": float(np.mean(cur_conf)), "drop": drop, "effect": drop,
            "p_value": float(p)}
