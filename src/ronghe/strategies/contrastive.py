"""``contrastive``: few-shot classification, the SetFit recipe (Tunstall et al. 2022).

For very small labeled sets (8-64 examples per class): first fine-tune the encoder contrastively
on sentence pairs - same-class pairs pulled together, different-class pairs pushed apart (cosine
similarity regressed onto 1/0) - then fit a logistic-regression head on the tuned embeddings.

Pairs are sampled on the fly from per-class index lists: memory stays proportional to the number
of examples, never to the number of pairs, and ``max_pairs`` caps the work on larger sets.

The encoder never looks at validation data; validation only chooses the head's C. With fewer
than ``min_valid`` validation examples there is nothing to choose on (on SST-2 at 8-64 examples
per class every C of the grid tied on the 2-13 held-out examples - benchmarks/README.md, few-shot),
so holding them out only costs training data: the encoder and the head then train on the
training and validation examples together, with ``small_valid_C`` (1.0, scikit-learn's and
SetFit's default), and the report says the validation scores are on seen examples.
"""

from __future__ import annotations

import json
import math
from typing import Iterator

import numpy as np
import torch
from pydantic import Field

from .. import backbones, linear
from ..bundle import BundleReader, State
from ..config import NetworkConfig
from ..log import info, progress
from ..modeling import autocast, collate, run_batches, setup_network, tokenize
from ..training import loop
from .base import Strategy


class ContrastiveConfig(NetworkConfig):
    batch_size: int = Field(16, ge=2, description="pairs per step")
    epochs: int = Field(1, ge=1, le=100, description="passes over the sampled pairs")
    num_iterations: int | None = Field(
        None, ge=1, description="positive + negative pairs drawn per example; None: as many "
        "pairs as the data has distinct pairs of the more common kind, times 2 (see pair_count)")
    max_pairs: int = Field(20_000, ge=2, description="cap on pairs per epoch")
    learning_rate: float = Field(2e-5, gt=0, lt=1)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    max_grad_norm: float = Field(1.0, ge=0)
    eval_batch_size: int = Field(128, ge=1)
    C_grid: list[float] = Field([0.1, 1.0, 10.0, 100.0], min_length=1,
                                description="head C values tried; the best on validation is kept")
    min_valid: int = Field(20, ge=0, description="fewer validation examples than this: train "
                                                 "on training + validation, head C small_valid_C "
                                                 "(0: always hold validation out)")
    small_valid_C: float = Field(1.0, gt=0)


