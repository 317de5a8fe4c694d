"""A logistic-regression head chosen on validation data and stored as plain arrays.

Used by the ``classic`` (TF-IDF) and ``frozen`` (embedding) strategies. The regularisation
strength C is picked from a small grid by validation macro-F1 (a default that adapts to the data
instead of being tuned to one benchmark). The fitted model is stored as ``coef``/``intercept``
arrays and rebuilt without pickle.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score


def _make(C: float, seed: int, max_iter: int) -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=max_iter, random_state=seed)


def fit_logreg(X, y: np.ndarray, X_valid, y_valid: np.ndarray | None, grid: list[float],
               seed: int = 0, max_iter: int = 1000) -> tuple[LogisticRegression, list[dict]]:
    """Fit one model per C in ``grid`` and keep the best on validation macro-F1 (ties: smaller C).

    Returns the model and the search history [{"C": ..., "valid_macro_f1": ...}, ...].
    """
    history = []
    best, best_score = None, -1.0
    candidates = grid if X_valid is not None and y_valid is not None and len(grid) > 1 else grid[:1]
    for C in candidates:
        model = _make(C, seed, max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)
        if X_valid is None or y_valid is None:
            return model, history
        score = float(f1_score(y_valid, model.predict(X_valid), average="macro"))
        history.append({"C": C, "valid_macro_f1": round(score, 5)})
        if score > best_score + 1e-9:
            best, best_score = model, score
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
