"""The assistant's records: conversations, turns (message + reply) and feedback, through
``ronghe.store`` (SQLite by default, PostgreSQL by URL).

Everything written here is masked first (``privacy.mask``): messages, replies, the reply's
reasons and feedback comments. Writes are idempotent where data comes in:

* a turn sent with a ``message_id`` is stored once per (conversation, message id); sending it
  again returns the stored reply instead of answering twice;
* feedback is one row per turn: sending it again replaces the previous one.
"""

from __future__ import annotations

import json
import uuid

import sqlalchemy as sa

from ...store import Store, now
from .privacy import mask, mask_deep

SCHEMA_VERSION = 1
METADATA = sa.MetaData()

conversations = sa.Table(
    "assist_conversations", METADATA,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("assistant", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False))

turns = sa.Table(
    "assist_turns", METADATA,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("conversation_id", sa.String(128), sa.ForeignKey("assist_conversations.id"),
              nullable=False, index=True),
    sa.Column("message_id", sa.String(128), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("reply", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("intent", sa.String(200)),
    sa.Column("faq_id", sa.String(200)),
    sa.Column("handoff", sa.Boolean, nullable=False),
    sa.Column("why", sa.Text, nullable=False),
    sa.Column("assistant_version", sa.String(64)),
    sa.UniqueConstraint("conversation_id", "message_id", name="uq_assist_turn_message"))

feedback = sa.Table(
    "assist_feedback", METADATA,
    sa.Column("turn_id", sa.String(32), sa.ForeignKey("assist_turns.id"), primary_key=True),
    sa.Column("conversation_id", sa.String(128), nullable=False, index=True),
    sa.Column("helpful", sa.Boolean, nullable=False),
    sa.Column("correct_intent", sa.String(200)),
    sa.Column("correct_faq_id", sa.String(200)),
    sa.Column("comment", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False))


def open_store(url) -> Store:
    store = Store(url)
    store.migrate("assist", METADATA, SCHEMA_VERSION)
    return store


def _turn_dict(row, fb=None) -> dict:
    out = {"turn_id": row.id, "conversation_id": row.conversation_id,
           "message_id": row.message_id, "created_at": row.created_at.isoformat()
           if row.created_at else None, "message": row.message, "reply": row.reply,
           "kind": row.kind, "intent": row.intent, "faq_id": row.faq_id,
           "handoff": bool(row.handoff), "why": json.loads(row.why),
           "assistant_version": row.assistant_version}
    if fb is not None:
        out["feedback"] = {"helpful": bool(fb.helpful), "correct_intent": fb.correct_intent,
                           "correct_faq_id": fb.correct_faq_id, "comment": fb.comment}
    return out


def find_turn(store: Store, conversation_id: str, message_id: str) -> dict | None:
    with store.transaction() as conn:
        row = conn.execute(sa.select(turns).where(turns.c.conversation_id == conversation_id,
                                                  turns.c.message_id == message_id)).first()
    return _turn_dict(row) if row else None


def save_turn(store: Store, *, assistant: str, version: str, conversation_id: str,
              message_id: str | None, message: str, reply: dict) -> tuple[dict, bool]:
    """Store one turn (masked) in one transaction; (the stored turn, whether it was new)."""
    values = {"id": uuid.uuid4().hex, "conversation_id": conversation_id,
              "message_id": message_id, "created_at": now(), "message": mask(message),
              "reply": mask(reply["reply"]), "kind": reply["kind"], "intent": reply["intent"],
              "faq_id": reply["faq_id"], "handoff": bool(reply["handoff"]),
              "why": json.dumps(mask_deep(reply["why"]), ensure_ascii=False),
              "assistant_version": version}
    with store.transaction() as conn:
        store.insert_ignore(conn, conversations, {"id": conversation_id, "assistant": assistant,
                                                  "created_at": values["created_at"]}, ["id"])
        if message_id is None:
            conn.execute(sa.insert(turns).values(**values))
            new = True
        else:
            new = store.insert_ignore(conn, turns, values, ["conversation_id", "message_id"])
        row = conn.execute(sa.select(turns).where(
            turns.c.id == values["id"] if new else
            sa.and_(turns.c.conversation_id == conversation_id,
                    turns.c.message_id == message_id))).first()
    return _turn_dict(row), new


def save_feedback(store: Store, *, turn_id: str, helpful: bool, correct_intent: str | None,
                  correct_faq_id: str | None, comment: str | None) -> dict | None:
    """Upsert the feedback on a turn; None when the turn does not exist."""
    with store.transaction() as conn:
        turn = conn.execute(sa.select(turns.c.id, turns.c.conversation_id)
                            .where(turns.c.id == turn_id)).first()
        if turn is None:
            return None
        t = now()
        values = {"turn_id": turn_id, "conversation_id": turn.conversation_id,
                  "helpful": bool(helpful), "correct_intent": correct_intent,
                  "correct_faq_id": correct_faq_id, "comment": mask(comment),
                  "created_at": t, "updated_at": t}
        store.upsert(conn, feedback, values, ["turn_id"],
                     ["helpful", "correct_intent", "correct_faq_id", "comment", "updated_at"])
        row = conn.execute(sa.select(feedback).where(feedback.c.turn_id == turn_id)).first()
    return {"turn_id": row.turn_id, "conversation_id": row.conversation_id,
            "helpful": bool(row.helpful), "correct_intent": row.correct_intent,
            "correct_faq_id": row.correct_faq_id, "comment": row.comment,
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}


def conversation(store: Store, conversation_id: str) -> dict | None:
    with store.transaction() as conn:
        conv = conn.execute(sa.select(conversations)
                            .where(conversations.c.id == conversation_id)).first()
        if conv is None:
            return None
        rows = conn.execute(sa.select(turns, feedback.c.helpful, feedback.c.correct_intent,
                                      feedback.c.correct_faq_id, feedback.c.comment)
                            .select_from(turns.outerjoin(feedback, feedback.c.turn_id == turns.c.id))
                            .where(turns.c.conversation_id == conversation_id)
                            .order_by(turns.c.seq)).all()
    out = []
    for r in rows:
        fb = r if r.helpful is not None else None
        out.append(_turn_dict(r, fb))
    return {"conversation_id": conv.id, "assistant": conv.assistant,
            "created_at": conv.created_at.isoformat(), "turns": out}


def feedback_rows(store: Store) -> tuple[list[dict], dict]:
    """Feedback as labelled rows for retraining, and counts of what was left out and why.

    * not helpful with a correct intent -> (message, that intent), kind intent;
    * not helpful with a correct FAQ id -> (message, that id), kind faq;
    * helpful on an intent or FAQ reply -> (message, the reply's intent / FAQ id);
    * helpful on a hand-off -> (message, oos), kind oos;
    * not helpful without a correction, or helpful on a clarifying question: no label
      (counted in ``skipped``)."""
    with store.transaction() as conn:
        rows = conn.execute(sa.select(turns.c.id, turns.c.message, turns.c.kind, turns.c.intent,
                                      turns.c.faq_id, turns.c.handoff, feedback)
                            .select_from(feedback.join(turns, feedback.c.turn_id == turns.c.id))
                            .order_by(turns.c.seq)).all()
    out, skipped = [], {"not_helpful_without_correction": 0, "helpful_clarification": 0}
    for r in rows:
        label = kind = None
        if r.correct_intent:
            label, kind = r.correct_intent, "oos" if r.correct_intent == "oos" else "intent"
        elif r.correct_faq_id:
            label, kind = r.correct_faq_id, "faq"
        elif r.helpful and r.kind == "intent":
            label, kind = r.intent, "intent"
        elif r.helpful and r.kind == "faq":
            label, kind = r.faq_id, "faq"
        elif r.helpful and r.handoff:
            label, kind = "oos", "oos"
        if label is None:
            skipped["helpful_clarification" if r.helpful else "not_helpful_without_correction"] += 1
            continue
        out.append({"text": r.message, "label": label, "kind": kind, "helpful": bool(r.helpful),
                    "replied_kind": r.kind, "turn_id": r.id,
                    "updated_at": r.updated_at.isoformat()})
    return out, skipped
