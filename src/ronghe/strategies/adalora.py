"""``adalora``: LoRA whose rank budget is re-allocated during training (Zhang et al. 2023)."""

from __future__ import annotations

import math

from pydantic import Field

from ..errors import ConfigError
from ..training.callbacks import StepHook
from .peft_base import PeftConfigBase, PeftStrategy


class AdaLoraConfig(PeftConfigBase):
    init_r: int = Field(12, ge=1, description="starting rank per module")
    target_r: int = Field(8, ge=1, description="average rank after pruning")
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.1, ge=0, lt=1)
    tinit: float = Field(0.1, ge=0, lt=1, description="share of steps before rank pruning starts")
    tfinal: float = Field(0.2, ge=0, lt=1, description="share of steps at the final budget")
    orth_reg_weight: float = Field(0.5, ge=0)
    target_modules: list[str] = Field(["query", "key", "value", "dense"])


class AdaLora(PeftStrategy):
    name = "adalora"
    Config = AdaLoraConfig

    def _total_steps(self) -> int:
        return self.config.epochs * max(1, math.ceil(self._n_train / self.config.batch_size))

    def fit(self, train, valid):
        self._n_train = len(train) * (1 + (self.config.augment_per_example if self.config.augment else 0))
        return super().fit(train, valid)

    def peft_config(self):
        import peft

        c, total = self.config, self._total_steps()
        if total - int(c.tfinal * total) < 2:  # PEFT would fail with a KeyError at step 1
            raise ConfigError(f"adalora re-allocates ranks while it trains and needs at least 2 "
                              f"optimizer steps before its final phase; this fit has {total} "
                              f"({c.epochs} epoch(s) of batches of {c.batch_size}). Raise epochs, "
                              "lower batch_size, or use lora.")
        return peft.AdaLoraConfig(init_r=c.init_r, target_r=c.target_r, lora_alpha=c.lora_alpha,
                                  lora_dropout=c.lora_dropout, target_modules=list(c.target_modules),
                                  tinit=int(c.tinit * total), tfinal=int(c.tfinal * total),
                                  total_step=total, orth_reg_weight=c.orth_reg_weight,
                                  exclude_modules=["pooler.dense"],
                              task_type=peft.TaskType.FEATURE_EXTRACTION)

    def _callbacks(self):
        # AdaLoRA re-allocates ranks after every optimizer step, before gradients are cleared.
        return [StepHook(lambda loop: self.model.encoder.base_model.update_and_allocate(
            loop.global_step))]

    def _extra_loss(self):
        """AdaLoRA's orthogonality regulariser on P and Q (PEFT adds it only to HF-style losses)."""
        import torch

        weight = self.config.orth_reg_weight
        if not weight:
            return None

        def reg():
            total, n = 0.0, 0
            for name, p in self.model.encoder.named_parameters():
                if ("lora_A" in name or "lora_B" in name) and p.requires_grad and p.numel():
                    cov = p @ p.T if "lora_A" in name else p.T @ p
                    total = total + torch.norm(cov - torch.eye(cov.shape[0], device=cov.device), p="fro")
                    n += 1
            return weight * total / max(n, 1)

        return reg
