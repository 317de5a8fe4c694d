"""Batch prediction over files of any size on one machine: read in chunks, predict, write.

``ronghe predict BUNDLE --input FILE|DIR --output out.parquet|out.jsonl`` runs here: the input is
read ``chunk_rows`` rows at a time (CSV/TSV through pandas' chunked reader, JSON lines likewise,
Parquet by record batches; a plain ``.json`` document cannot be streamed and is read whole), each
chunk is predicted and appended to the output (Parquet through one ``pyarrow.parquet.
ParquetWriter``, JSON lines as text), so memory stays flat in the number of rows. The output is
written to a temporary file beside the target and renamed at the end: a killed run leaves no
half-written output. A progress bar shows rows, rows/s and the ETA.

Each output row carries ``row`` (the 1-based data row of its input file; for a folder of files,
``source`` names the file), the input's other columns (ids ...), the prediction record and
``error``. A row the model cannot predict on (say, a non-number in a numeric feature column) is
not a crashed job: its chunk is predicted again row by row, the failing rows get ``error`` and no
prediction, and the run ends with a warning that lists their row numbers. A chunk where every row
fails is a broken model or the wrong column, not bad rows: that stops the run.

``ChunkPredictor`` is what both engines run: this module's local loop and the Ray Data actors of
``scale/batch.py``.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd

from .. import data
from ..errors import ConfigError, DataError, RongheError
from ..log import progress, warn

CHUNK_ROWS = 4096
STREAMED = (".csv", ".tsv", ".tab", ".csv.gz", ".tsv.gz", ".tab.gz", ".jsonl", ".ndjson",
            ".jsonl.gz", ".ndjson.gz", ".parquet", ".pq")
MAX_LISTED = 10


# --------------------------------------------------------------------------- reading


def input_files(path: str | os.PathLike) -> list[Path]:
    """The data files of ``path``: the file itself, or a folder's supported files (sorted by
    name; hidden files and other files are left out)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"input not found: {path} (current folder: {os.getcwd()})")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                   and data._extension(p.name) in data.SUPPORTED_EXTENSIONS)
    if not files:
        raise DataError(f"{path} holds no data files ({', '.join(data.SUPPORTED_EXTENSIONS[:8])}"
                        " ...): put the inputs there or give a file")
    return files


def count_rows(files: list[Path]) -> int | None:
    """Rows in ``files`` for the progress bar's ETA: exact for Parquet (its metadata), lines for
    uncompressed CSV/JSON lines (a quoted multi-line cell makes it an over-count), else None."""
    import pyarrow.parquet as pq

    total = 0
    for f in files:
        ext = data._extension(f.name)
        if ext in (".parquet", ".pq"):
            total += pq.ParquetFile(f).metadata.num_rows
        elif ext in (".csv", ".tsv", ".tab", ".jsonl", ".ndjson"):
            with open(f, "rb") as fh:
                lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))
            total += max(lines - (ext not in (".jsonl", ".ndjson")), 0)
        else:
            return None
    return total


def read_chunks(path: Path, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """``path`` as DataFrames of at most ``chunk_rows`` rows, in file order. CSV/TSV cells are
    read as text exactly as written (as ``data.read_table`` does)."""
    ext = data._extension(path.name)
    if ext not in STREAMED:  # .json (one document) cannot be streamed
        table = data.read_table(path)
        for start in range(0, len(table), chunk_rows):
            yield table.iloc[start:start + chunk_rows].reset_index(drop=True)
        return
    if os.path.getsize(path) == 0:
        raise DataError(f"{path} is empty (0 bytes): it needs a header row and data rows.")
    inner = ext[:-3] if ext.endswith(".gz") else ext
    try:
        if inner in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
        elif inner in (".jsonl", ".ndjson"):
            with pd.read_json(path, lines=True, chunksize=chunk_rows, dtype=False,
                              convert_dates=False, encoding="utf-8-sig") as reader:
                yield from reader
        else:
            sep = "," if inner == ".csv" else "\t"
            data._check_header(str(path), sep)
            with pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False,
                             skip_blank_lines=False, encoding="utf-8-sig",
                             chunksize=chunk_rows) as reader:
                yield from reader
    except UnicodeDecodeError as e:
        raise DataError(f"cannot read {path}: it is not UTF-8 text ({e}). Save it as UTF-8.") \
            from None
    except (ValueError, pd.errors.ParserError) as e:  # pyarrow's errors are ValueErrors
        raise DataError(f"cannot parse {path}: {e}. Fix the file (a row with an unquoted "
                        "separator or quote is the usual cause) or re-export it.") from None


