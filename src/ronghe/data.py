"""Reading and checking labelled text data.

``load(path)`` reads a table (CSV, TSV, JSON lines, JSON, Parquet; CSV/TSV/JSON may be
gzipped), finds the text and label columns, and returns a :class:`Dataset`. Everything that
would make training or evaluation silently wrong is either an error (:class:`DataError`,
saying what, where and how to fix it) or a warning on the ``ronghe`` logger that is also kept
in ``Dataset.notes``:

* empty or whitespace-only texts are dropped (or kept, or refused: ``on_empty``), with the
  count and the row numbers;
* missing labels are an error with the row numbers, never dropped silently;
* labels become python ``int`` when every label is an integer (``0``, ``"1"``, ``1.0``),
  otherwise stripped ``str``;
* ``check_trainable``, ``check_evaluation`` and ``split`` check class counts, labels unseen
  in training and texts shared between training and validation.

Row numbers in messages count data rows from 1, header excluded: in a CSV file without
multi-line cells, row N is line N + 1. CSV and TSV files are read as text only, so ``NA``,
``null`` or ``007`` stay exactly what the file says; feature columns that hold only numbers
(and blanks) are turned into numbers afterwards.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ronghe import log
from ronghe.errors import DataError

TEXT_CANDIDATES = ("text", "sentence", "content")
LABEL_CANDIDATES = ("label", "category", "intent")

SUPPORTED_EXTENSIONS = (".csv", ".tsv", ".tab", ".jsonl", ".ndjson", ".json", ".parquet", ".pq",
                        ".csv.gz", ".tsv.gz", ".tab.gz", ".jsonl.gz", ".ndjson.gz", ".json.gz")
ON_EMPTY_CHOICES = ("drop", "keep", "error")
_MAX_LISTED = 10  # row numbers / labels shown in one message
_INT_TEXT = re.compile(r"[+-]?(0|[1-9][0-9]*)(\.0+)?")


@dataclass
class Dataset:
    """Texts with their labels (or ``None``), optional extra feature columns, and provenance.

    ``rows[i]`` is the 1-based data row in ``source`` that example ``i`` came from, so messages
    about an example can point back into the file. ``notes`` lists what was found and done.
    """

    texts: list[str]
    labels: list | None
    features: pd.DataFrame | None = None
    source: str = "<list>"
    text_col: str | None = None
    label_col: str | None = None
    rows: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def inputs(self) -> list[str]:
        """What a model predicts on (every task's data set has ``inputs``): the texts."""
        return self.texts

    def subset(self, idx) -> "Dataset":
        """The examples at integer positions ``idx`` (in that order), everything kept aligned.
        A boolean mask of length ``len(self)`` is accepted too."""
        arr = np.asarray(idx)
        if arr.dtype == bool:
            arr = np.flatnonzero(arr)
        idx = [int(i) for i in arr.astype(int).reshape(-1)]
        features = None
        if self.features is not None:
            features = self.features.iloc[idx].reset_index(drop=True)
        return Dataset(
            texts=[self.texts[i] for i in idx],
            labels=None if self.labels is None else [self.labels[i] for i in idx],
            features=features,
            source=self.source,
            text_col=self.text_col,
            label_col=self.label_col,
            rows=[self.rows[i] for i in idx],
            notes=list(self.notes),
        )

    @property
    def classes(self) -> list:
        """Sorted unique labels."""
        if self.labels is None:
            raise DataError(f"{self.source} has no labels, so it has no classes: "
                            f"give a label column (--label-col) to train or evaluate.")
        return sorted(set(self.labels))

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the texts and labels, in order; the same data gives the same value
        in every run and on every machine."""
        payload = json.dumps({"texts": self.texts, "labels": self.labels},
                             ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- reading files


def _extension(path: str) -> str:
    """Lower-case extension, with ``.gz`` kept together with the inner one (``.csv.gz``)."""
    name = os.path.basename(path).lower()
    base, ext = os.path.splitext(name)
    if ext == ".gz":
        ext = os.path.splitext(base)[1] + ext
    return ext


def read_table(path) -> pd.DataFrame:
    """Read a data file into a DataFrame, choosing the reader by extension.

    CSV/TSV cells are read as strings exactly as written: an empty cell is ``""`` and ``NA`` or
    ``null`` stay texts. JSON and Parquet keep their own types (JSON ``null`` is missing).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"data file not found: {path} (current folder: {os.getcwd()}). "
                        f"Check the spelling, or give an absolute path.")
    if os.path.isdir(path):
        raise DataError(f"{path} is a folder, not a data file: give the path of a "
                        f"{', '.join(SUPPORTED_EXTENSIONS[:8])} file inside it.")
    ext = _extension(path)
    if ext not in SUPPORTED_EXTENSIONS:
        raise DataError(f"cannot read {path}: unknown file extension {ext or '(none)'!r}. "
                        f"Supported: {', '.join(SUPPORTED_EXTENSIONS)}. Rename the file or "
                        f"convert it to one of these formats.")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path} is empty (0 bytes): it needs a header row and data rows.")
    inner = ext[:-3] if ext.endswith(".gz") else ext
    try:
        if inner in (".csv", ".tsv", ".tab"):
            df = _read_delimited(path, "," if inner == ".csv" else "\t")
        elif inner in (".jsonl", ".ndjson"):
            df = _read_json(path, lines=True)
        elif inner == ".json":
            df = _read_json(path, lines=False)
        else:
            df = pd.read_parquet(path)
    except DataError:
        raise
    except UnicodeDecodeError as e:
        raise DataError(f"cannot read {path}: it is not UTF-8 text ({e}). Save it as UTF-8 "
                        f"(e.g. 'CSV UTF-8' in a spreadsheet program).") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: it needs a header row and data rows.") from None
    except (OSError, ValueError, pd.errors.ParserError) as e:  # pyarrow errors are ValueError
        raise DataError(f"cannot parse {path}: {e}. Fix the file (a row with an unquoted "
                        f"separator or quote is the usual cause) or re-export it.") from None
    if len(df) == 0:
        raise DataError(f"{path} has no data rows (columns: {_columns(df)}): add examples "
                        f"below the header.")
    return df


