"""Items: ``{id, time, text, source?, meta?}`` checked one by one.

``check(raw, where)`` returns an ``Item`` or a ``Rejected`` with the reason and where it came
from (file:line, request index): a bad item is counted and stored with its reason, never
dropped silently. An item without an id gets the sha256 of its text, time and source, so the
same item sent twice has the same id and is stored once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

FIELDS = {"id", "time", "text", "source", "meta"}
MAX_ID = 200


@dataclass
class Item:
    id: str
    time: datetime
    text: str
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ts(self) -> float:
        return self.time.timestamp()


@dataclass
class Rejected:
    where: str
    reason: str
    raw: str


def content_id(text: str, time: datetime, source: str | None) -> str:
    h = hashlib.sha256(json.dumps([text, time.isoformat(), source or ""],
                                  ensure_ascii=False).encode("utf-8"))
    return "sha256:" + h.hexdigest()[:40]


def parse_time(value, now: datetime | None = None) -> datetime:
    """ISO 8601 text (``Z`` allowed; no zone = UTC) or epoch seconds -> an aware UTC time.
    A missing time is the time of arrival."""
    if value is None or value == "":
        return now or datetime.now(timezone.utc)
    if isinstance(value, bool):
        raise ValueError("time must be ISO 8601 text or epoch seconds, not true/false")
    if isinstance(value, (int, float)):
        if not 0 <= value < 1e11:
            raise ValueError(f"time {value} is not epoch seconds")
        return datetime.fromtimestamp(float(value), timezone.utc)
    if isinstance(value, str):
        try:
            return parse_time(float(value))  # epoch seconds as text (CSV cells)
        except ValueError:
            pass
        try:
            t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"time {value[:40]!r} is not ISO 8601 (e.g. "
                             "2026-12-02T09:30:00Z) or epoch seconds") from None
        return (t.replace(tzinfo=timezone.utc) if t.tzinfo is None
                else t.astimezone(timezone.utc))
    raise ValueError(f"time must be ISO 8601 text or epoch seconds, not {type(value).__name__}")


def _raw(obj) -> str:
    try:
        s = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False, default=str)
    except Exception:  # noqa: BLE001
        s = repr(obj)
    return s[:500]


def check(obj, where: str, *, max_chars: int = 10_000, source: str | None = None,
          now: datetime | None = None) -> Item | Rejected:
    """One raw item (a parsed JSON value or a CSV row as a dict) -> ``Item`` or ``Rejected``.
    ``source`` is the default source (a file name, 'stdin', 'api')."""
    def bad(reason: str) -> Rejected:
        return Rejected(where, reason, _raw(obj))

    if isinstance(obj, Rejected):
        return obj
    if isinstance(obj, dict) and "_error" in obj:
        return bad(obj["_error"])
    if not isinstance(obj, dict):
        return bad(f"an item must be a JSON object with a 'text', not {type(obj).__name__}")
    unknown = sorted(set(obj) - FIELDS)
    if unknown:
        return bad(f"unknown field(s) {unknown}: an item has id, time, text, source, meta "
                   "(put other fields in meta)")
    text = obj.get("text")
    if not isinstance(text, str):
        return bad("'text' is missing" if text is None else
                   f"'text' must be a string, not {type(text).__name__}")
    if not text.strip():
        return bad("'text' is empty")
    if len(text) > max_chars:
        return bad(f"'text' has {len(text)} characters, more than the limit of {max_chars}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return bad("'text' is not valid UTF-8 (an unpaired surrogate)")
    try:
        time = parse_time(obj.get("time"), now)
    except ValueError as e:
        return bad(str(e))
    src = obj.get("source", source)
    if src is not None and not isinstance(src, str):
        return bad(f"'source' must be a string, not {type(src).__name__}")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        return bad(f"'meta' must be an object, not {type(meta).__name__}")
    if any(not isinstance(v, (str, int, float, bool, type(None))) for v in meta.values()):
        return bad("'meta' values must be strings, numbers, booleans or null")
    ident = obj.get("id")
    if ident is None or ident == "":
        ident = content_id(text, time, src)
    elif isinstance(ident, (int, str)) and not isinstance(ident, bool):
        ident = str(ident)
        if len(ident) > MAX_ID:
            return bad(f"'id' is longer than {MAX_ID} characters")
    else:
        return bad(f"'id' must be a string or an integer, not {type(ident).__name__}")
    return Item(ident, time, text, src, meta)


def from_csv_row(row: dict) -> dict:
    """A CSV row -> an item: id, time, text, source as they are; every other column into meta
    (empty cells left out)."""
    item: dict[str, Any] = {}
    meta = {}
    for k, v in row.items():
        if k is None:  # more cells than header names
            item.setdefault("_extra", v)
            continue
        k = k.strip()
        if k in ("id", "time", "text", "source"):
            if v not in (None, ""):
                item[k] = v
        elif v not in (None, ""):
            meta[k.removeprefix("meta.")] = v
    if "_extra" in item:
        return {"_error": "the row has more cells than the header has columns"}
    if meta:
        item["meta"] = meta
    return item
