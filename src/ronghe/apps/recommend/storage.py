"""The recommender's records through ``ronghe.store`` (SQLite by default, PostgreSQL by URL):

* ``rec_feedback``: impressions and clicks, one row per ``event_id`` - sending an event again
  stores nothing new (idempotent), so a client may retry freely;
* ``rec_items``: items added through the API (id, text, features), so a restarted or reloaded
  service knows them again.

Each call commits in its own transaction before the service answers.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from ...store import Store, now

SCHEMA_VERSION = 1
METADATA = sa.MetaData()

feedback = sa.Table(
    "rec_feedback", METADATA,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(128), nullable=False, unique=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(200), nullable=False, index=True),
    sa.Column("item_id", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False))

items = sa.Table(
    "rec_items", METADATA,
    sa.Column("model", sa.String(64), primary_key=True),
    sa.Column("item_id", sa.String(200), primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False))


def open_store(url) -> Store:
    store = Store(url)
    store.migrate("recommend", METADATA, SCHEMA_VERSION)
    return store


def save_events(store: Store, model: str, events: list[dict]) -> list[dict]:
    """Store events (event_id, user, item, kind); the ones that were new, in order."""
    new = []
    with store.transaction() as conn:
        for e in events:
            values = {"event_id": e["event_id"], "model": model, "user_id": e["user"],
                      "item_id": e["item"], "kind": e["kind"], "created_at": now()}
            if store.insert_ignore(conn, feedback, values, ["event_id"]):
                new.append(e)
    return new


def clicks(store: Store, model: str) -> list[tuple[str, str]]:
    """(user, item) of every stored click, oldest first."""
    with store.transaction() as conn:
        rows = conn.execute(sa.select(feedback.c.user_id, feedback.c.item_id)
                            .where(feedback.c.model == model, feedback.c.kind == "click")
                            .order_by(feedback.c.seq)).all()
    return [(r.user_id, r.item_id) for r in rows]


def events(store: Store, model: str) -> list[dict]:
    with store.transaction() as conn:
        rows = conn.execute(sa.select(feedback).where(feedback.c.model == model)
                            .order_by(feedback.c.seq)).all()
    return [{"event_id": r.event_id, "user": r.user_id, "item": r.item_id, "kind": r.kind}
            for r in rows]


def save_items(store: Store, model: str, new: list[dict]) -> int:
    """Store items (id, text, features); those already stored are kept as they are."""
    n = 0
    with store.transaction() as conn:
        for it in new:
            n += store.insert_ignore(conn, items, {
                "item_id": it["id"], "model": model, "text": it["text"],
                "features": json.dumps(it.get("features") or {}), "created_at": now()},
                ["model", "item_id"])
    return n


def stored_items(store: Store, model: str) -> list[dict]:
    with store.transaction() as conn:
        rows = conn.execute(sa.select(items).where(items.c.model == model)
                            .order_by(items.c.created_at, items.c.item_id)).all()
    return [{"id": r.item_id, "text": r.text, "features": json.loads(r.features)} for r in rows]
