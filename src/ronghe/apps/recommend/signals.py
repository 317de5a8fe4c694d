"""The four signals a recommendation is fused from, each a score for every item given a user's
history:

* ``popularity``   interactions per item (all time, and in the most recent stretch of the log);
* ``cooccurrence`` item-item cosine of co-interaction counts (scipy sparse, top neighbours kept),
                   summed over the user's history and over the last few items;
* ``mf``           matrix factorisation by ``implicit`` (ALS by default, BPR on request); an item
                   no one has touched gets factors mapped from its text embedding (a ridge
                   regression fitted on the items that have factors), so it has an MF score too;
* ``text``         cosine between the item's text embedding and the user's profile (the
                   recency-weighted mean of the history's embeddings), candidates found with
                   ``ronghe.search.VectorIndex`` (faiss); also the best match to a recent item.

Each user's last interaction time is kept too: how long ago a user was last active tells the
ranker whether they are around when new items arrive (``user_recency``).

``Signals`` holds plain arrays only, so it is saved as safetensors and loaded without pickle.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ...search import VectorIndex, normalise

NEIGHBOURS = 100  # co-occurrence neighbours kept per item
RECENT_SHARE = 0.1  # the last 10% of the log's time span: "recent" popularity
DECAY = 0.9  # profile weight of the k-th most recent history item: DECAY**k


def _mf_model(cfg):
    if cfg.mf == "bpr":
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking(factors=cfg.factors, iterations=cfg.mf_iterations * 4,
                                           regularization=cfg.mf_regularization,
                                           random_state=cfg.seed, num_threads=1)
    from implicit.cpu.als import AlternatingLeastSquares

    return AlternatingLeastSquares(factors=cfg.factors, iterations=cfg.mf_iterations,
                                   regularization=cfg.mf_regularization, alpha=cfg.mf_alpha,
                                   random_state=cfg.seed, num_threads=1,
                                   calculate_training_loss=False)


def cooccurrence(X: sp.csr_matrix, keep: int = NEIGHBOURS) -> sp.csr_matrix:
    """Item-item cosine of a binary user x item matrix, each row cut to its ``keep`` largest."""
    C = (X.T @ X).tocsr().astype(np.float32)
    C.setdiag(0)
    C.eliminate_zeros()
    n = np.sqrt(np.asarray(X.sum(axis=0)).ravel()).astype(np.float32)
    C = sp.diags(1 / np.maximum(n, 1e-9)) @ C @ sp.diags(1 / np.maximum(n, 1e-9))
    C = C.tocsr()
    rows, cols, vals = [], [], []
    for i in range(C.shape[0]):
        a, b = C.indptr[i], C.indptr[i + 1]
        if b - a > keep:
            top = np.argpartition(-C.data[a:b], keep)[:keep] + a
        else:
            top = np.arange(a, b)
        rows.append(np.full(len(top), i))
        cols.append(C.indices[top])
        vals.append(C.data[top])
    cat = (lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt))
    return sp.csr_matrix((cat(vals, np.float32), (cat(rows, np.int64), cat(cols, np.int64))),
                         shape=C.shape)


class Signals:
    """Fitted on (user, item, time) positions; ``scores(history)`` for one user."""

    ARRAYS = ("counts", "recent_counts", "first_time", "last_time", "item_factors",
              "user_factors", "text_map", "cooc_indptr", "cooc_indices", "cooc_data",
              "user_last_time")

    @classmethod
    def fit(cls, users: np.ndarray, items: np.ndarray, times: np.ndarray, n_users: int,
            n_items: int, E: np.ndarray, cfg) -> "Signals":
        from threadpoolctl import threadpool_limits

        self = cls()
        self.t_start, self.t_end = (float(times.min()), float(times.max())) if len(times) else (0.0, 1.0)
        span = max(self.t_end - self.t_start, 1e-9)
        self.span = span
        self.counts = np.bincount(items, minlength=n_items).astype(np.float32)
        recent = times >= self.t_end - RECENT_SHARE * span
        self.recent_counts = np.bincount(items[recent], minlength=n_items).astype(np.float32)
        self.first_time = np.full(n_items, np.nan, np.float64)
        self.last_time = np.full(n_items, np.nan, np.float64)
        self.user_last_time = np.full(n_users, np.nan, np.float64)
        if len(items):
            np.fmin.at(self.first_time, items, times)
            np.fmax.at(self.last_time, items, times)
            np.fmax.at(self.user_last_time, users, times)
        X = sp.csr_matrix((np.ones(len(items), np.float32), (users, items)),
                          shape=(n_users, n_items))
        X.data[:] = 1.0  # duplicates summed by the constructor: back to "interacted"
        self.cooc = cooccurrence(X)
        with threadpool_limits(1, "blas"):  # implicit's advice: its own threads, not BLAS's
            model = _mf_model(cfg)
            model.fit(X, show_progress=False)
        self.item_factors = np.asarray(model.item_factors, np.float32)
        self.user_factors = np.asarray(model.user_factors, np.float32)
        self.mf_kind, self.reg, self.alpha = cfg.mf, cfg.mf_regularization, cfg.mf_alpha
        warm = self.counts > 0
        self.text_map = _ridge(E[warm], self.item_factors[warm]) if warm.any() else \
            np.zeros((E.shape[1], self.item_factors.shape[1]), np.float32)
        self.item_factors[~warm] = E[~warm] @ self.text_map
        self.E = E
        self.index = None
        self.cfg = cfg
        return self

    # -- items added after training (from their text) -------------------------------------

    def add_items(self, E_new: np.ndarray) -> None:
        k = len(E_new)
        self.E = np.vstack([self.E, E_new]).astype(np.float32)
        for name in ("counts", "recent_counts"):
            setattr(self, name, np.r_[getattr(self, name), np.zeros(k, np.float32)])
        for name in ("first_time", "last_time"):
            setattr(self, name, np.r_[getattr(self, name), np.full(k, np.nan)])
        self.item_factors = np.vstack([self.item_factors, E_new @ self.text_map]).astype(np.float32)
        n = self.cooc.shape[0] + k
        self.cooc = sp.csr_matrix((self.cooc.data, self.cooc.indices,
                                   np.r_[self.cooc.indptr, np.full(k, self.cooc.indptr[-1])]),
                                  shape=(n, n))
        self.index = None

    def text_index(self) -> VectorIndex:
        if self.index is None:
            self.index = VectorIndex(self.E, self.cfg.search, self.cfg.hnsw_above)
        return self.index

    # -- one user ---------------------------------------------------------------------------

    def user_factor(self, user: int | None, hist: np.ndarray) -> np.ndarray:
        """The user's MF vector: the fitted one for a known user whose history is unchanged,
        else solved from the history (ALS's least squares with the item factors fixed; BPR:
        the mean of the history's item factors)."""
        if user is not None and user < len(self.user_factors):
            return self.user_factors[user]
        if not len(hist):
            return np.zeros(self.item_factors.shape[1], np.float32)
        Y = self.item_factors
        if self.mf_kind == "bpr":
            return Y[hist].mean(axis=0)
        Yh = Y[hist]
        c = 1.0 + self.alpha
        A = Y.T @ Y + (c - 1) * Yh.T @ Yh + self.reg * np.eye(Y.shape[1], dtype=np.float32)
        return np.linalg.solve(A, c * Yh.sum(axis=0)).astype(np.float32)

    def profile(self, hist: np.ndarray) -> np.ndarray | None:
        """Recency-weighted mean text embedding of a history (oldest first), unit length."""
        if not len(hist):
            return None
        w = DECAY ** np.arange(len(hist))[::-1]
        return normalise((w[:, None] * self.E[hist]).sum(axis=0, keepdims=True))[0]

    def full_scores(self, user: int | None, hist: np.ndarray, recent: int) -> dict[str, np.ndarray]:
        """Every item's score by each signal for a history (item positions, oldest first)."""
        n = len(self.E)
        out = {"popularity": np.log1p(self.counts)}
        if len(hist):
            out["cooccurrence"] = np.asarray(self.cooc[hist].sum(axis=0)).ravel() / len(hist)
            out["cooccurrence_recent"] = (np.asarray(self.cooc[hist[-recent:]].sum(axis=0))
                                          .ravel() / min(recent, len(hist)))
        else:
            out["cooccurrence"] = out["cooccurrence_recent"] = np.zeros(n, np.float32)
        out["mf"] = self.item_factors @ self.user_factor(user, hist)
        p = self.profile(hist)
        out["text"] = self.E @ p if p is not None else np.zeros(n, np.float32)
        out["profile"] = p
        return out


def _ridge(X: np.ndarray, Y: np.ndarray, lam: float = 1.0) -> np.ndarray:
    X = X.astype(np.float64)
    return np.linalg.solve(X.T @ X + lam * np.eye(X.shape[1]), X.T @ Y.astype(np.float64)
                           ).astype(np.float32)


def to_arrays(s: Signals) -> tuple[dict[str, np.ndarray], dict]:
    arrays = {"counts": s.counts, "recent_counts": s.recent_counts, "first_time": s.first_time,
              "last_time": s.last_time, "item_factors": s.item_factors,
              "user_factors": s.user_factors, "text_map": s.text_map,
              "cooc_indptr": s.cooc.indptr.astype(np.int64),
              "cooc_indices": s.cooc.indices.astype(np.int64), "cooc_data": s.cooc.data,
              "user_last_time": s.user_last_time}
    meta = {"t_start": s.t_start, "t_end": s.t_end, "span": s.span, "mf_kind": s.mf_kind,
            "reg": s.reg, "alpha": s.alpha}
    return {f"signals.{k}": v for k, v in arrays.items()}, meta


def from_arrays(arrays: dict, meta: dict, E: np.ndarray, cfg) -> Signals:
    s = Signals()
    a = {k[len("signals."):]: v for k, v in arrays.items() if k.startswith("signals.")}
    for k in ("counts", "recent_counts", "first_time", "last_time", "item_factors",
              "user_factors", "text_map"):
        setattr(s, k, a[k])
    # bundles from before the user recency feature: unknown (their ranker does not use it)
    s.user_last_time = a.get("user_last_time", np.full(len(s.user_factors), np.nan))
    n = len(a["counts"])
    s.cooc = sp.csr_matrix((a["cooc_data"], a["cooc_indices"], a["cooc_indptr"]), shape=(n, n))
    for k, v in meta.items():
        setattr(s, k, v)
    s.E, s.index, s.cfg = E, None, cfg
    return s
