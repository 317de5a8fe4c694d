"""The strategy registry: name -> class. Adding a strategy is one file and one line here."""

from __future__ import annotations

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


def get(name: str) -> type[Strategy]:
    if name not in REGISTRY:
        raise ConfigError(f"unknown strategy '{name}'; choose one of: {', '.join(REGISTRY)}")
    return REGISTRY[name]


__all__ = ["REGISTRY", "Strategy", "TrainContext", "get", "register"]
