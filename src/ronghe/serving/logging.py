"""The request log: one JSON object per line, written off the event loop, with PII masked.

Each line: ``time`` (UTC ISO), ``request_id``, ``method``, ``path``, ``endpoint``, ``model``,
``version``, ``status``, ``latency_ms``, ``batch_size`` (items in the model call that served the
request), ``n_inputs``, ``client`` (the API key's *name*; keys themselves are never logged, nor any
header), ``error`` (a code) and, only with ``log_inputs``, ``inputs``.

Masking (``mask``) replaces e-mail addresses, phone numbers, payment card numbers and ID numbers
(US SSN, Chinese resident ID) with ``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[ID]``. It is applied to
the inputs and the path. It errs on the side of masking: a long digit run that is not a card
number is still masked as one.
"""

from __future__ import annotations

import json
import queue
import re
import sys
import threading
from pathlib import Path
from typing import IO, Any

_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Chinese resident ID: 6-digit region, birth date, 3-digit sequence, check digit (0-9 or X)
_CN_ID = re.compile(r"(?<![0-9A-Za-z])\d{6}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
                    r"\d{3}[0-9Xx](?![0-9A-Za-z])")
_SSN = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")
# international phone: + or 00, country code, then digit groups
_INTL_PHONE = re.compile(r"(?<![\w+-])(?:\+|00)\d{1,3}(?:[ .-]?\(\d{1,5}\))?(?:[ .-]?\d+)(?:[ .-]\d+)*"
                         r"(?!\w)")
# card: 13-19 digits, optionally grouped by single spaces or dashes
_CARD = re.compile(r"(?<![\w+-])(?:\d[ -]?){12,18}\d(?![\w-])")
# other phone numbers: digit groups with separators, or an area code in parentheses
_PHONE = re.compile(r"(?<![\w+.-])(?:\(\d{1,5}\)[ .-]?)?\d+(?:[ .-]\d+)*(?![\w])")
_DATE = re.compile(r"\d{4}[./-]\d{1,2}[./-]\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{4}"
                   r"|(?:1[89]|20)\d{2} ?- ?(?:1[89]|20)\d{2}")  # dates, year ranges
_DECIMAL = re.compile(r"\d+\.\d+")
# IBAN: country code, 2 check digits, 11-30 letters/digits (optionally in groups of 4)
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
# passport numbers: the word, then a 6-9 character document number
_PASSPORT = re.compile(r"(?i)(passport(?:\s*(?:no\.?|number|#))?\s*[:#]?\s*)([A-Z0-9]{6,9})\b")
# secrets: password=..., token: ..., and API keys such as sk-..., ghp_..., AKIA...
_SECRET_KV = re.compile(r"(?i)\b(pass(?:word|wd)?|pwd|secret|token|api[_-]?key)(\s*[=:]\s*)(\S+)")
_API_TOKEN = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}|\bgh[pousr]_[A-Za-z0-9]{20,}"
                        r"|\bAKIA[0-9A-Z]{16}\b|\bxox[baprs]-[A-Za-z0-9-]{10,}")


def _phone(m: re.Match) -> str:
    s = m.group(0)
    digits = sum(c.isdigit() for c in s)
    if _DATE.fullmatch(s) or _DECIMAL.fullmatch(s):
        return s
    separated = any(c in s for c in " .-()")
    if (separated and 7 <= digits <= 15) or (not separated and 10 <= digits <= 15):
        return "[PHONE]"
    return s


def mask(text: str) -> str:
    """``text`` with e-mail addresses, secrets (``password=...``, API tokens), IBANs, passport,
    phone, card and ID numbers replaced by placeholders."""
    if not text:
        return text
    if "@" in text:
        text = _EMAIL.sub("[EMAIL]", text)
    text = _SECRET_KV.sub(lambda m: m.group(1) + m.group(2) + "[SECRET]", text)
    text = _API_TOKEN.sub("[SECRET]", text)
    text = _IBAN.sub("[IBAN]", text)
    text = _PASSPORT.sub(lambda m: m.group(1) + "[ID]", text)
    if not any(c.isdigit() for c in text):
        return text
    text = _CN_ID.sub("[ID]", text)
    text = _SSN.sub("[ID]", text)
    text = _CARD.sub("[CARD]", text)
    text = _INTL_PHONE.sub(lambda m: "[PHONE]" if sum(c.isdigit() for c in m.group(0)) >= 7
                           else m.group(0), text)
    return _PHONE.sub(_phone, text)


def mask_inputs(inputs: list) -> list:
    """Masked copies of a request's inputs (texts, or token lists: masked as joined text)."""
    out = []
    for item in inputs:
        if isinstance(item, str):
            out.append(mask(item))
        elif isinstance(item, list):
            out.append(mask(" ".join(str(t) for t in item)).split(" ") if item else [])
        else:
            out.append(item)
    return out


_STOP = object()


class RequestLog:
    """Writes JSON lines to ``sink`` ('-' = stderr, a path, a file-like object, None = off) from a
    background thread, so a slow disk never blocks a request."""

    def __init__(self, sink: str | Path | IO[str] | None = "-", log_inputs: bool = False):
        self.log_inputs = log_inputs
        self._owned = False
        if sink is None:
            self._out = None
        elif hasattr(sink, "write"):
            self._out = sink
        elif str(sink) == "-":
            self._out = sys.stderr
        else:
            path = Path(sink).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            self._out = open(path, "a", encoding="utf-8", buffering=1)
            self._owned = True
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._out is not None

    def write(self, record: dict[str, Any]) -> None:
        if self._out is None:
            return
        if "inputs" in record and not self.log_inputs:
            del record["inputs"]
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="ronghe-request-log",
                                                    daemon=True)
                    self._thread.start()
        self._queue.put(record)

    def _run(self) -> None:
        while True:
            record = self._queue.get()
            try:
                if record is _STOP:
                    return
                if "inputs" in record:  # masking happens here, off the event loop
                    record["inputs"] = mask_inputs(record["inputs"])
                if "path" in record:
                    record["path"] = mask(record["path"])
                # ensure_ascii: lone surrogates or odd bytes in inputs can never break the stream
                self._out.write(json.dumps(record, ensure_ascii=True, default=str) + "\n")
                self._out.flush()
            except Exception:  # noqa: BLE001 - the log must never take the service down
                pass
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until every line written so far is out."""
        if self._thread is not None:
            self._queue.join()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=5)
            self._thread = None
        if self._owned and self._out is not None:
            self._out.close()
            self._out = None
