"""Pruning a fine-tuned transformer, each followed by a short recovery fine-tune when training
data is given.

* ``unstructured:S`` - global magnitude pruning of the encoder's linear weights to sparsity S
  (``torch.nn.utils.prune``); the masks stay in force during recovery, then are made permanent.
  Zeros shrink the model only once compressed (e.g. int8 + sparse kernels); on dense CPU kernels
  unstructured sparsity alone does not make it faster.
* ``layers:K`` - keep K of the transformer layers (evenly spaced, the top one kept).
* ``heads:H`` - remove the H attention heads per layer with the smallest weight norm.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.utils.prune as tprune
from torch import nn

from ..errors import ConfigError
from ..log import info
from .surgery import prune_heads, shrink_encoder


def _linears(encoder: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(m, "weight") for name, m in encoder.named_modules()
            if isinstance(m, nn.Linear) and "pooler" not in name]


def sparsity(encoder: nn.Module) -> float:
    ws = [m.weight for m, _ in _linears(encoder)]
    return float(sum((w == 0).sum().item() for w in ws) / sum(w.numel() for w in ws))


def prune(inner, spec: str, train=None, valid=None, recovery_epochs: int = 1):
    """Return a pruned deep copy of a fitted ``Finetune`` strategy and a description."""
    kind, _, value = spec.partition(":")
    inner = copy.deepcopy(inner)
    model = inner.model
    note: dict = {"method": kind}
    if kind == "unstructured":
        target = float(value or 0.5)
        if not 0 < target < 1:
            raise ConfigError(f"--prune unstructured:S needs 0 < S < 1, got {value}")
        tprune.global_unstructured(_linears(model.encoder),
                                                 pruning_method=tprune.L1Unstructured,
                                                 amount=target)
        note["target_sparsity"] = target
    elif kind == "layers":
        model.encoder, keep = shrink_encoder(model.encoder, int(value))
        note["kept_layers"] = keep
    elif kind == "heads":
        n = int(value)
        cfg = model.encoder.config
        if not 0 < n < cfg.num_attention_heads:
            raise ConfigError(f"--prune heads:H needs 0 < H < {cfg.num_attention_heads}")
        to_prune = {}
        size = cfg.hidden_size // cfg.num_attention_heads
        for i, layer in enumerate(model.encoder.encoder.layer):
            w = layer.attention.output.dense.weight.detach()  # columns grouped by head
            norms = torch.stack([w[:, h * size:(h + 1) * size].norm() for h in range(cfg.num_attention_heads)])
            to_prune[i] = norms.argsort()[:n].tolist()
        prune_heads(model.encoder, to_prune)
        inner.report = {**inner.report, "pruned_heads": to_prune}  # re-applied at load time
        note["heads_removed_per_layer"] = n
    else:
        raise ConfigError(f"unknown --prune {spec!r}: use unstructured:S, layers:K or heads:H")
    if train is not None:
        info("recovery fine-tune: %d epoch(s) on %d examples", recovery_epochs, len(train))
        original = inner.config
        recovery = {"epochs": recovery_epochs, "learning_rate": original.learning_rate / 2,
                    "augment": [], "init_from": None, "patience": 1}
        inner.config = original.model_copy(update=recovery)
        inner.history, inner.report = [], dict(inner.report)
        inner.train_model(train, valid)
        inner.config = original  # the manifest keeps how the model was trained; the recovery
        note["recovery"] = {"epochs": recovery_epochs, "learning_rate": recovery["learning_rate"],
                            "examples": len(train)}  # run is recorded in the compression steps
    if kind == "unstructured":
        for m, name in _linears(model.encoder):
            if tprune.is_pruned(m):
                tprune.remove(m, name)
        note["sparsity"] = round(sparsity(model.encoder), 4)
    return inner, note
