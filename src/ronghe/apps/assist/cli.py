"""``ronghe assist ...``: build, evaluate, serve an assistant and export its feedback.

A typer sub-app, registered in ``ronghe/cli.py`` with one line. Errors a user can fix exit 2
with the message (no traceback), internal errors exit 1 (``RONGHE_DEBUG=1`` shows them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ... import commands
from ...errors import ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="The customer-service assistant: intents, FAQ answers, out-of-scope "
                       "detection and hand-off.")


# the console, logging and error boundary of every ronghe command (commands.py)
command = commands.registrar(app)
_console = commands.console
QuietOpt = commands.QuietOpt


def _options(items: list[str]) -> dict:
    return commands.parse_options(items, example="--option candidates=[classic,frozen]")


_file = commands.require_file


@command
def build(
    intents: Path = typer.Option(..., "--intents", help="text + intent [+ answer] table; rows "
                                                        "labelled 'oos' are out-of-scope examples"),
    faq: Optional[Path] = typer.Option(None, "--faq", help="question + answer [+ id: rows sharing an id "
                                                "are paraphrases]"),
    out: Path = typer.Option(..., "--out", "-o", help="assistant bundle folder to write"),
    oos: Optional[Path] = typer.Option(None, "--oos", help="out-of-scope example texts"),
    valid: Optional[Path] = typer.Option(None, "--valid", help="validation: text + intent, FAQ "
                                         "id or 'oos' [default: 10% of the intents held out]"),
    answers: Optional[Path] = typer.Option(None, "--answers", help="intent + answer table"),
    ner: Optional[Path] = typer.Option(None, "--ner", help="NER bundle: entities fill {slot}s"),
    model: Optional[str] = typer.Option(None, help="backbone [default: minilm]"),
    candidates: Optional[str] = typer.Option(None, help="comma-separated intent classifiers "
                                             "[default: classic,frozen,weighted]"),
    text_col: Optional[str] = typer.Option(None), label_col: Optional[str] = typer.Option(None),
    option: list[str] = typer.Option([], "--option", help="assistant option KEY=VALUE"),
    quiet: bool = QuietOpt,
):
    """Build an assistant bundle: intent classifier, FAQ index, out-of-scope detector."""
    from ...bundle import check_target
    from . import build as build_assistant

    for p, what in ((intents, "intents"), (faq, "FAQ"), (oos, "out-of-scope"),
                    (valid, "validation"), (answers, "answers")):
        _file(p, what)
    check_target(out)
    opts = _options(option)
    if model:
        opts["model"] = model
    if candidates:
        opts["candidates"] = [c.strip() for c in candidates.split(",") if c.strip()]
    bot = build_assistant(intents, faq, oos=oos, valid=valid, answers=answers, ner=ner,
                          text_col=text_col, label_col=label_col, **opts)
    path = bot.save(out)
    m = bot.metrics_
    if not quiet:
        _console(stderr=False).print(
            f"[green]wrote[/] {path}: classifier {bot.strategy_} (in-scope validation accuracy "
            f"{m['valid']['intent_accuracy']:.4f}; candidates {m['candidates']}), out-of-scope "
            f"{bot.oos_method_} (threshold {bot.oos_threshold_:.4g}), FAQ threshold "
            f"{bot.faq_threshold_:.4f}", markup=True)


@command
def evaluate(
    assistant: Path = typer.Argument(..., help="assistant bundle"),
    queries: Path = typer.Argument(..., help="message + expected (intent, FAQ id or 'oos')"),
    out: Optional[Path] = typer.Option(None, "--out", help="report path (.json, .md, .png) "
                                       "[default: ASSISTANT.eval]"),
    text_col: Optional[str] = typer.Option(None), expected_col: Optional[str] = typer.Option(None),
    quiet: bool = QuietOpt,
):
    """Evaluate an assistant: intent accuracy, FAQ hit rates, OOS P/R/F1, hand-offs, latency."""
    from . import evaluate as ev
    from .assistant import load
    from .data import read_queries

    _file(queries, "queries")
    bot = load(assistant)
    q = read_queries(queries, text_col=text_col, expected_col=expected_col)
    report = ev.evaluate(bot, q)
    paths = ev.write(report, out or Path(str(assistant).rstrip("/") + ".eval"))
    if not quiet:
        _console(stderr=False).print(ev.markdown(report))
        _console(stderr=False).print(f"[green]wrote[/] {paths['json']}, {paths['markdown']}, "
                                     f"{paths['png']}", markup=True)


def default_db(name: str) -> Path:
    return Path.cwd() / f"assist-{name}.sqlite"


@command
def serve(
    assistant: Path = typer.Argument(..., help="assistant bundle (or a folder of versions)"),
    db: Optional[str] = typer.Option(None, "--db", help="database: a file (SQLite) or a "
                                     "postgresql:// URL [default: ./assist-NAME.sqlite]"),
    host: str = typer.Option("127.0.0.1", help="non-loopback needs --api-keys or --insecure"),
    port: int = typer.Option(8000),
    api_keys: Optional[Path] = typer.Option(None, "--api-keys", help="JSON/YAML keys file "
                                            "(also RONGHE_API_KEYS)"),
    workers: int = typer.Option(1),
    insecure: bool = typer.Option(False, "--insecure"),
    request_log: Optional[str] = typer.Option(None, "--request-log", help="a file, - or off"),
    log_inputs: bool = typer.Option(False, "--log-inputs", help="add the (masked) messages to "
                                                                "the request log"),
    option: list[str] = typer.Option([], "--option", help="serve option KEY=VALUE"),
    quiet: bool = QuietOpt,
):
    """Serve an assistant: /v1/assist/reply, /feedback, /conversations/{id} and a chat page
    at /, on the same service as `ronghe serve` (keys, limits, metrics, hot reload)."""
    from ...serving.registry import parse_specs
    from ...serving.server import require_web_stack, run
    from ...store import as_url

    require_web_stack()
    spec = parse_specs([str(assistant)])[0]
    options = _options(option)
    if request_log is not None:
        options["request_log"] = request_log
    if log_inputs:
        options["log_inputs"] = True
    url = as_url(db) if db else as_url(default_db(spec.name))
    from .storage import open_store
    from ...store import safe_url

    open_store(url).close()  # a bad URL or an unreachable database fails here, before loading
    if not quiet:
        _console().print(f"assistant '{spec.name}': chat page http://{host}:{port}/, "
                         f"records in {safe_url(url)}")
    options["apps"] = {"ronghe.apps.assist.routes:install": {"model": spec.name, "db": url}}
    run([str(assistant)], host=host, port=port, api_keys=api_keys, workers=workers,
        insecure=insecure, **options)


@command
def export_feedback(
    db: str = typer.Option(..., "--db", help="the service's database (file or URL)"),
    out: Path = typer.Option(..., "--out", "-o", help="CSV (or .jsonl) of labelled rows"),
    quiet: bool = QuietOpt,
):
    """Turn feedback into labelled rows for retraining: text, label, kind (intent/faq/oos)."""
    import pandas as pd

    from ...bundle import write_text_atomic
    from .storage import feedback_rows, open_store

    if "://" not in db and not Path(db).expanduser().exists():
        raise ConfigError(f"database file not found: {db}")
    rows, skipped = feedback_rows(open_store(db))
    frame = pd.DataFrame(rows, columns=["text", "label", "kind", "helpful", "replied_kind",
                                        "turn_id", "updated_at"])
    text = (frame.to_json(orient="records", lines=True, force_ascii=False)
            if str(out).endswith(".jsonl") else frame.to_csv(index=False))
    write_text_atomic(out, text)
    if not quiet:
        _console(stderr=False).print(
            f"[green]wrote[/] {out}: {len(rows)} labelled rows "
            f"({', '.join(f'{k} {v}' for k, v in frame['kind'].value_counts().items()) or 'none'}); "
            f"left out: {skipped['not_helpful_without_correction']} 'not helpful' without a "
            f"correction, {skipped['helpful_clarification']} 'helpful' on a clarifying question",
            markup=True)
