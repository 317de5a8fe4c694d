"""Building, saving and loading the member strategies of a fused model."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from .. import backbones
from ..bundle import BundleReader, State
from ..config import StrategyConfig, validate


class FusionConfig(StrategyConfig):
    model: str = Field("minilm", description="backbone for members that use one")
    members: list[str] = Field(["finetune", "classic"], min_length=1)
    member_options: dict[str, dict[str, Any]] = Field(
        {}, description="per member strategy name: its options, e.g. {finetune: {epochs: 2}}")


def build(name: str, cfg: FusionConfig, classes: list, context=None,
          task: str = "text-classification"):
    """A fresh member strategy of ``task`` configured from the fusion config."""
    from .. import strategies

    cls = strategies.get(name, task)
    values: dict[str, Any] = {"seed": cfg.seed}
    if "model" in cls.Config.model_fields:
        values["model"] = cfg.model
    values.update(cfg.member_options.get(name, {}))
    config = validate(cls.Config, values, name)
    backbone = backbones.resolve(config.model) if cls.uses_backbone else None
    return cls(config, classes, backbone, context)


def names(members) -> list[str]:
    return [f"{i}-{m.name}" for i, m in enumerate(members)]


def to_state(members, meta: dict, arrays: dict | None = None) -> State:
    from .. import strategies

    state = State(meta={**meta, "members": names(members)}, arrays=arrays or {})
    for key, m in zip(names(members), members):
        state.members[key] = (strategies.header(m), m.to_state())
    return state


def load(reader: BundleReader) -> list:
    from .. import strategies

    return [strategies.from_bundle(reader.member(key)) for key in reader.meta["members"]]


def probas(members, inputs, features=None) -> list[np.ndarray]:
    return [predict(m, inputs, features) for m in members]


def predict(member, inputs, features=None) -> np.ndarray:
    """A member's probabilities on ``inputs`` (texts, images), with the feature columns for
    members that use them."""
    if getattr(member, "uses_features", False):
        return member.predict_proba(inputs, features)
    return member.predict_proba(inputs)