# --------------------------------------------------------------------------- predicting


@contextmanager
def _muted():
    """The per-chunk notes of ``data.from_frame`` (empty texts ...) are summed up once at the
    end instead of once per chunk."""
    logger = logging.getLogger("ronghe")
    before = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = before


def _error_text(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e)[:300]}"


class ChunkPredictor:
    """Predict a chunk of an input table with a text-classification bundle: a DataFrame in,
    a DataFrame out (``row``, the other input columns, the prediction record, ``error``).

    ``clf`` is a loaded estimator or a bundle path (loaded once, here: a Ray actor builds one
    ``ChunkPredictor`` and calls it for every batch)."""

    def __init__(self, clf, text_col: str | None = None, threads: int | None = None):
        if threads:
            _pin_threads(threads)
        if isinstance(clf, (str, os.PathLike)):
            from .. import load

            clf = load(clf)
        if clf.task_spec().name != "text-classification":
            raise ConfigError(f"batch prediction from tables supports text-classification "
                              f"bundles; this one is '{clf.task_spec().name}': use ronghe predict "
                              "without --engine / --output .parquet for it")
        self.clf, self.text_col = clf, text_col
        self.features = list(getattr(clf, "feature_cols", None) or [])
        self._col: str | None = None

    def column(self, df: pd.DataFrame, source: str) -> str:
        if self._col is None or self._col not in df.columns:
            self._col = data.detect_column(df, self.text_col, data.TEXT_CANDIDATES, "text", source)
        return self._col

    def _records(self, df: pd.DataFrame, rows: list[int], source: str) -> list[dict]:
        with _muted():
            ds = data.from_frame(df, text_col=self._col, feature_cols=self.features or None,
                                 require_labels=False, on_empty="keep", source=source)
        ds.rows = rows
        return self.clf.predict_records(ds)

    def __call__(self, df: pd.DataFrame, first_row: int | None = 1, source: str = "<input>",
                 keep: list[str] | None = None) -> pd.DataFrame:
        """Predictions for ``df`` whose first row is data row ``first_row`` of ``source``
        (``None``: rows unknown, as in a Ray block; the ``row`` column is left out). ``keep``:
        the input columns to carry over (default: all but the text column)."""
        col = self.column(df, source)
        df = df.reset_index(drop=True)
        rows = list(range(first_row, first_row + len(df))) if first_row else list(range(1, len(df) + 1))
        try:
            recs = self._records(df, rows, source)
        except RongheError:
            raise
        except Exception:  # noqa: BLE001 - find the rows that fail, predict the others
            recs = []
            for i in range(len(df)):
                try:
                    recs.extend(self._records(df.iloc[[i]], [rows[i]], source))
                except Exception as e:  # noqa: BLE001 - a bad row is reported, not fatal
                    recs.append({"row": rows[i], "error": _error_text(e)})
            if all("error" in r for r in recs):
                raise DataError(f"{source}: no row of the chunk starting at row {rows[0]} could "
                                f"be predicted ({recs[0]['error']}): check --text-col and the "
                                "bundle") from None
        out = pd.DataFrame.from_records(recs)
        if "error" not in out.columns:
            out["error"] = None
        for c in out.columns:  # missing values of failed rows as None (Parquet nulls)
            if out[c].dtype == object:
                out[c] = out[c].astype(object).where(out[c].notna(), None)
        import pyarrow as pa

        out["error"] = out["error"].astype(pd.ArrowDtype(pa.string()))  # text even when all null
        if first_row is None:
            out = out.drop(columns=["row"])
        carried = [c for c in (keep if keep is not None else df.columns) if c != col]
        extra = df[carried].rename(columns={c: f"input_{c}" for c in carried if c in out.columns})
        lead = ["row"] if first_row is not None else []
        return pd.concat([out[lead], extra, out.drop(columns=lead)], axis=1)


