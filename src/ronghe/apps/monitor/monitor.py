"""``Monitor``: check, score, store and watch a batch of items - the one path every source
(watched folder, stdin, the HTTP endpoint) goes through.

``process(raws)`` takes ``(raw item, where)`` pairs and, in ONE transaction, stores the new items
with their scores and watch keys, the rejected ones with their reasons, the sources' offsets,
the detectors' states and any alerts. Items whose id is already stored are counted as
duplicates and change nothing (ingest is idempotent); detectors only see new items, so replaying
a stream raises no second alert. Alerts go to their sinks after the commit (``sinks.py``).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone

import sqlalchemy as sa

from . import storage as T
from .config import MonitorConfig, RuleConfig
from .detectors import Detector, KeyState, Signal
from .items import Item, Rejected, check

log = logging.getLogger("ronghe.monitor")


@dataclass
class BatchResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    alerts: list[int] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)  # per input: stored / duplicate / rejected


def item_keys(rule: RuleConfig, item: Item, scores) -> list[str]:
    """The watch keys of ``rule`` an item belongs to (none, one, or one per entity)."""
    if rule.key == "topic":
        return [f"topic={scores.topic}"] if scores.topic is not None else []
    if rule.key == "entity":
        seen = []
        for e in scores.entities:
            k = f"entity={e['label']}:{' '.join(e['text'].split())}"
            if k not in seen:
                seen.append(k)
        return seen
    v = item.meta.get(rule.key[5:])
    return [] if v is None or v == "" else [f"{rule.key}={v}"[:300]]


class Monitor:
    def __init__(self, config: MonitorConfig, store=None, scorer=None):
        from .scoring import Scorer

        self.config = config
        self.store = store if store is not None else T.open_store(config.db)
        self.scorer = scorer if scorer is not None else Scorer(config.models)
        self.rules = {r.label: r for r in config.rules}
        self.detectors = {name: Detector(r) for name, r in self.rules.items()}
        self.states: dict[str, OrderedDict[str, KeyState]] = {n: OrderedDict() for n in self.rules}
        self.lock = threading.Lock()
        self.sinks = None  # set by sinks.Sinks(monitor) when alerts go anywhere but the table
        self.predictions = None  # the serving app's prediction log, when it keeps one
        self.stats = {"stored": 0, "duplicates": 0, "rejected": 0, "alerts": 0}  # this process
        self._load_states()

    def _load_states(self) -> None:
        with self.store.transaction() as conn:
            rows = conn.execute(sa.select(T.state).order_by(T.state.c.last_ts)).all()
        for row in rows:
            if row.rule in self.rules:
                self.states[row.rule][row.key] = KeyState.from_dict(row.state,
                                                                    self.rules[row.rule].window)

    # -- the batch --------------------------------------------------------------------------

    def process(self, raws, *, source: str | None = None, offsets: dict | None = None,
                now: datetime | None = None) -> BatchResult:
        """``raws``: ``(raw item, where)`` pairs. ``offsets``: {path: (byte offset, line)} of the
        files they were read from, saved in the same transaction."""
        now = now or datetime.now(timezone.utc)
        res = BatchResult()
        checked = [check(obj, where, max_chars=self.config.max_text_chars, source=source,
                         now=now) for obj, where in raws]
        with self.lock:
            fresh: dict[str, Item] = {}
            for c in checked:
                if isinstance(c, Rejected):
                    res.rejected.append(c)
                elif c.id not in fresh:
                    fresh[c.id] = c
            known = self._known(list(fresh))
            new = [it for i, it in fresh.items() if i not in known]
            scores = self.scorer.score([it.text for it in new]) if new else []
            touched: dict[tuple[str, str], KeyState] = {}
            signals: list[tuple[str, str, Item, Signal]] = []
            with self.store.transaction() as conn:
                stored = self._insert_new(conn, new, scores, now)
                key_rows = []
                for it, sc in zip(new, scores):
                    if it.id not in stored:  # raced in by another writer
                        continue
                    for name, rule in self.rules.items():
                        for key in item_keys(rule, it, sc):
                            key_rows.append({"rule": name, "key": key, "item_id": it.id,
                                             "ts": it.ts, "negative": sc.negative,
                                             "neg_prob": sc.neg_prob})
                            st = touched.get((name, key))
                            if st is None:
                                cur = self.states[name].get(key)
                                st = cur.copy() if cur else self.detectors[name].new_state()
                                touched[(name, key)] = st
                            sig = self.detectors[name].update(st, int(sc.negative))
                            if sig is not None:
                                signals.append((name, key, it, sig))
                if key_rows:
                    conn.execute(sa.insert(T.keys), key_rows)
                for rj in res.rejected:
                    conn.execute(sa.insert(T.rejects).values(
                        at=now, source=source, location=rj.where[:500], reason=rj.reason,
                        raw=rj.raw))
                for path, (off, line) in (offsets or {}).items():
                    self.store.upsert(conn, T.offsets, {"path": path, "offset": off,
                                                        "line": line, "updated_at": now},
                                      ["path"], ["offset", "line", "updated_at"])
                for (name, key), st in touched.items():
                    self.store.upsert(conn, T.state, {"rule": name, "key": key,
                                                      "state": st.to_dict(), "last_ts": now
                                                      .timestamp()},
                                      ["rule", "key"], ["state", "last_ts"])
                for name, key, it, sig in signals:
                    res.alerts.append(self._alert(conn, name, key, it, sig, now))
            # committed: the new states are now the truth
            for (name, key), st in touched.items():
                states = self.states[name]
                states[key] = st
                states.move_to_end(key)
            self._forget(now)
            stored_set = set(stored)
        res.accepted = len(stored_set)
        rej_ids = {id(r) for r in res.rejected}
        first = set()
        for c in checked:
            if isinstance(c, Rejected) and id(c) in rej_ids:
                res.statuses.append("rejected")
            elif c.id in stored_set and c.id not in first:
                first.add(c.id)
                res.statuses.append("stored")
            else:
                res.statuses.append("duplicate")
        res.duplicates = res.statuses.count("duplicate")
        for k, v in (("stored", res.accepted), ("duplicates", res.duplicates),
                     ("rejected", len(res.rejected)), ("alerts", len(res.alerts))):
            self.stats[k] += v
        if res.alerts:
            self._announce(res.alerts)
        if self.predictions is not None and stored_set:
            self._log_predictions([(it, sc) for it, sc in zip(new, scores) if it.id in stored_set])
        return res

    def _log_predictions(self, scored: list) -> None:
        """The sentiment predictions of newly stored items into the prediction log (as model
        ``monitor-sentiment``), so ``ronghe drift --from-db`` watches the monitor too. After
        the items' own commit: the log is a second copy, and a failed write only logs."""
        version = str(self.config.models.sentiment).rstrip("/").rsplit("/", 1)[-1]
        self.predictions.write(
            "monitor-sentiment", version, self.scorer.sentiment, [it.text for it, _ in scored],
            [{"label": sc.sentiment, "score": sc.sentiment_score,
              "probabilities": sc.probabilities.get("sentiment")} for _, sc in scored])

    def _insert_new(self, conn, new: list[Item], scores, now: datetime) -> set[str]:
        """Insert the items in one statement, skipping ids already stored; the ids inserted."""
        if not new:
            return set()
        if self.store.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        stmt = insert(T.items).on_conflict_do_nothing(index_elements=["id"]).returning(
            T.items.c.id)
        rows = [_item_row(it, sc, now) for it, sc in zip(new, scores)]
        return set(conn.execute(stmt, rows).scalars())

    def _known(self, ids: list[str]) -> set[str]:
        out: set[str] = set()
        with self.store.transaction() as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                out.update(conn.execute(sa.select(T.items.c.id).where(T.items.c.id.in_(chunk)))
                           .scalars())
        return out

    def _forget(self, now: datetime) -> None:
        """At most ``max_keys`` keys per rule: the least recently seen go (memory stays flat)."""
        for name, states in self.states.items():
            extra = len(states) - self.rules[name].max_keys
            if extra > 0:
                gone = [states.popitem(last=False)[0] for _ in range(extra)]
                with self.store.transaction() as conn:
                    conn.execute(sa.delete(T.state).where(T.state.c.rule == name,
                                                          T.state.c.key.in_(gone)))

    def _alert(self, conn, name: str, key: str, it: Item, sig: Signal, now: datetime) -> int:
        rule = self.rules[name]
        window = (sa.select(T.keys.c.item_id, T.keys.c.ts, T.keys.c.negative, T.keys.c.neg_prob)
                  .where(T.keys.c.rule == name, T.keys.c.key == key, T.keys.c.ts <= it.ts)
                  .order_by(T.keys.c.ts.desc(), T.keys.c.item_id.desc()).limit(rule.window))
        rows = conn.execute(window).all()
        negs = sorted((r for r in rows if r.negative), key=lambda r: -r.neg_prob)[:rule.top_texts]
        texts = {}
        if negs:
            texts = dict(conn.execute(sa.select(T.items.c.id, T.items.c.text)
                                      .where(T.items.c.id.in_([r.item_id for r in negs]))).all())
        evidence = [{"id": r.item_id, "text": texts.get(r.item_id, "")[:1000],
                     "neg_prob": round(r.neg_prob, 4),
                     "time": datetime.fromtimestamp(r.ts, timezone.utc).isoformat()}
                    for r in negs]
        start = datetime.fromtimestamp(min(r.ts for r in rows), timezone.utc) if rows else None
        end = datetime.fromtimestamp(max(r.ts for r in rows), timezone.utc) if rows else None
        values = dict(rule=name, key=key, method=rule.method, status="open", created_at=now,
                      window_start=start, window_end=end, window_n=sig.n,
                      negatives=sig.negatives, observed=round(sig.observed, 6),
                      expected=round(sig.expected, 6), p_value=sig.p_value,
                      score=round(sig.score, 6), trigger_item=it.id, evidence=evidence,
                      updated_at=now)
        alert_id = conn.execute(sa.insert(T.alerts).values(**values)).inserted_primary_key[0]
        for hook in self.config.sinks.webhooks:
            conn.execute(sa.insert(T.deliveries).values(alert_id=alert_id, sink=hook.url,
                                                        status="pending", attempts=0,
                                                        updated_at=now))
        return int(alert_id)

    def _announce(self, ids: list[int]) -> None:
        if self.config.sinks.log:
            with self.store.transaction() as conn:
                rows = conn.execute(sa.select(T.alerts).where(T.alerts.c.id.in_(ids))).all()
            for a in rows:  # a person's name is personal data: not in the log
                key = "entity=PER:(masked)" if a.key.startswith("entity=PER:") else a.key
                log.warning("ALERT %d %s: negative share %.3f vs expected %.3f over %d items "
                            "(%s score %.2f, p=%.2g)", a.id, key, a.observed, a.expected,
                            a.window_n, a.method, a.score, a.p_value)
        if self.sinks is not None:
            self.sinks.notify()

    # -- reading back -------------------------------------------------------------------------

    def offsets(self) -> dict[str, tuple[int, int]]:
        with self.store.transaction() as conn:
            return {r.path: (r.offset, r.line) for r in conn.execute(sa.select(T.offsets))}

    def counts(self) -> dict:
        with self.store.transaction() as conn:
            n = conn.execute(sa.select(sa.func.count()).select_from(T.items)).scalar()
            r = conn.execute(sa.select(sa.func.count()).select_from(T.rejects)).scalar()
            a = conn.execute(sa.select(sa.func.count()).select_from(T.alerts)).scalar()
        return {"items": n, "rejected": r, "alerts": a}


def _item_row(it: Item, sc, now: datetime) -> dict:
    return {"id": it.id, "ts": it.ts, "time": it.time, "received_at": now, "text": it.text,
            "source": it.source[:200] if it.source else None, "meta": it.meta or None,
            "topic": sc.topic, "topic_score": sc.topic_score, "sentiment": sc.sentiment,
            "sentiment_score": sc.sentiment_score, "neg_prob": sc.neg_prob,
            "negative": sc.negative, "scores": sc.probabilities, "entities": sc.entities or None}
