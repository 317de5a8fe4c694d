"""The assistant's material: intents, FAQ entries, out-of-scope examples, answers, queries.

* intents: a table with a text column and an intent column (``data.load``'s detection: text /
  sentence / content, label / category / intent), optionally an ``answer`` column
  (one answer per intent; ``{slot}`` placeholders allowed). Rows labelled ``oos`` are
  out-of-scope examples.
* FAQ: ``question`` (or ``text``) and ``answer``, optionally ``id``: rows sharing an id are
  paraphrases of one entry (the answer given once, or the same each time); without ``id`` each
  row is an entry ``faq-<row>``.
* OOS: a text column; a label column, if any, is ignored.
* queries (evaluation): a message column and ``expected`` (an intent, a FAQ id or ``oos``).

Every problem is an error naming the file, the rows and the fix; nothing is dropped silently
(blank questions and texts are dropped with their rows named in the notes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ... import data
from ...errors import DataError
from .config import OOS_LABEL

MESSAGE_CANDIDATES = ("message", "text", "query", "question", "sentence", "content")
EXPECTED_CANDIDATES = ("expected", "label", "intent", "faq_id")


@dataclass
class FaqEntry:
    id: str
    questions: list[str]
    answer: str


@dataclass
class Material:
    """What an assistant is built from (``texts``/``labels`` in scope; ``oos`` texts)."""

    texts: list[str]
    labels: list[str]
    answers: dict[str, str] = field(default_factory=dict)
    oos: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _table(path) -> pd.DataFrame:
    return data.read_table(path)


def _rows(rows: list[int]) -> str:
    return data._rows_text(rows)


def read_intents(path, *, text_col=None, label_col=None, role="intents") -> Material:
    """An intents table: texts with intents (``oos`` rows become out-of-scope examples)."""
    ds = data.load(path, text_col=text_col, label_col=label_col)
    labels = [str(y) for y in ds.labels]
    df = _table(path)
    answers: dict[str, str] = {}
    if "answer" in df.columns:
        answers = _answers_from(df, ds.label_col, "answer", str(path))
    keep = [i for i, y in enumerate(labels) if y != OOS_LABEL]
    oos = [ds.texts[i] for i, y in enumerate(labels) if y == OOS_LABEL]
    notes = list(ds.notes)
    if oos:
        notes.append(f"{path}: {len(oos)} rows labelled '{OOS_LABEL}' are used as out-of-scope "
                     "examples")
    if not keep:
        raise DataError(f"{path} ({role}) has no in-scope rows: every row is labelled "
                        f"'{OOS_LABEL}'. Give examples of the intents the assistant answers.")
    answers.pop(OOS_LABEL, None)
    return Material([ds.texts[i] for i in keep], [labels[i] for i in keep], answers, oos, notes)


def _answers_from(df: pd.DataFrame, key_col: str, answer_col: str, source: str) -> dict[str, str]:
    out: dict[str, str] = {}
    where: dict[str, int] = {}
    for i, (k, a) in enumerate(zip(df[key_col].tolist(), df[answer_col].tolist())):
        if data._is_blank(a) or data._is_blank(k):
            continue
        k, a = str(data._label_str(k)), str(a).strip()
        if k in out and out[k] != a:
            raise DataError(f"{source}: '{k}' has two different answers (rows {where[k]} and "
                            f"{i + 1}); give each one answer (or the same text every time)")
        out.setdefault(k, a)
        where.setdefault(k, i + 1)
    return out


def read_answers(path) -> dict[str, str]:
    """``intent,answer`` (or ``label``/``id`` + ``answer``): an answer per intent."""
    df = _table(path)
    key = next((c for c in ("intent", "label", "id", "category") if c in df.columns), None)
    if key is None or "answer" not in df.columns:
        raise DataError(f"{path}: an answers file needs an 'intent' and an 'answer' column; its "
                        f"columns are: {', '.join(map(str, df.columns))}")
    return _answers_from(df, key, "answer", str(path))


def read_oos(path, *, text_col=None) -> list[str]:
    ds = data.load(path, text_col=text_col, require_labels=False)
    return list(ds.texts)


def read_faq(path) -> tuple[list[FaqEntry], list[str]]:
    """FAQ entries and notes (dropped blank questions, named by row)."""
    df = _table(path)
    qcol = next((c for c in ("question", "text", "questions") if c in df.columns), None)
    if qcol is None or "answer" not in df.columns:
        raise DataError(f"{path}: a FAQ file needs a 'question' and an 'answer' column (and "
                        f"optionally 'id'); its columns are: {', '.join(map(str, df.columns))}")
    ids = df["id"].tolist() if "id" in df.columns else [None] * len(df)
    entries: dict[str, FaqEntry] = {}
    where: dict[str, int] = {}
    blank_q, blank_id = [], []
    for i, (fid, q, a) in enumerate(zip(ids, df[qcol].tolist(), df["answer"].tolist())):
        row = i + 1
        if ids[0] is not None and data._is_blank(fid):
            blank_id.append(row)
            continue
        fid = str(data._label_str(fid)).strip() if fid is not None else f"faq-{row}"
        if data._is_blank(q):
            blank_q.append(row)
            continue
        e = entries.setdefault(fid, FaqEntry(fid, [], ""))
        if str(q).strip() not in e.questions:
            e.questions.append(str(q).strip())
        if not data._is_blank(a):
            a = str(a).strip()
            if e.answer and e.answer != a:
                raise DataError(f"{path}: FAQ '{fid}' has two different answers (rows "
                                f"{where[fid]} and {row}); give the answer once, or the same "
                                "text on every paraphrase row")
            e.answer, where[fid] = a, row
    if blank_id:
        raise DataError(f"{path}: {len(blank_id)} rows have no id ({_rows(blank_id)}); fill in "
                        "the id of the entry each question belongs to")
    missing = [e.id for e in entries.values() if not e.answer]
    if missing:
        raise DataError(f"{path}: FAQ entries without an answer: {', '.join(missing[:10])}; give "
                        "each entry an answer on at least one of its rows")
    if not entries:
        raise DataError(f"{path} has no FAQ questions: every 'question' cell is empty")
    notes = []
    if blank_q:
        notes.append(f"{path}: {len(blank_q)} empty questions were dropped ({_rows(blank_q)})")
    return list(entries.values()), notes


@dataclass
class Queries:
    texts: list[str]
    expected: list[str]
    rows: list[int]
    source: str


def read_queries(path, *, text_col=None, expected_col=None) -> Queries:
    df = _table(path)
    tcol = data.detect_column(df, text_col, MESSAGE_CANDIDATES, "message", str(path))
    ecol = data.detect_column(df, expected_col, EXPECTED_CANDIDATES, "expected", str(path))
    texts, expected, rows, blank = [], [], [], []
    for i, (t, e) in enumerate(zip(df[tcol].tolist(), df[ecol].tolist())):
        if data._is_blank(t) or data._is_blank(e):
            blank.append(i + 1)
            continue
        texts.append(str(t))
        expected.append(str(data._label_str(e)).strip())
        rows.append(i + 1)
    if blank:
        raise DataError(f"{path}: {len(blank)} rows have an empty message or expected value "
                        f"({_rows(blank)}); fill them in or remove them")
    return Queries(texts, expected, rows, str(path))


def check_names(intents: list[str], faq: list[FaqEntry], source: str) -> None:
    """Intents, FAQ ids and ``oos`` must be distinct names (a query's expected value is one)."""
    clash = sorted(set(intents) & {e.id for e in faq})
    if clash:
        raise DataError(f"{source}: FAQ ids that are also intent names: {', '.join(clash[:10])}; "
                        "rename the FAQ ids (e.g. prefix them with 'faq-')")
    if any(e.id == OOS_LABEL for e in faq):
        raise DataError(f"{source}: '{OOS_LABEL}' is reserved for out-of-scope messages; rename "
                        "that FAQ id")


def as_path(p) -> Path:
    return Path(p).expanduser()