def _trailing_blank_lines(path: str) -> int:
    """Physically blank lines at the end of a (possibly gzipped) text file."""
    opener = gzip.open if path.lower().endswith(".gz") else open
    with opener(path, "rb") as f:
        if path.lower().endswith(".gz"):
            tail = f.read()[-65536:]
        else:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            tail = f.read()
    lines = tail.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the final newline ends the last line; it is not a blank line
    n = 0
    while lines and lines[-1].strip() == b"":
        lines.pop()
        n += 1
    return n


def _check_header(path: str, sep: str) -> None:
    """pandas renames a repeated column (``text,label,text`` -> ``text``, ``text.1``) and the
    first would be used silently: refuse instead, naming the columns."""
    import csv
    import gzip

    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader(fh, delimiter=sep), [])
    seen: dict[str, list[int]] = {}
    for i, name in enumerate(header, 1):
        seen.setdefault(name.strip(), []).append(i)
    dups = {n: pos for n, pos in seen.items() if len(pos) > 1}
    if dups:
        listed = "; ".join(f"{n!r} in columns {', '.join(map(str, pos))}" for n, pos in dups.items())
        raise DataError(f"{path}: the header names a column more than once ({listed}); rename "
                        "them so that every column has its own name.")


def _read_delimited(path: str, sep: str) -> pd.DataFrame:
    # Blank lines are kept as rows so that row numbers match lines (row N = line N + 1); they
    # are then reported as empty texts. Blank lines at the very end of the file are not data:
    # cut exactly those (a last row holding a quoted empty text is data and stays).
    df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, skip_blank_lines=False,
                     encoding="utf-8-sig")
    _check_header(path, sep)
    if not isinstance(df.index, pd.RangeIndex):
        raise DataError(f"cannot parse {path}: some rows have more fields than the header "
                        f"({len(df.columns)} columns: {_columns(df)}). Quote texts that contain "
                        f"the separator {sep!r}, or fix the header.")
    blank = (df == "").all(axis=1).to_numpy()
    end, cut = len(df), _trailing_blank_lines(path)
    while cut > 0 and end > 0 and blank[end - 1]:
        end -= 1
        cut -= 1
    return df.iloc[:end].reset_index(drop=True)


