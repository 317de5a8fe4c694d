"""The training loop for every strategy that trains a network, readable on one screen.

AdamW with decoupled weight decay (not on biases and norms), optional layer-wise learning-rate
decay and a separate head learning rate, linear warm-up then linear decay, gradient clipping, bf16
autocast where the hardware runs it fast, length-grouped batches with dynamic padding, optional
adversarial training (FGM/PGD), validation after each epoch, early stopping on the task's
validation score (``monitor``: macro-F1, entity F1) with the best weights restored, checkpoints
that a killed run resumes from exactly. Seeds are fixed so the same data and config give the same
model.

Plain PyTorch rather than ``accelerate``: on one CPU or one GPU the loop needs only ``.to(device)``
and ``torch.autocast``, and every step stays visible here.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..log import info, progress
from ..modeling import autocast, collate, length_grouped_batches
from ..scale import distributed
from . import checkpoint
from .adversarial import Adversary
from .callbacks import Callback


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class LoopConfig:
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    patience: int = 2
    seed: int = 0
    head_learning_rate: float | None = None  # None: default_head_lr(learning_rate)
    layer_lr_decay: float = 1.0  # lr of layer l = lr * decay ** (n_layers - l); embeddings lowest
    checkpoint_every: int = 0  # steps between checkpoints (0: at the end of each epoch)
    adversarial: str = "none"  # none | fgm | pgd
    adv_epsilon: float = 1.0
    adv_steps: int = 3
    keep: str = "best"  # best: restore the best validation epoch's weights; last: keep the last
    monitor: str = "macro_f1"  # the validation score (a key of evaluate()'s dict) that early
    # stopping and best-epoch selection maximise: the task's score (macro_f1, NER's entity f1)

    @classmethod
    def from_config(cls, config, **overrides) -> LoopConfig:
        """The loop settings a strategy's config carries (fields it lacks keep these defaults)."""
        values = {f.name: getattr(config, f.name) for f in fields(cls)
                  if hasattr(config, f.name)}
        return cls(**{**values, **overrides})


_LAYER = re.compile(r"\.(?:layers?|blocks|stages)\.(\d+)\.")  # BERT layers, timm blocks/stages


def default_head_lr(learning_rate: float) -> float:
    """A freshly initialised head learns at 10x the encoder's rate, capped at 1e-3 (never below
    the encoder's): at the encoder's 5e-5 a 77-class head was still under-fitted after 3 epochs
    (BANKING77 held-out accuracy 0.67 vs 0.81 with 5e-4, see benchmarks/README.md)."""
    return max(learning_rate, min(10 * learning_rate, 1e-3))


def adamw(groups: list[dict], lr: float, device: torch.device) -> torch.optim.AdamW:
    """AdamW as one fused kernel where torch has it (CPU, CUDA): the same update as the default
    multi-tensor implementation, faster per step (benchmarks/README.md, fine-tuning speed), and
    the transformers Trainer's default optimizer since torch 2.8."""
    return torch.optim.AdamW(groups, lr=lr, fused=True if device.type in ("cpu", "cuda") else None)


