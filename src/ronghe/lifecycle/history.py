"""The model history: one row per retraining decision (promoted or not) with its numbers, in
the database (``store.py``: SQLite by default, PostgreSQL by URL). The watch loop also records
which labelled files it has used (by sha256), so a restart never trains on a file twice."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from ..store import Store, now

APP, VERSION = "lifecycle", 1
METADATA = sa.MetaData()
HISTORY = sa.Table(
    "ronghe_model_history", METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model", sa.String(200), nullable=False, index=True),
    sa.Column("champion", sa.String(200)),
    sa.Column("challenger", sa.String(200)),
    sa.Column("decision", sa.String(20), nullable=False),  # promoted | kept
    sa.Column("new_data", sa.String(500)),
    sa.Column("new_data_sha256", sa.String(64), index=True),
    sa.Column("details", sa.Text, nullable=False),  # JSON: the numbers behind the decision
)


def open_store(url) -> Store:
    store = Store(url)
    store.migrate(APP, METADATA, VERSION)
    return store


def record(store: Store, model: str, decision: dict, *, new_data: str | None = None,
           new_data_sha256: str | None = None) -> int:
    with store.transaction() as conn:
        res = conn.execute(sa.insert(HISTORY).values(
            created_at=now(), model=model, champion=decision.get("champion"),
            challenger=decision.get("challenger"), decision=decision["decision"],
            new_data=new_data, new_data_sha256=new_data_sha256,
            details=json.dumps(decision, default=str)))
        return int(res.inserted_primary_key[0])


def rows(store: Store, model: str | None = None) -> list[dict[str, Any]]:
    q = sa.select(HISTORY).order_by(HISTORY.c.id)
    if model:
        q = q.where(HISTORY.c.model == model)
    with store.transaction() as conn:
        out = [dict(r._mapping) for r in conn.execute(q)]
    for r in out:
        r["details"] = json.loads(r["details"])
    return out


def seen(store: Store, sha256: str) -> bool:
    with store.transaction() as conn:
        return conn.execute(sa.select(HISTORY.c.id).where(
            HISTORY.c.new_data_sha256 == sha256).limit(1)).first() is not None
