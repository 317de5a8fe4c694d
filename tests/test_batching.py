"""Length grouping for inference: every text once, in order, with less padding than one batch."""

from __future__ import annotations

import numpy as np
import torch

from ronghe.batching import length_grouped_batches
from ronghe.modeling import run_batches


def padded_tokens(lengths, groups) -> int:
    return sum(len(g) * max(lengths[i] for i in g) for g in groups)


def test_inference_groups_cover_each_text_once_within_the_batch_size():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 64, size=101).tolist()
    groups = length_grouped_batches(lengths, 32, None)
    seen = np.concatenate(groups)
    assert sorted(seen.tolist()) == list(range(101))
    assert all(len(g) <= 32 for g in groups)


def test_mixed_lengths_are_cut_into_tighter_groups_than_one_padded_batch():
    lengths = [60, 58, 57, 55, 30, 29, 28, 27, 8, 7, 7, 6]
    groups = length_grouped_batches(lengths, 32, None)
    assert [sorted(lengths[i] for i in g) for g in groups] == [[55, 57, 58, 60], [27, 28, 29, 30],
                                                                [6, 7, 7, 8]]
    assert padded_tokens(lengths, groups) < 0.6 * len(lengths) * max(lengths)


def test_equal_lengths_stay_in_full_batches():
    groups = length_grouped_batches([16] * 40, 32, None)
    assert [len(g) for g in groups] == [32, 8]


def test_a_group_holds_min_group_texts_before_a_length_cut():
    lengths = [50, 20, 10, 5, 4, 3]
    groups = length_grouped_batches(lengths, 32, None, min_group=2, max_pad=0.2)
    assert all(len(g) >= 2 for g in groups[:-1])
    assert [lengths[i] for i in groups[0]] == [50, 20]


def test_run_batches_returns_rows_in_input_order():
    ids = [[1] * n for n in (5, 40, 3, 22, 17, 40, 2, 9)]

    def fn(input_ids, mask):  # each row's real length, whatever its group and padding
        return mask.sum(1, keepdim=True).to(torch.float32)

    out = run_batches(fn, ids, 0, 32, torch.device("cpu"), None)
    assert out[:, 0].tolist() == [5, 40, 3, 22, 17, 40, 2, 9]
