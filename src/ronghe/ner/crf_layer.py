"""A linear-chain CRF layer for decoding a network's per-token emission scores (BERT+CRF).

Scores of a tag sequence ``y`` for emissions ``E`` (K tokens x T tags)::

    score(y) = start[y0] + sum_k E[k, yk] + sum_k>0 trans[y(k-1), yk] + end[y(K-1)]

Training minimises ``log Z - score(gold)`` (``nll``), with ``log Z`` from the forward algorithm.
Decoding (``decode``: Viterbi, ``marginals``: forward-backward through autograd) uses the same
scores with the moves that BIO forbids masked out - ``I-X`` at the start of a sentence, after
``O`` or after another type - so only valid tag sequences come out. The masks are applied at
decode time only: training windows of a long sentence may start inside an entity.

Transition scores are stored divided by ``lr_scale`` and multiplied back when used: with Adam the
step on a parameter is about the learning rate whatever the gradient's size, so this lets the
transitions move ``lr_scale`` times faster than the encoder that shares the optimiser (BERT+CRF
recipes give the CRF a learning rate around 100x the encoder's).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import bio_allowed

NEG = -1e4  # "forbidden" score: exp(NEG) is 0 in float32, and NEG + NEG stays finite


class CRF(nn.Module):
    """CRF over ``tags``. Inputs are batched: emissions ``(B, K, T)``, a boolean ``mask (B, K)``
    that is a prefix of ``True`` per row (at least one), gold ``tags (B, K)`` for ``nll``."""

    def __init__(self, tags: list[str], lr_scale: float = 100.0):
        super().__init__()
        n = len(tags)
        self.tags = list(tags)
        self.lr_scale = float(lr_scale)
        self.transitions = nn.Parameter(torch.empty(n, n).uniform_(-0.1, 0.1) / self.lr_scale)
        self.start = nn.Parameter(torch.zeros(n))
        self.end = nn.Parameter(torch.zeros(n))
        allowed, allowed_start = bio_allowed(tags)
        self.register_buffer("allowed", torch.from_numpy(allowed), persistent=False)
        self.register_buffer("allowed_start", torch.from_numpy(allowed_start), persistent=False)

    def scores(self, constrained: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        trans = self.transitions.float() * self.lr_scale
        start = self.start.float() * self.lr_scale
        end = self.end.float() * self.lr_scale
        if constrained:
            trans = trans.masked_fill(~self.allowed, NEG)
            start = start.masked_fill(~self.allowed_start, NEG)
        return trans, start, end

    def log_partition(self, em: torch.Tensor, mask: torch.Tensor,
                      constrained: bool = False) -> torch.Tensor:
        """``log Z`` per row (forward algorithm)."""
        trans, start, end = self.scores(constrained)
        em = em.float()
        alpha = start + em[:, 0]
        for k in range(1, em.shape[1]):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + em[:, k]
            alpha = torch.where(mask[:, k].unsqueeze(1), nxt, alpha)
        return torch.logsumexp(alpha + end, dim=1)

    def sequence_score(self, em: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor,
                       constrained: bool = False) -> torch.Tensor:
        trans, start, end = self.scores(constrained)
        em = em.float()
        m = mask.float()
        emit = em.gather(2, tags.unsqueeze(2)).squeeze(2)
        score = start[tags[:, 0]] + (emit * m).sum(1)
        if tags.shape[1] > 1:
            score = score + (trans[tags[:, :-1], tags[:, 1:]] * m[:, 1:]).sum(1)
        last = tags.gather(1, (mask.long().sum(1) - 1).unsqueeze(1)).squeeze(1)
        return score + end[last]

    def nll(self, em: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of the gold tags per row (unconstrained scores)."""
        return self.log_partition(em, mask) - self.sequence_score(em, tags, mask)

    @torch.no_grad()
    def decode(self, em: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """Best valid tag sequence per row (Viterbi with the BIO constraints)."""
        trans, start, end = self.scores(constrained=True)
        em = em.float()
        b, k_max, n = em.shape
        score = start + em[:, 0]
        identity = torch.arange(n, device=em.device).expand(b, n)
        history = []
        for k in range(1, k_max):
            best, idx = (score.unsqueeze(2) + trans).max(1)
            m = mask[:, k].unsqueeze(1)
            score = torch.where(m, best + em[:, k], score)
            history.append(torch.where(m, idx, identity))
        last = (score + end).argmax(1)
        path = [last]
        for idx in reversed(history):
            last = idx.gather(1, last.unsqueeze(1)).squeeze(1)
            path.append(last)
        path = torch.stack(path[::-1], dim=1).tolist()
        lengths = mask.long().sum(1).tolist()
        return [p[:n_k] for p, n_k in zip(path, lengths)]

    def marginals(self, em: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``P(y_k = t)`` under the constrained model: the gradient of ``log Z`` with respect to
        the emissions (forward-backward by autograd)."""
        with torch.inference_mode(False), torch.enable_grad():  # works inside inference_mode too
            em = em.detach().float().clone().requires_grad_(True)
            mask = mask.clone()
            log_z = self.log_partition(em, mask, constrained=True).sum()
            (grad,) = torch.autograd.grad(log_z, em)
        return grad * mask.unsqueeze(2)
