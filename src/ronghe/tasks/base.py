"""What every task declares: the one place where tasks differ.

A task (text classification, NER, ...) is a ``Task`` subclass instance registered by name in
``tasks/__init__.py``. Everything else - the estimator base, the strategy registry, the bundle,
``ronghe.load``, bench, tune, compression, serving and the CLI - asks the task instead of testing
task names. A task module must stay light to import (no torch): what it names by ``"module:attr"``
strings is imported on first use.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ConfigError


def import_ref(ref: str | Any, what: str) -> Any:
    """``"package.module:attr"`` -> the object (anything else is returned as it is). A missing
    third-party package is reported with the extra that brings it."""
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    try:
        obj = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if not e.name or e.name.split(".")[0] == "ronghe":
            raise
        raise ConfigError(f"{what} needs {e.name}, which is not installed; install ronghe with "
                          "the training extra: pip install 'ronghe[train]'") from None
    return getattr(obj, attr) if attr else obj


class Task:
    """A task's declaration. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]  # the manifest's ``task``, e.g. "text-classification"
    cli_name: ClassVar[str]  # what ``ronghe train --task`` takes, e.g. "text"
    description: ClassVar[str]
    estimator: ClassVar[str]  # "module:Class" of its ``Estimator``
    strategies: dict[str, Any]  # strategy name -> "module:Class" (or the class, once imported)
    default_strategy: ClassVar[str]
    score: ClassVar[str]  # the validation metric that selects models (early stopping, C, bench)
    summary: ClassVar[tuple[str, ...]]  # metrics a one-line summary and the leaderboard show
    portfolio: ClassVar[tuple[str, ...]]  # ``ronghe bench``'s default strategies
    cost_order: ClassVar[tuple[str, ...]]  # cheapest first, for training within a time budget
    data_options: ClassVar[tuple[str, ...]] = ()  # reader options the CLI passes (text_col ...)
    gate_metric: ClassVar[str]  # what the compression gate protects (points of it may be lost)
    exporter: ClassVar[str | None] = None  # module with the ONNX export recipe (see
    # compression/export.py); None: the task's models cannot be exported or compressed
    compressions: ClassVar[tuple[str, ...]] = ("int8", "int8-static")  # what `compress` applies
    compression_note: ClassVar[str] = ""  # why the others do not apply (for the refusal)
    label_noun: ClassVar[str] = "classes"  # what ``classes_`` holds, in messages

    def __init__(self):
        self.strategies = dict(type(self).strategies)  # per instance: ``register`` adds here

    # -- the estimator ------------------------------------------------------------------------
    def estimator_class(self) -> type:
        return import_ref(self.estimator, f"task '{self.name}'")

    # -- data -----------------------------------------------------------------------------------
    def read(self, path, *, labeled: bool = True, **options):
        """A data file as this task's data set (``options``: ``data_options``)."""
        raise NotImplementedError

    def split(self, data, fraction: float, seed: int):
        """(train, held-out) parts of a data set, seeded."""
        raise NotImplementedError

    def read_inputs(self, paths: list[str]):
        """What ``ronghe predict BUNDLE PATH...`` predicts on (tasks whose inputs are files)."""
        raise ConfigError(f"{self.cli_name} models predict on --text or --input FILE, not on "
                          f"paths after the bundle ({', '.join(paths[:3])})")

    def probe_pool(self, inputs: list, n: int) -> list:
        """``n`` distinct inputs made from a sample of real ones, for latency probes (no
        per-input cache may recognise them): texts get a numbered suffix."""
        pool, k = [], 0
        while len(pool) < n:
            pool.extend(t if k == 0 else f"{t} ({k})" for t in inputs)
            k += 1
        return pool[:n]

    def inputs(self, data) -> list:
        """Raw inputs of a data set, as ``Estimator.predict`` takes them (latency probes)."""
        return list(data.texts)

    # -- reports ------------------------------------------------------------------------------
    def markdown(self, report: dict, title: str) -> str:
        raise NotImplementedError

    def write_report(self, report: dict, out: Path, title: str) -> dict[str, Path]:
        """Write an evaluation report as ``out`` with ``.json`` and ``.md`` suffixes (tasks may
        add a plot); returns the paths."""
        from ..bundle import write_text_atomic

        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        paths = {"json": out.with_suffix(".json"), "markdown": out.with_suffix(".md")}
        write_text_atomic(paths["json"], json.dumps(report, indent=2, ensure_ascii=False))
        write_text_atomic(paths["markdown"], self.markdown(report, title))
        return paths

    def summary_line(self, metrics: dict) -> str:
        """``accuracy 0.8123, macro_f1 0.8011`` from a (validation) metrics dict."""
        return ", ".join(f"{k} {metrics[k]:.4f}" for k in self.summary if k in metrics)

    # -- serving --------------------------------------------------------------------------------
    def serving_model(self, estimator):
        """What ``ronghe serve`` calls: ``predict(list_of_inputs) -> list[record]`` and
        ``accepts`` (``("texts",)``, ``("tokens",)`` or both)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<task {self.name} ({self.cli_name})>"
