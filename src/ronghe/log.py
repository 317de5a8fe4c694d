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
def progress(description: str, total: int | None, *, unit: str | None = None,
             enabled: bool = True) -> Iterator[_Bar]:
    """A rich progress bar with ETA on stderr; silent when quiet, when not ``enabled`` (e.g. on
    the non-main processes of a distributed run) or when stderr is not a terminal and
    ``RONGHE_PROGRESS`` is unset. ``unit`` ("rows") adds a throughput column (rows/s)."""
    import os

    show = enabled and not is_quiet() and (sys.stderr.isatty()
                                           or os.environ.get("RONGHE_PROGRESS") == "1")
    if not show:
        yield _Bar(None, None)
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    if unit:
        columns.append(_rate_column(unit))
    with Progress(*columns, console=Console(stderr=True), transient=True) as p:
        yield _Bar(p, p.add_task(description, total=total))


def _rate_column(unit: str):
    """A progress column showing the throughput: ``1,234 rows/s``."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed:,.0f} {unit}/s" if task.speed else f"- {unit}/s")

    return Rate()
