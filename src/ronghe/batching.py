"""Length-grouped batching, shared by the torch and onnxruntime code paths (numpy only)."""

from __future__ import annotations

import numpy as np


def length_grouped_batches(lengths, batch_size: int, rng: np.random.Generator | None,
                           mega: int = 50) -> list[np.ndarray]:
    """Batches of similar-length examples.

    Without ``rng`` (inference): sorted by length. With ``rng`` (training): shuffle, cut into
    mega-batches of ``mega * batch_size``, sort each by length, cut into batches, shuffle batches -
    random order across epochs, little padding within a batch (the Trainer's group_by_length idea).
    """
    lengths = np.asarray(lengths)
    if rng is None:
        order = np.argsort(-lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    order = rng.permutation(len(lengths))
    batches = []
    size = mega * batch_size
    for start in range(0, len(order), size):
        chunk = order[start:start + size]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def pad(seqs: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) as int64 arrays padded to the longest sequence."""
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = s
        mask[i, :len(s)] = 1
    return ids, mask


def token_feeds(seqs: list[list[int]], pad_id: int, batch_size: int = 16) -> list[dict]:
    """Padded ``input_ids``/``attention_mask`` batches of token sequences, for calibration."""
    feeds = []
    for i in range(0, len(seqs), batch_size):
        ids, mask = pad(seqs[i:i + batch_size], pad_id)
        feeds.append({"input_ids": ids, "attention_mask": mask})
    return feeds
