"""Tiny monitoring material made here: a sentiment and a topic classic bundle trained on
made-up banking comments, an item generator, a monitor config, and (if RONGHE_TEST_PG_URL is
set) a PostgreSQL database."""

from __future__ import annotations

import os
import random
import uuid

import pandas as pd
import pytest

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


@pytest.fixture(scope="session")
def bundles(tmp_path_factory):
    from ronghe import TextClassifier

    d = tmp_path_factory.mktemp("monitor-bundles")
    df = training()
    for col in ("sentiment", "topic"):
        clf = TextClassifier(strategy="classic").fit(
            df.rename(columns={col: "label"})[["text", "label"]])
        clf.save(d / col)
    return {"sentiment": str(d / "sentiment"), "topic": str(d / "topic")}


@pytest.fixture
def make_config(bundles, tmp_path):
    from ronghe.apps.monitor.config import build

    def make(db=None, **over):
        values = {"db": str(db or tmp_path / "monitor.sqlite"),
                  "models": {"sentiment": bundles["sentiment"], "topic": bundles["topic"]},
                  "rules": [{"key": "topic", "min_count": 60, "window": 60, "cooldown": 100}]}
        return build(values, over)

    return make


def _pg_url():
    return os.environ.get("RONGHE_TEST_PG_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A real SQLite file, and a fresh PostgreSQL schema-less database per test when
    RONGHE_TEST_PG_URL is set (skipped otherwise)."""
    if request.param == "sqlite":
        yield str(tmp_path / "m.sqlite")
        return
    base = _pg_url()
    if not base:
        pytest.skip("RONGHE_TEST_PG_URL is not set (CI sets it: .ci/run starts PostgreSQL)")
    import sqlalchemy as sa

    name = "mon_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {name}"))
    url = str(sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False))
    yield url
    with admin.connect() as c:
        c.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()
