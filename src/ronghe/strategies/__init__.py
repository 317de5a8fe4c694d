"""The strategy registry: name -> class. Adding a strategy is one file and one line here."""

from __future__ import annotations

from .. import backbones
from ..bundle import BundleReader
from ..config import validate
from ..errors import ConfigError
from .base import Strategy, TrainContext

# name -> "module:Class", imported on first use, so that loading a bundle imports only what it
# needs (an ONNX bundle must load on an install without torch). One line per strategy.
REGISTRY: dict[str, str | type[Strategy]] = {
    "classic": "ronghe.strategies.classic:Classic",
    "frozen": "ronghe.strategies.frozen:Frozen",
    "finetune": "ronghe.strategies.finetune:Finetune",
    "lora": "ronghe.strategies.lora:Lora",
    "adalora": "ronghe.strategies.adalora:AdaLora",
    "ia3": "ronghe.strategies.ia3:IA3",
    "prefix": "ronghe.strategies.prefix:Prefix",
    "contrastive": "ronghe.strategies.contrastive:Contrastive",
    "weighted": "ronghe.fusion.weighted:Weighted",
    "concat": "ronghe.fusion.concat:Concat",
    "stack": "ronghe.fusion.stack:Stack",
    "vote": "ronghe.fusion.vote:Vote",
    "onnx": "ronghe.runtime.onnx:OnnxStrategy",
}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Add a strategy class (e.g. a plug-in of your own) under ``cls.name``."""
    REGISTRY[cls.name] = cls
    return cls


def header(strategy: Strategy, task: str = "text-classification") -> dict:
    """The manifest fields that describe a fitted strategy (used for members of fused bundles)."""
    return {"task": task, "strategy": strategy.name,
            "labels": [c.item() if hasattr(c, "item") else c for c in strategy.classes],
            "backbone": strategy.backbone.to_json() if strategy.backbone else None,
            "config": strategy.config.model_dump(mode="json"),
            "metrics": {"history": strategy.history, **strategy.report}}


def from_bundle(reader: BundleReader) -> Strategy:
    """Rebuild the fitted strategy a (verified) bundle or member bundle holds."""
    m = reader.manifest
    cls = get(m.strategy)
    config = validate(cls.Config, m.config, m.strategy)
    backbone = backbones.from_json(m.backbone)
    if m.backbone and cls.uses_backbone and not cls.stores_backbone:
        backbone = backbones.verify(m.backbone, f"bundle {reader.root}")
    return cls.from_state(config, m.labels, backbone, reader)


def get(name: str) -> type[Strategy]:
    if name not in REGISTRY:
        raise ConfigError(f"unknown strategy '{name}'; choose one of: {', '.join(REGISTRY)}")
    entry = REGISTRY[name]
    if isinstance(entry, str):
        import importlib

        module, attr = entry.split(":")
        try:
            entry = REGISTRY[name] = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as e:
            if not e.name or e.name.split(".")[0] == "ronghe":
                raise
            raise ConfigError(f"strategy '{name}' needs {e.name}, which is not installed; "
                              "install ronghe with the training extra: pip install "
                              "'ronghe[train]'") from None
    return entry


__all__ = ["REGISTRY", "Strategy", "TrainContext", "get", "register"]
