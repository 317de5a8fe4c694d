"""Hooks into the training loop, in the spirit of transformers' ``TrainerCallback``.

A callback sees the running ``Loop`` (model, optimizer, global step, history) at these points:
``on_train_begin``, ``on_step_end`` (after the optimizer step, before gradients are cleared),
``on_epoch_end`` (after validation; may set ``loop.should_stop``) and ``on_train_end``.
"""

from __future__ import annotations


class Callback:
    def on_train_begin(self, loop) -> None:
        pass

    def on_step_end(self, loop, loss: float) -> None:
        pass

    def on_epoch_end(self, loop, row: dict) -> None:
        pass

    def on_train_end(self, loop) -> None:
        pass


class StepHook(Callback):
    """Call ``fn(loop)`` after each optimizer step (e.g. AdaLoRA's rank re-allocation)."""

    def __init__(self, fn):
        self.fn = fn

    def on_step_end(self, loop, loss):
        self.fn(loop)
