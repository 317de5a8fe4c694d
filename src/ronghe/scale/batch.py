"""Batch prediction on a Ray cluster: ``ronghe predict BUNDLE --input FILE|DIR --output OUT
--engine ray [--address auto|ray://HOST:PORT] [--workers N]``.

Ray Data reads the input in blocks (``read_parquet`` / ``read_csv`` / ``read_json``), and
``map_batches`` sends each block through an actor pool of ``--workers`` actors; each actor loads
the bundle once (``stream.ChunkPredictor``, the same code as the local engine, so the predictions
are the same; an ONNX bundle needs no torch on the workers) and returns a pandas frame: the input's
other columns, the prediction record and ``error``. Ray writes the result as a folder of Parquet
files at ``OUT`` (through a temporary folder renamed at the end). Ray Data retries failed tasks
and restarts a failed actor (its defaults); a row the model cannot predict on is a row with
``error`` set, listed at the end by its row number - not a failed job.

Rows are identified by the input's id column (``--id-col``, or a column named ``id``), carried to
the output. An input without one gets ``row`` (1-based, in input order; across the files of a
folder in name order) by zipping the data with ``ray.data.range``: that is a barrier (the input
is materialised in Ray's object store, which spills to disk) and ``Dataset.zip`` is deprecated
for Ray 2.64, so give big inputs an id column.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError, DataError
from ..log import info
from . import stream

BATCH_ROWS = 1024


def require_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'ronghe[ray]' (on every machine of "
                          "the cluster)") from None
    return ray


def connect(address: str | None = None, **local):
    """Join the Ray cluster at ``address`` (``auto``: the one ``ray start`` runs here;
    ``ray://HOST:PORT``: a remote head through Ray Client), or start a local one with ``local``
    settings (num_cpus ...). Nothing happens when this process is already connected."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    env = {"env_vars": {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE":
                        os.environ.get("HF_HUB_OFFLINE", "0")}}
    try:
        if address:
            ray.init(address=address, runtime_env=env, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, runtime_env=env, log_to_driver=False, **local)
    except ConnectionError as e:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {e}. Start it with "
                          "`ray start --head` (and give --address auto on that machine, or "
                          "ray://HEAD:10001 elsewhere)") from None
    return ray


def read(files: list[Path]):
    """The input files as one Ray dataset (one format per run)."""
    ray = require_ray()
    kinds = {stream.data._extension(f.name).removesuffix(".gz") for f in files}
    paths = [str(f.resolve()) for f in files]
    if kinds <= {".parquet", ".pq"}:
        return ray.data.read_parquet(paths)
    if kinds <= {".csv", ".tsv", ".tab"}:
        import pyarrow.csv as pacsv

        delimiter = "," if kinds == {".csv"} else "\t"
        return ray.data.read_csv(paths, parse_options=pacsv.ParseOptions(delimiter=delimiter,
                                                                          newlines_in_values=True))
    if kinds <= {".jsonl", ".ndjson"}:
        return ray.data.read_json(paths, lines=True)
    raise DataError(f"--engine ray reads Parquet, CSV/TSV or JSON lines files of one kind, not "
                    f"{', '.join(sorted(kinds))}: convert the input (or use the local engine)")


class Predict:
    """The actor class of the pool: loads the bundle once, predicts every batch it is given."""

    def __init__(self, bundle: str, text_col: str | None, id_col: str | None, threads: int = 1):
        self.predictor = stream.ChunkPredictor(bundle, text_col, threads=threads)
        self.id_col = id_col

    def __call__(self, batch):
        if self.id_col is None:  # rows numbered by the zip with ray.data.range
            batch = batch.rename(columns={"id": "__row"})
            rows = batch.pop("__row") + 1
            out = self.predictor(batch, first_row=None, source="the input")
            out.insert(0, "row", rows.to_numpy())
            return out
        return self.predictor(batch, first_row=None, source="the input")


def actor_cpus(cluster_cpus: float, workers: int, threads: int) -> float:
    """The CPUs each actor reserves: its threads, but never so many that the actors hold every
    CPU - Ray Data's read and write tasks need one, or the pipeline waits forever (2 actors on a
    2-CPU Ray did)."""
    spare = (cluster_cpus - 1) / workers
    if spare <= 0:
        raise ConfigError(f"--workers {workers} on a Ray cluster of {cluster_cpus:g} CPUs leaves "
                          "none for reading and writing: use fewer workers")
    return min(float(threads), round(spare, 2))


def _id_column(files: list[Path], ds, id_col: str | None) -> str | None:
    names = ds.schema().names
    if id_col is not None:
        if id_col not in names:
            raise DataError(f"id column {id_col!r} not found in {files[0]}; its columns are: "
                            f"{', '.join(map(repr, names))}")
        return id_col
    return "id" if "id" in names else None


def predict_on_ray(bundle, input: Path, output: Path, *, text_col: str | None = None,
                   id_col: str | None = None, workers: int = 1, address: str | None = None,
                   batch_rows: int | None = None, threads: int = 1) -> dict:
    """Predict ``input`` with ``workers`` actors on Ray into the Parquet folder ``output``.
    Returns ``{"rows", "bad_rows", "output", "seconds"}``; bad rows are warned about by row
    number (or id)."""
    import time

    if output is None:
        raise ConfigError("--engine ray writes Parquet: give --output OUT (a folder of .parquet "
                          "files is written there)")
    output = Path(output)
    if output.exists():
        raise ConfigError(f"--output {output} exists: remove it or give a new name")
    files = stream.input_files(input)
    ray = connect(address)
    ds = read(files)
    key = _id_column(files, ds, id_col)
    if key is None:
        ds = ds.zip(ray.data.range(ds.count()))
    # the bundle path as every machine sees it: on a cluster it must be on shared storage
    # (or the same path on every node)
    actors = dict(fn_constructor_kwargs={"bundle": str(Path(bundle).resolve()),
                                         "text_col": text_col, "id_col": key, "threads": threads},
                  batch_size=batch_rows or BATCH_ROWS, batch_format="pandas",
                  num_cpus=actor_cpus(ray.cluster_resources().get("CPU", 1), workers, threads),
                  concurrency=workers)  # Ray Data retries failed tasks and restarts actors
    start = time.perf_counter()
    out = ds.map_batches(Predict, **actors)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = stream.temp_beside(output)
    try:
        out.write_parquet(str(tmp))
        os.replace(tmp, output)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = time.perf_counter() - start
    summary = report(output, key or "row")
    info("predicted %d rows on Ray (%d workers) in %.1fs", summary["rows"], workers, seconds)
    return {**summary, "output": str(output), "seconds": round(seconds, 2)}


def report(output: Path, key: str) -> dict:
    """Count the rows of a written prediction folder and warn about its bad rows (by ``key``)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    dataset = pads.dataset(str(output), format="parquet")
    rows = dataset.count_rows()
    bad = dataset.to_table(columns=[key, "error"], filter=pc.field("error").is_valid())
    tally = stream.Tally()
    tally.add_bad("", bad.column(key).to_pylist(), bad.column("error").to_pylist())
    return {"rows": rows, **tally.report(key)}
