"""Full-ranking evaluation: every item is ranked for every test interaction (no sampled
negatives, which are not comparable), seen items excluded.

Metrics per held-out interaction, averaged: HR@10, NDCG@10, MRR, recall@50; catalogue coverage
(share of items in anyone's top 10). Slices: ``warm`` / ``cold`` (the item had no training
interaction; ties count at their average place), ``cold_shelf``: the cold test items ranked among the cold items only (a "new
arrivals" list), and ``history_1``: the same users given only their most recent training
interaction, as a brand-new user would be. Methods side by side: the fused ranker and each
signal alone (popularity, co-occurrence, MF, text); ``served``: the lists the bundle serves, the
fused ranking with the bundle's new-arrivals places (``Recommender.new_places_``; only when it
keeps any); with ``new_places`` also ``fused+{n}new``, the fused top 10 with n places kept for
the best-scored items without interactions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ...bundle import write_text_atomic
from ...errors import ConfigError, DataError
from .ranker import with_new_places

METHODS = ("fused", "popularity", "cooccurrence", "mf", "text")
METRICS = ("hr@10", "ndcg@10", "mrr", "recall@50", "coverage@10")


def _rank(scores: np.ndarray, target: int) -> float:
    """0-based rank of ``target``; items tied with it count at their average place (a signal
    that gives many items the same score - popularity among new items - gains nothing by it)."""
    t = scores[target]
    return float((scores > t).sum() + ((scores == t).sum() - 1) / 2)


def _summary(ranks: list[int], tops: list[np.ndarray], n_items: int) -> dict:
    if not ranks:
        return {"n": 0}
    r = np.asarray(ranks)
    cov = len(np.unique(np.concatenate(tops))) / n_items if tops else 0.0
    return {"n": len(r), "hr@10": float((r < 10).mean()),
            "ndcg@10": float(np.where(r < 10, 1 / np.log2(r + 2), 0).mean()),
            "mrr": float((1 / (r + 1)).mean()), "recall@50": float((r < 50).mean()),
            "coverage@10": float(cov)}


def _method_scores(rec, cold: np.ndarray, user=None, history=None, new_places=()
                   ) -> dict[str, np.ndarray]:
    full, hist = rec.full_ranking(user, history)
    upos = rec.user_pos_.get(user) if user is not None else None
    factor_user = None if (upos is None or upos in rec.changed_) else upos
    sig = rec.signals_.full_scores(factor_user, hist, rec.config.recent)
    out = {"fused": full}
    if rec.new_places_:
        out["served"] = with_new_places(full, cold, rec.default_places(10))
    for m in METHODS[1:]:
        s = sig[m].astype(np.float64).copy()
        s[hist] = -np.inf
        out[m] = s
    for n in new_places:
        out[f"fused+{n}new"] = with_new_places(full, cold, n)
    return out


def evaluate(rec, test: pd.DataFrame, *, history_1: bool = True, new_places=(),
             progress=None) -> dict:
    """``test``: user, item (time ignored) rows held out after the training data.
    ``new_places`` (a number or several) adds a method ``fused+{n}new`` per number: the fused
    top 10 with n places kept for the best-scored items without interactions (the "new
    arrivals" policy ``Recommender.recommend(new_places=n)`` serves)."""
    unknown_users = sorted(set(test["user"]) - set(rec.user_pos_))
    unknown_items = sorted(set(test["item"]) - set(rec.item_pos_))
    if unknown_items:
        raise DataError(f"{len(unknown_items)} test item(s) are not in the recommender's "
                        f"catalogue (e.g. {unknown_items[0]!r}); add them to the items file "
                        "(items without interactions are fine: they are cold-start items)")
    rows = test[test["user"].isin(rec.user_pos_)]
    seen = np.array([rec.item_pos_[i] in set(rec.hist_[rec.user_pos_[u]].tolist())
                     for u, i in zip(rows["user"], rows["item"])], bool)
    if len(rows) and seen.mean() > 0.5:
        raise DataError(f"{int(seen.sum())} of {len(rows)} test interactions are already in the "
                        "users' training histories: the recommender was trained on them (and "
                        "seen items are never recommended). Train on the earlier interactions "
                        "only, e.g. all but each user's last one, and evaluate on the rest")
    counts = rec.signals_.counts
    n_items = len(rec.item_ids_)
    slices = ("all", "warm", "cold", "cold_shelf") + (("history_1",) if history_1 else ())
    cold_items = counts == 0
    new_places = sorted({int(new_places)} if np.isscalar(new_places) else set(new_places))
    new_places = [n for n in new_places if n > 0]
    if any(n > 10 for n in new_places):
        raise ConfigError(f"new_places {new_places}: places of a top 10, so 1 to 10")
    methods = (METHODS + (("served",) if rec.new_places_ else ())
               + tuple(f"fused+{n}new" for n in new_places))
    ranks = {m: {s: [] for s in slices} for m in methods}
    tops = {m: {s: [] for s in slices} for m in methods}
    latency = []
    groups = list(rows.groupby("user", sort=False))
    for j, (user, g) in enumerate(groups):
        t0 = time.perf_counter()
        rec.recommend(user, 10)
        latency.append((time.perf_counter() - t0) * 1000)
        views = [("all", _method_scores(rec, cold_items, user, new_places=new_places))]
        if history_1:
            h = rec.hist_[rec.user_pos_[user]]
            if len(h):
                views.append(("history_1", _method_scores(
                    rec, cold_items, history=[rec.item_ids_[h[-1]]])))
        for view, scores in views:
            for m, s in scores.items():
                top = np.argpartition(-s, 10)[:10]
                for item in g["item"]:
                    pos = rec.item_pos_[item]
                    r = _rank(s, pos)
                    names = [view] if view == "history_1" else ["all", "cold" if counts[pos] == 0
                                                                else "warm"]
                    for name in names:
                        ranks[m][name].append(r)
                        tops[m][name].append(top)
                    if view == "all" and counts[pos] == 0:
                        shelf = np.where(cold_items, s, -np.inf)
                        ranks[m]["cold_shelf"].append(_rank(shelf, pos))
                        tops[m]["cold_shelf"].append(np.argpartition(-shelf, 10)[:10])
        if progress:
            progress(j + 1, len(groups))
    lat = np.asarray(latency) if latency else np.zeros(1)
    return {"methods": {m: {s: _summary(ranks[m][s], tops[m][s], n_items) for s in slices}
                        for m in methods},
            "test_interactions": int(len(test)), "evaluated": int(len(rows)),
            "unknown_users": len(unknown_users),
            "already_seen": int(seen.sum()),  # can never be hit: seen items are excluded
            "latency_ms": {"p50": float(np.percentile(lat, 50)),
                           "p95": float(np.percentile(lat, 95)), "n": len(latency)}}


def markdown(report: dict) -> str:
    lines = []
    for s in ("all", "warm", "cold", "cold_shelf", "history_1"):
        if s not in report["methods"]["fused"]:
            continue
        n = report["methods"]["fused"][s].get("n", 0)
        lines += [f"**{s}** ({n} held-out interactions)", "",
                  "| method | " + " | ".join(METRICS) + " |",
                  "|---|" + "---:|" * len(METRICS)]
        for m in report["methods"]:
            r = report["methods"][m][s]
            lines.append(f"| {m} | " + " | ".join(f"{r[k]:.4f}" if k in r else "-"
                                                   for k in METRICS) + " |")
        lines.append("")
    lat = report["latency_ms"]
    lines.append(f"recommendation latency per user (top 10 with reasons): p50 {lat['p50']:.2f} "
                 f"ms, p95 {lat['p95']:.2f} ms over {lat['n']} users")
    if report.get("unknown_users"):
        lines.append(f"{report['unknown_users']} test user(s) unknown to the recommender were "
                     "not evaluated")
    return "\n".join(lines)


def write(report: dict, out) -> dict[str, Path]:
    out = Path(str(out))
    paths = {"json": out.with_suffix(".json") if out.suffix != ".json" else out}
    paths["markdown"] = paths["json"].with_suffix(".md")
    write_text_atomic(paths["json"], json.dumps(report, indent=2))
    write_text_atomic(paths["markdown"], markdown(report) + "\n")
    return paths
