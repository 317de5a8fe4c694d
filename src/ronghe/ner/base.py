"""The contract every NER strategy implements, and the BIO tag set.

A strategy is built from its validated config, the BIO tag list and (if it uses one) the resolved
backbone; ``fit(train, valid)`` learns from ``Sentences``; ``predict(tokens)`` returns for each
sentence its BIO tags and a confidence per token (the probability of the chosen tag);
``to_state``/``from_state`` save and rebuild through ``bundle.py``. Users hold
``ronghe.ner.TokenClassifier``; strategies are its interchangeable insides.
"""

from __future__ import annotations

from typing import ClassVar

from ..backbones import Backbone
from ..bundle import BundleReader, State
from ..config import StrategyConfig
from ..strategies.base import TrainContext
from .data import Sentences


def tag_list(types: list[str]) -> list[str]:
    """``["O", "B-LOC", "I-LOC", "B-PER", ...]`` for the sorted entity types."""
    return ["O"] + [f"{p}-{t}" for t in sorted(types) for p in "BI"]


class Monitor(dict):
    """Validation scores for ``training.loop.Loop``, which stops early and keeps the best epoch
    by ``scores["macro_f1"]``: here that key reads the entity-level micro F1 (``"f1"``) without
    appearing in the logged history. (A ``monitor`` field in ``LoopConfig`` would make this
    unnecessary.)"""

    def __missing__(self, key):
        if key == "macro_f1":
            return self["f1"]
        raise KeyError(key)


class NerStrategy:
    name: ClassVar[str]
    Config: ClassVar[type[StrategyConfig]]
    uses_backbone: ClassVar[bool] = False

    def __init__(self, config: StrategyConfig, tags: list[str], backbone: Backbone | None = None,
                 context: TrainContext | None = None):
        self.config = config
        self.tags = list(tags)
        self.backbone = backbone
        self.context = context or TrainContext()
        self.history: list[dict] = []
        self.report: dict = {}

    def fit(self, train: Sentences, valid: Sentences) -> "NerStrategy":
        raise NotImplementedError

    def predict(self, tokens: list[list[str]]) -> tuple[list[list[str]], list[list[float]]]:
        raise NotImplementedError

    def to_state(self) -> State:
        raise NotImplementedError

    @classmethod
    def from_state(cls, config, tags: list[str], backbone: Backbone | None,
                   reader: BundleReader) -> "NerStrategy":
        raise NotImplementedError
