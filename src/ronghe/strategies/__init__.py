"""The strategy registry: name -> class. Adding a strategy is one file and one line here."""

from __future__ import annotations

from .. import backbones
from ..bundle import BundleReader
from ..config import validate
from ..errors import ConfigError
from .adalora import AdaLora
from .base import Strategy, TrainContext
from .classic import Classic
from .contrastive import Contrastive
from .finetune import Finetune
from .frozen import Frozen
from .ia3 import IA3
from .lora import Lora
from .prefix import Prefix

REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    REGISTRY[cls.name] = cls
    return cls


register(Classic)
register(Frozen)
register(Finetune)
register(Lora)
register(AdaLora)
register(IA3)
register(Prefix)
register(Contrastive)


def _register_fusion() -> None:  # fusion strategies are built from the ones above
    from ..fusion.concat import Concat
    from ..fusion.stack import Stack
    from ..fusion.vote import Vote
    from ..fusion.weighted import Weighted

    for cls in (Weighted, Concat, Stack, Vote):
        register(cls)


_register_fusion()


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
    return REGISTRY[name]


__all__ = ["REGISTRY", "Strategy", "TrainContext", "get", "register"]
