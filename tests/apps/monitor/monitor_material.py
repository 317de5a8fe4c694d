"""Tiny monitoring material made here: made-up banking comments (topic x tone) for training
classic bundles, and an item generator with a chosen negative share per topic. Imported by
name (``from monitor_material import stream``): a test importing ``conftest`` would shadow
other folders' conftest modules."""

from __future__ import annotations

import random

import pandas as pd

TOPICS = {
    "cards": ["my credit card", "the debit card", "card payments", "the new card",
              "contactless card", "card limit"],
    "loans": ["the mortgage rate", "my personal loan", "loan repayments", "the loan offer",
              "interest on the loan", "mortgage approval"],
    "app": ["the mobile app", "the banking app", "app login", "the app update",
            "online banking", "the app screen"],
}
TONE = {
    "positive": ["works great", "is excellent", "is fast and easy", "made me happy",
                 "is really helpful", "is wonderful", "improved a lot", "is reliable"],
    "negative": ["is terrible", "keeps failing", "is a disaster", "made me furious",
                 "is broken again", "is awful", "is a scam", "is useless"],
}
FILL = ["", " today", " honestly", " this week", " again", " as usual"]


def text(topic: str, tone: str, rng: random.Random) -> str:
    return f"{rng.choice(TOPICS[topic])} {rng.choice(TONE[tone])}{rng.choice(FILL)}"


def training(seed: int = 0, n: int = 60):
    rng = random.Random(seed)
    rows = [{"text": text(t, s, rng), "topic": t, "sentiment": s}
            for t in TOPICS for s in TONE for _ in range(n // 2)]
    rng.shuffle(rows)
    return pd.DataFrame(rows)


def stream(n: int, seed: int = 1, neg: dict | None = None, start: float = 1.7e9, step=1.0,
           topics=("cards", "loans", "app")):
    """n items cycling through topics; negative share per topic from ``neg`` (default 0.2)."""
    rng = random.Random(seed)
    neg = neg or {}
    out = []
    for i in range(n):
        t = topics[i % len(topics)]
        s = "negative" if rng.random() < neg.get(t, 0.2) else "positive"
        out.append({"id": f"{seed}-{i}", "time": start + i * step, "text": text(t, s, rng),
                    "source": "test", "meta": {"ticker": {"cards": "VISA", "loans": "HSBC",
                                                          "app": "APPL"}[t]}})
    return out
