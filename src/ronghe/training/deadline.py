"""A callback that ends training at the first epoch boundary after a wall-clock deadline
(the best epoch so far is kept, as with early stopping). Used by ``ronghe bench --time-budget``."""

from __future__ import annotations

import time

from ..log import info
from .callbacks import Callback


class Deadline(Callback):
    def __init__(self, deadline: float):
        self.deadline = deadline  # time.monotonic() value

    def on_epoch_end(self, loop, row):
        if time.monotonic() > self.deadline and not loop.should_stop:
            info("time budget reached after epoch %d: keeping the best epoch so far", row["epoch"])
            loop.should_stop = True
