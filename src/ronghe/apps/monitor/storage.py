"""The monitor's tables, created through ``ronghe.store.Store.migrate`` (SQLite or PostgreSQL).

* ``mon_items``     every accepted item once (primary key: its id) with its scores
* ``mon_keys``      (rule, key, item) for each watch key an item belongs to: the series
* ``mon_rejects``   every rejected item: where it came from and why
* ``mon_offsets``   how far each watched file has been read
* ``mon_state``     each (rule, key)'s detector state, saved with the batch that changed it
* ``mon_alerts``    alerts with their evidence and status (open / acknowledged / resolved)
* ``mon_deliveries``  one row per alert and webhook: pending / sent / failed, attempts, error
* ``mon_corrections`` an analyst's correct sentiment for an item (the latest per item): labelled
  rows for retraining (``ronghe monitor export-corrections`` -> ``ronghe retrain --new``)

A batch (its items, keys, rejects, file offsets, detector states and alerts) is written in one
transaction: a process killed at any point has stored all of a batch or none of it, and the
restarted monitor reads on from the stored offsets; items already stored are skipped by id.
"""

from __future__ import annotations

import sqlalchemy as sa

from ...store import Store

APP = "monitor"
SCHEMA_VERSION = 2  # 2: mon_corrections
METADATA = sa.MetaData()

items = sa.Table(
    "mon_items", METADATA,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("ts", sa.Float, nullable=False, index=True),  # epoch seconds (buckets, ranges)
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("source", sa.String(200), index=True),
    sa.Column("meta", sa.JSON),
    sa.Column("topic", sa.String(200), index=True),
    sa.Column("topic_score", sa.Float),
    sa.Column("sentiment", sa.String(200)),
    sa.Column("sentiment_score", sa.Float),
    sa.Column("neg_prob", sa.Float, nullable=False),
    sa.Column("negative", sa.Boolean, nullable=False),
    sa.Column("scores", sa.JSON),  # {model: {label: probability}}
    sa.Column("entities", sa.JSON),
)

keys = sa.Table(
    "mon_keys", METADATA,
    sa.Column("rule", sa.String(100), primary_key=True),
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("item_id", sa.String(200), primary_key=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("negative", sa.Boolean, nullable=False),
    sa.Column("neg_prob", sa.Float, nullable=False),
    sa.Index("mon_keys_series", "rule", "key", "ts"),
)

rejects = sa.Table(
    "mon_rejects", METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.String(200)),
    sa.Column("location", sa.String(500), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("raw", sa.Text),
)

offsets = sa.Table(
    "mon_offsets", METADATA,
    sa.Column("path", sa.String(1000), primary_key=True),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("line", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)

state = sa.Table(
    "mon_state", METADATA,
    sa.Column("rule", sa.String(100), primary_key=True),
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("state", sa.JSON, nullable=False),
    sa.Column("last_ts", sa.Float),
)

alerts = sa.Table(
    "mon_alerts", METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rule", sa.String(100), nullable=False),
    sa.Column("key", sa.String(300), nullable=False, index=True),
    sa.Column("method", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("window_start", sa.DateTime(timezone=True)),
    sa.Column("window_end", sa.DateTime(timezone=True)),
    sa.Column("window_n", sa.Integer, nullable=False),
    sa.Column("negatives", sa.Integer, nullable=False),
    sa.Column("observed", sa.Float, nullable=False),
    sa.Column("expected", sa.Float, nullable=False),
    sa.Column("p_value", sa.Float, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("trigger_item", sa.String(200)),
    sa.Column("evidence", sa.JSON),  # top negative texts of the window
    sa.Column("updated_at", sa.DateTime(timezone=True)),
    sa.Column("updated_by", sa.String(100)),
    sa.Column("note", sa.Text),
)

deliveries = sa.Table(
    "mon_deliveries", METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.Integer, sa.ForeignKey("mon_alerts.id"), nullable=False, index=True),
    sa.Column("sink", sa.String(1000), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)

corrections = sa.Table(
    "mon_corrections", METADATA,
    sa.Column("item_id", sa.String(200), sa.ForeignKey("mon_items.id"), primary_key=True),
    sa.Column("sentiment", sa.String(200), nullable=False),
    sa.Column("predicted", sa.String(200)),
    sa.Column("by", sa.String(100)),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
)


def open_store(url) -> Store:
    store = Store(url)
    store.migrate(APP, METADATA, SCHEMA_VERSION)
    return store
