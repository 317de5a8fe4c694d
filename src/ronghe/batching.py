"""Length-grouped batching, shared by the torch and onnxruntime code paths (numpy only)."""

from __future__ import annotations

import numpy as np


MIN_GROUP = 4  # inference: texts per model call before a length cut may close the group
MAX_PAD = 0.2  # inference: close a group before a text more than 20 % shorter than its longest


def length_grouped_batches(lengths, batch_size: int, rng: np.random.Generator | None,
                           mega: int = 50, *, min_group: int = MIN_GROUP,
                           max_pad: float = MAX_PAD) -> list[np.ndarray]:
    """Batches of similar-length examples.

    Without ``rng`` (inference): sorted by length, longest first; a group closes when it holds
    ``batch_size`` texts, or when it holds ``min_group`` and the next text is more than
    ``max_pad`` shorter than the group's longest - every group is padded only to its own longest
    text, so a call with mixed lengths is cut into a few tight groups instead of one batch padded
    to the longest. Measured on MiniLM (1 thread, 32 random SST-2 sentences per call, Xeon with
    AMX): onnxruntime int8 298 -> 142 ms, fp32 581 -> 282 ms, torch fp32 427 -> 302 ms against
    one padded batch; fixed groups of 4 or 8 were as good for one back end and worse for the other.

    With ``rng`` (training): shuffle, cut into mega-batches of ``mega * batch_size``, sort each by
    length, cut into batches, shuffle batches - random order across epochs, little padding within
    a batch (the Trainer's group_by_length idea).
    """
    lengths = np.asarray(lengths)
    if rng is None:
        order = np.argsort(-lengths, kind="stable")
        groups, start = [], 0
        for k in range(1, len(order) + 1):
            size = k - start
            if k == len(order) or size >= batch_size or (
                    size >= min_group and lengths[order[k]] < (1 - max_pad) * lengths[order[start]]):
                groups.append(order[start:k])
                start = k
        return groups
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
