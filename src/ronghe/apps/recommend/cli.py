"""``ronghe recommend ...``: train, evaluate and serve a recommender.

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
                  help="Recommendation: collaborative signals and item text fused by a learned "
                       "ranker; cold start from text.")
command = commands.registrar(app)
QuietOpt = commands.QuietOpt


_file = commands.require_file


def _cols(value: Optional[str]) -> Optional[list[str]]:
    return [c.strip() for c in value.split(",") if c.strip()] if value else None


@command
def train(
    interactions: Path = typer.Option(..., "--interactions", help="user, item, time table"),
    items: Path = typer.Option(..., "--items", help="item id + text columns [+ numeric features]"),
    out: Path = typer.Option(..., "--out", "-o", help="recommender bundle folder to write"),
    users: Optional[Path] = typer.Option(None, "--users", help="user id + feature columns"),
    model: Optional[str] = typer.Option(None, help="backbone for the item text [default: minilm]"),
    text_col: Optional[str] = typer.Option(None, "--text-col", help="comma-separated text "
                                           "columns of the items file [default: all non-numeric]"),
    user_col: Optional[str] = typer.Option(None), item_col: Optional[str] = typer.Option(None),
    time_col: Optional[str] = typer.Option(None),
    option: list[str] = typer.Option([], "--option", help="recommender option KEY=VALUE"),
    quiet: bool = QuietOpt,
):
    """Train a recommender bundle: popularity, co-occurrence, MF and text signals fused by a
    LambdaRank ranker."""
    from ...bundle import check_target
    from .data import read_interactions, read_items, read_users
    from .recommender import Recommender

    for p, what in ((interactions, "interactions"), (items, "items"), (users, "users")):
        _file(p, what)
    check_target(out)
    opts = commands.parse_options(option, example="--option factors=32")
    if model:
        opts["model"] = model
    rec = Recommender(**opts)
    inter = read_interactions(interactions, user_col=user_col, item_col=item_col,
                              time_col=time_col)
    its = read_items(items, item_col=item_col, text_cols=_cols(text_col))
    us = read_users(users, user_col=user_col) if users else None
    rec.fit(inter, its, us)
    path = rec.save(out)
    if not quiet:
        r = rec.metrics_["ranker"]
        commands.console(stderr=False).print(
            f"[green]wrote[/] {path}: {rec.data_['users']} users, {rec.data_['items']} items "
            f"({rec.data_['items_without_interactions']} without interactions), ranker "
            f"{r['best_iteration']} trees (validation NDCG@10 among candidates "
            f"{r['valid_ndcg@10']:.4f}); {rec.new_places_} of 10 places kept for items "
            f"without interactions ({_places_why(rec.metrics_['new_places'])})", markup=True)
        for note in rec.notes_:
            commands.console().print(f"note: {note}")


def _places_why(m: dict) -> str:
    if m.get("by") != "auto":
        return "new_places from the options"
    if "curve" not in m:
        return (f"new_places=auto: {m['new_cases']} validation interaction(s) on new items, too "
                "few to measure")
    c = m["curve"][m["chosen"]]
    return (f"new_places=auto: held-out HR@10 new items {c['new_hr@10']:.3f} vs warm "
            f"{c['warm_hr@10']:.3f} over {m['new_cases']} + {m['warm_cases']} cases")


@command
def evaluate(
    recommender: Path = typer.Argument(..., help="recommender bundle"),
    test: Path = typer.Argument(..., help="held-out user, item[, time] interactions (later "
                                          "than the training ones)"),
    out: Optional[Path] = typer.Option(None, "--out", help="report path (.json; a .md beside "
                                       "it) [default: RECOMMENDER.eval.json]"),
    user_col: Optional[str] = typer.Option(None), item_col: Optional[str] = typer.Option(None),
    time_col: Optional[str] = typer.Option(None),
    new_places: str = typer.Option("", "--new-places", help="also measure the 'new arrivals' "
                                   "policy with this many places of the top 10 kept for items "
                                   "without interactions; several: 1,2,3"),
    quiet: bool = QuietOpt,
):
    """Full-ranking HR@10, NDCG@10, MRR, recall@50, coverage of the fused ranker and of each
    signal alone; warm, cold-start and one-interaction slices; latency."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from . import evaluate as ev
    from .data import read_interactions
    from .recommender import load

    _file(test, "test")
    try:
        places = [int(x) for x in new_places.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--new-places {new_places!r}: give numbers of places, e.g. 2 or "
                          "1,2,3") from None
    rec = load(recommender)
    rows = read_interactions(test, user_col=user_col, item_col=item_col, time_col=time_col)
    with Progress(TextColumn("evaluating"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total} users"), TimeRemainingColumn(), console=commands.console(),
                  disable=quiet) as bar:
        task = bar.add_task("eval", total=rows["user"].nunique())
        report = ev.evaluate(rec, rows, new_places=places,
                             progress=lambda i, n: bar.update(task, completed=i))
    paths = ev.write(report, out or Path(str(recommender).rstrip("/") + ".eval.json"))
    if not quiet:
        commands.console(stderr=False).print(ev.markdown(report))
        commands.console(stderr=False).print(f"[green]wrote[/] {paths['json']}, "
                                             f"{paths['markdown']}", markup=True)


def default_db(name: str) -> Path:
    return Path.cwd() / f"recommend-{name}.sqlite"


@command
def serve(
    recommender: Path = typer.Argument(..., help="recommender bundle (or a folder of versions)"),
    db: Optional[str] = typer.Option(None, "--db", help="database: a file (SQLite) or a "
                                     "postgresql:// URL [default: ./recommend-NAME.sqlite]"),
    host: str = typer.Option("127.0.0.1", help="non-loopback needs --api-keys or --insecure"),
    port: int = typer.Option(8000),
    api_keys: Optional[Path] = typer.Option(None, "--api-keys", help="JSON/YAML keys file "
                                            "(also RONGHE_API_KEYS)"),
    insecure: bool = typer.Option(False, "--insecure"),
    request_log: Optional[str] = typer.Option(None, "--request-log", help="a file, - or off"),
    option: list[str] = typer.Option([], "--option", help="serve option KEY=VALUE"),
    quiet: bool = QuietOpt,
):
    """Serve a recommender: /v1/recommend/{user}, /similar, /feedback, /items, on the same
    service as `ronghe serve` (keys, limits, metrics, hot reload)."""
    from ...serving.registry import parse_specs
    from ...serving.server import require_web_stack, run
    from ...store import as_url, safe_url
    from .storage import open_store

    require_web_stack()
    spec = parse_specs([str(recommender)])[0]
    options = commands.parse_options(option)
    if request_log is not None:
        options["request_log"] = request_log
    url = as_url(db) if db else as_url(default_db(spec.name))
    open_store(url).close()  # a bad URL or an unreachable database fails here, before loading
    if not quiet:
        commands.console().print(f"recommender '{spec.name}': records in {safe_url(url)}")
    # one worker: clicks and new items change the served model in memory (and are replayed
    # from the database when a version loads)
    options["apps"] = {"ronghe.apps.recommend.routes:install": {"model": spec.name, "db": url}}
    run([str(recommender)], host=host, port=port, api_keys=api_keys, workers=1,
        insecure=insecure, **options)
