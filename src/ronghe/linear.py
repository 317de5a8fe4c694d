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
each C; those fits are independent, so with ``n_jobs`` > 1 they run at once, one thread of
OpenMP/BLAS each so the cores are not oversubscribed. ``backend="auto"`` runs small fits in
threads (scipy's sparse products and scikit-learn's loss release the GIL, and starting no process
costs nothing) and large ones - ``PROCESS_MIN_WORK`` non-zeros x coefficient vectors and more -
in worker processes (joblib's loky: the data is memory-mapped, not copied), where L-BFGS's
Python-side steps no longer queue for one GIL. If worker processes cannot be started or die,
the fits are re-run in threads (logged). The fits and the choice are the same as one after
another - only the wall time changes.

The continuation fits stop at ``tol * WARM_TOL_FACTOR``: lbfgs stops on the size of the
gradient, and at the previous C's solution the gradient of the new objective is often already
below the cold fits' ``tol`` (the objective is averaged over the samples), so without a tighter
rule a larger C would keep the previous coefficients after 0 iterations.
"""

from __future__ import annotations

import copy
import logging
import os
import time
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from .machine import available_cores


def _make(C: float, seed: int, max_iter: int, warm: bool = False,
          tol: float = 1e-4) -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=max_iter, random_state=seed, warm_start=warm, tol=tol)


PATHS = ("warm", "cold")
WARM_TOL_FACTOR = 0.1


LBFGS_HISTORY = 10  # scipy's L-BFGS-B keeps this many correction pairs (scikit-learn's default)


def auto_jobs(X, n_classes: int, n_fits: int, memory_share: float = 0.25) -> int:
    """Cold fits to run at once: one per available core and C value, fewer when their estimated
    memory (coefficients, the solver's history, per-sample scores) would pass ``memory_share``
    of the memory available now."""
    weights = (X.shape[1] + 1) * max(n_classes, 1)
    per_fit = 8 * (weights * (2 * LBFGS_HISTORY + 6) + X.shape[0] * max(n_classes, 1) * 4)
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        free = 0
    by_memory = int(free * memory_share // per_fit) if free else 1
    return max(1, min(available_cores(), n_fits, by_memory))


BACKENDS = ("auto", "threads", "processes")
# non-zeros x coefficient vectors of X from which "auto" fits in processes: about where one fit
# takes seconds, so the second or so a worker process needs to start is a small share
PROCESS_MIN_WORK = 2e7

log = logging.getLogger(__name__)


def choose_backend(X, n_classes: int, backend: str = "auto") -> str:
    """``threads`` or ``processes`` for ``backend`` (``auto``: by the size of the fit)."""
    if backend not in BACKENDS:
        raise ValueError(f"fit_logreg: unknown backend {backend!r}; use one of {BACKENDS}")
    if backend != "auto":
        return backend
    nnz = X.nnz if sp.issparse(X) else int(np.prod(X.shape))
    vectors = n_classes if n_classes > 2 else 1  # a binary problem fits one coefficient vector
    return "processes" if nnz * vectors >= PROCESS_MIN_WORK else "threads"


def _fit_many(models: list, X, y, jobs: int, backend: str, rows: list | None = None) -> list:
    """``_fit`` of each model, ``jobs`` at a time, in threads or worker processes (one BLAS
    thread each when more than one runs). ``rows``: per model, the rows of ``X`` / ``y`` it fits
    (cross-validation folds; sliced as each fit is dispatched), else all."""
    from joblib import Parallel, delayed
    from threadpoolctl import threadpool_limits

    def tasks():
        for m, r in zip(models, rows or [None] * len(models)):
            yield delayed(_fit)(m, X if r is None else X[r], y if r is None else y[r])

    if backend == "processes":
        from joblib.externals.loky.process_executor import BrokenProcessPool, TerminatedWorkerError

        try:
            return Parallel(n_jobs=jobs, backend="loky", inner_max_num_threads=1)(tasks())
        except (BrokenProcessPool, TerminatedWorkerError, OSError) as e:
            log.warning("fitting in worker processes failed (%s: %s); fitting in threads",
                        type(e).__name__, str(e)[:200])
    with threadpool_limits(1 if jobs > 1 else None):
        return Parallel(n_jobs=jobs, prefer="threads")(tasks())


def _fit(model: LogisticRegression, X, y):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return model, time.perf_counter() - start


SELECTIONS = ("valid", "cv", "auto")
CV_MAX_VALID = 500  # "auto": validation sets smaller than this choose C by cross-validation ...
CV_MAX_EXAMPLES = 10_000  # ... when training + validation data are at most this many examples
CV_FOLDS = 5


def cv_folds(y_all: np.ndarray, n_valid: int | None, selection: str) -> int:
    """Folds for choosing C by cross-validation, or 0 to choose on the validation set:
    ``selection="cv"``, or ``"auto"`` with a small validation set (under ``CV_MAX_VALID``) in
    small data (at most ``CV_MAX_EXAMPLES``), where one split ranks C values by a handful of
    examples; at most ``CV_FOLDS``, and no more than the rarest class has examples (0 below 2)."""
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; use one of {SELECTIONS}")
    if not n_valid or selection == "valid" or (
            selection == "auto" and (n_valid >= CV_MAX_VALID or len(y_all) > CV_MAX_EXAMPLES)):
        return 0
    folds = min(CV_FOLDS, int(np.unique(y_all, return_counts=True)[1].min()))
    return folds if folds >= 2 else 0


def cv_log_loss(X, y: np.ndarray, grid: list[float], folds: int, seed: int, max_iter: int,
                tol: float = 1e-4) -> list[float]:
    """Mean held-out log-loss of each C over stratified ``folds``-fold cross-validation (every
    example scored once, by a model that did not see it): a proper score of the probabilities,
    smoother than the F1 of a few examples."""
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold

    labels = np.unique(y)
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    # the C x fold fits are independent: one per core at once, as fit_logreg's C fits
    tasks = [(C, a, b) for C in grid for a, b in splits]
    fitted = _fit_many([_make(C, seed, max_iter, tol=tol) for C, _, _ in tasks], X, y,
                       auto_jobs(X, len(labels), len(tasks)), "threads",
                       rows=[a for _, a, _ in tasks])
    losses = []  # the summed log-loss of each held-out fold
    for (m, _), (_, _, b) in zip(fitted, tasks):
        P = np.zeros((len(b), len(labels)))
        P[:, np.searchsorted(labels, m.classes_)] = m.predict_proba(X[b])
        P /= P.sum(1, keepdims=True)  # float32 features give float32 rounding in the sums
        losses.append(log_loss(y[b], P, labels=labels) * len(b))
    return [float(sum(losses[i * folds:(i + 1) * folds]) / len(y)) for i in range(len(grid))]


def fit_logreg(X, y: np.ndarray, X_valid, y_valid: np.ndarray | None, grid: list[float],
               seed: int = 0, max_iter: int = 1000, path: str = "cold", tol: float = 1e-4,
               n_jobs: int = 1, backend: str = "auto", selection: str = "valid"
               ) -> tuple[LogisticRegression, list[dict]]:
    """Fit one model per C in ``grid`` and keep the best on validation macro-F1 (ties: smaller C).

    ``selection``: ``valid`` (the above), ``cv`` or ``auto`` (see ``cv_folds``): C is then the
    one with the lowest cross-validated log-loss over the training and validation data together
    (``cv_log_loss``; ties: smaller C) - the model kept is still the one fitted on the training
    data alone, so the validation data stays unseen by it (scores and fusion weights read on it
    stay honest). Measured on Fashion-MNIST at 100 images per class, 5 samples scored on the
    10,000 test images: +0.37 points for ``classic`` (HOG), +0.34 / +0.28 for ``frozen`` at 224 /
    112 px, at 2-4x their training time (``benchmarks/README.md``, frozen image features).

    ``path="warm"`` visits the C values in increasing order, each fit warm-started from
    the previous one (stopping at ``tol * WARM_TOL_FACTOR``); ``path="cold"`` (default) fits each C
    from scratch in the given order, stopping at ``tol``. Without
    validation data only the first C of ``grid`` is fitted.

    ``n_jobs``: cold fits run at once (0 = ``auto_jobs``: one per available core and C, fewer
    when memory is short), in ``backend``: ``threads``, ``processes`` or ``auto`` (processes
    from ``PROCESS_MIN_WORK``, see ``choose_backend``).

    Returns the model and the search history [{"C", "valid_macro_f1", "n_iter", "fit_seconds",
    "valid_seconds", "selection_score"}, ...] in the order of ``grid`` (warm: increasing C); the
    selection score is the validation macro-F1, or minus the cross-validated log-loss (then also
    in "cv_log_loss", with "cv_folds") - higher is better either way.
    """
    if path not in PATHS:
        raise ValueError(f"fit_logreg: unknown path {path!r}; use one of {PATHS}")
    history = []
    best, best_score = None, -np.inf
    validate = X_valid is not None and y_valid is not None
    y_all = np.concatenate([y, y_valid]) if validate else y
    folds = cv_folds(y_all, len(y_valid), selection) if validate and len(grid) > 1 else 0
    cv = None
    if folds:
        X_all = sp.vstack([X, X_valid]).tocsr() if sp.issparse(X) else np.vstack([X, X_valid])
        cv = cv_log_loss(X_all, y_all, list(grid), folds, seed, max_iter, tol)
    if not validate or len(grid) == 1:
        candidates = list(grid[:1])
    elif path == "warm":
        candidates = sorted(grid)
    else:
        candidates = list(grid)
    n_classes = len(np.unique(y))
    kind = choose_backend(X, n_classes, backend)
    jobs = min(n_jobs, len(candidates)) if n_jobs else auto_jobs(X, n_classes, len(candidates))
    prefit: list = []
    if path == "cold" and validate and jobs > 1:
        prefit = _fit_many([_make(C, seed, max_iter, tol=tol) for C in candidates], X, y, jobs, kind)
    model = None
    for i, C in enumerate(candidates):
        if prefit:
            model, fit_s = prefit[i]
        elif path == "warm" and model is not None:
            # keeps coef_/intercept_ as the starting point
            model.set_params(C=C, tol=tol * WARM_TOL_FACTOR)
            model, fit_s = _fit(model, X, y)
        else:
            model, fit_s = _fit(_make(C, seed, max_iter, warm=path == "warm", tol=tol), X, y)
        if not validate:
            model.set_params(warm_start=False)
            return column_major(model), history
        start = time.perf_counter()
        score = float(f1_score(y_valid, model.predict(X_valid), average="macro"))
        history.append({"C": C, "valid_macro_f1": round(score, 5),
                        "n_iter": int(np.max(model.n_iter_)), "fit_seconds": round(fit_s, 3),
                        "valid_seconds": round(time.perf_counter() - start, 3)})
        if cv is not None:
            score = -cv[list(grid).index(C)]
            history[-1].update({"cv_log_loss": round(-score, 5), "cv_folds": folds})
        history[-1]["selection_score"] = round(score, 5)
        if score > best_score + 1e-9 or (abs(score - best_score) <= 1e-9 and C < best.C):
            best, best_score = (copy.deepcopy(model) if path == "warm" else model), score
    best.set_params(warm_start=False, tol=tol)
    return column_major(best), history


def column_major(model: LogisticRegression) -> LogisticRegression:
    """``coef_`` stored column-major, so ``coef_.T`` - what every prediction multiplies by - is
    a C-contiguous array. scipy's sparse-times-dense product wants one, and from a row-major
    ``coef_`` it copies the whole matrix on every call: 77 ms for one text against 151 classes x
    300k TF-IDF features, 0.13 ms column-major (the assistant's and the server's batch-1 path).
    The numbers do not change; only the memory order."""
    model.coef_ = np.asfortranarray(model.coef_)
    return model


def to_arrays(model: LogisticRegression, prefix: str = "lr") -> tuple[dict, dict]:
    arrays = {f"{prefix}.coef": np.ascontiguousarray(model.coef_),
              f"{prefix}.intercept": model.intercept_}
    meta = {"C": float(model.C), "classes": [int(c) for c in model.classes_]}
    return arrays, meta


def from_arrays(arrays: dict, meta: dict, prefix: str = "lr") -> LogisticRegression:
    model = LogisticRegression(C=meta["C"])
    model.coef_ = arrays[f"{prefix}.coef"]
    model.intercept_ = arrays[f"{prefix}.intercept"]
    model.classes_ = np.array(meta["classes"])
    return column_major(model)


def proba_full(model: LogisticRegression, X, n_classes: int) -> np.ndarray:
    """predict_proba widened to all ``n_classes`` (a class absent from training gets 0)."""
    p = model.predict_proba(X)
    if p.shape[1] == n_classes:
        return p
    out = np.zeros((p.shape[0], n_classes))
    out[:, model.classes_] = p
    return out
