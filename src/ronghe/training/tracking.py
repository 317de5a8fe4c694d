"""Experiment tracking: the run directory.

Every training run that is given a run directory records there: ``config.json`` (the resolved
configuration), ``metrics.csv`` (one row per logged step and per epoch), TensorBoard event files
under ``tensorboard/`` (through ``tensorboardX``, a small standalone writer), and - with
``report_to=["mlflow"]`` - the same parameters and metrics in a local MLflow store when mlflow is
installed.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..errors import ConfigError
from ..log import warn
from .callbacks import Callback

TEXT_SCORES = ("accuracy", "macro_f1")  # validation columns of text classification


def columns(scores=TEXT_SCORES) -> list[str]:
    """metrics.csv's columns: a fit's validation scores (``valid_<name>``) between the step
    fields and the time."""
    return (["kind", "epoch", "step", "train_loss", "learning_rate"]
            + [f"valid_{k}" for k in scores] + ["seconds"])


class Tracker(Callback):
    def __init__(self, run_dir: Path, config: dict, report_to: list[str], log_every: int = 10,
                 resume: bool = False, scores=TEXT_SCORES):
        self.run_dir = Path(run_dir)
        self.columns = columns(scores)
        self.config = config
        self.report_to = [r.lower() for r in report_to]
        unknown = set(self.report_to) - {"tensorboard", "mlflow", "none"}
        if unknown:
            raise ConfigError(f"report_to: unknown tracker(s) {sorted(unknown)}; "
                              "use tensorboard, mlflow or none")
        self.log_every = log_every
        self.resume = resume
        self._tb = None
        self._mlflow = None
        self._loss_sum = 0.0
        self._loss_n = 0

    def on_train_begin(self, loop):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(self.config, indent=2, default=str))
        path = self.run_dir / "metrics.csv"
        if not (self.resume and path.exists()):
            with open(path, "w", newline="") as fh:
                csv.writer(fh).writerow(self.columns)
        elif self.resume:  # drop rows logged after the checkpoint we resume from
            with open(path, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= loop.global_step]
            with open(path, "w", newline="") as fh:
                w = csv.DictWriter(fh, self.columns)
                w.writeheader()
                w.writerows(rows)
        if "tensorboard" in self.report_to:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                warn("tensorboardX is not installed; no TensorBoard events (pip install tensorboardX)")
            else:
                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"),
                                         purge_step=loop.global_step if self.resume else None)
        if "mlflow" in self.report_to:
            try:
                import mlflow
            except ImportError:
                raise ConfigError("--report-to mlflow needs mlflow: pip install mlflow") from None
            if mlflow.get_tracking_uri().startswith("file:") or not mlflow.get_tracking_uri():
                mlflow.set_tracking_uri((self.run_dir / "mlruns").resolve().as_uri())
            self._mlflow = mlflow
            mlflow.start_run(run_name=self.run_dir.name)
            mlflow.log_params({k: str(v)[:250] for k, v in self.config.items()})

    def _write(self, row: dict) -> None:
        with open(self.run_dir / "metrics.csv", "a", newline="") as fh:
            csv.DictWriter(fh, self.columns, extrasaction="ignore").writerow(row)

    def on_step_end(self, loop, loss):
        self._loss_sum += loss
        self._loss_n += 1
        if loop.global_step % self.log_every:
            return
        lr = loop.optimizer.param_groups[0]["lr"]
        mean = self._loss_sum / self._loss_n
        self._loss_sum, self._loss_n = 0.0, 0
        self._write({"kind": "step", "epoch": loop.epoch, "step": loop.global_step,
                     "train_loss": round(mean, 6), "learning_rate": lr,
                     "seconds": round(loop.elapsed(), 2)})
        if self._tb:
            self._tb.add_scalar("train/loss", mean, loop.global_step)
            self._tb.add_scalar("train/learning_rate", lr, loop.global_step)
        if self._mlflow:
            self._mlflow.log_metrics({"train_loss": mean, "learning_rate": lr}, step=loop.global_step)

    def on_epoch_end(self, loop, row):
        self._write({"kind": "epoch", "step": loop.global_step, **row})
        metrics = {k: v for k, v in row.items() if k.startswith(("valid_", "train_loss"))}
        if self._tb:
            for k, v in metrics.items():
                self._tb.add_scalar(k.replace("_", "/", 1), v, loop.global_step)
            self._tb.flush()
        if self._mlflow:
            self._mlflow.log_metrics(metrics, step=loop.global_step)

    def on_train_end(self, loop):
        if self._tb:
            self._tb.close()
        if self._mlflow:
            self._mlflow.end_run()


def run_callbacks(context, config, scores=TEXT_SCORES) -> list[Callback]:
    """A fit's callbacks: the caller's (``context.callbacks``) and, when the run has a directory,
    the ``Tracker`` that writes the resolved config, metrics.csv (with the validation ``scores``
    the fit reports) and TensorBoard events there."""
    from ..scale import distributed

    callbacks = list(context.callbacks)
    if context.run_dir is not None and distributed.is_main():  # one writer in a distributed run
        callbacks.append(Tracker(context.run_dir, config.model_dump(mode="json"), config.report_to,
                                 config.log_every, resume=context.resume, scores=scores))
    if distributed.in_ray_train():
        callbacks.append(distributed.RayReport())
    return callbacks
