"""``lora``: low-rank adapters on the attention projections (Hu et al. 2021), through PEFT."""

from __future__ import annotations

from pydantic import BaseModel, Field

from .peft_base import PeftConfigBase, PeftStrategy


class LoraFields(BaseModel):
    """LoRA's knobs, shared by every task's LoRA strategy (text here, tokens in ``ner``)."""

    r: int = Field(8, ge=1, description="rank of the update")
    lora_alpha: int = Field(16, ge=1, description="scaling = lora_alpha / r")
    lora_dropout: float = Field(0.1, ge=0, lt=1)
    target_modules: list[str] = Field(["query", "key", "value", "dense"],
                                      description="module names to adapt (BERT: query, key, value, dense)")

    def peft_config(self):
        """The ``peft.LoraConfig`` these fields describe (the BERT pooler is never adapted)."""
        import peft

        return peft.LoraConfig(r=self.r, lora_alpha=self.lora_alpha,
                               lora_dropout=self.lora_dropout,
                               target_modules=list(self.target_modules), bias="none",
                               exclude_modules=["pooler.dense"],
                               task_type=peft.TaskType.FEATURE_EXTRACTION)


class LoraConfig(PeftConfigBase, LoraFields):
    pass


class Lora(PeftStrategy):
    name = "lora"
    Config = LoraConfig

    def peft_config(self):
        return self.config.peft_config()
