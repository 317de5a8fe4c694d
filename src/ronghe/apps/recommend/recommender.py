"""``Recommender``: the signals (``signals.py``) fused by a LambdaRank ranker (``ranker.py``),
saved as one bundle.

Fitting (time-aware, nothing from a user's future reaches the model that ranks it):

1. every item's text is embedded with the backbone (mean-pooled, unit length);
2. the ranker's training data: each user's last interaction is held out (``leave_last_out``),
   the signals are fitted on what remains, with ``cold_holdout`` of the items hidden entirely
   (the newest by first interaction, or a random draw: ``cold_holdout_by``), so the ranker
   sees positives known only by their text and features, as a new item will be; each
   user's candidates become rows labelled 1 for the held-out item; LambdaRank learns on 80%
   of the users and stops early on the others' NDCG@10;
3. the signals are fitted again on all the interactions, for serving;
4. with ``new_places="auto"`` (the default) the places of a top 10 kept for items without
   interactions are chosen on validation: a second recommender is fitted on the interactions
   without each user's last one and without the newest ``cold_holdout`` of the items, and the
   fewest places at which those users' last interactions find the hidden (new) items at least
   ``new_target`` times as often as the others (HR@10) is kept.

The bundle (``save``)::

    recommender/
      ronghe.json           task "recommender": config, item ids and texts, user ids, feature
                            names, the ranker's report, checksums
      arrays.safetensors    item embeddings, MF factors, the text->factor map, co-occurrence,
                            popularity, histories, tabular features
      ranker.txt            LightGBM's text model
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from ... import backbones, bundle
from ...errors import ConfigError, DataError
from ...log import info
from ...search import normalise
from . import ranker as rk
from .config import RecommendConfig, build as build_config
from .data import Items, leave_last_out
from .signals import Signals, from_arrays, to_arrays

TASK = "recommender"
MIN_NEW_CASES = 10  # held-out interactions on new items below which new_places=auto keeps none


class Recommender:
    """``Recommender(**options).fit(interactions, items, users)``; ``recommend(user, k)``."""

    def __init__(self, config: RecommendConfig | dict | None = None, **options):
        if isinstance(config, RecommendConfig):
            config = config.model_dump()
        self.config = build_config({**(config or {}), **options})
        self._embedder = None

    # -- fitting --------------------------------------------------------------------------------

    def fit(self, interactions: pd.DataFrame, items: Items, users: pd.DataFrame | None = None
            ) -> "Recommender":
        cfg = self.config
        start = time.perf_counter()
        self.notes_ = list(items.notes)
        self.item_ids_ = list(items.ids)
        texts = list(items.texts)
        known = set(self.item_ids_)
        extra = sorted(set(interactions["item"]) - known)
        if extra:
            self.notes_.append(f"{len(extra)} item(s) in the interactions are missing from the "
                               f"items file (e.g. {extra[0]!r}): kept, with no text")
            self.item_ids_ += extra
            texts += [""] * len(extra)
        self.item_texts_ = texts
        self.item_pos_ = {v: i for i, v in enumerate(self.item_ids_)}
        self.item_feature_names_ = list(items.features.columns)
        fx = items.features.to_numpy(np.float32)
        self.item_x_ = np.vstack([fx, np.full((len(extra), fx.shape[1]), np.nan, np.float32)])
        self.user_ids_ = sorted(set(interactions["user"]))
        self.user_pos_ = {v: i for i, v in enumerate(self.user_ids_)}
        self.user_feature_names_ = list(users.columns) if users is not None else []
        self.user_x_ = (users.reindex(self.user_ids_).to_numpy(np.float32) if users is not None
                        else np.zeros((len(self.user_ids_), 0), np.float32))
        self.backbone_ = backbones.resolve(cfg.model)
        info("recommender: embedding %d item texts with %s", len(texts), cfg.model)
        E = self.embed(texts)

        u = interactions["user"].map(self.user_pos_).to_numpy(np.int64)
        i = interactions["item"].map(self.item_pos_).to_numpy(np.int64)
        t = interactions["time"].to_numpy(np.float64)
        frame = pd.DataFrame({"user": u, "item": i, "time": t})
        # 2. the ranker, on signals that have not seen each user's last interaction
        base, target = leave_last_out(frame, 1, min_left=1)
        rng = np.random.default_rng(cfg.seed)
        seen_items = np.unique(base["item"].to_numpy())
        n_cold = int(round(cfg.cold_holdout * len(seen_items)))
        cold = _holdout(base, seen_items, n_cold, cfg.cold_holdout_by, rng)
        base = base[~base["item"].isin(cold)]
        sig = Signals.fit(base["user"].to_numpy(), base["item"].to_numpy(),
                          base["time"].to_numpy(), len(self.user_ids_), len(self.item_ids_), E,
                          cfg)
        hist = _histories(base, len(self.user_ids_))
        self.feature_names_ = (rk.BASE_FEATURES + [f"item.{c}" for c in self.item_feature_names_]
                               + [f"user.{c}" for c in self.user_feature_names_])
        groups, cold_positive = [], 0
        for row in target.itertuples(index=False):
            h = hist[row.user]
            if not len(h):
                continue
            cand, X = self._candidates(sig, row.user, h)
            groups.append((X, (cand == row.item).astype(np.int32)))
            cold_positive += bool(sig.counts[row.item] == 0 and (cand == row.item).any())
        booster, best, report = rk.train(groups, cfg.ranker_valid_users, cfg, self.feature_names_)
        self._set_ranker(booster.model_to_string(num_iteration=best))
        report["cold_holdout_items"] = int(n_cold)
        report["cold_holdout_by"] = cfg.cold_holdout_by
        # users whose held-out item had no interactions and was among their candidates: the
        # examples the ranker has of how an item without interactions is taken up
        report["groups_cold_positive"] = int(cold_positive)
        report["feature_gain_share"] = _gain_share(booster, best, self.feature_names_)
        info("recommender: ranker stopped at %d trees, validation NDCG@10 (among candidates) "
             "%.4f", best, report["valid_ndcg@10"])
        # 3. the signals on everything, for serving
        self.signals_ = Signals.fit(u, i, t, len(self.user_ids_), len(self.item_ids_), E, cfg)
        self.hist_ = _histories(frame, len(self.user_ids_))
        self.changed_ = set()
        self.new_places_, new_report = self._choose_new_places(interactions, items, users)
        self.metrics_ = {"ranker": report, "new_places": new_report,
                         "fit_seconds": round(time.perf_counter() - start, 2)}
        self.data_ = {"interactions": int(len(frame)), "users": len(self.user_ids_),
                      "items": len(self.item_ids_), "items_without_interactions":
                      int((self.signals_.counts == 0).sum()), "notes": self.notes_}
        return self

    def _choose_new_places(self, interactions: pd.DataFrame, items: Items,
                           users: pd.DataFrame | None) -> tuple[int, dict]:
        """(places, report): the config's ``new_places``, or for ``auto`` the fewest places
        (up to ``new_places_max``) at which new items' HR@10 reaches ``new_target`` times the
        warm items' on validation - each user's last interaction held out, the newest
        ``cold_holdout`` of the items hidden from a recommender fitted on the rest."""
        from .evaluate import evaluate

        cfg = self.config
        if cfg.new_places != "auto":
            return int(cfg.new_places), {"by": "config", "chosen": int(cfg.new_places)}
        train, valid = leave_last_out(interactions, 1, min_left=1)
        first = train.groupby("item")["time"].min().sort_values(kind="stable")
        newest = set(first.index[len(first) - int(round(cfg.cold_holdout * len(first))):])
        train = train[~train["item"].isin(newest)]
        valid = valid[valid["user"].isin(set(train["user"]))]
        report = {"by": "auto", "target": cfg.new_target, "new_items_hidden": len(newest),
                  "new_cases": int(valid["item"].isin(newest).sum()),
                  "warm_cases": int((~valid["item"].isin(newest)).sum())}
        if report["new_cases"] < MIN_NEW_CASES:
            self.notes_.append(f"new_places=auto: only {report['new_cases']} held-out "
                               "interaction(s) on the newest items, too few to measure how new "
                               "items are taken up, so no places are kept for them (set "
                               "new_places to keep some)")
            return 0, {**report, "chosen": 0}
        info("recommender: choosing new_places on validation (%d held-out interactions, %d on "
             "the %d newest items)", len(valid), report["new_cases"], len(newest))
        inner = Recommender({**cfg.model_dump(), "new_places": 0})
        inner._embedder = self._embedder
        try:
            inner.fit(train, items, users)
        except DataError as e:
            self.notes_.append(f"new_places=auto: the validation recommender could not be "
                               f"fitted ({e}); no places are kept for new items")
            return 0, {**report, "chosen": 0}
        top = range(1, cfg.new_places_max + 1)
        m = evaluate(inner, valid, history_1=False, new_places=top)["methods"]
        curve = [{"new_places": n, "warm_hr@10": round(m[k]["warm"].get("hr@10", 0.0), 4),
                  "new_hr@10": round(m[k]["cold"].get("hr@10", 0.0), 4)}
                 for n, k in [(0, "fused"), *((n, f"fused+{n}new") for n in top)]]
        chosen = fewest_new_places(curve, cfg.new_target)
        if chosen is None:
            chosen = cfg.new_places_max
            self.notes_.append(f"new_places=auto: on validation new items' HR@10 stays under "
                               f"{cfg.new_target} times the warm items' up to new_places_max="
                               f"{chosen}; keeping {chosen} places")
        c = curve[chosen]
        info("recommender: %d of 10 places for new items (validation HR@10 new %.3f vs warm "
             "%.3f)", chosen, c["new_hr@10"], c["warm_hr@10"])
        return chosen, {**report, "curve": curve, "chosen": chosen}

    def _set_ranker(self, text: str) -> None:
        import lightgbm as lgb

        self.ranker_text_ = text
        self.ranker_ = lgb.Booster(model_str=text)

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._embedder is None:
            from ...modeling import Embedder

            self._embedder = Embedder(self.backbone_.path, self.backbone_.sha256, batch_size=64,
                                      max_length=128)
        return normalise(self._embedder(list(texts)))

    # -- ranking --------------------------------------------------------------------------------

    def _candidates(self, sig: Signals, upos: int | None, hist: np.ndarray,
                    user_x: np.ndarray | None = None, scores=None):
        cfg = self.config
        factor_user = None if (upos is None or upos in getattr(self, "changed_", ())) else upos
        scores = scores or sig.full_scores(factor_user, hist, cfg.recent)
        p = scores.get("profile")
        if p is not None:
            _, hits = sig.text_index().search(p[None], cfg.candidates_per_signal + len(hist))
            hits = hits[0][hits[0] >= 0]
        else:
            hits = np.zeros(0, np.int64)
        cand = rk.candidates(scores, hits, hist, cfg.candidates_per_signal,
                             cold=np.flatnonzero(sig.counts == 0), per_cold=cfg.cold_candidates)
        ux = user_x if user_x is not None else (
            self.user_x_[upos] if upos is not None and upos < len(self.user_x_)
            else np.full(len(self.user_feature_names_), np.nan, np.float32))
        if upos is None:
            recency = np.nan  # an anonymous history: when it happened is unknown
        elif factor_user is None:
            recency = 0.0  # a user who has just interacted (after training)
        else:
            recency = (sig.t_end - sig.user_last_time[upos]) / sig.span
        base = [f for f in self.feature_names_ if f in rk.SIGNAL_OF]
        return cand, rk.features(sig, scores, cand, hist, cfg.recent, self.item_x_, ux,
                                 recency, base)

    def rank(self, user: str | None = None, history: list[str] | None = None):
        """(candidate item positions, ranker scores, features, all signal scores) for a known
        user (their stored history) or an anonymous history of item ids."""
        upos, hist = self._resolve(user, history)
        sig = self.signals_
        factor_user = None if (upos is None or upos in self.changed_) else upos
        scores = sig.full_scores(factor_user, hist, self.config.recent)
        cand, X = self._candidates(sig, upos, hist, scores=scores)
        s = self.ranker_.predict(X, num_threads=1) if len(cand) else np.zeros(0)
        return cand, s, X, scores, hist

    def _resolve(self, user, history):
        if history is not None:
            unknown = [h for h in history if h not in self.item_pos_]
            if unknown:
                raise DataError(f"history holds unknown item id(s): {unknown[:5]}")
            return None, np.array([self.item_pos_[h] for h in history], np.int64)
        if user is None or user not in self.user_pos_:
            return None, np.zeros(0, np.int64)
        upos = self.user_pos_[user]
        return upos, self.hist_[upos]

    def full_ranking(self, user: str | None = None, history: list[str] | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Every item's score (the ranker's for candidates, which all come first; the text
        profile blended with popularity for the others; -inf for seen items), and the history."""
        cand, s, _, scores, hist = self.rank(user, history)
        full = scores["text"] + 0.01 * scores["popularity"] - 1e6
        full[cand] = s
        full[hist] = -np.inf
        return full, hist

    def recommend(self, user: str | None = None, k: int = 10, *, history: list[str] | None = None,
                  reasons: bool = True, exclude: list[str] | None = None,
                  new_places: int | None = None) -> list[dict]:
        """The ``k`` best unseen items, each with its score and the signals that ranked it.
        At least ``new_places`` (default: ``default_places(k)``) of the ``k`` places go to items
        without interactions (``ranker.with_new_places``)."""
        cand, s, X, scores, hist = self.rank(user, history)
        if exclude:
            drop = np.isin(cand, [self.item_pos_[e] for e in exclude if e in self.item_pos_])
            cand, s, X = cand[~drop], s[~drop], X[~drop]
        if not len(cand):
            return []
        places = self.default_places(k) if new_places is None else int(new_places)
        if not 0 <= places <= k:
            raise ConfigError(f"new_places={places}: give 0 to k={k} places for new items")
        order = rk.with_new_places(s, self.signals_.counts[cand] == 0, places, k) if places \
            else s
        top = np.argsort(-order, kind="stable")[:k]
        return self._explain(cand[top], s[top], X[top], reasons)

    def default_places(self, k: int) -> int:
        """Places of a list of ``k`` kept for new items: the configured number (at most k), or
        with ``new_places=auto`` the chosen places of a top 10 as the same share of k."""
        if self.config.new_places == "auto":
            return min(k, int(round(self.new_places_ * k / 10)))
        return min(k, self.new_places_)

    def _explain(self, items: np.ndarray, s: np.ndarray, X: np.ndarray, reasons: bool) -> list[dict]:
        out = []
        contrib = self.ranker_.predict(X, pred_contrib=True, num_threads=1) if reasons else None
        names = self.feature_names_
        for j, (pos, score) in enumerate(zip(items, s)):
            rec = {"item": self.item_ids_[pos], "score": round(float(score), 6),
                   "cold": bool(self.signals_.counts[pos] == 0)}
            if reasons:
                by: dict[str, float] = {}
                for f, c in zip(names, contrib[j][:-1]):
                    g = rk.SIGNAL_OF.get(f, "item" if f.startswith("item.") else "user")
                    by[g] = by.get(g, 0.0) + float(c)
                rec["reasons"] = [{"signal": g, "contribution": round(c, 4)}
                                  for g, c in sorted(by.items(), key=lambda kv: -kv[1]) if c > 0]
                rec["signals"] = {f: round(float(X[j][names.index(f)]), 4)
                                  for f in ("popularity", "cooccurrence", "mf", "text")}
            out.append(rec)
        return out

    def similar(self, *, item: str | None = None, text: str | None = None, k: int = 10
                ) -> list[dict]:
        """Items whose text is nearest to an item's or to a free text (cosine, the vector index)."""
        if (item is None) == (text is None):
            raise ConfigError("give an item id or a text, not both")
        if item is not None:
            if item not in self.item_pos_:
                raise DataError(f"unknown item id {item!r}")
            q, skip = self.signals_.E[self.item_pos_[item]][None], {self.item_pos_[item]}
        else:
            q, skip = self.embed([text]), set()
        sims, idx = self.signals_.text_index().search(q, k + len(skip))
        return [{"item": self.item_ids_[p], "similarity": round(float(v), 4),
                 "text": self.item_texts_[p][:200]}
                for v, p in zip(sims[0], idx[0]) if p >= 0 and p not in skip][:k]

    # -- changes while serving ------------------------------------------------------------------

    def add_items(self, ids: list[str], texts: list[str], features: list[dict] | None = None
                  ) -> list[str]:
        """New items, recommendable at once from their text; ids already known are skipped.
        Returns the ids added."""
        new = [(i, t, (features or [{}] * len(ids))[j]) for j, (i, t) in enumerate(zip(ids, texts))
               if i not in self.item_pos_]
        if not new:
            return []
        E = self.embed([t for _, t, _ in new])
        rows = np.full((len(new), len(self.item_feature_names_)), np.nan, np.float32)
        for r, (_, _, f) in enumerate(new):
            for c, name in enumerate(self.item_feature_names_):
                if f and name in f and f[name] is not None:
                    rows[r, c] = float(f[name])
        for i, t, _ in new:
            self.item_pos_[i] = len(self.item_ids_)
            self.item_ids_.append(i)
            self.item_texts_.append(t)
        self.item_x_ = np.vstack([self.item_x_, rows])
        self.signals_.add_items(E)
        return [i for i, _, _ in new]

    def add_interaction(self, user: str, item: str) -> bool:
        """Append a click to a user's history (a new user is created); False if unknown item."""
        if item not in self.item_pos_:
            return False
        if user not in self.user_pos_:
            self.user_pos_[user] = len(self.user_ids_)
            self.user_ids_.append(user)
            self.hist_.append(np.zeros(0, np.int64))
            self.user_x_ = np.vstack([self.user_x_, np.full((1, self.user_x_.shape[1]), np.nan,
                                                            np.float32)])
        upos = self.user_pos_[user]
        self.hist_[upos] = np.r_[self.hist_[upos], self.item_pos_[item]].astype(np.int64)
        self.changed_.add(upos)
        return True

    # -- the bundle -----------------------------------------------------------------------------

    def save(self, path) -> Path:
        if not hasattr(self, "ranker_"):
            raise ConfigError("this Recommender is not fitted yet: call fit() or load()")
        arrays, sig_meta = to_arrays(self.signals_)
        lengths = np.array([len(h) for h in self.hist_], np.int64)
        arrays.update({"items.embeddings": self.signals_.E, "items.features": self.item_x_,
                       "users.features": self.user_x_,
                       "history.indptr": np.r_[0, np.cumsum(lengths)].astype(np.int64),
                       "history.items": (np.concatenate(self.hist_) if len(self.hist_)
                                         else np.zeros(0)).astype(np.int64)})
        meta = {"item_ids": self.item_ids_, "item_texts": self.item_texts_,
                "user_ids": self.user_ids_, "item_features": self.item_feature_names_,
                "user_features": self.user_feature_names_, "features": self.feature_names_,
                "signals": sig_meta}
        state = bundle.State(meta=meta, arrays=arrays,
                             files={"ranker.txt": self.ranker_text_.encode()})
        header = {"task": TASK, "strategy": "lambdarank-fusion", "labels": [],
                  "backbone": self.backbone_.to_json(),
                  "config": self.config.model_dump(mode="json"), "metrics": self.metrics_,
                  "data": self.data_}
        return bundle.save(path, header, state)

    @classmethod
    def load(cls, path) -> "Recommender":
        reader = bundle.open_app(path, TASK, "a recommender",
                                 "train one with `ronghe recommend train`")
        m = reader.manifest
        # a bundle saved before cold_candidates existed keeps the candidate lists it had
        # and one saved before new_places=auto keeps the lists it served
        self = cls({"cold_candidates": 0, "new_places": 0, **m.config})
        meta, a = reader.meta, reader.arrays()
        self.backbone_ = backbones.verify(m.backbone_json(), f"recommender {path}")
        self.item_ids_, self.item_texts_ = list(meta["item_ids"]), list(meta["item_texts"])
        self.item_pos_ = {v: i for i, v in enumerate(self.item_ids_)}
        self.user_ids_ = list(meta["user_ids"])
        self.user_pos_ = {v: i for i, v in enumerate(self.user_ids_)}
        self.item_feature_names_ = list(meta["item_features"])
        self.user_feature_names_ = list(meta["user_features"])
        self.feature_names_ = list(meta["features"])
        self.item_x_, self.user_x_ = a["items.features"], a["users.features"]
        ip, hi = a["history.indptr"], a["history.items"]
        self.hist_ = [hi[ip[j]:ip[j + 1]] for j in range(len(ip) - 1)]
        self.changed_ = set()
        self.signals_ = from_arrays(a, meta["signals"], a["items.embeddings"], self.config)
        self._set_ranker(reader.path("ranker.txt").read_text())
        self.metrics_, self.data_ = dict(m.metrics), dict(m.data)
        self.new_places_ = int(self.metrics_.get("new_places", {}).get(
            "chosen", 0 if self.config.new_places == "auto" else self.config.new_places))
        self.notes_ = list(self.data_.get("notes", []))
        self.bundle_path_ = Path(path)
        return self


