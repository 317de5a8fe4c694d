"""``ia3``: learned rescaling of keys, values and feed-forward activations (Liu et al. 2022)."""

from __future__ import annotations

from pydantic import Field

from .peft_base import PeftConfigBase, PeftStrategy


class IA3Config(PeftConfigBase):
    learning_rate: float = Field(3e-3, gt=0, lt=1, description="IA3 vectors need large rates")
    head_learning_rate: float | None = Field(None, gt=0, lt=1)
    target_modules: list[str] = Field(["key", "value", "output.dense"])
    feedforward_modules: list[str] = Field(["output.dense"],
                                           description="subset of target_modules scaled on input")


class IA3(PeftStrategy):
    name = "ia3"
    Config = IA3Config

    def peft_config(self):
        import peft

        c = self.config
        return peft.IA3Config(target_modules=list(c.target_modules),
                              feedforward_modules=list(c.feedforward_modules),
                              task_type=peft.TaskType.FEATURE_EXTRACTION)
