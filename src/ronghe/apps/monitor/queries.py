"""Reading the monitor's tables back: keys, series per key, recent items, alerts (list,
acknowledge, resolve) - shared by the HTTP routes, the dashboard and ``ronghe monitor report``."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from . import storage as T

STATUSES = ("open", "acknowledged", "resolved")


def iso(v) -> str | None:
    if v is None:
        return None
    if v.tzinfo is None:  # SQLite hands back naive datetimes (stored as UTC)
        v = v.replace(tzinfo=timezone.utc)
    return v.astimezone(timezone.utc).isoformat(timespec="seconds")


def _row(r) -> dict:
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in r._mapping.items()}


def keys(store, *, since: float | None = None, limit: int = 50) -> list[dict]:
    """Watch keys with their volume, negatives and open alerts, busiest first."""
    k = T.keys.c
    q = sa.select(k.rule, k.key, sa.func.count().label("n"),
                  sa.func.sum(sa.cast(k.negative, sa.Integer)).label("negatives"),
                  sa.func.max(k.ts).label("last_ts")).group_by(k.rule, k.key)
    if since is not None:
        q = q.where(k.ts >= since)
    q = q.order_by(sa.desc("n"), k.key).limit(limit)
    with store.transaction() as conn:
        rows = conn.execute(q).all()
        open_ = dict(((r.rule, r.key), r.c) for r in conn.execute(
            sa.select(T.alerts.c.rule, T.alerts.c.key, sa.func.count().label("c"))
            .where(T.alerts.c.status == "open").group_by(T.alerts.c.rule, T.alerts.c.key)))
    return [{"rule": r.rule, "key": r.key, "n": r.n, "negatives": int(r.negatives or 0),
             "share": round((r.negatives or 0) / r.n, 4) if r.n else None,
             "open_alerts": open_.get((r.rule, r.key), 0),
             "last": iso(datetime.fromtimestamp(r.last_ts, timezone.utc))} for r in rows]


def series(store, rule: str, key: str, *, bucket_s: int = 3600, since: float | None = None,
           until: float | None = None) -> list[dict]:
    """Volume and negative share of one key per time bucket (epoch-aligned)."""
    k = T.keys.c
    bucket = sa.cast(k.ts / bucket_s, sa.BigInteger)
    if store.dialect == "postgresql":  # CAST rounds there; buckets must truncate
        bucket = sa.cast(sa.func.floor(k.ts / bucket_s), sa.BigInteger)
    q = (sa.select(bucket.label("b"), sa.func.count().label("n"),
                   sa.func.sum(sa.cast(k.negative, sa.Integer)).label("neg"))
         .where(k.rule == rule, k.key == key).group_by("b").order_by("b"))
    if since is not None:
        q = q.where(k.ts >= since)
    if until is not None:
        q = q.where(k.ts < until)
    with store.transaction() as conn:
        rows = conn.execute(q).all()
    return [{"t": iso(datetime.fromtimestamp(int(r.b) * bucket_s, timezone.utc)),
             "ts": int(r.b) * bucket_s, "n": r.n, "negatives": int(r.neg or 0),
             "share": round((r.neg or 0) / r.n, 4)} for r in rows]


def items(store, *, rule: str | None = None, key: str | None = None, label: str | None = None,
          source: str | None = None, negative: bool | None = None, since: float | None = None,
          until: float | None = None, limit: int = 50) -> list[dict]:
    """Recent items, newest first, filtered by watch key, label (topic or sentiment), source,
    tone and time."""
    i = T.items.c
    q = sa.select(i.id, i.time, i.text, i.source, i.meta, i.topic, i.topic_score, i.sentiment,
                  i.sentiment_score, i.neg_prob, i.negative, i.entities)
    if key is not None:
        sub = sa.select(T.keys.c.item_id).where(T.keys.c.key == key)
        if rule is not None:
            sub = sub.where(T.keys.c.rule == rule)
        q = q.where(i.id.in_(sub))
    if label is not None:
        q = q.where(sa.or_(i.topic == label, i.sentiment == label))
    if source is not None:
        q = q.where(i.source == source)
    if negative is not None:
        q = q.where(i.negative == negative)
    if since is not None:
        q = q.where(i.ts >= since)
    if until is not None:
        q = q.where(i.ts < until)
    q = q.order_by(i.ts.desc(), i.id.desc()).limit(limit)
    with store.transaction() as conn:
        return [_row(r) for r in conn.execute(q)]


def alerts(store, *, status: str | None = None, key: str | None = None,
           since: datetime | None = None, limit: int = 100) -> list[dict]:
    a = T.alerts.c
    q = sa.select(T.alerts).order_by(a.id.desc()).limit(limit)
    if status:
        q = q.where(a.status == status)
    if key:
        q = q.where(a.key == key)
    if since is not None:
        q = q.where(a.created_at >= since)
    with store.transaction() as conn:
        rows = [_row(r) for r in conn.execute(q)]
        ids = [r["id"] for r in rows]
        dels: dict[int, list] = {}
        if ids:
            for d in conn.execute(sa.select(T.deliveries).where(T.deliveries.c.alert_id
                                                                .in_(ids))):
                dels.setdefault(d.alert_id, []).append(
                    {"status": d.status, "attempts": d.attempts, "error": d.last_error})
    for r in rows:
        r["deliveries"] = dels.get(r["id"], [])
    return rows


def set_status(store, alert_id: int, status: str, *, by: str | None, note: str | None
               ) -> dict | None:
    """Acknowledge or resolve an alert (resolved is final); None if there is no such alert.
    Raises ValueError for a change that is not allowed."""
    a = T.alerts.c
    with store.transaction() as conn:
        row = conn.execute(sa.select(T.alerts).where(a.id == alert_id)).first()
        if row is None:
            return None
        if row.status == "resolved" and status != "resolved":
            raise ValueError(f"alert {alert_id} is resolved; it cannot be {status} again")
        if row.status != status:
            conn.execute(sa.update(T.alerts).where(a.id == alert_id).values(
                status=status, updated_at=datetime.now(timezone.utc), updated_by=by,
                note=note if note is not None else row.note))
        return _row(conn.execute(sa.select(T.alerts).where(a.id == alert_id)).one())


def totals(store) -> dict:
    with store.transaction() as conn:
        def count(t, *where):
            return conn.execute(sa.select(sa.func.count()).select_from(t).where(*where)).scalar()

        return {"items": count(T.items), "negative": count(T.items, T.items.c.negative),
                "rejected": count(T.rejects),
                "alerts_open": count(T.alerts, T.alerts.c.status == "open"),
                "alerts": count(T.alerts)}


def correct(store, item_id: str, sentiment: str, *, by: str | None) -> dict | None:
    """Record the correct sentiment of a stored item (again: the latest wins); None if there
    is no such item."""
    with store.transaction() as conn:
        item = conn.execute(sa.select(T.items.c.sentiment).where(T.items.c.id == item_id)).first()
        if item is None:
            return None
        row = {"item_id": item_id, "sentiment": sentiment, "predicted": item.sentiment,
               "by": by, "at": datetime.now(timezone.utc)}
        store.upsert(conn, T.corrections, row, ["item_id"], ["sentiment", "by", "at"])
    return {**row, "at": iso(row["at"])}


def corrections(store, *, since: datetime | None = None) -> list[dict]:
    """(text, corrected sentiment, predicted, time) of every corrected item, oldest first."""
    c, i = T.corrections.c, T.items.c
    q = (sa.select(i.text, c.sentiment, c.predicted, c.at, c.item_id)
         .join(T.items, i.id == c.item_id).order_by(c.at, c.item_id))
    if since is not None:
        q = q.where(c.at >= since)
    with store.transaction() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]
