"""Fusion for images: the same ``weighted``, ``stack`` and ``vote`` as text (``fusion/``), whose
members are image strategies (``classic`` HOG features, ``frozen`` and ``finetune`` backbones).
Only the task and the defaults differ; fitting, choosing weights on validation, the out-of-fold
stacking and the bundle are the text classes'."""

from __future__ import annotations

from pydantic import Field

from ..fusion import stack, vote, weighted

VISION = Field("efficientnet-lite0", description="vision backbone for members that use one")


class WeightedConfig(weighted.WeightedConfig):
    model: str = VISION
    members: list[str] = Field(["finetune", "classic"], min_length=2, max_length=6)


class Weighted(weighted.Weighted):
    task = "image-classification"
    Config = WeightedConfig


class StackConfig(stack.StackConfig):
    model: str = VISION
    members: list[str] = Field(["classic", "frozen"], min_length=2)


class Stack(stack.Stack):
    task = "image-classification"
    Config = StackConfig


class Vote(vote.Vote):
    task = "image-classification"
