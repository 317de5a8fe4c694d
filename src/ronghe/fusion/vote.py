"""``vote``: soft or hard voting over saved bundles that share one label set.

``TextClassifier(strategy="vote", options={"bundles": ["a", "b", "c"]}).fit(train)`` loads the
bundles (verified like any bundle), checks their labels against each other and the training data,
and copies them into the new bundle as members. Soft voting averages probabilities (optionally
weighted); hard voting counts predicted labels (ties broken by mean probability).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from ..bundle import open_bundle
from ..config import StrategyConfig
from ..errors import ConfigError
from ..strategies.base import Strategy
from . import members as M


class VoteConfig(StrategyConfig):
    bundles: list[str] = Field(..., min_length=2, description="bundle folders to combine")
    voting: Literal["soft", "hard"] = "soft"
    weights: list[float] | None = Field(None, description="one per bundle (soft voting)")


class Vote(Strategy):
    name = "vote"
    Config = VoteConfig
    uses_features = True

    def fit(self, train, valid):
        from .. import strategies

        c = self.config
        if c.weights is not None and len(c.weights) != len(c.bundles):
            raise ConfigError(f"vote: {len(c.weights)} weights for {len(c.bundles)} bundles")
        self.members = []
        for path in c.bundles:
            reader = open_bundle(path)
            labels = list(reader.manifest.labels)
            if labels != list(self.classes):
                raise ConfigError(f"vote: bundle {path} has labels {labels[:10]}, but the data "
                                  f"and the other bundles have {list(self.classes)[:10]}; only "
                                  "bundles with the same label set can vote together")
            self.members.append(strategies.from_bundle(reader))
        return self

    def predict_proba(self, texts, features=None):
        probas = np.stack(M.probas(self.members, texts, features))
        w = np.asarray(self.config.weights or [1.0] * len(probas), dtype=float)
        soft = np.tensordot(w / w.sum(), probas, axes=1)
        if self.config.voting == "soft":
            return soft
        votes = np.zeros_like(soft)
        for p, weight in zip(probas, w):
            votes[np.arange(len(p)), p.argmax(1)] += weight
        votes += 1e-3 * soft  # ties: the class with more probability mass
        return votes / votes.sum(1, keepdims=True)

    def to_state(self):
        return M.to_state(self.members, {})

    @classmethod
    def from_state(cls, config, classes, backbone, reader):
        self = cls(config, classes, backbone)
        self.members = M.load(reader)
        return self
