"""The strategy registry, keyed by task and name. Each task declares its strategies in its
``Task.strategies`` table (text classification: ``tasks/text_classification.py``; NER:
``ner/task.py``) as ``"module:Class"`` strings, imported on first use so that loading a bundle
imports only what it needs (an ONNX bundle must load on an install without torch). Adding a
strategy is one file and one line in its task's table - or ``register(cls)`` for a plug-in.
"""

from __future__ import annotations

from .. import backbones, tasks
from ..bundle import BundleReader
from ..config import validate
from ..errors import ConfigError
from .base import Strategy, TrainContext

TEXT = tasks.DEFAULT


def table(task: str = TEXT) -> dict:
    """name -> class or ``"module:Class"`` for one task (the live table: ``register`` adds)."""
    return tasks.get(task).strategies


def names(task: str = TEXT) -> list[str]:
    return list(table(task))


def register(cls: type[Strategy]) -> type[Strategy]:
    """Add a strategy class (e.g. a plug-in of your own) under ``cls.task`` and ``cls.name``."""
    table(cls.task)[cls.name] = cls
    return cls


def get(name: str, task: str = TEXT) -> type[Strategy]:
    t = tasks.get(task)
    entries = t.strategies
    if name not in entries:
        raise ConfigError(f"unknown strategy '{name}' for task {t.name}; choose one of: "
                          f"{', '.join(entries)}")
    if isinstance(entries[name], str):
        entries[name] = tasks.import_ref(entries[name], f"strategy '{name}'")
    return entries[name]


def header(strategy: Strategy) -> dict:
    """The manifest fields that describe a fitted strategy (used for members of fused bundles)."""
    return {"task": strategy.task, "strategy": strategy.name,
            "labels": [c.item() if hasattr(c, "item") else c for c in strategy.classes],
            "backbone": strategy.backbone.to_json() if strategy.backbone else None,
            "config": strategy.config.model_dump(mode="json"),
            "metrics": {"history": strategy.history, **strategy.report}}


def from_bundle(reader: BundleReader) -> Strategy:
    """Rebuild the fitted strategy a (verified) bundle or member bundle holds."""
    m = reader.manifest
    cls = get(m.strategy, m.task)
    config = validate(cls.Config, m.config, m.strategy)
    backbone = backbones.from_json(m.backbone_json())
    if m.backbone and cls.uses_backbone and not cls.stores_backbone:
        backbone = backbones.verify(m.backbone_json(), f"bundle {reader.root}")
    return cls.from_state(config, cls.bundle_classes(reader), backbone, reader)


def __getattr__(name: str):
    if name == "REGISTRY":  # text classification's table, as before tasks had registries
        return table(TEXT)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Strategy", "TrainContext", "from_bundle", "get", "header", "names", "register", "table"]
