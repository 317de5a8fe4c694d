"""The fused ranker: LightGBM LambdaRank over the signals' scores and the tabular features of
each (user, candidate item) pair, with early stopping on held-out users' NDCG@10.

The candidates of a user are the union of each signal's top items (seen items excluded);
``features`` turns them into one row each. The model is kept as LightGBM's text format
(``model_to_string``), never pickled.
"""

from __future__ import annotations

import numpy as np

# feature -> the signal it belongs to (the "reasons" of a recommendation add up by signal)
SIGNAL_OF = {"popularity": "popularity", "popularity_recent": "popularity",
             "item_age": "recency", "item_last_seen": "recency",
             "cooccurrence": "cooccurrence", "cooccurrence_recent": "cooccurrence",
             "mf": "mf", "text": "text", "text_recent": "text", "is_cold": "text",
             "history_length": "user", "user_recency": "user"}
BASE_FEATURES = list(SIGNAL_OF)
# a higher signal score never makes an item worse: monotone constraints keep the ranker from
# learning wiggles on sparse regions (where a new item's scores lie) from few users
INCREASING = {"popularity", "popularity_recent", "cooccurrence", "cooccurrence_recent", "mf",
              "text", "text_recent"}


def _top(s: np.ndarray, k: int) -> np.ndarray:
    k = min(k, len(s))
    return np.argpartition(-s, k - 1)[:k] if 0 < k < len(s) else np.arange(len(s))[:k]


def candidates(scores: dict[str, np.ndarray], text_hits: np.ndarray, seen: np.ndarray,
               per_signal: int, cold: np.ndarray | None = None, per_cold: int = 0
               ) -> np.ndarray:
    """The union of each signal's ``per_signal`` best unseen items (the text signal's come from
    the vector index) and of the ``per_cold`` best unseen ``cold`` items (no interactions) by
    text and by MF score, in a stable order."""
    n = len(scores["popularity"])
    banned = np.zeros(n, bool)
    banned[seen] = True
    pool = [text_hits[~banned[text_hits]] if len(text_hits) else text_hits]
    if per_cold and cold is not None and len(cold):
        cold = cold[~banned[cold]]
        for name in ("text", "mf"):
            pool.append(cold[_top(scores[name][cold], per_cold)])
    for name in ("popularity", "cooccurrence", "mf"):
        s = np.where(banned, -np.inf, scores[name])
        top = _top(s, per_signal)
        pool.append(top[np.isfinite(s[top])])
    out = np.unique(np.concatenate(pool).astype(np.int64))
    return out[~banned[out]]


def features(sig, scores: dict[str, np.ndarray], cand: np.ndarray, hist: np.ndarray,
             recent: int, item_x: np.ndarray, user_x: np.ndarray, user_recency: float = np.nan,
             names: list[str] | None = None) -> np.ndarray:
    """One row per candidate: the base features (``names``, in their order; default
    BASE_FEATURES), then the item's and the user's tabular columns. ``user_recency``: time
    since the user's last interaction, as a share of the log's span (NaN: unknown)."""
    span = sig.span
    if len(hist):
        text_recent = (sig.E[cand] @ sig.E[hist[-recent:]].T).max(axis=1)
    else:
        text_recent = np.zeros(len(cand), np.float32)
    n = len(cand)
    cols = {"popularity": scores["popularity"][cand],
            "popularity_recent": np.log1p(sig.recent_counts[cand]),
            "item_age": (sig.t_end - sig.first_time[cand]) / span,
            "item_last_seen": (sig.t_end - sig.last_time[cand]) / span,
            "cooccurrence": scores["cooccurrence"][cand],
            "cooccurrence_recent": scores["cooccurrence_recent"][cand],
            "mf": scores["mf"][cand], "text": scores["text"][cand], "text_recent": text_recent,
            "is_cold": (sig.counts[cand] == 0).astype(np.float32),
            "history_length": np.full(n, np.log1p(len(hist)), np.float32),
            "user_recency": np.full(n, user_recency, np.float32)}
    X = np.column_stack([cols[c] for c in (names or BASE_FEATURES)]).astype(np.float32)
    parts = [X]
    if item_x.shape[1]:
        parts.append(item_x[cand])
    if len(user_x):
        parts.append(np.broadcast_to(user_x, (len(cand), len(user_x))))
    return np.hstack(parts).astype(np.float32) if len(parts) > 1 else X


