"""Made-up shop material: four topics of items with text, users who each like one topic, and
items of each topic that no one has touched yet (cold start)."""

from __future__ import annotations

import random

import pandas as pd

# small and fast: the tests check behaviour, not accuracy at scale
OPTIONS = {"factors": 8, "mf_iterations": 5, "candidates_per_signal": 20, "ranker_rounds": 60,
           "early_stopping": 20, "cold_holdout": 0.15,
           # the made-up shop has no new items: every item is on the shelf from the start and
           # each topic's users come in one block of time, so its "newest" items are just the
           # last topic's; the random hold-out is the one that fits it
           "cold_holdout_by": "random"}

TOPICS = {
    "space": ["space opera with starships", "alien invasion of planet earth", "astronaut lost "
              "on mars", "galactic empire war in space", "robots on a distant moon",
              "time travel through a wormhole", "rocket launch to jupiter", "space station "
              "disaster in orbit"],
    "romance": ["romantic comedy about a wedding", "love letters between two strangers",
                "a summer romance in paris", "falling in love with the best friend",
                "a wedding planner finds love", "first date goes wrong then right",
                "heartbreak and a new love story", "valentine's day romance"],
    "cooking": ["italian pasta cooking recipes", "baking bread at home", "vegetarian recipes "
                "for the week", "french pastry cookbook", "grilling meat on a barbecue",
                "quick dinners in a pan", "homemade pizza dough guide", "soups and stews "
                "cookbook"],
    "football": ["football world cup history", "the greatest soccer goals", "training like a "
                 "football player", "biography of a soccer striker", "football club "
                 "championship season", "goalkeeper tactics in soccer", "the football derby "
                 "rivalry", "soccer coaching handbook"],
}
COLD = {"space": "a new space adventure among the stars and planets",
        "romance": "a new romantic love story with a wedding",
        "cooking": "a new cookbook of pasta and baking recipes",
        "football": "a new book about soccer and the football league"}


def items_frame() -> pd.DataFrame:
    rows = []
    for topic, texts in TOPICS.items():
        for j, t in enumerate(texts):
            rows.append({"item": f"{topic}-{j}", "title": t, "price": float(5 + j)})
        rows.append({"item": f"{topic}-new", "title": COLD[topic], "price": 9.0})
    return pd.DataFrame(rows)


def topic_of(item: str) -> str:
    return item.split("-")[0]


def interactions_frame(users_per_topic: int = 16, per_user: int = 7, seed: int = 0
                       ) -> pd.DataFrame:
    """Each user mostly picks items of their topic (one random other item), over time."""
    rng = random.Random(seed)
    rows, t = [], 1_700_000_000
    topics = list(TOPICS)
    for k, topic in enumerate(topics):
        for u in range(users_per_topic):
            user = f"u-{topic}-{u}"
            picks = rng.sample(range(len(TOPICS[topic])), per_user - 1)
            items = [f"{topic}-{p}" for p in picks]
            other = rng.choice([x for x in topics if x != topic])
            items.insert(rng.randrange(len(items)), f"{other}-{rng.randrange(8)}")
            for it in items:
                t += rng.randint(60, 3600)
                rows.append({"user": user, "item": it, "time": t})
    rows.sort(key=lambda r: rng.random())  # file order is not time order
    return pd.DataFrame(rows)