def pair_count(labels: np.ndarray, num_iterations: int | None, max_pairs: int) -> int:
    """How many pairs one epoch trains on (never more than ``max_pairs``).

    With ``num_iterations`` (SetFit 0.x): ``2 * num_iterations`` per example. Without (the
    default, SetFit 1.x's "oversampling"): every distinct same-class or different-class pair once
    for the more common kind, the other kind drawn as often, i.e. ``2 * max(same, different)`` -
    the work grows with the pairs the data really has (16 texts: ~100 pairs, not 640)."""
    if num_iterations is not None:
        return min(max_pairs, 2 * num_iterations * len(labels))
    counts = np.unique(labels, return_counts=True)[1].astype(np.int64)
    same = int((counts * (counts - 1) // 2).sum())
    different = int((len(labels) ** 2 - (counts ** 2).sum()) // 2)
    return max(2, min(max_pairs, 2 * max(same, different)))


def sample_pairs(labels: np.ndarray, n_pairs: int, rng: np.random.Generator
                 ) -> Iterator[tuple[int, int, float]]:
    """Yield ``n_pairs`` (i, j, target) pairs, alternating positive (same class, target 1) and
    negative (other class, target 0), cycling over examples in a fresh random order. Uses only
    per-class index arrays: O(n) memory however many pairs are drawn."""
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    others = {c: np.flatnonzero(labels != c) for c in by_class}
    made = 0
    while made < n_pairs:
        for i in rng.permutation(len(labels)):
            c = labels[i]
            same = by_class[c]
            if len(same) > 1:
                j = same[rng.integers(len(same))]
                while j == i:
                    j = same[rng.integers(len(same))]
                yield int(i), int(j), 1.0
                made += 1
                if made >= n_pairs:
                    return
            yield int(i), int(others[c][rng.integers(len(others[c]))]), 0.0
            made += 1
            if made >= n_pairs:
                return


class Contrastive(Strategy):
    name = "contrastive"
    Config = ContrastiveConfig
    uses_backbone = True
    trains_network = True
    stores_backbone = True

    def _setup(self, encoder, tokenizer):
        setup_network(self, encoder, tokenizer, 0, 0.0)  # no head: the classifier is linear

    def _embed_ids(self, ids) -> np.ndarray:
        self.model.eval()
        e = run_batches(self.model.embed, ids, self.pad_id, self.config.eval_batch_size,
                        self.device, self.dtype, "embedding")
        return e / np.linalg.norm(e, axis=1, keepdims=True).clip(1e-9)

    def embed(self, texts) -> np.ndarray:
        return self._embed_ids(tokenize(self.tokenizer, list(texts), self.config.max_length))

    def _train_encoder(self, ids: list[list[int]], y: np.ndarray) -> None:
        from transformers import get_linear_schedule_with_warmup

        c = self.config
        total = pair_count(y, c.num_iterations, c.max_pairs)
        steps = c.epochs * math.ceil(total / c.batch_size)
        opt = loop.adamw(loop.param_groups(self.model, loop.LoopConfig.from_config(c, epochs=1)),
                         c.learning_rate, self.device)
        sched = get_linear_schedule_with_warmup(opt, int(c.warmup_ratio * steps), steps)
        rng = np.random.default_rng(c.seed)
        self.model.train()
        info("contrastive: %d pairs x %d epoch(s) = %d steps", total, c.epochs, steps)
        for epoch in range(c.epochs):
            pairs = sample_pairs(y, total, rng)
            with progress(f"pairs epoch {epoch + 1}/{c.epochs}", total) as bar:
                while True:
                    chunk = [p for _, p in zip(range(c.batch_size), pairs)]
                    if not chunk:
                        break
                    # one forward pass over the distinct texts of the step's pairs (with few
                    # examples a text recurs in many pairs: 14 texts fill 16 pairs' 32 slots)
                    texts = sorted({i for i, _, _ in chunk} | {j for _, j, _ in chunk})
                    row = {t: r for r, t in enumerate(texts)}
                    batch = collate([ids[t] for t in texts], self.pad_id)
                    target = torch.tensor([t for _, _, t in chunk], device=self.device)
                    with autocast(self.device, self.dtype):
                        e = self.model.embed(batch["input_ids"].to(self.device),
                                             batch["attention_mask"].to(self.device)).float()
                    a = e[[row[i] for i, _, _ in chunk]]
                    b = e[[row[j] for _, j, _ in chunk]]
                    sim = torch.nn.functional.cosine_similarity(a, b)
                    loss = torch.nn.functional.mse_loss(sim, target)
                    loss.backward()
                    if c.max_grad_norm:
                        torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.max_grad_norm)
                    opt.step()
                    sched.step()
                    opt.zero_grad(set_to_none=True)
                    bar.advance(len(chunk))
        self.model.eval()

    def fit(self, train, valid):
        c = self.config
        loop.set_seed(c.seed)
        self._setup(backbones.load_encoder(self.backbone.path),
                    backbones.load_tokenizer(self.backbone.path))
        texts, labels = list(train.texts), list(train.labels)
        merged = len(valid.texts) < c.min_valid
        if merged:  # too few to choose C on: they train instead (see the module docstring)
            texts, labels = texts + list(valid.texts), labels + list(valid.labels)
            self.report["validation_merged"] = (
                f"{len(valid.texts)} validation examples (< min_valid {c.min_valid}) trained "
                f"with the {len(train.texts)} training ones; head C {c.small_valid_C:g}; the "
                "validation scores are on seen examples")
            info("contrastive: %s", self.report["validation_merged"])
        ids = tokenize(self.tokenizer, texts, c.max_length)
        y = self.label_ids(labels)
        self._train_encoder(ids, y)
        X = self._embed_ids(ids)
        if merged:
            self.head, self.history = linear.fit_logreg(X, y, None, None, [c.small_valid_C],
                                                        c.seed)
            return self
        Xv = self.embed(valid.texts)
        self.head, self.history = linear.fit_logreg(X, y, Xv, self.label_ids(valid.labels),
                                                    c.C_grid, c.seed)
        return self

    def predict_proba(self, texts):
        return linear.proba_full(self.head, self.embed(texts), len(self.classes))

    def to_state(self) -> State:
        arrays, meta = linear.to_arrays(self.head)
        state = State(meta=meta, arrays=arrays, tensors=dict(self.model.state_dict()))
        state.add_pretrained("tokenizer", self.tokenizer)
        state.files["model/config.json"] = json.dumps(
            self.model.encoder.config.to_dict(), indent=2, default=str).encode()
        return state

    @classmethod
    def from_state(cls, config, classes, backbone, reader: BundleReader):
        self = cls(config, classes, backbone)
        encoder = backbones.load_encoder(reader.path("model"), config_only=True)
        self._setup(encoder, backbones.load_tokenizer(reader.path("tokenizer")))
        self.model.load_state_dict(reader.tensors())
        self.model.eval()
        self.head = linear.from_arrays(reader.arrays(), reader.meta)
        return self