def train(groups: list[tuple[np.ndarray, np.ndarray]], valid_share: float, cfg, names: list[str]):
    """A LightGBM booster from (features, labels) groups, one per user, early-stopped on
    ``valid_share`` of the groups; (booster, report)."""
    import lightgbm as lgb

    rng = np.random.default_rng(cfg.seed)
    useful = [g for g in groups if g[1].any()]
    if len(useful) < 4:
        from ...errors import DataError

        raise DataError(f"only {len(useful)} users have their last interaction among the "
                        "candidates; the ranker needs more interactions (more users, or "
                        "users with at least 3 interactions each)")
    order = rng.permutation(len(useful))
    n_valid = max(1, int(round(valid_share * len(useful))))
    va, tr = order[:n_valid], order[n_valid:]

    def stack(idx):
        X = np.vstack([useful[i][0] for i in idx])
        y = np.concatenate([useful[i][1] for i in idx]).astype(np.int32)
        return X, y, [len(useful[i][1]) for i in idx]

    Xt, yt, gt = stack(tr)
    Xv, yv, gv = stack(va)
    params = {"objective": "lambdarank", "learning_rate": cfg.ranker_learning_rate,
              "num_leaves": cfg.ranker_leaves, "min_data_in_leaf": 20, "bagging_fraction": 0.8,
              "bagging_freq": 1, "feature_fraction": 0.9, "seed": cfg.seed, "num_threads": 1,
              "verbose": -1, "lambdarank_truncation_level": 20, "eval_at": [10],
              "metric": "ndcg", "monotone_constraints": [int(n in INCREASING) for n in names],
              "monotone_constraints_method": "advanced"}
    dtrain = lgb.Dataset(Xt, yt, group=gt, feature_name=names, free_raw_data=True)
    dvalid = lgb.Dataset(Xv, yv, group=gv, reference=dtrain)
    booster = lgb.train(params, dtrain, num_boost_round=cfg.ranker_rounds,
                        valid_sets=[dvalid], valid_names=["valid"],
                        callbacks=[lgb.early_stopping(cfg.early_stopping, verbose=False)])
    best = booster.best_iteration or cfg.ranker_rounds
    report = {"groups_train": len(tr), "groups_valid": len(va),
              "groups_without_positive": len(groups) - len(useful), "best_iteration": int(best),
              "valid_ndcg@10": float(booster.best_score["valid"]["ndcg@10"])}
    return booster, best, report


def with_new_places(full: np.ndarray, cold: np.ndarray, places: int, k: int = 10
                     ) -> np.ndarray:
    """The fused ranking with at least ``places`` of the top ``k`` given to items without
    interactions: new items the ranker already puts in its top ``k`` keep their places and
    count; for each one short, the top ``k``'s last warm item gives way to the best-scored new
    item not yet in it (those follow the ranker's top, in its order). A tie at the edge of the
    kept top is cut in the ranker's (stable) order, as a served list is; other ties are kept,
    for an evaluation that counts a tie at its average place (seen items: -inf)."""
    full = np.array(full, dtype=np.float64)  # a copy; float32 would tie scores once shifted
    ok = np.isfinite(full)
    order = np.flatnonzero(ok)[np.argsort(-full[ok], kind="stable")]
    short = min(places, k) - int(cold[order[:k]].sum())  # new items the top k lacks
    outside = order[k:][cold[order[k:]]]  # in the ranker's order
    best_new = outside[:max(short, 0)]
    if not len(best_new):
        return full
    top = order[~np.isin(order, best_new)][:k - len(best_new)]
    lo = full[ok].min()
    span = full[ok].max() - lo + 1.0
    out = np.where(ok, full - lo, -np.inf)  # the rest: [0, span)
    out[top] += 3 * span  # the top k - needed (a tie at its edge cut in the ranker's order)
    out[best_new] += 2 * span
    return out
