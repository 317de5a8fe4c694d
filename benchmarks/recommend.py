"""Recommendation (issue 17) on MovieLens-100k, full-ranking metrics.

Data: the ``ml-100k`` files shipped inside the ``recbole`` PyPI package
(``pip install --no-deps recbole``): 100,000 ratings of 1,682 movies by 943 users (every rating
counts as an interaction), item text = title + genres, release year as a numeric item feature,
user age / gender / occupation as user features.

Split (per seed): 10% of the movies are drawn as cold-start items and every interaction with them
is removed from training; each user's last interaction (by time) is the test interaction (it may
be a cold item: that is the cold slice). The recommender is trained with its defaults (its own
validation split inside the training data; nothing is tuned on the test interactions).

Methods side by side on the same full rankings: popularity, co-occurrence, MF (implicit ALS),
text (MiniLM embeddings of the item text), the fused LambdaRank ranker.
Aims: fused > the best single signal on NDCG@10; cold-start HR@10 >= half the warm HR@10;
recommendation latency p50 < 20 ms per user.

    flock /tmp/ronghe-bench.lock python benchmarks/recommend.py [--seeds 0,1,2] [--quick]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.pin_threads()

NAME = "recommend"
COLD_SHARE = 0.1


def ml100k_dir() -> Path:
    try:
        import recbole
    except ImportError:
        sys.exit("MovieLens-100k ships inside the recbole package: pip install --no-deps recbole")
    return Path(recbole.__file__).parent / "dataset_example" / "ml-100k"


def load_ml100k():
    """(interactions frame, Items, users frame) from recbole's atomic files."""
    import pandas as pd

    from ronghe.apps.recommend.data import items_from_frame

    d = ml100k_dir()
    inter = pd.read_csv(d / "ml-100k.inter", sep="\t")
    inter.columns = [c.split(":")[0] for c in inter.columns]
    inter = pd.DataFrame({"user": inter["user_id"].astype(str), "item": inter["item_id"].astype(str),
                          "time": inter["timestamp"].astype(float)})
    it = pd.read_csv(d / "ml-100k.item", sep="\t", dtype=str, keep_default_na=False)
    it.columns = [c.split(":")[0] for c in it.columns]
    frame = pd.DataFrame({"item": it["item_id"], "title": it["movie_title"],
                          "genres": it["class"].str.replace(" ", ", "),
                          "year": pd.to_numeric(it["release_year"], errors="coerce")})
    items = items_from_frame(frame, "ml-100k.item", text_cols=["title", "genres"])
    us = pd.read_csv(d / "ml-100k.user", sep="\t", dtype=str)
    us.columns = [c.split(":")[0] for c in us.columns]
    users = pd.DataFrame({"age": pd.to_numeric(us["age"], errors="coerce"),
                          "gender": (us["gender"] == "M").astype(float),
                          "occupation": pd.Categorical(us["occupation"]).codes.astype(float)})
    users.index = us["user_id"]
    return inter, items, users


def split(inter, items, seed: int = 0, cold_share: float = COLD_SHARE):
    """(train, test, cold item ids): cold items' interactions all leave training; each user's
    last interaction is the test one."""
    import numpy as np

    from ronghe.apps.recommend.data import leave_last_out

    rng = np.random.default_rng(seed)
    with_inter = sorted(set(inter["item"]))
    cold = set(rng.choice(with_inter, int(round(cold_share * len(with_inter))), replace=False))
    train, test = leave_last_out(inter, 1, min_left=1)
    train = train[~train["item"].isin(cold)].reset_index(drop=True)
    return train, test, cold