def _read_json(path: str, lines: bool) -> pd.DataFrame:
    opener = gzip.open if path.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig") as f:
        content = f.read()
    if not content.strip():
        raise DataError(f"{path} is empty: it needs one JSON object per example.")
    if not lines:
        try:
            data = json.loads(content)
        except json.JSONDecodeError as e:
            if e.msg != "Extra data":  # "Extra data": several documents, i.e. JSON lines
                raise DataError(f"cannot parse {path}: {e.msg} at line {e.lineno}, column "
                                f"{e.colno}. Fix the JSON there.") from None
        else:
            if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
                try:
                    return pd.DataFrame(data)
                except ValueError as e:
                    raise DataError(f"cannot use {path}: its columns {e}. Give every column "
                                    f"the same number of values.") from None
            if isinstance(data, list) and all(isinstance(r, dict) for r in data):
                return pd.DataFrame.from_records(data)
            got = "a list of non-objects" if isinstance(data, list) else type(data).__name__
            raise DataError(f"cannot use {path}: expected a list of objects like "
                            f'[{{"text": "...", "label": "..."}}, ...] or JSON lines, got {got}.')
    records = []
    for lineno, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"cannot parse {path}: line {lineno}: {e.msg} (column {e.colno}). "
                            f"Each line must be one JSON object.") from None
        if not isinstance(record, dict):
            raise DataError(f"cannot use {path}: line {lineno} is a {type(record).__name__}, "
                            f'not an object like {{"text": "...", "label": "..."}}.')
        records.append(record)
    return pd.DataFrame.from_records(records)


# --------------------------------------------------------------------------- columns


def _columns(df: pd.DataFrame) -> str:
    return ", ".join(repr(str(c)) for c in df.columns) or "(none)"


def detect_column(df, given: str | None, candidates, role: str, source: str) -> str:
    """The name of the ``role`` column ("text", "label"): ``given`` if set (it must exist; a
    unique case-insensitive match is accepted), else the first of ``candidates`` present,
    compared case-insensitively."""
    flag = f"--{role}-col"
    by_lower: dict[str, list] = {}
    for c in df.columns:
        by_lower.setdefault(str(c).lower(), []).append(c)
    if given is not None:
        if given in df.columns:
            return given
        matches = by_lower.get(str(given).lower(), [])
        if len(matches) == 1:
            return matches[0]
        raise DataError(f"{role} column {given!r} not found in {source}; its columns are: "
                        f"{_columns(df)}. Pass one of them with {flag}.")
    for cand in candidates:
        matches = by_lower.get(cand.lower(), [])
        if matches:
            return matches[0]
    raise DataError(f"no {role} column found in {source}: looked for "
                    f"{', '.join(map(repr, candidates))} (any case); its columns are: "
                    f"{_columns(df)}. Say which one holds the {role}s with {flag} NAME.")


# --------------------------------------------------------------------------- validation


def _is_blank(value) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return True
    return not str(value).strip()


def _rows_text(rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:_MAX_LISTED])
    more = f", ... ({len(rows) - _MAX_LISTED} more)" if len(rows) > _MAX_LISTED else ""
    return f"{'row' if len(rows) == 1 else 'rows'} {shown}{more}"