def _pin_threads(n: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(n)
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


# --------------------------------------------------------------------------- writing


def temp_beside(target: Path) -> Path:
    return target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"


def check_output(output: Path) -> None:
    """``.parquet`` / ``.pq`` outputs are Parquet, any other name JSON lines."""
    if output.is_dir():
        raise ConfigError(f"--output {output} is a folder: give a file name like "
                          f"{output / 'predictions.parquet'}")


class Writer:
    """Appends predicted chunks to a Parquet or JSON lines file written under a temporary name
    (``close`` renames it into place; ``abort`` removes it)."""

    def __init__(self, target: Path | None):
        self.target = target
        self.parquet = target is not None and data._extension(target.name) in (".parquet", ".pq")
        self.tmp = None
        self._pq = self._fh = None
        self._schema = None
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = temp_beside(target)

    def write(self, df: pd.DataFrame) -> None:
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(df, schema=self._schema, preserve_index=False)
            if self._pq is None:  # the first chunk fixes the schema; all-null columns as text
                fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f
                          for f in table.schema]
                self._schema = pa.schema(fields)
                table = table.cast(self._schema)
                self._pq = pq.ParquetWriter(self.tmp, table.schema)
            self._pq.write_table(table)
            return
        lines = "".join(json.dumps({k: v for k, v in r.items() if not _missing(v)},
                                   ensure_ascii=False, default=_json_default) + "\n"
                        for r in df.to_dict("records"))
        if self.tmp is None:
            import sys

            sys.stdout.write(lines)
            return
        if self._fh is None:
            self._fh = open(self.tmp, "w", encoding="utf-8")
        self._fh.write(lines)

    def close(self) -> None:
        if self._pq is not None:
            self._pq.close()
        if self._fh is not None:
            self._fh.close()
        if self.tmp is not None:
            if not self.tmp.exists():  # no chunk at all
                Path(self.tmp).write_text("")
            os.replace(self.tmp, self.target)

    def abort(self) -> None:
        for h in (self._pq, self._fh):
            if h is not None:
                h.close()
        if self.tmp is not None and self.tmp.exists():
            self.tmp.unlink()


def _missing(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


# --------------------------------------------------------------------------- the local engine


class Tally:
    """Counts of bad rows and empty texts, with the first few row numbers for the messages."""

    def __init__(self):
        self.bad, self.empty = 0, 0
        self.bad_shown: list[str] = []
        self.empty_shown: list[str] = []

    def add_bad(self, where: str, rows, errors) -> None:
        for r, e in zip(rows, errors):
            self.bad += 1
            if len(self.bad_shown) < MAX_LISTED:
                self.bad_shown.append(f"{where}{r}: {e}")

    def add_empty(self, where: str, rows) -> None:
        for r in rows:
            self.empty += 1
            if len(self.empty_shown) < MAX_LISTED:
                self.empty_shown.append(f"{where}{r}")

    def report(self, what: str = "row") -> dict:
        """Warn about the bad rows and empty texts (``what``: how rows are named: row, id)."""
        if self.empty:
            more = f", ... ({self.empty - MAX_LISTED} more)" if self.empty > MAX_LISTED else ""
            warn("%d empty or whitespace-only text%s (%s%s %s%s) %s kept as empty texts",
                 self.empty, "s" if self.empty > 1 else "", what, "s" if self.empty > 1 else "",
                 ", ".join(self.empty_shown), more, "was" if self.empty == 1 else "were")
        if self.bad:
            more = f"; ... ({self.bad - MAX_LISTED} more)" if self.bad > MAX_LISTED else ""
            warn("%d row%s could not be predicted (%s %s%s); the output's 'error' column says why",
                 self.bad, "s" if self.bad > 1 else "", what, f"; {what} ".join(self.bad_shown),
                 more)
        return {"bad_rows": self.bad, "empty_texts": self.empty}


def predict_files(bundle, input: Path, output: Path | None, *, text_col: str | None = None,
                  chunk_rows: int = CHUNK_ROWS) -> dict:
    """Stream ``input`` (a file or a folder of files) through ``bundle`` into ``output``
    (``None``: JSON lines on stdout). Returns ``{"rows", "bad_rows", "empty_texts", "output"}``."""
    if output is not None:
        check_output(output)
    files = input_files(input)
    predictor = ChunkPredictor(bundle, text_col)
    total = count_rows(files)
    many = len(files) > 1
    writer = Writer(output)
    tally, done = Tally(), 0
    try:
        with progress("predicting", total, unit="rows") as bar:
            for f in files:
                first = 1
                for chunk in read_chunks(f, chunk_rows):
                    col = predictor.column(chunk, str(f))
                    out = predictor(chunk, first, str(f))
                    where = f"{f.name}:" if many else ""
                    if many:
                        out.insert(1, "source", f.name)
                    tally.add_empty(where, (first + i for i, v in enumerate(chunk[col].tolist())
                                            if data._is_blank(v)))
                    errs = out["error"].notna().to_numpy()
                    tally.add_bad(where, out["row"][errs], out["error"][errs])
                    writer.write(out)
                    first += len(chunk)
                    done += len(chunk)
                    bar.advance(len(chunk))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return {"rows": done, **tally.report(), "output": str(output) if output else None}
