"""Adversarial training on embeddings: FGM (Miyato et al. 2017) and PGD (Madry et al. 2018).

The perturbation is added to the output of the word-embedding layer through a forward hook, so it
works whether the embeddings are trainable, frozen or wrapped by PEFT. For each batch: the clean
loss is back-propagated as usual; then the embedding output is pushed along its gradient (FGM: one
step of size ``epsilon``; PGD: ``steps`` steps of ``alpha`` projected onto the ``epsilon`` ball),
and the adversarial loss is back-propagated too, so the optimizer step uses both gradients.
"""

from __future__ import annotations

import torch


def _unit(g: torch.Tensor) -> torch.Tensor:
    norm = g.flatten(1).norm(dim=1).clamp(min=1e-12)
    return g / norm.view(-1, *([1] * (g.dim() - 1)))


class Adversary:
    def __init__(self, embeddings: torch.nn.Module, method: str = "fgm", epsilon: float = 1.0,
                 steps: int = 3, alpha: float | None = None):
        self.embeddings = embeddings
        self.method = method
        self.epsilon = epsilon
        self.steps = steps if method == "pgd" else 1
        self.alpha = alpha or epsilon / max(self.steps, 1) * 1.5
        self._delta: torch.Tensor | None = None
        self._captured: torch.Tensor | None = None
        self._capture = False
        embeddings.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        if self._capture:
            if not output.requires_grad:  # frozen embeddings: make the output a leaf with a grad
                output = output.detach().requires_grad_(True)
            else:
                output.retain_grad()
            self._captured = output
        if self._delta is not None:
            return output + self._delta
        return output

    def clean_forward(self, fn):
        """Run ``fn()`` (forward + loss) capturing the embedding output for its gradient."""
        self._capture = True
        try:
            return fn()
        finally:
            self._capture = False

    def attack(self, loss_fn) -> float:
        """After the clean backward: run the attack, back-propagate the adversarial loss (its
        gradients add to the clean ones), return the last adversarial loss."""
        base = self._captured
        if base is None or base.grad is None:
            return 0.0
        grad = base.grad.detach()
        delta = torch.zeros_like(grad)
        loss_value = 0.0
        try:
            for k in range(self.steps):
                step = self.epsilon if self.method == "fgm" else self.alpha
                delta = delta + step * _unit(grad)
                if self.method == "pgd":  # project onto the epsilon ball
                    norm = delta.flatten(1).norm(dim=1).clamp(min=1e-12)
                    scale = torch.clamp(self.epsilon / norm, max=1.0)
                    delta = delta * scale.view(-1, *([1] * (delta.dim() - 1)))
                last = k == self.steps - 1
                self._delta = delta.detach().requires_grad_(not last)
                loss = loss_fn()
                if last:
                    loss.backward()
                else:  # gradient w.r.t. the perturbation only; parameters untouched
                    grad = torch.autograd.grad(loss, self._delta)[0].detach()
                loss_value = float(loss.detach())
        finally:
            self._delta = None
            self._captured = None
        return loss_value
