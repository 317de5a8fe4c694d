"""Model surgery on BERT-like encoders, shared by pruning and distillation: keep K of the layers,
remove attention heads. Weights are copied, never re-initialised. A leaf module: torch only."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import ConfigError


def keep_layers(n_layers: int, k: int) -> list[int]:
    """K of n layer indices, evenly spaced, the last one always kept (e.g. 6 -> 3: 1, 3, 5)."""
    if not 1 <= k <= n_layers:
        raise ConfigError(f"student layers must be between 1 and {n_layers}, got {k}")
    step = n_layers / k
    return sorted({int(round(n_layers - 1 - i * step)) for i in range(k)})


def shrink_encoder(encoder: nn.Module, k: int) -> tuple[nn.Module, list[int]]:
    """A copy of a BERT-like encoder keeping K of its layers (weights copied, not re-initialised)."""
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if layers is None:
        raise ConfigError(f"cannot remove layers from a {type(encoder).__name__}: expected "
                          "encoder.layer (BERT-like)")
    keep = keep_layers(len(layers), k)
    student = copy.deepcopy(encoder)
    student.encoder.layer = nn.ModuleList([copy.deepcopy(layers[i]) for i in keep])
    student.config.num_hidden_layers = len(keep)
    for new_index, layer in enumerate(student.encoder.layer):  # attention modules know their index
        attn = getattr(getattr(layer, "attention", None), "self", None)
        if attn is not None and hasattr(attn, "layer_idx"):
            attn.layer_idx = new_index
    return student, keep


def prune_heads(encoder, heads: dict) -> None:
    """Remove attention heads: slice query/key/value rows and output columns (what
    ``PreTrainedModel.prune_heads`` did before transformers 5 dropped it for most models)."""
    cfg = encoder.config
    size = cfg.hidden_size // cfg.num_attention_heads
    for i, drop in heads.items():
        att = encoder.encoder.layer[int(i)].attention
        keep = [h for h in range(cfg.num_attention_heads) if h not in drop]
        idx = torch.cat([torch.arange(h * size, (h + 1) * size) for h in keep])
        for name in ("query", "key", "value"):
            old = getattr(att.self, name)
            new = nn.Linear(old.in_features, len(idx)).to(old.weight.dtype)
            new.weight.data, new.bias.data = old.weight.data[idx].clone(), old.bias.data[idx].clone()
            setattr(att.self, name, new)
        out = att.output.dense
        new = nn.Linear(len(idx), out.out_features).to(out.weight.dtype)
        new.weight.data, new.bias.data = out.weight.data[:, idx].clone(), out.bias.data.clone()
        att.output.dense = new
        att.self.num_attention_heads = len(keep)
        att.self.all_head_size = len(idx)
        if hasattr(att.self, "attention_head_size"):
            att.self.attention_head_size = size
