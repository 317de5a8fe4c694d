"""Fixtures of the monitor's tests: a sentiment and a topic classic bundle trained on the
made-up material, a monitor config, and (if RONGHE_TEST_PG_URL is set) a PostgreSQL database."""

from __future__ import annotations

import os
import uuid

import pytest
from monitor_material import training

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
