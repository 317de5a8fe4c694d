"""The training loop for every strategy that trains a network, readable on one screen.

AdamW with decoupled weight decay (not on biases and LayerNorm), linear warm-up then linear decay,
gradient clipping, bf16 autocast where the hardware runs it, length-grouped batches with dynamic
padding, evaluation on validation after each epoch, early stopping on macro-F1 with the best
weights restored. Seeds are fixed so the same data and config give the same model.

Plain PyTorch rather than ``accelerate``: on one CPU or one GPU the loop needs only ``.to(device)``
and ``torch.autocast``, and every step stays visible here.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..log import info, progress
from ..modeling import autocast, collate, length_grouped_batches, steps_per_epoch


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class LoopConfig:
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    max_grad_norm: float
    patience: int
    seed: int


@dataclass
class LoopResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = float("nan")
    seconds: float = 0.0


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "norm" in name.lower() else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def train(model: nn.Module, ids: list[list[int]], labels: np.ndarray, pad_id: int,
          evaluate: Callable[[], dict], cfg: LoopConfig, device: torch.device,
          dtype: torch.dtype | None, loss_fn: nn.Module | None = None) -> LoopResult:
    """Train ``model`` (called as ``model(input_ids, attention_mask) -> logits``) on token ids.

    ``evaluate()`` returns validation metrics including ``macro_f1``; it is called after each
    epoch. Training stops after ``patience`` epochs without improvement and the best weights are
    restored.
    """
    from transformers import get_linear_schedule_with_warmup

    set_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.learning_rate)
    total_steps = cfg.epochs * steps_per_epoch(len(ids), cfg.batch_size)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps),
                                                total_steps)
    lengths = [len(s) for s in ids]
    y_all = torch.as_tensor(labels, dtype=torch.long)
    result, best_state, stale = LoopResult(), None, 0
    start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        batches = length_grouped_batches(lengths, cfg.batch_size, rng)
        running, seen = 0.0, 0
        with progress(f"epoch {epoch}/{cfg.epochs}", len(ids)) as bar:
            for idx in batches:
                batch = {k: v.to(device) for k, v in collate([ids[i] for i in idx], pad_id).items()}
                y = y_all[idx].to(device)
                with autocast(device, dtype):
                    logits = model(batch["input_ids"], batch["attention_mask"])
                loss = loss_fn(logits.float(), y)
                loss.backward()
                if cfg.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                running += loss.item() * len(idx)
                seen += len(idx)
                bar.advance(len(idx))
        model.eval()
        scores = evaluate()
        row = {"epoch": epoch, "train_loss": round(running / max(seen, 1), 5),
               **{f"valid_{k}": round(v, 5) for k, v in scores.items()},
               "seconds": round(time.perf_counter() - start, 2)}
        result.history.append(row)
        info("epoch %d: %s", epoch, ", ".join(f"{k}={v}" for k, v in row.items() if k != "epoch"))
        if not result.history[:-1] or scores["macro_f1"] > result.best_score + 1e-6:
            result.best_score, result.best_epoch, stale = scores["macro_f1"], epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= cfg.patience:
                info("early stopping: no macro-F1 gain for %d epochs", stale)
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - start
    return result
