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
