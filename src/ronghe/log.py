"""Logging and progress display shared by the API and the CLI.

Warnings about data (empty texts, unseen labels, duplicates) go through the ``ronghe`` logger,
so Python users can route them like any other library's, and the CLI shows them with rich.
``set_quiet(True)`` (the CLI's ``--quiet``) hides progress bars and info messages.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from typing import Iterator

logger = logging.getLogger("ronghe")
_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = bool(quiet)


def is_quiet() -> bool:
    return _state["quiet"]


def info(msg: str, *args) -> None:
    logger.info(msg, *args)


def warn(msg: str, *args) -> None:
    logger.warning(msg, *args)


class _Bar:
    """A handle on one progress task; ``advance(n)`` moves it, ``update(**fields)`` sets text."""

    def __init__(self, progress, task_id):
        self._progress = progress
        self._task = task_id

    def advance(self, n: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def update(self, description: str | None = None, total: int | None = None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=description, total=total)


@contextmanager
def progress(description: str, total: int | None) -> Iterator[_Bar]:
    """A rich progress bar with ETA on stderr; silent when quiet or when stderr is not a terminal
    and ``RONGHE_PROGRESS`` is unset."""
    import os

    show = not is_quiet() and (sys.stderr.isatty() or os.environ.get("RONGHE_PROGRESS") == "1")
    if not show:
        yield _Bar(None, None)
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as p:
        yield _Bar(p, p.add_task(description, total=total))