def _as_int(value):
    """``value`` as a python int if it is an integer (1, np.int64(1), 1.0, "1"), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if math.isfinite(value) and float(value).is_integer() else None
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        return int(value.strip().split(".")[0])
    return None


def _label_str(value) -> str:
    if isinstance(value, (float, np.floating)) and math.isfinite(value) \
            and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _normalize_labels(values: list) -> list:
    ints = [_as_int(v) for v in values]
    if all(i is not None for i in ints):
        return ints
    return [_label_str(v) for v in values]


def _numeric_if_possible(col: pd.Series) -> pd.Series:
    """A text column whose non-blank cells are all numbers becomes numeric (blanks -> NaN)."""
    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        return col
    values = [None if _is_blank(v) else v for v in col.tolist()]
    if all(v is None for v in values):
        return col
    try:
        return pd.to_numeric(pd.Series(values, index=col.index, dtype=object), errors="raise")
    except (ValueError, TypeError):
        return col


def _note(ds_notes: list[str], message: str, warning: bool) -> None:
    ds_notes.append(message)
    (log.warn if warning else log.info)("%s", message)


LONG_TEXT = 100_000  # characters; beyond this a text is a document, not a message


def long_texts(texts: list[str], source: str, rows: list[int] | None = None) -> str | None:
    """A warning for texts longer than ``LONG_TEXT`` characters (or ``None``): transformer
    strategies read only their first ``max_length`` tokens, while TF-IDF and tokenisation still
    read all of it - a 10 MB text took 37 s and 1.4 GB of memory."""
    long = [i for i, t in enumerate(texts) if len(t) > LONG_TEXT]
    if not long:
        return None
    longest = max(long, key=lambda i: len(texts[i]))
    where = _rows_text([rows[i] if rows else i + 1 for i in long])
    return (f"{len(long)} text{'s are' if len(long) > 1 else ' is'} longer than {LONG_TEXT:,} "
            f"characters in {source} ({where}; the longest has {len(texts[longest]):,}): models "
            "read only the first max_length tokens, but reading them is slow and memory-hungry. "
            "Split long documents into passages, or trim them.")


def from_frame(df, *, text_col=None, label_col=None, feature_cols=None, require_labels=True,
               on_empty="drop", source="<dataframe>") -> Dataset:
    """Build a checked :class:`Dataset` from a DataFrame (see the module docstring)."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame for {source}, got {type(df).__name__}.")
    if on_empty not in ON_EMPTY_CHOICES:
        raise DataError(f"on_empty={on_empty!r} is not valid: use one of "
                        f"{', '.join(map(repr, ON_EMPTY_CHOICES))}.")
    if len(df) == 0:
        raise DataError(f"{source} has no rows (columns: {_columns(df)}): add examples.")
    notes: list[str] = []
    tcol = detect_column(df, text_col, TEXT_CANDIDATES, "text", source)
    lcol = None
    if label_col is not None or require_labels:
        lcol = detect_column(df, label_col, LABEL_CANDIDATES, "label", source)
    # else: labels are not needed (prediction input); a label-like column is left alone, so
    # blanks in it cannot fail a prediction run
    if lcol is not None and lcol == tcol:
        raise DataError(f"column {str(tcol)!r} of {source} was chosen as both the text and the "
                        f"label column: pass different columns with --text-col and --label-col.")
    if isinstance(feature_cols, str):
        feature_cols = [feature_cols]
    feature_cols = list(feature_cols or [])
    missing = [c for c in feature_cols if c not in df.columns]
    if missing:
        raise DataError(f"feature column{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(map(repr, missing))} not found in {source}; its columns "
                        f"are: {_columns(df)}. Pass existing column names as feature columns.")

    raw_texts = df[tcol].tolist()
    empty_pos = [i for i, t in enumerate(raw_texts) if _is_blank(t)]
    keep = list(range(len(df)))
    if empty_pos:
        what = (f"{len(empty_pos)} empty or whitespace-only text{'s' if len(empty_pos) > 1 else ''}"
                f" in {source} ({_rows_text([i + 1 for i in empty_pos])})")
        if on_empty == "error":
            raise DataError(f"{what}: fill them in or remove those rows "
                            f"(or let them be dropped with on_empty='drop').")
        if on_empty == "drop":
            empty = set(empty_pos)
            keep = [i for i in keep if i not in empty]
            _note(notes, f"{what} {'was' if len(empty_pos) == 1 else 'were'} dropped", True)
            if not keep:
                raise DataError(f"{source} has no non-empty texts in column {str(tcol)!r}: is "
                                f"it the right column? Its columns are: {_columns(df)}; "
                                f"choose another with --text-col.")
        else:
            _note(notes, f"{what} {'was' if len(empty_pos) == 1 else 'were'} kept as empty "
                         f"strings", True)
    texts = ["" if _is_blank(raw_texts[i]) else
             (raw_texts[i] if isinstance(raw_texts[i], str) else str(raw_texts[i])) for i in keep]
    long_note = long_texts(texts, source, [i + 1 for i in keep])
    if long_note:
        _note(notes, long_note, True)

    labels = None
    if lcol is not None:
        raw_labels = df[lcol].tolist()
        kept_labels = [raw_labels[i] for i in keep]
        blank = [keep[j] + 1 for j, v in enumerate(kept_labels) if _is_blank(v)]
        if blank:
            raise DataError(f"{len(blank)} missing label{'s' if len(blank) > 1 else ''} in "
                            f"column {str(lcol)!r} of {source} ({_rows_text(blank)}): fill them "
                            f"in or remove those rows.")
        labels = _normalize_labels(kept_labels)

    features = None
    if feature_cols:
        features = df[feature_cols].iloc[keep].reset_index(drop=True)
        for c in feature_cols:
            features[c] = _numeric_if_possible(features[c])

    summary = f"{source}: {len(texts)} examples, text column {str(tcol)!r}"
    if labels is not None:
        n_classes = len(set(labels))
        summary += (f", label column {str(lcol)!r} "
                    f"({n_classes} class{'es' if n_classes != 1 else ''})")
    else:
        summary += ", no labels"
    if feature_cols:
        summary += f", feature columns {', '.join(map(repr, feature_cols))}"
    notes.insert(0, summary)
    return Dataset(texts=texts, labels=labels, features=features, source=source,
                   text_col=str(tcol), label_col=None if lcol is None else str(lcol),
                   rows=[i + 1 for i in keep], notes=notes)