def latency(rec, users: list[str], repeats: int = 3) -> dict:
    """Per-user time of ``recommend(user, 10)`` with reasons, one BLAS thread (as served);
    the median over ``repeats`` passes of each percentile."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    p50, p95 = [], []
    with threadpool_limits(1, "blas"):
        for _ in range(repeats):
            t = []
            for u in users:
                t0 = time.perf_counter()
                rec.recommend(u, 10)
                t.append((time.perf_counter() - t0) * 1000)
            p50.append(float(np.percentile(t, 50)))
            p95.append(float(np.percentile(t, 95)))
    return {"p50_ms": float(np.median(p50)), "p95_ms": float(np.median(p95)),
            "users": len(users), "repeats": repeats}


def run_seed(seed: int, quick: bool) -> dict:
    import numpy as np
    from threadpoolctl import threadpool_limits

    from ronghe.apps.recommend import Recommender
    from ronghe.apps.recommend import evaluate as ev

    inter, items, users = load_ml100k()
    train, test, cold = split(inter, items, seed)
    if quick:
        keep = sorted(set(train["user"]))[:150]
        train, test = train[train.user.isin(keep)], test[test.user.isin(keep)]
    t0 = time.perf_counter()
    rec = Recommender(seed=seed).fit(train, items, users)
    fit_s = time.perf_counter() - t0
    with threadpool_limits(1, "blas"):
        report = ev.evaluate(rec, test)
    lat = latency(rec, sorted(set(test["user"]))[:300])
    from ronghe.apps.recommend.bandit import Explorer, replay

    with threadpool_limits(1, "blas"):
        bandit = replay(rec, Explorer(rec, seed=seed), test)
    print(f"seed {seed}: fit {fit_s:.0f} s, fused NDCG@10 "
          f"{report['methods']['fused']['all']['ndcg@10']:.4f}, p50 {lat['p50_ms']:.1f} ms",
          flush=True)
    return {"seed": seed, "fit_seconds": round(fit_s, 1), "train": int(len(train)),
            "test": int(len(test)), "cold_items": len(cold),
            "cold_test": int(test["item"].isin(cold).sum()), "ranker": rec.metrics_["ranker"],
            "methods": report["methods"], "latency": lat, "bandit": bandit,
            "items_in_candidates_mean": None if quick else float(np.mean(
                [len(rec.rank(u)[0]) for u in sorted(set(test["user"]))[:100]]))}


def aggregate(runs: list[dict]) -> dict:
    import numpy as np

    from ronghe.apps.recommend.evaluate import METHODS, METRICS

    out = {}
    for m in METHODS:
        out[m] = {}
        for s in runs[0]["methods"][m]:
            vals = {k: [r["methods"][m][s][k] for r in runs if k in r["methods"][m][s]]
                    for k in (*METRICS, "n")}
            out[m][s] = {k: float(np.mean(v)) for k, v in vals.items() if v}
            out[m][s].update({f"{k}_std": float(np.std(v)) for k, v in vals.items()
                              if v and k != "n"})
    return out


def aims(mean: dict, runs: list[dict]) -> dict:
    import numpy as np

    singles = {m: mean[m]["all"]["ndcg@10"] for m in ("popularity", "cooccurrence", "mf", "text")}
    best = max(singles, key=singles.get)
    fused = mean["fused"]["all"]["ndcg@10"]
    nan = float("nan")
    warm, cold = mean["fused"]["warm"].get("hr@10", nan), mean["fused"]["cold"].get("hr@10", nan)
    shelf = mean["fused"]["cold_shelf"].get("hr@10", nan)
    p50 = float(np.median([r["latency"]["p50_ms"] for r in runs]))
    wins = sum(r["methods"]["fused"]["all"]["ndcg@10"] > max(
        r["methods"][m]["all"]["ndcg@10"] for m in singles) for r in runs)
    return {"fused_above_best_single": {"fused_ndcg@10": fused, "best_single": best,
                                        "best_single_ndcg@10": singles[best],
                                        "seeds_won": f"{wins}/{len(runs)}",
                                        "met": fused > singles[best]},
            "cold_half_of_warm": {"warm_hr@10": warm, "cold_hr@10_full_catalogue": cold,
                                  "cold_hr@10_among_cold_items": shelf,
                                  "met": cold >= 0.5 * warm},
            "latency_p50_under_20ms": {"p50_ms": p50, "met": p50 < 20}}


def readme(r: dict, quick: bool) -> str:
    from ronghe.apps.recommend.evaluate import METHODS

    m, a = r["mean"], r["aims"]
    lines = ["## Recommendation (`recommend.py`, issue 17)", "",
             common.quick_note(quick, "flock /tmp/ronghe-bench.lock python benchmarks/recommend.py"),
             f"MovieLens-100k from the `recbole` package (100,000 interactions, 943 users, 1,682 "
             f"movies; item text = title + genres, year and user age/gender/occupation as "
             f"features). Per seed ({', '.join(str(x['seed']) for x in r['runs'])}): 10% of the "
             f"movies drawn as cold-start items, all their interactions removed from training; "
             f"each user's last interaction by time is the test one. Full ranking over all "
             f"1,682 movies, seen items excluded; mean over seeds (± std). Machine: "
             f"{common.machine_line(r['machine'])}.", ""]
    for s, title in (("all", "all test interactions"), ("warm", "warm items"),
                     ("cold", "cold-start items, ranked in the full catalogue"),
                     ("cold_shelf", "cold-start items ranked among the cold items only"),
                     ("history_1", "each user given only their most recent training interaction")):
        rows = []
        for meth in METHODS:
            x = m[meth][s]
            if "hr@10" not in x:
                continue
            rows.append([meth] + [f"{x[k]:.4f} ± {x[k + '_std']:.4f}" if f"{k}_std" in x
                                  else f"{x[k]:.4f}" for k in ("hr@10", "ndcg@10", "mrr",
                                                               "recall@50", "coverage@10")])
        lines += [f"**{title}** ({m['fused'][s]['n']:.0f} per seed)", "",
                  common.md_table(["method", "HR@10", "NDCG@10", "MRR", "recall@50",
                                   "coverage@10"], rows), ""]
    f, c, t = a["fused_above_best_single"], a["cold_half_of_warm"], a["latency_p50_under_20ms"]
    met = {True: "**met**", False: "**missed**"}
    lines += ["Aims:", "",
              f"- fused above the best single signal on NDCG@10: {met[f['met']]} "
              f"({f['fused_ndcg@10']:.4f} vs {f['best_single']} {f['best_single_ndcg@10']:.4f}; "
              f"fused ahead in {f['seeds_won']} seeds).",
              f"- cold-start HR@10 at least half the warm HR@10: {met[c['met']]} in the full "
              f"catalogue ({c['cold_hr@10_full_catalogue']:.4f} vs warm {c['warm_hr@10']:.4f}); "
              f"ranked among the cold items only (a 'new arrivals' list) the cold HR@10 is "
              f"{c['cold_hr@10_among_cold_items']:.4f}.",
              f"- recommendation latency p50 < 20 ms per user (top 10 with reasons, one BLAS "
              f"thread): {met[t['met']]} ({t['p50_ms']:.1f} ms; load during the run "
              f"{r['load']['load1_mean']} mean, so "
              f"{common.load_note([r['load']['load1_max']])}).", "",
              "Exploration (`bandit.py`: mabwiser LinUCB, alpha 0.5, over 20 k-means clusters of "
              "the item text, 2 of 10 places explored, learning online as the replay goes): "
              + bandit_line(r["runs"]), "",
              *common.reproduce("flock /tmp/ronghe-bench.lock python benchmarks/recommend.py",
                                NAME, quick, ("pip install --no-deps recbole",))]
    return "\n".join(lines)


def bandit_line(runs: list[dict]) -> str:
    import numpy as np

    b = [r["bandit"] for r in runs]

    def mean(k):
        return float(np.mean([x[k] for x in b]))

    return (f"{b[0]['estimator']}: HR@10 ranker {mean('ranker_hr@10'):.4f} vs with exploration "
            f"{mean('explore_hr@10'):.4f}; cold items {mean('ranker_cold_hr@10'):.4f} vs "
            f"{mean('explore_cold_hr@10'):.4f}; items ever shown {mean('ranker_coverage'):.3f} vs "
            f"{mean('explore_coverage'):.3f} of the catalogue; explored places clicked "
            f"{mean('explored_slot_click_rate'):.4f}. Replay on a log no random policy collected "
            "compares the two policies on the same events; it is not an unbiased click-rate "
            "estimate, and it charges exploration its short-term cost.")


def main() -> None:
    ap = common.parser(__doc__)
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    if common.handled(args, NAME, readme):
        return
    common.torch_threads()
    t0 = time.perf_counter()
    result = {"machine": common.machine_info()}
    with common.LoadMonitor(10) as mon:
        runs = [run_seed(int(s), args.quick) for s in args.seeds.split(",")]
    result.update({"runs": runs, "mean": aggregate(runs), "load": mon.summary()})
    result["aims"] = aims(result["mean"], runs)
    common.finish(NAME, result, args, readme, t0)


if __name__ == "__main__":
    main()
