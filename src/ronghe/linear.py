"""A logistic-regression head chosen on validation data and stored as plain arrays.

Used by the ``classic`` (TF-IDF) and ``frozen`` (embedding) strategies. The regularisation
strength C is picked from a small grid by validation macro-F1 (a default that adapts to the data
instead of being tuned to one benchmark). The fitted model is stored as ``coef``/``intercept``
arrays and rebuilt without pickle.

The grid can be walked as a warm-started regularisation path (``path="warm"``, an option of the
``classic`` strategy, measured no faster there): one ``LogisticRegression`` with ``warm_start=True`` is refitted with C
increasing, each fit starting from the previous solution. The problem is convex, so every C
reaches the same optimum as a cold fit (within the solver tolerance).
``path="cold"`` (the default) refits from zero for
each C. The continuation fits stop at ``tol * WARM_TOL_FACTOR``: lbfgs stops on the size of the
gradient, and at the previous C's solution the gradient of the new objective is often already
below the cold fits' ``tol`` (the objective is averaged over the samples), so without a tighter
rule a larger C would keep the previous coefficients after 0 iterations.
"""

from __future__ import annotations

import copy
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score


def _make(C: float, seed: int, max_iter: int, warm: bool = False,
          tol: float = 1e-4) -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=max_iter, random_state=seed, warm_start=warm, tol=tol)


PATHS = ("warm", "cold")
WARM_TOL_FACTOR = 0.1


def fit_logreg(X, y: np.ndarray, X_valid, y_valid: np.ndarray | None, grid: list[float],
               seed: int = 0, max_iter: int = 1000, path: str = "cold", tol: float = 1e-4,
               ) -> tuple[LogisticRegression, list[dict]]:
    """Fit one model per C in ``grid`` and keep the best on validation macro-F1 (ties: smaller C).

    ``path="warm"`` visits the C values in increasing order, each fit warm-started from
    the previous one (stopping at ``tol * WARM_TOL_FACTOR``); ``path="cold"`` (default) fits each C
    from scratch in the given order, stopping at ``tol``. Without
    validation data only the first C of ``grid`` is fitted.

    Returns the model and the search history [{"C", "valid_macro_f1", "n_iter", "fit_seconds",
    "valid_seconds"}, ...] in the order the C values were fitted.
    """
    if path not in PATHS:
        raise ValueError(f"fit_logreg: unknown path {path!r}; use one of {PATHS}")
    history = []
    best, best_score = None, -1.0
    validate = X_valid is not None and y_valid is not None
    if not validate or len(grid) == 1:
        candidates = list(grid[:1])
    elif path == "warm":
        candidates = sorted(grid)
    else:
        candidates = list(grid)
    model = None
    for C in candidates:
        if path == "warm" and model is not None:
            # keeps coef_/intercept_ as the starting point
            model.set_params(C=C, tol=tol * WARM_TOL_FACTOR)
        else:
            model = _make(C, seed, max_iter, warm=path == "warm", tol=tol)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)
        fit_s = time.perf_counter() - start
        if not validate:
            model.set_params(warm_start=False)
            return model, history
        start = time.perf_counter()
        score = float(f1_score(y_valid, model.predict(X_valid), average="macro"))
        history.append({"C": C, "valid_macro_f1": round(score, 5),
                        "n_iter": int(np.max(model.n_iter_)), "fit_seconds": round(fit_s, 3),
                        "valid_seconds": round(time.perf_counter() - start, 3)})
        if score > best_score + 1e-9 or (abs(score - best_score) <= 1e-9 and C < best.C):
            best, best_score = (copy.deepcopy(model) if path == "warm" else model), score
    best.set_params(warm_start=False, tol=tol)
    return best, history


def to_arrays(model: LogisticRegression, prefix: str = "lr") -> tuple[dict, dict]:
    arrays = {f"{prefix}.coef": model.coef_, f"{prefix}.intercept": model.intercept_}
    meta = {"C": float(model.C), "classes": [int(c) for c in model.classes_]}
    return arrays, meta


def from_arrays(arrays: dict, meta: dict, prefix: str = "lr") -> LogisticRegression:
    model = LogisticRegression(C=meta["C"])
    model.coef_ = arrays[f"{prefix}.coef"]
    model.intercept_ = arrays[f"{prefix}.intercept"]
    model.classes_ = np.array(meta["classes"])
    return model


def proba_full(model: LogisticRegression, X, n_classes: int) -> np.ndarray:
    """predict_proba widened to all ``n_classes`` (a class absent from training gets 0)."""
    p = model.predict_proba(X)
    if p.shape[1] == n_classes:
        return p
    out = np.zeros((p.shape[0], n_classes))
    out[:, model.classes_] = p
    return out