def load(path, *, text_col=None, label_col=None, feature_cols=None, require_labels=True,
         on_empty="drop") -> Dataset:
    """Read ``path`` (see :func:`read_table`) and check it (see :func:`from_frame`)."""
    df = read_table(path)
    return from_frame(df, text_col=text_col, label_col=label_col, feature_cols=feature_cols,
                      require_labels=require_labels, on_empty=on_empty, source=os.fspath(path))


def from_texts(texts, labels=None, *, on_empty="drop") -> Dataset:
    """A checked :class:`Dataset` from python lists (source ``"<list>"``)."""
    if isinstance(texts, str) or not hasattr(texts, "__len__"):
        raise DataError(f"texts must be a list of strings, got {type(texts).__name__}: "
                        f"wrap a single text in a list.")
    texts = list(texts)
    if not texts:
        raise DataError("the list of texts is empty: give at least one text.")
    columns = {"text": pd.Series(texts, dtype=object)}
    if labels is not None:
        if isinstance(labels, str) or not hasattr(labels, "__len__"):
            raise DataError(f"labels must be a list, got {type(labels).__name__}.")
        labels = list(labels)
        if len(labels) != len(texts):
            raise DataError(f"got {len(texts)} texts but {len(labels)} labels: give exactly one "
                            f"label per text.")
        columns["label"] = pd.Series(labels, dtype=object)
    return from_frame(pd.DataFrame(columns), text_col="text",
                      label_col="label" if labels is not None else None,
                      require_labels=labels is not None, on_empty=on_empty, source="<list>")


# --------------------------------------------------------------------------- checks


def check_trainable(train: Dataset) -> None:
    """Raise if ``train`` cannot train a classifier; warn about classes with one example."""
    if train.labels is None:
        raise DataError(f"training data {train.source} has no labels: name the label column "
                        f"with --label-col.")
    counts = pd.Series(train.labels, dtype=object).value_counts()
    if len(counts) < 2:
        only = counts.index[0] if len(counts) else None
        raise DataError(f"only one class {only!r} in {train.source} (column "
                        f"{train.label_col!r}): a classifier needs at least two labels. Check "
                        f"the label column, or add examples of other classes.")
    rare = sorted(counts[counts < 2].index.tolist(), key=str)
    if rare:
        shown = ", ".join(repr(c) for c in rare[:_MAX_LISTED])
        more = f" and {len(rare) - _MAX_LISTED} more" if len(rare) > _MAX_LISTED else ""
        many = len(rare) > 1
        _note(train.notes, f"{len(rare)} class{'es' if many else ''} in {train.source} "
                           f"{'have' if many else 'has'} only one example ({shown}{more}): the "
                           f"model can hardly learn {'them' if many else 'it'}; add examples if "
                           f"you can", True)


def check_evaluation(train_classes: list, other: Dataset, role: str = "validation",
                     train_texts=None, strict=True) -> None:
    """Check labels of ``other`` against the training classes and count texts shared with
    training (exact match after strip + lowercase)."""
    if other.labels is None:
        raise DataError(f"{role} data {other.source} has no labels, so it cannot be scored: "
                        f"name its label column with --label-col.")
    known = set(train_classes)
    unseen = pd.Series([y for y in other.labels if y not in known], dtype=object).value_counts()
    if len(unseen):
        n = int(unseen.sum())
        shown = ", ".join(f"{label!r} ({count})" for label, count in
                          list(unseen.items())[:_MAX_LISTED])
        more = f" and {len(unseen) - _MAX_LISTED} more" if len(unseen) > _MAX_LISTED else ""
        hint = ""
        if any(isinstance(c, int) for c in known) and any(isinstance(c, str) for c in unseen.index):
            hint = " (the training labels are integers, these are not)"
        what = (f"{n} of {len(other)} {role} examples in {other.source} have labels never seen "
                f"in training: {shown}{more}{hint}")
        if strict:
            raise DataError(f"{what}. Fix or remove those rows, add training examples of those "
                            f"classes, or check that both files use the same label names.")
        _note(other.notes, f"{what}; they will count as errors", True)
    if train_texts is not None:
        seen = {str(t).strip().lower() for t in train_texts}
        shared = sum(1 for t in other.texts if t.strip().lower() in seen)
        if shared:
            _note(other.notes, f"{shared} of {len(other)} {role} texts also appear in the "
                               f"training data; scores may be optimistic", True)


