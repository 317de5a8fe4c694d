"""The network side: a transformer encoder with pooling and a task head, and batched inference.

``TextModel`` wraps any ``transformers.AutoModel`` encoder (loaded from safetensors, no remote code)
with mean or CLS pooling, dropout and a linear head. Texts are tokenised once without padding;
batches are formed from texts of similar length and padded only to the longest in the batch
(dynamic padding), so little compute goes to pad tokens.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .batching import MIN_GROUP, length_grouped_batches, pad  # noqa: F401  (re-exported)
from .errors import ConfigError
from .log import progress


# --- devices and precision ---------------------------------------------------------------------

def pick_device(spec: str = "auto") -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def bf16_supported(device: torch.device) -> bool:
    """bf16 that is faster than fp32: CUDA with bf16, or a CPU with AMX tiles. (AVX-512 bf16
    alone only converts; measured here it was no faster for training and slower for inference.)"""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    return False


AUTO_ENV = "RONGHE_AUTO_PRECISION"  # fp32 | bf16: what 'auto' means on this machine


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 for 'bf16', or for 'auto' where the hardware runs it fast; None means fp32.

    ``RONGHE_AUTO_PRECISION=fp32`` (or ``bf16``) fixes what 'auto' resolves to, for numbers that
    must not depend on the CPU a bundle lands on (the test suite sets fp32)."""
    if precision == "auto":
        forced = os.environ.get(AUTO_ENV, "").strip().lower()
        if forced and forced not in ("fp32", "bf16"):
            raise ConfigError(f"{AUTO_ENV}={forced!r}: use fp32 or bf16 (or unset it)")
        precision = forced or precision
    if precision == "fp32":
        return None
    if precision == "bf16" or bf16_supported(device):
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None)


# --- the model ---------------------------------------------------------------------------------

def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


class TextModel(nn.Module):
    """encoder -> pooling -> dropout -> linear head (head optional: ``num_labels=0`` embeds only)."""

    def __init__(self, encoder: nn.Module, num_labels: int, pooling: str = "mean", dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        hidden = encoder.config.hidden_size
        self.head = nn.Linear(hidden, num_labels) if num_labels else None
        if self.head is not None:
            nn.init.normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)

    def embed(self, input_ids, attention_mask):
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        return mean_pool(hidden, attention_mask)

    def forward(self, input_ids, attention_mask):
        return self.head(self.dropout(self.embed(input_ids, attention_mask)))


def setup_network(owner, encoder, tokenizer, num_labels: int, dropout: float) -> None:
    """Give a strategy its device, autocast dtype, tokenizer, pad id and ``TextModel`` from its
    config (``device``, ``precision``, ``pooling``)."""
    c = owner.config
    owner.device = pick_device(c.device)
    owner.dtype = autocast_dtype(c.precision, owner.device)
    owner.tokenizer = tokenizer
    owner.pad_id = tokenizer.pad_token_id or 0
    owner.model = TextModel(encoder, num_labels, c.pooling, dropout).to(owner.device)


# --- tokenisation and batching -----------------------------------------------------------------

def tokenize(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated to ``max_length``, unpadded."""
    ids: list[list[int]] = []
    step = 2048
    for i in range(0, len(texts), step):
        enc = tokenizer(list(texts[i:i + step]), truncation=True, max_length=max_length,
                        padding=False, return_attention_mask=False, return_token_type_ids=False)
        ids.extend(enc["input_ids"])
    return ids


def collate(seqs: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    ids, mask = pad(seqs, pad_id)
    return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}


@torch.inference_mode()
def run_batches(fn, ids: list[list[int]], pad_id: int, batch_size: int, device: torch.device,
                dtype: torch.dtype | None, description: str = "predicting") -> np.ndarray:
    """Apply ``fn(input_ids, attention_mask) -> tensor`` over length-sorted batches; rows come
    back in input order as float32 numpy."""
    if not ids:
        return np.zeros((0, 0), dtype=np.float32)
    # bf16 runs on AMX tiles here, which want tall matrices: one 32-text call took 135 ms as one
    # batch and 198 ms in groups of 4+ (fp32: 427 vs 302), so bf16 groups hold 16 before a cut
    min_group = 16 if dtype == torch.bfloat16 else MIN_GROUP
    batches = length_grouped_batches([len(s) for s in ids], batch_size, None, min_group=min_group)
    out: np.ndarray | None = None
    with progress(description, len(ids)) as bar:
        for idx in batches:
            batch = {k: v.to(device) for k, v in collate([ids[i] for i in idx], pad_id).items()}
            with autocast(device, dtype):
                y = fn(batch["input_ids"], batch["attention_mask"])
            y = y.float().cpu().numpy()
            if out is None:
                out = np.empty((len(ids), y.shape[1]), dtype=np.float32)
            out[idx] = y
            bar.advance(len(idx))
    return out


# --- frozen embeddings with a per-text cache ---------------------------------------------------

_EMBED_CACHE: dict[tuple, dict[bytes, np.ndarray]] = {}
_CACHE_LIMIT = 1_000_000


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class Embedder:
    """Pooled embeddings of a frozen backbone, batched and length-sorted, cached per text
    fingerprint (so the same text is never encoded twice in a process: train/valid/predict,
    several strategies in one leaderboard run)."""

    def __init__(self, path: Path, weights_sha256: str, *, pooling: str = "mean",
                 max_length: int = 256, batch_size: int = 64, device: str = "auto",
                 precision: str = "auto"):
        from . import backbones

        self.device = pick_device(device)
        self.dtype = autocast_dtype(precision, self.device)
        self.tokenizer = backbones.load_tokenizer(path)
        self.model = TextModel(backbones.load_encoder(path), 0, pooling).to(self.device).eval()
        self.batch_size = batch_size
        self.max_length = max_length
        self.cache = _EMBED_CACHE.setdefault(
            (weights_sha256, pooling, max_length, str(self.dtype)), {})

    @property
    def dim(self) -> int:
        return self.model.encoder.config.hidden_size

    def __call__(self, texts: list[str]) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        todo = {}
        for k, t in zip(keys, texts):
            if k not in self.cache and k not in todo:
                todo[k] = t
        if todo:
            ids = tokenize(self.tokenizer, list(todo.values()), self.max_length)
            vecs = run_batches(self.model.embed, ids, self.tokenizer.pad_token_id or 0,
                               self.batch_size, self.device, self.dtype, "embedding")
            if len(self.cache) + len(todo) > _CACHE_LIMIT:
                self.cache.clear()
            self.cache.update(zip(todo.keys(), vecs))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = self.cache[k]
        return out


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, math.ceil(n / batch_size))
