"""``prefix``: trainable key/value prefixes in every layer (prefix tuning, Li & Liang 2021).

Prefixes cannot be merged into the weights, so prediction pays for ``num_virtual_tokens`` extra
positions in attention.
"""

from __future__ import annotations

from pydantic import Field

from .peft_base import PeftConfigBase, PeftStrategy


class PrefixConfig(PeftConfigBase):
    learning_rate: float = Field(5e-3, gt=0, lt=1, description="prefixes need large rates")
    head_learning_rate: float | None = Field(None, gt=0, lt=1)
    num_virtual_tokens: int = Field(16, ge=1, le=512)
    prefix_projection: bool = Field(False, description="reparametrise prefixes through an MLP")
    encoder_hidden_size: int = Field(512, ge=8, description="MLP width when prefix_projection")


class Prefix(PeftStrategy):
    name = "prefix"
    Config = PrefixConfig
    mergeable = False

    def peft_config(self):
        import peft

        c = self.config
        return peft.PrefixTuningConfig(num_virtual_tokens=c.num_virtual_tokens,
                                       prefix_projection=c.prefix_projection,
                                       encoder_hidden_size=c.encoder_hidden_size,
                                       task_type=peft.TaskType.FEATURE_EXTRACTION)