# --------------------------------------------------------------------------- splitting


def _allocate(counts: dict, valid_fraction: float) -> dict:
    """Validation examples per class: proportional (largest remainders), at least 1 and at most
    ``n - 1`` for every class with 2 or more examples, 0 for classes with one example."""
    eligible = {c: n for c, n in counts.items() if n >= 2}
    target = round(valid_fraction * sum(eligible.values()))
    exact = {c: valid_fraction * n for c, n in eligible.items()}
    alloc = {c: math.floor(q) for c, q in exact.items()}
    by_remainder = sorted(eligible, key=lambda c: (-(exact[c] - alloc[c]), str(c)))
    for c in by_remainder[:max(0, target - sum(alloc.values()))]:
        alloc[c] += 1
    return {c: min(max(alloc.get(c, 0), 1), n - 1) if n >= 2 else 0 for c, n in counts.items()}


def split(ds: Dataset, valid_fraction: float = 0.1, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Split ``ds`` into (train, validation), stratified by label and reproducible by ``seed``.

    Every class with at least 2 examples gets at least one validation example; classes with a
    single example stay in training (a warning says so). If no class has 2 examples, or the
    data is unlabeled, the split is a seeded random one. Both parts keep the original order.
    """
    if isinstance(valid_fraction, bool) or not isinstance(valid_fraction, (int, float)) \
            or not 0 < valid_fraction <= 0.5:
        raise DataError(f"the validation fraction must be a number in (0, 0.5], got "
                        f"{valid_fraction!r}: pass e.g. --valid-fraction 0.1, or give a "
                        f"separate validation file.")
    n = len(ds)
    if n < 2:
        raise DataError(f"{ds.source} has {n} example{'s' if n != 1 else ''}: at least 2 are "
                        f"needed to split off validation data. Add examples or give a "
                        f"validation file.")
    rng = np.random.default_rng(seed)
    warning = None
    method = "stratified"
    counts = pd.Series(ds.labels, dtype=object).value_counts().to_dict() if ds.labels else {}
    if ds.labels is None or all(c < 2 for c in counts.values()):
        method = "random"
        n_valid = min(max(1, round(valid_fraction * n)), n - 1)
        valid_idx = rng.permutation(n)[:n_valid].tolist()
        if ds.labels is not None:
            warning = (f"no class in {ds.source} has 2 or more examples, so the validation split "
                       f"cannot be stratified; used a random split (its labels are unseen in "
                       f"training)")
    else:
        alloc = _allocate(counts, valid_fraction)
        positions: dict = {}
        for i, y in enumerate(ds.labels):
            positions.setdefault(y, []).append(i)
        valid_idx = []
        for c in sorted(positions):
            valid_idx += rng.permutation(positions[c])[:alloc[c]].tolist()
        single = sorted((c for c, k in counts.items() if k < 2), key=str)
        if single:
            shown = ", ".join(repr(c) for c in single[:_MAX_LISTED])
            warning = (f"{len(single)} class{'es' if len(single) > 1 else ''} in {ds.source} "
                       f"{'have' if len(single) > 1 else 'has'} a single example ({shown}"
                       f"{' ...' if len(single) > _MAX_LISTED else ''}); kept in training, so "
                       f"validation cannot score {'them' if len(single) > 1 else 'it'}")
    valid_set = set(valid_idx)
    valid_idx = sorted(valid_set)
    train_idx = [i for i in range(n) if i not in valid_set]
    train, valid = ds.subset(train_idx), ds.subset(valid_idx)
    note = (f"split {valid_fraction * 100:g}% of {ds.source} for validation (seed {seed}, "
            f"{method}): {len(train)} training / {len(valid)} validation examples")
    log.info("%s", note)
    for part in (train, valid):
        part.notes.append(note)
    if warning:
        log.warn("%s", warning)
        for part in (train, valid):
            part.notes.append(warning)
    return train, valid
