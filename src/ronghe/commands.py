"""What every ``ronghe`` command shares, for the main CLI and the applications' sub-apps alike:
the console, logging, the error boundary and ``--option KEY=VALUE`` parsing.

``registrar(app)`` returns the decorator that registers a function as a command of ``app`` (the
main typer app in ``cli.py``, or an application's sub-app such as ``apps/assist/cli.py``). Exit
codes: 0 ok, 2 bad usage or bad input (a ``RongheError``, whose message says what to fix; some
errors carry their own code, e.g. 3 for a failed accuracy gate), 130 interrupted, 1 internal
error (``RONGHE_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import typer

from .errors import ConfigError, RongheError

QuietOpt = typer.Option(False, "--quiet", "-q", help="no progress bars or info messages")


def console(stderr: bool = True):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def setup_logging(quiet: bool, timestamps: bool = False) -> None:
    """ronghe's log lines through rich on stderr (with times, for long-running services);
    the libraries' own chatter silenced."""
    from rich.logging import RichHandler

    from . import log

    log.set_quiet(quiet)
    logger = logging.getLogger("ronghe")
    logger.handlers.clear()
    logger.addHandler(RichHandler(console=console(), show_time=timestamps, show_path=False,
                                  markup=False))
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    for noisy in ("transformers", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # transformers is an extra
        pass


def registrar(app: typer.Typer, *, timestamps: bool = False):
    """A decorator registering a command on ``app`` whose user errors exit with their code and
    a message, internal errors with 1."""

    def command(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            setup_logging(kwargs.get("quiet", False), timestamps)
            try:
                return fn(*args, **kwargs)
            except typer.Exit:
                raise
            except RongheError as e:
                console().print(f"[bold red]error:[/] {e}", markup=True)
                raise typer.Exit(e.exit_code) from None
            except KeyboardInterrupt:
                console().print("[yellow]interrupted[/]")
                raise typer.Exit(130) from None
            except Exception as e:  # noqa: BLE001 - last line of defence for the user interface
                if os.environ.get("RONGHE_DEBUG"):
                    raise
                console().print(f"[bold red]internal error:[/] {type(e).__name__}: {e}\n"
                                "Run again with RONGHE_DEBUG=1 for the traceback, and report it.",
                                markup=True)
                raise typer.Exit(1) from None

        return app.command()(wrapper)

    return command


def require_file(path, what: str):
    """``path`` unchanged if it is None or exists, else a ``ConfigError`` naming ``what``."""
    from pathlib import Path

    if path is not None and not Path(path).expanduser().exists():
        raise ConfigError(f"{what} file not found: {path}")
    return path


def parse_options(items: list[str], example: str = "--option C_grid=[1,4]") -> dict[str, Any]:
    """``KEY=VALUE`` strings (values read as YAML) -> a dict; dashes in keys become underscores."""
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--option {item!r} must look like KEY=VALUE, e.g. {example}")
        key, value = item.split("=", 1)
        out[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return out
