"""``lora``: low-rank adapters on the attention projections (Hu et al. 2021), through PEFT."""

from __future__ import annotations

from pydantic import Field

from .peft_base import PeftConfigBase, PeftStrategy


class LoraConfig(PeftConfigBase):
    r: int = Field(8, ge=1, description="rank of the update")
    lora_alpha: int = Field(16, ge=1, description="scaling = lora_alpha / r")
    lora_dropout: float = Field(0.1, ge=0, lt=1)
    target_modules: list[str] = Field(["query", "key", "value", "dense"],
                                      description="module names to adapt (BERT: query, key, value, dense)")


class Lora(PeftStrategy):
    name = "lora"
    Config = LoraConfig

    def peft_config(self):
        import peft

        c = self.config
        return peft.LoraConfig(r=c.r, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout,
                               target_modules=list(c.target_modules), bias="none",
                               exclude_modules=["pooler.dense"],
                              task_type=peft.TaskType.FEATURE_EXTRACTION)