def param_groups(model: nn.Module, cfg: LoopConfig) -> list[dict]:
    """Parameter groups: no weight decay on biases/norms; head at ``head_learning_rate``; encoder
    layers at ``learning_rate * layer_lr_decay ** depth_from_top`` (embeddings deepest)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    n_layers = 1 + max((int(m.group(1)) for n, _ in named if (m := _LAYER.search(n))), default=-1)
    groups: dict[tuple, list] = {}
    for name, p in named:
        if not name.startswith("encoder."):
            lr = cfg.head_learning_rate or default_head_lr(cfg.learning_rate)
        elif (m := _LAYER.search(name)):
            lr = cfg.learning_rate * cfg.layer_lr_decay ** (n_layers - int(m.group(1)))
        elif "embeddings" in name:
            lr = cfg.learning_rate * cfg.layer_lr_decay ** (n_layers + 1)
        else:  # pooler, prompt encoders ...
            lr = cfg.learning_rate
        wd = 0.0 if p.ndim < 2 or "norm" in name.lower() else cfg.weight_decay
        groups.setdefault((lr, wd), []).append(p)
    return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]


class TokenBatcher:
    """How the loop batches token-id sequences: length-grouped shuffled batches (little
    padding), padded to each batch's longest. Other inputs (images) bring their own batcher:
    ``order(batch_size, rng) -> list of index lists`` and ``batch(idx) -> the model's kwargs``
    (plus, optionally, ``target``: the batch's own - e.g. mixed, soft - targets for the loss);
    the order must come from ``rng`` alone, so that a resumed run replays it exactly."""

    def __init__(self, ids: list[list[int]], pad_id: int):
        self.ids, self.pad_id = ids, pad_id
        self.lengths = [len(s) for s in ids]

    def order(self, batch_size: int, rng: np.random.Generator) -> list[list[int]]:
        return length_grouped_batches(self.lengths, batch_size, rng)

    def batch(self, idx: list[int]) -> dict:
        return collate([self.ids[i] for i in idx], self.pad_id)


Batcher = TokenBatcher  # the protocol, by example


class Loop:
    """One training run. ``run()`` is the loop; the attributes are what callbacks may read."""

    def __init__(self, model: nn.Module, ids: list[list[int]], labels: np.ndarray, pad_id: int,
                 evaluate: Callable[[], dict], cfg: LoopConfig, device: torch.device,
                 dtype: torch.dtype | None, loss_fn: nn.Module | None = None,
                 callbacks: list[Callback] | None = None, run_dir: Path | None = None,
                 resume: bool = False, extra_loss: Callable[[], torch.Tensor] | None = None,
                 batcher: "Batcher | None" = None):
        self.model, self.ids, self.pad_id, self.cfg = model, ids, pad_id, cfg
        self.batcher = batcher or TokenBatcher(ids, pad_id)
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.evaluate, self.device, self.dtype = evaluate, device, dtype
        self.loss_fn = loss_fn or nn.CrossEntropyLoss()
        self.callbacks = callbacks or []
        self.run_dir = Path(run_dir) if run_dir else None
        self.resume = resume
        self.extra_loss = extra_loss
        self.history: list[dict] = []
        self.best_score, self.best_epoch, self.stale = float("-inf"), 0, 0
        self.epoch, self.global_step, self.should_stop = 0, 0, False
        self._t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def _loss(self, batch, y) -> torch.Tensor:
        with autocast(self.device, self.dtype):
            logits = self.forward(**batch)  # the model, or DDP around it (scale/distributed.py)
        loss = self.loss_fn(logits.float(), y)
        if self.extra_loss is not None:
            loss = loss + self.extra_loss()
        return loss

    def _checkpoint(self, step_in_epoch: int, epoch_rng: dict, best: dict | None,
                    running: tuple[float, int] = (0.0, 0)) -> None:
        if self.run_dir is None or not distributed.is_main():
            return
        position = {"epoch": self.epoch, "step_in_epoch": step_in_epoch, "running": list(running),
                    "global_step": self.global_step, "history": self.history,
                    "best_score": self.best_score, "best_epoch": self.best_epoch,
                    "stale": self.stale, "elapsed": self.elapsed(), "stopped": self.should_stop}
        checkpoint.save(self.run_dir, model=self.model, optimizer=self.optimizer,
                        scheduler=self.scheduler, best_state=best, position=position,
                        epoch_rng_state=epoch_rng)

    def run(self) -> "Loop":
        from transformers import get_linear_schedule_with_warmup

        cfg = self.cfg
        set_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)  # the same batch order in every process
        self.forward = distributed.wrap(self.model)
        torch.manual_seed(cfg.seed + distributed.seed_offset())
        self.optimizer = adamw(param_groups(self.model, cfg), cfg.learning_rate, self.device)
        per_epoch = distributed.steps(len(self.labels), cfg.batch_size)
        total = cfg.epochs * per_epoch
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer,
                                                         int(cfg.warmup_ratio * total), total)
        adversary = None
        if cfg.adversarial != "none":
            adversary = Adversary(_input_embeddings(self.model), cfg.adversarial, cfg.adv_epsilon,
                                  cfg.adv_steps)
        best, start_epoch, skip, resumed_running = None, 1, 0, (0.0, 0)
        if self.resume and checkpoint.exists(self.run_dir):
            pos, epoch_rng, best = checkpoint.load(self.run_dir, model=self.model,
                                                   optimizer=self.optimizer, scheduler=self.scheduler)
            self.history, self.global_step = pos["history"], pos["global_step"]
            self.best_score, self.best_epoch, self.stale = pos["best_score"], pos["best_epoch"], pos["stale"]
            self._t0 -= pos["elapsed"]
            start_epoch, skip = pos["epoch"], pos["step_in_epoch"]
            if pos.get("stopped"):  # the run had already finished (early stop)
                start_epoch = cfg.epochs + 1
            elif skip >= per_epoch:  # checkpoint taken after the epoch was complete
                start_epoch, skip = start_epoch + 1, 0
                rng.bit_generator.state = epoch_rng["after"]
            else:
                rng.bit_generator.state = epoch_rng["before"]
                resumed_running = tuple(pos.get("running", (0.0, 0)))
            info("resuming from %s: epoch %d, step %d", self.run_dir, start_epoch, self.global_step)
        for cb in self.callbacks:
            cb.on_train_begin(self)
        for epoch in range(start_epoch, cfg.epochs + 1):
            self.epoch = epoch
            self.model.train()
            epoch_rng = {"before": rng.bit_generator.state}
            batches = self.batcher.order(cfg.batch_size, rng)  # the global batches
            batches = distributed.shard(batches)  # this process's share (all of it on one)
            epoch_rng["after"] = rng.bit_generator.state
            running, seen = resumed_running if skip else (0.0, 0)
            with progress(f"epoch {epoch}/{cfg.epochs}", len(self.labels),
                          enabled=distributed.is_main()) as bar:
                for step, idx in enumerate(batches):
                    if step < skip:
                        continue
                    batch = {k: v.to(self.device) for k, v in self.batcher.batch(idx).items()}
                    y = batch.pop("target", None)  # a batcher may mix inputs and targets
                    y = self.labels[idx].to(self.device) if y is None else y
                    if adversary is None:
                        loss = self._loss(batch, y)
                        loss.backward()
                    else:
                        loss = adversary.clean_forward(lambda: self._loss(batch, y))
                        loss.backward()
                        adversary.attack(lambda: self._loss(batch, y))
                    if cfg.max_grad_norm:
                        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.global_step += 1
                    for cb in self.callbacks:
                        cb.on_step_end(self, loss.item())
                    self.optimizer.zero_grad(set_to_none=True)
                    running += loss.item() * len(idx)
                    seen += len(idx)
                    bar.advance(len(idx) * distributed.world_size())
                    if cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0:
                        self._checkpoint(step + 1, epoch_rng, best, (running, seen))
            skip = 0
            self.model.eval()
            scores = self.evaluate()
            row = {"epoch": epoch, "train_loss": round(running / max(seen, 1), 5),
                   **{f"valid_{k}": round(v, 5) for k, v in scores.items()},
                   "seconds": round(self.elapsed(), 2)}
            self.history.append(row)
            info("epoch %d: %s", epoch, ", ".join(f"{k}={v}" for k, v in row.items() if k != "epoch"))
            if scores[self.cfg.monitor] > self.best_score + 1e-6:
                self.best_score, self.best_epoch, self.stale = scores[self.cfg.monitor], epoch, 0
                best = {k: v.detach().clone().cpu() for k, v in self.model.state_dict().items()}
            else:
                self.stale += 1
                if self.stale >= cfg.patience:
                    info("early stopping: no %s gain for %d epochs", cfg.monitor, self.stale)
                    self.should_stop = True
            for cb in self.callbacks:
                cb.on_epoch_end(self, row)
            self._checkpoint(per_epoch, epoch_rng, best)
            if self.should_stop:
                break
        if best is not None and cfg.keep == "best":
            self.model.load_state_dict(best)
        elif cfg.keep == "last" and self.epoch:
            self.best_epoch = self.epoch  # the weights kept are the last epoch's
        self.model.eval()
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self


def _input_embeddings(model: nn.Module) -> nn.Module:
    enc = getattr(model, "encoder", model)
    return enc.get_input_embeddings()
