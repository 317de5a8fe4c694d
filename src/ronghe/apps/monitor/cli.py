"""``ronghe monitor ...``: run the monitor, write a report, export analysts' corrections.

A typer sub-app registered in ``ronghe/cli.py`` with one line. Every setting of the YAML file is
also a flag: the common ones by name, any other as ``--option dotted.name=VALUE`` (e.g.
``--option rules.0.threshold=8``). Errors a user can fix exit 2 with the message (no
traceback), internal errors exit 1 (``RONGHE_DEBUG=1`` shows them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ... import commands
from ...errors import ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Sentiment and topic monitoring: score a stream, store it, alert on "
                       "surges of negative items.")
# the console, logging (with times: the monitor runs for long) and error boundary of every
# ronghe command (commands.py)
command = commands.registrar(app, timestamps=True)
_console = commands.console
QuietOpt = typer.Option(False, "--quiet", "-q", help="warnings and alerts only")


def _options(items: list[str]) -> dict:
    return commands.parse_options(items, example="--option rules.0.threshold=14")


def load_config(config: Optional[Path], flags: dict, options: list[str]):
    from ...config import read_config_file
    from .config import build

    values = read_config_file(config) if config else {}
    base = config.parent if config else Path.cwd()
    for section, key in (("models", "topic"), ("models", "sentiment"), ("models", "ner"),
                         ("sources", "folder")):  # paths in the file are relative to it
        v = (values.get(section) or {}).get(key)
        if isinstance(v, str) and "://" not in v and not Path(v).expanduser().is_absolute():
            values[section][key] = str(base / v)
    db = values.get("db")
    if isinstance(db, str) and "://" not in db and not Path(db).expanduser().is_absolute():
        values["db"] = str(base / db)
    overrides = {k: v for k, v in flags.items() if v is not None}
    overrides.update(_options(options))
    return build(values, overrides)


@command
def run(
    config: Optional[Path] = typer.Argument(None, help="monitor.yaml (any setting; flags win)"),
    db: Optional[str] = typer.Option(None, "--db", help="SQLite file or postgresql:// URL "
                                     "[default: monitor.sqlite]"),
    sentiment: Optional[str] = typer.Option(None, "--sentiment", help="sentiment bundle"),
    topic: Optional[str] = typer.Option(None, "--topic", help="topic bundle"),
    ner: Optional[str] = typer.Option(None, "--ner", help="NER bundle (ORG/PER become keys)"),
    folder: Optional[str] = typer.Option(None, "--folder", help="folder watched for JSONL/CSV"),
    stdin: bool = typer.Option(False, "--stdin", help="read JSON lines from standard input"),
    once: bool = typer.Option(False, "--once", help="stop when the folder has nothing new and "
                                                    "stdin is closed"),
    serve: bool = typer.Option(False, "--serve", help="also serve the ingest API and dashboard"),
    host: Optional[str] = typer.Option(None, "--host"),
    port: Optional[int] = typer.Option(None, "--port"),
    api_keys: Optional[str] = typer.Option(None, "--api-keys", help="keys file (as ronghe serve)"),
    option: list[str] = typer.Option([], "--option", help="any setting: NAME=VALUE, dotted "
                                     "(models.batch_size=128, rules.0.method=binomial)"),
    quiet: bool = QuietOpt,
):
    """Run the monitor: score every item, store it, alert on surges of negative items."""
    from .runner import run as run_monitor

    if config is not None and not config.is_file():
        raise ConfigError(f"config file not found: {config}")
    flags = {"db": db, "models.sentiment": sentiment, "models.topic": topic, "models.ner": ner,
             "sources.folder": folder, "sources.stdin": stdin or None,
             "serve.enabled": serve or None, "serve.host": host, "serve.port": port,
             "serve.api_keys": api_keys}
    cfg = load_config(config, flags, option)
    if not (cfg.sources.folder or cfg.sources.stdin or cfg.serve.enabled):
        raise ConfigError("nothing to read: set sources.folder (--folder), sources.stdin "
                          "(--stdin) or serve.enabled (--serve)")
    monitor = run_monitor(cfg, once=once)
    if monitor is not None and not quiet:
        c = monitor.counts()
        _console().print(f"stored {c['items']} items, {c['rejected']} rejected, "
                         f"{c['alerts']} alerts in {monitor.store.url.split('://')[0]} database")


def _db_url(config: Optional[Path], values: dict, db: Optional[str]) -> str:
    """The monitor's database: --db, else monitor.yaml's ``db`` (``values``, the file read;
    relative to the file)."""
    if config is not None and isinstance(values.get("db"), str) and "://" not in values["db"] \
            and not Path(values["db"]).is_absolute():
        values["db"] = str(config.parent / values["db"])
    url = db or values.get("db")
    if not url:
        raise ConfigError("which database? give monitor.yaml or --db")
    if "://" not in str(url) and not Path(url).expanduser().is_file():
        raise ConfigError(f"--db {url}: no such database file")
    return str(url)


@command
def report(
    config: Optional[Path] = typer.Argument(None, help="monitor.yaml (for the database, rules "
                                            "and bucket width)"),
    since: Optional[str] = typer.Option(None, "--since", help="a time (2026-12-01T00:00Z) or "
                                        "a span before now (24h, 7d) [default: everything]"),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="HTML file to write"),
    db: Optional[str] = typer.Option(None, "--db", help="SQLite file or postgresql:// URL"),
    bucket_s: Optional[int] = typer.Option(None, "--bucket-s", min=1, help="seconds per bucket"),
    quiet: bool = QuietOpt,
):
    """Write the dashboard's charts and alerts as one static HTML file."""
    from ...config import read_config_file
    from .report import parse_since, write
    from .storage import open_store

    start = parse_since(since)
    values = read_config_file(config) if config else {}
    rules = [r.get("name") or r.get("key") for r in values.get("rules") or []] or None
    store = open_store(_db_url(config, values, db))
    path = write(store, rules, out, since=start, bucket_s=bucket_s or values.get("bucket_s", 3600))
    if not quiet:
        _console().print(f"wrote {path}")


@command
def export_corrections(
    config: Optional[Path] = typer.Argument(None, help="monitor.yaml (for the database)"),
    out: Path = typer.Option(..., "--out", "-o", help="CSV to write: text,label (for ronghe "
                             "retrain --new)"),
    db: Optional[str] = typer.Option(None, "--db", help="SQLite file or postgresql:// URL"),
    since: Optional[str] = typer.Option(None, "--since", help="a time (2026-12-01T00:00Z) or "
                                        "a span before now (7d) [default: everything]"),
    quiet: bool = QuietOpt,
):
    """Write the items analysts corrected (POST /v1/monitor/items/{id}/correction) as labelled
    rows, oldest first - new training data for ronghe retrain --new."""
    import pandas as pd

    from ...bundle import write_text_atomic
    from ...config import read_config_file
    from . import queries
    from .report import parse_since
    from .storage import open_store

    store = open_store(_db_url(config, read_config_file(config) if config else {}, db))
    rows = queries.corrections(store, since=parse_since(since))
    frame = pd.DataFrame({"text": [r["text"] for r in rows],
                          "label": [r["sentiment"] for r in rows]})
    write_text_atomic(out, frame.to_csv(index=False))
    if not quiet:
        changed = sum(r["sentiment"] != r["predicted"] for r in rows)
        _console().print(f"wrote {out}: {len(rows)} corrected items ({changed} where the "
                         "model was wrong); retrain with: ronghe retrain MODEL --new "
                         f"{out}")
