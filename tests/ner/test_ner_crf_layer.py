"""The CRF layer: forward algorithm, Viterbi and marginals against brute force; BIO constraints."""

from __future__ import annotations

import itertools

import pytest
import torch

from ronghe.ner.crf_layer import CRF, bio_allowed
from ronghe.ner.finetune import IGNORE, pack_labelled

TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def valid(path: list[int]) -> bool:
    prev = "O"
    for k in path:
        t = TAGS[k]
        if t.startswith("I-") and prev[2:] != t[2:]:
            return False
        prev = t
    return True


def brute(crf: CRF, em: torch.Tensor, constrained: bool):
    """All paths of one sequence: (best path, log Z, marginals)."""
    n, t = em.shape
    scores = {}
    for path in itertools.product(range(t), repeat=n):
        if constrained and not valid(list(path)):
            continue
        y = torch.tensor([path])
        scores[path] = crf.sequence_score(em[None], y, torch.ones(1, n, dtype=torch.bool)).item()
    best = max(scores, key=scores.get)
    log_z = torch.logsumexp(torch.tensor(list(scores.values())), 0).item()
    marg = torch.zeros(n, t)
    for path, s in scores.items():
        for k, tag in enumerate(path):
            marg[k, tag] += torch.exp(torch.tensor(s - log_z))
    return list(best), log_z, marg


@pytest.fixture
def crf():
    torch.manual_seed(0)
    layer = CRF(TAGS, lr_scale=1.0)
    with torch.no_grad():
        layer.transitions.normal_(0, 1)
        layer.start.normal_(0, 1)
        layer.end.normal_(0, 1)
    return layer


def test_bio_constraints():
    allowed, start = bio_allowed(TAGS)
    assert start.tolist() == [True, True, False, True, False]
    assert allowed[TAGS.index("B-LOC"), TAGS.index("I-LOC")]
    assert allowed[TAGS.index("I-LOC"), TAGS.index("I-LOC")]
    assert not allowed[TAGS.index("O"), TAGS.index("I-LOC")]
    assert not allowed[TAGS.index("B-PER"), TAGS.index("I-LOC")]


@pytest.mark.parametrize("seed", range(4))
def test_viterbi_log_partition_and_marginals_equal_brute_force(crf, seed):
    torch.manual_seed(seed)
    em = torch.randn(4, len(TAGS)) * 2
    mask = torch.ones(1, 4, dtype=torch.bool)
    best, log_z, marg = brute(crf, em, constrained=True)
    assert crf.decode(em[None], mask)[0] == best
    assert crf.log_partition(em[None], mask, constrained=True).item() == pytest.approx(log_z, abs=1e-4)
    assert torch.allclose(crf.marginals(em[None], mask)[0], marg, atol=1e-4)
    _, log_z_free, _ = brute(crf, em, constrained=False)
    assert crf.log_partition(em[None], mask).item() == pytest.approx(log_z_free, abs=1e-4)


def test_invalid_transitions_are_never_decoded(crf):
    torch.manual_seed(1)
    # emissions that strongly favour I- tags everywhere, in a padded batch of varied lengths
    em = torch.randn(64, 7, len(TAGS))
    em[:, :, [2, 4]] += 6
    lengths = torch.randint(1, 8, (64,))
    mask = torch.arange(7)[None] < lengths[:, None]
    paths = crf.decode(em, mask)
    assert [len(p) for p in paths] == lengths.tolist()
    assert all(valid(p) for p in paths)
    # and the unconstrained argmax would have produced invalid sequences
    assert not all(valid(p) for p in em.argmax(2).tolist())


def test_padded_batch_equals_single_sequences(crf):
    torch.manual_seed(2)
    em = torch.randn(3, 5, len(TAGS))
    lengths = [5, 2, 3]
    mask = torch.arange(5)[None] < torch.tensor(lengths)[:, None]
    tags = torch.randint(0, len(TAGS), (3, 5))
    batched = crf.nll(em, tags, mask)
    for i, n in enumerate(lengths):
        single = crf.nll(em[i:i + 1, :n], tags[i:i + 1, :n], torch.ones(1, n, dtype=torch.bool))
        assert batched[i].item() == pytest.approx(single.item(), abs=1e-4)
    assert (batched > 0).all()


def test_pack_labelled_moves_first_subwords_to_the_front():
    em = torch.arange(2 * 5 * 1, dtype=torch.float).reshape(2, 5, 1)
    y = torch.tensor([[IGNORE, 3, IGNORE, 1, IGNORE], [IGNORE, IGNORE, 2, IGNORE, IGNORE]])
    packed, tags, mask = pack_labelled(em, y)
    assert packed[:, :, 0].tolist() == [[1.0, 3.0], [7.0, 5.0]]  # row 2: its one label, then padding
    assert tags[0].tolist() == [3, 1] and tags[1, 0].item() == 2
    assert mask.tolist() == [[True, True], [True, False]]


def test_crf_nll_trains_towards_gold():
    torch.manual_seed(0)
    layer = CRF(TAGS, lr_scale=100.0)
    em = torch.zeros(1, 3, len(TAGS), requires_grad=True)
    gold = torch.tensor([[3, 4, 0]])  # B-PER I-PER O
    mask = torch.ones(1, 3, dtype=torch.bool)
    opt = torch.optim.Adam([em, *layer.parameters()], lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        layer.nll(em, gold, mask).sum().backward()
        opt.step()
    assert layer.decode(em.detach(), mask)[0] == [3, 4, 0]