def fewest_new_places(curve: list[dict], target: float) -> int | None:
    """The fewest places (``curve``: HR@10 of warm and new items per number of places, in
    order) at which the new items' HR@10 is at least ``target`` times the warm items'; None
    if no number in the curve reaches it."""
    return next((c["new_places"] for c in curve
                 if c["warm_hr@10"] > 0 and c["new_hr@10"] >= target * c["warm_hr@10"]), None)


def _gain_share(booster, best: int, names: list[str]) -> dict[str, float]:
    gain = booster.feature_importance("gain", iteration=best)
    total = float(gain.sum()) or 1.0
    return {n: round(float(g) / total, 4) for n, g in zip(names, gain)}


def _holdout(base: pd.DataFrame, seen_items: np.ndarray, n: int, by: str,
             rng: np.random.Generator) -> np.ndarray:
    """The ``n`` items the ranker's signals do not see: the newest by first interaction
    (ties: the higher position) or a random draw."""
    if not n:
        return np.zeros(0, np.int64)
    if by == "random":
        return rng.choice(seen_items, n, replace=False)
    first = base.groupby("item")["time"].min()
    order = np.lexsort((first.index.to_numpy(), first.to_numpy()))
    return first.index.to_numpy()[order[-n:]].astype(np.int64)


def _histories(frame: pd.DataFrame, n_users: int) -> list[np.ndarray]:
    """Each user's item positions ordered by time (ties: file order)."""
    f = frame.assign(_pos=np.arange(len(frame))).sort_values(["user", "time", "_pos"],
                                                             kind="stable")
    out = [np.zeros(0, np.int64) for _ in range(n_users)]
    for u, g in f.groupby("user", sort=False):
        out[int(u)] = g["item"].to_numpy(np.int64)
    return out


def load(path) -> Recommender:
    return Recommender.load(path)
