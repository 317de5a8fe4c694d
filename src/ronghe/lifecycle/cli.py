"""``ronghe drift``, ``ronghe retrain``, ``ronghe adapt-domain``: top-level commands registered
on the main app by ``register(app)`` (one line at the end of ``ronghe/cli.py``).

Exit codes: 0 ok (no drift; no promotion needed), 1 drift found (for cron and CI), 2 bad input
(the message says what to fix). ``ronghe retrain`` exits 0 whether or not it promoted; the
decision is printed and recorded in the model history.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Optional

import typer

from .. import commands
from ..errors import ConfigError
from ..log import info, warn

QuietOpt = commands.QuietOpt


def _config(cls, options: list[str], **flags):
    from pydantic import ValidationError

    values = {**commands.parse_options(options, example="--option min_auc=0.65"),
              **{k: v for k, v in flags.items() if v is not None}}
    try:
        return cls.model_validate(values)
    except ValidationError as e:
        lines = [f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
        raise ConfigError("invalid option(s):\n  " + "\n  ".join(lines)) from None


def read_texts(estimator, path: Path, text_col=None, label_col=None):
    """A text file as a data set, with its labels when it has a label column (else without)."""
    from .. import data

    if estimator.task != "text-classification":
        raise ConfigError(f"drift and retraining take text-classification bundles; this one "
                          f"is {estimator.task}")
    df = data.read_table(str(path))
    try:
        data.detect_column(df, label_col, data.LABEL_CANDIDATES, "label", str(path))
        labeled = True
    except Exception:  # noqa: BLE001 - no label column: predictions only
        if label_col is not None:
            raise
        labeled = False
    return data.from_frame(df, text_col=text_col, label_col=label_col, require_labels=labeled,
                           on_empty="drop", source=str(path),
                           feature_cols=getattr(estimator, "feature_cols", None))


def check_drift(clf, bundle: Path, reference: Path, current: Optional[Path],
                from_db: Optional[str], cfg, *, model_name=None, since=None,
                embed_model="minilm", text_col=None, label_col=None) -> dict:
    """The drift report of ``clf`` (at ``bundle``): ``reference`` against the ``current`` file
    or what the prediction log ``from_db`` holds for the model (since ``since``)."""
    from . import drift as drift_mod

    ref = read_texts(clf, reference, text_col, label_col)
    if from_db is not None:
        from ..serving.predlog import PredictionLog
        from ..store import parse_since

        name = model_name or (bundle.parent.name if re.fullmatch(r"v\d+", bundle.name)
                              else bundle.name)
        plog = PredictionLog(from_db)
        rows = plog.read(name, since=parse_since(since))
        plog.close()
        logged = drift_mod.from_log(rows, f"prediction log of '{name}'")
        result = drift_mod.run(clf, ref, None, cfg, embed_model=embed_model, logged=logged)
        current = f"{from_db} (model {name}, since {since or 'the start'})"
    else:
        cur = read_texts(clf, current, text_col, label_col)
        result = drift_mod.run(clf, ref, cur, cfg, embed_model=embed_model)
    result["bundle"], result["reference"], result["current"] = (str(bundle), str(reference),
                                                                str(current))
    return result


def register(app: typer.Typer) -> None:
    command = commands.registrar(app)

    @command
    def drift(
        bundle: Path = typer.Argument(..., help="the deployed model's bundle folder"),
        reference: Path = typer.Option(..., "--reference", help="data the model is known to "
                                       "work on; with labels (its validation set) the accuracy "
                                       "is also estimated"),
        current: Optional[Path] = typer.Option(None, "--current", help="recent inputs (labels "
                                               "optional)"),
        from_db: Optional[str] = typer.Option(None, "--from-db", help="the prediction log "
                                              "(file or URL) instead of --current"),
        model_name: Optional[str] = typer.Option(None, "--model-name", help="--from-db: the "
                                                 "served name (default: the bundle's folder)"),
        since: Optional[str] = typer.Option(None, "--since", help="--from-db: e.g. 24h, 7d or "
                                            "2026-12-01T00:00Z"),
        out: Optional[Path] = typer.Option(None, "--out", help="write OUT.json and OUT.html "
                                           "(report with plots)"),
        min_samples: Optional[int] = typer.Option(None, help="refuse below this many items "
                                                  "per sample (default 100)"),
        test: Optional[str] = typer.Option(None, "--test", help="input test that decides: c2st "
                                           "(default) or mmd; both are reported"),
        embed_model: str = typer.Option("minilm", help="embeddings for models without their "
                                        "own encoder (classic)"),
        text_col: Optional[str] = typer.Option(None, help="text column"),
        label_col: Optional[str] = typer.Option(None, help="label column"),
        option: list[str] = typer.Option([], "--option", "-o", help="KEY=VALUE of the drift "
                                         "config (alpha, min_auc, min_cramers_v, ...)"),
        quiet: bool = QuietOpt,
    ):
        """Has the data drifted from the reference? Input, prediction, confidence and estimated
        accuracy; exit code 1 when drift is found."""
        from .. import load
        from . import drift as drift_mod
        from . import report as report_mod

        cfg = _config(drift_mod.DriftConfig, option, min_samples=min_samples, input_test=test)
        if (current is None) == (from_db is None):
            raise ConfigError("give the recent data with --current FILE, or --from-db DB to "
                              "check what `ronghe serve --option prediction_log=DB` logged")
        result = check_drift(load(bundle), bundle, reference, current, from_db, cfg,
                             model_name=model_name, since=since, embed_model=embed_model,
                             text_col=text_col, label_col=label_col)
        public = drift_mod.public(result)
        if out:
            base = out.with_suffix("") if out.suffix in (".json", ".html") else out
            base.parent.mkdir(parents=True, exist_ok=True)
            tmp = base.with_name("." + base.name + ".json.tmp")
            tmp.write_text(json.dumps(public, indent=2, default=str), encoding="utf-8")
            tmp.replace(base.with_suffix(".json"))
            report_mod.write(result, base.with_suffix(".html"))
            if not quiet:
                commands.console().print(f"[green]wrote[/] {base}.json, {base}.html")
        if quiet:
            sys.stdout.write(json.dumps(public, default=str) + "\n")
        else:
            _print_drift(public)
        if result["verdict"] == "drift":
            raise typer.Exit(1)

    @command
    def retrain(
        champion: Path = typer.Argument(..., help="the model in service: a folder of versions "
                                        "(what `ronghe serve` serves) or one bundle"),
        new: Optional[Path] = typer.Option(None, "--new", help="new labelled data, oldest row "
                                           "first (its newest rows are held out for the gate)"),
        out: Optional[Path] = typer.Option(None, "--out", help="folder of versions to promote "
                                           "into (default: CHAMPION when it is one)"),
        keep_old: Optional[Path] = typer.Option(None, "--keep-old", help="old training data to "
                                                "train the challenger on as well"),
        old_valid: Optional[Path] = typer.Option(None, "--old-valid", help="old validation data "
                                                 "for the forgetting gate (default: a 20% "
                                                 "split of --keep-old)"),
        no_old_gate: bool = typer.Option(False, "--no-old-gate", help="allow promotion without "
                                         "checking old validation data"),
        init_from: bool = typer.Option(False, "--init-from", help="start from the champion's "
                                       "fine-tuned encoder (finetune models)"),
        db: Optional[str] = typer.Option(None, "--db", help="model history database (file or "
                                         "URL; default OUT/history.sqlite)"),
        holdout: Optional[float] = typer.Option(None, help="newest share of --new held out "
                                                "(default 0.2)"),
        margin: Optional[float] = typer.Option(None, help="accuracy gain required (default 0)"),
        watch: Optional[Path] = typer.Option(None, "--watch", help="retrain whenever a new "
                                             "labelled file appears in this folder"),
        interval: float = typer.Option(30.0, help="--watch: seconds between looks"),
        once: bool = typer.Option(False, "--once", help="--watch: handle the files present "
                                  "now, then stop"),
        drift_reference: Optional[Path] = typer.Option(None, "--drift-reference", help="--watch: "
                                                       "also check drift against this data and "
                                                       "retrain on every labelled file in DIR "
                                                       "when it is found"),
        drift_current: Optional[Path] = typer.Option(None, "--drift-current", help="--watch: "
                                                     "recent inputs for the drift check"),
        drift_db: Optional[str] = typer.Option(None, "--drift-db", help="--watch: the "
                                               "prediction log for the drift check"),
        drift_since: str = typer.Option("24h", help="--drift-db: window checked"),
        drift_every: float = typer.Option(3600.0, help="--watch: seconds between drift checks"),
        text_col: Optional[str] = typer.Option(None, help="text column"),
        label_col: Optional[str] = typer.Option(None, help="label column"),
        option: list[str] = typer.Option([], "--option", "-o", help="KEY=VALUE of the retrain "
                                         "config (alpha, max_forgetting, min_holdout, ...)"),
        quiet: bool = QuietOpt,
    ):
        """Train a challenger on new labelled data and promote it only if it beats the champion
        on the newest held-out data (McNemar) without forgetting the old validation data."""
        from .. import data, load
        from . import history
        from . import retrain as rt

        cfg = _config(rt.RetrainConfig, option, holdout=holdout, margin=margin,
                      init_from=init_from or None)
        if (new is None) == (watch is None):
            raise ConfigError("give either --new FILE (one retraining) or --watch DIR (retrain "
                              "on each new file)")
        _, bundle_path = rt.current_version(champion)
        probe = load(bundle_path)
        read = lambda p: read_texts(probe, p, text_col, label_col)  # noqa: E731
        old = read(keep_old) if keep_old else None
        old_v = read(old_valid) if old_valid else None
        if old_v is None and old is not None:
            old, old_v = data.split(old, 0.2, cfg.seed)
        if old_v is None and not no_old_gate:
            raise ConfigError("the forgetting gate needs old validation data: give --old-valid "
                              "FILE (or --keep-old FILE, split 80/20), or --no-old-gate")
        target = out or champion
        store = history.open_store(db or (Path(target) / "history.sqlite"))

        def step(path: Path) -> dict:
            decision = rt.retrain(champion, read(path), out=out,
                                  keep_old=old, old_valid=old_v, config=cfg, store=store,
                                  new_sha256=rt.file_sha256(path))
            _print_decision(decision, quiet)
            return decision

        if new is not None:
            step(new)
            return
        on_look = None
        if drift_reference is not None:
            if (drift_current is None) == (drift_db is None):
                raise ConfigError("--drift-reference needs the recent inputs: --drift-current "
                                  "FILE or --drift-db DB (the prediction log)")
            on_look = _drift_trigger(champion, out, read, old, old_v, cfg, store, quiet,
                                     every=drift_every, reference=drift_reference,
                                     current=drift_current, from_db=drift_db, since=drift_since,
                                     text_col=text_col, label_col=label_col)
        rt.watch(watch, step, store, interval=interval, once=once, on_look=on_look)

    @command
    def adapt_domain(
        unlabeled: Path = typer.Argument(..., help="in-domain texts: .txt (one per line) or a "
                                         "table with a text column"),
        model: str = typer.Option("minilm", "--model", help="the backbone to adapt"),
        out: Path = typer.Option(..., "--out", help="folder for the adapted backbone (give it "
                                 "to --model later)"),
        epochs: Optional[int] = typer.Option(None, help="passes over the texts (default 1)"),
        learning_rate: Optional[float] = typer.Option(None, help="default 5e-5"),
        option: list[str] = typer.Option([], "--option", "-o", help="KEY=VALUE: batch_size, "
                                         "max_length, mlm_probability, anchor, "
                                         "head_warmup_steps, checkpoint_every, ..."),
        run_dir: Optional[Path] = typer.Option(None, help="checkpoints, metrics.csv, TensorBoard "
                                               "events (as for train)"),
        resume: bool = typer.Option(False, "--resume", help="continue from the checkpoint in "
                                    "--run-dir"),
        report_to: Optional[str] = typer.Option(None, help="comma-separated: tensorboard, "
                                                "mlflow, none"),
        quiet: bool = QuietOpt,
    ):
        """Domain-adaptive pretraining: continue the backbone's masked-LM training on unlabelled
        in-domain text; writes a backbone folder that --model accepts."""
        from .adapt import AdaptConfig, adapt
        from .selftrain import read_unlabeled

        cfg = _config(AdaptConfig, option, epochs=epochs, learning_rate=learning_rate)
        trackers = [r.strip() for r in (report_to or "").split(",") if r.strip() not in ("", "none")]
        report = adapt(read_unlabeled(unlabeled), out, model, cfg, run_dir=run_dir, resume=resume,
                       report_to=trackers)
        if quiet:
            sys.stdout.write(json.dumps(report) + "\n")
        else:
            commands.console(stderr=False).print(
                f"[green]wrote[/] {out}: masked-LM loss on held-out texts "
                f"{report['mlm_loss_before']} -> {report['mlm_loss_after']} "
                f"({report['steps']} steps, {report['seconds']} s); sentence embeddings kept "
                f"{report['embedding_cosine_to_original']} cosine to the original's; use it "
                f"with --model {out}")


def _drift_trigger(champion: Path, out, read, old, old_v, cfg, store, quiet: bool, *,
                   every: float, reference: Path, current, from_db, since, text_col, label_col):
    """``on_look(files)`` for ``retrain --watch``: every ``every`` seconds, check the served
    version for drift; when found, train a challenger on all labelled files in the folder
    together (oldest first: the newest file's last rows are the held-out slice) through the same
    gate. Once per drift episode: not again until the files or the served version change."""
    import time

    from .. import load
    from . import drift as drift_mod
    from . import retrain as rt

    state = {"last": float("-inf"), "done": None}

    def served() -> tuple:
        """What is served now: the newest version in OUT, or the champion before OUT has one."""
        if out is not None:
            try:
                return rt.current_version(out)
            except ConfigError:  # no version promoted into OUT yet
                pass
        return rt.current_version(champion)

    def on_look(files: list[Path]) -> None:
        if time.monotonic() - state["last"] < every:
            return
        state["last"] = time.monotonic()
        version, bundle_path = served()
        key = (version, tuple(rt.file_sha256(f) for f in files))
        if key == state["done"]:
            return
        r = check_drift(load(bundle_path), bundle_path, reference, current, from_db,
                        drift_mod.DriftConfig(), since=since, text_col=text_col,
                        label_col=label_col)
        if r["verdict"] != "drift":
            info("drift check of %s: no drift", version or bundle_path)
            return
        fired = sorted(k for k, c in r["checks"].items() if c.get("drift"))
        if not files:
            warn("drift found (%s) but no labelled file in the folder to retrain on: label "
                 "recent inputs and put them there", ", ".join(fired))
            return
        new = rt.concat([read(f) for f in files], "labelled files in the watched folder")
        decision = rt.retrain(champion, new, out=out, keep_old=old, old_valid=old_v,
                              config=cfg, store=store,
                              extra={"trigger": "drift", "drift_checks": fired,
                                     "files": [f.name for f in files]})
        _print_decision(decision, quiet)
        state["done"] = (served()[0], key[1])

    return on_look


def _print_decision(d: dict, quiet: bool) -> None:
    if quiet:
        sys.stdout.write(json.dumps(d, default=str) + "\n")
        return
    con = commands.console(stderr=False)
    head = (f"[bold green]PROMOTED[/] {d['challenger']}" if d["decision"] == "promoted"
            else f"[bold yellow]KEPT[/] champion {d['champion']}")
    con.print(f"{head} - {d['model']}: newest {d['holdout_n']} items: champion "
              f"{d['champion_accuracy']:.4f}, challenger {d['challenger_accuracy']:.4f} "
              f"(gain {d['gain']:+.4f}, McNemar p={d['mcnemar']['p_value']:.3g})"
              + (f"; old validation {d['champion_old_accuracy']:.4f} -> "
                 f"{d['challenger_old_accuracy']:.4f}" if d.get("old_valid_n") else ""))
    for r in d["reasons"]:
        con.print(f"  - {r}")
    if d.get("history_id"):
        con.print(f"  recorded as model-history entry {d['history_id']}")


def _print_drift(r: dict) -> None:
    from rich.table import Table

    t = Table(title=f"drift: {r['verdict'].upper()} ({r['n_reference']} reference vs "
                    f"{r['n_current']} current)")
    for col in ("check", "test", "p-value", "effect", "threshold", "verdict"):
        t.add_column(col, justify="left" if col in ("check", "test") else "right")
    for name, ch in r["checks"].items():
        if ch.get("effect") is None:
            t.add_row(name, ch.get("method", ""), "", "", "", ch.get("note", "")[:60])
            continue
        p = ch.get("p_value")
        t.add_row(name, str(ch.get("test", ch.get("method"))), "" if p is None else f"{p:.3g}",
                  f"{ch['effect']:.4f}", f"{ch['threshold']:.4f}",
                  "[bold red]DRIFT[/]" if ch["drift"] else "ok")
    con = commands.console(stderr=False)
    con.print(t)
    acc = r["checks"]["accuracy"]
    if acc.get("estimated_current") is not None:
        con.print(f"accuracy: reference {acc['reference_accuracy']:.3f}, estimated now "
                  f"{acc['estimated_current']:.3f} +- {2 * acc['se']:.3f}"
                  + (f", measured now {acc['true_current']:.3f}"
                     if acc.get("true_current") is not None else ""))
    for n in r["notes"]:
        con.print(f"note: {n}")
