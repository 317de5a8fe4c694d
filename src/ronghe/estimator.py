"""``Estimator``: what every task's user-facing model shares (``TextClassifier``,
``TokenClassifier`` ...), and ``load``, which rebuilds any of them from a bundle.

scikit-learn's contract: hyper-parameters are stored as given in ``__init__`` and checked in
``fit``; ``fit`` returns ``self``; learned state ends in ``_``; ``get_params``/``set_params``/
``clone`` work. ``None`` for a hyper-parameter means "the strategy's default" (see each strategy's
``Config``); strategy-specific knobs go in ``options``.

A subclass names its task (``task``), keeps its own ``__init__`` (the hyper-parameters users see)
and implements the few hooks where tasks differ: how inputs become the task's data set, what is
checked before training, which labels the strategy gets, and the validation metrics. Fitting,
the run directory, saving, loading and rebuilding around another fitted strategy (merged,
exported, compressed, distilled models) are here, once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from . import backbones, bundle, strategies, tasks
from .config import auto_batch_size, validate
from .errors import BundleError, ConfigError, NotFittedError, RongheError
from .log import info, warn


def _refits(config, inner, n: int) -> bool:
    """Whether ``fit`` trains again on all the data (``refit`` of the finetune-like strategies:
    on, off, or auto = under ``REFIT_AUTO_MAX`` examples) after a run that chose its epochs."""
    from .config import REFIT_AUTO_MAX

    mode = getattr(config, "refit", "off")
    if mode == "off" or not getattr(inner, "best_epoch", None):
        return False
    return mode == "on" or n < REFIT_AUTO_MAX


class Estimator(BaseEstimator):
    task: ClassVar[str]
    # get_params() names that are not strategy config fields
    not_config: ClassVar[tuple[str, ...]] = ("strategy", "options", "run_dir")

    def _keep_params(self, given: dict) -> None:
        """What a subclass's ``__init__`` does, and all it does: store every hyper-parameter of
        its signature as given (``self._keep_params(locals())``), unchecked, as scikit-learn
        wants (``get_params`` reads the same signature)."""
        for name in self._get_param_names():
            setattr(self, name, given[name])

    # -- the task and the strategy ----------------------------------------------------------

    @classmethod
    def task_spec(cls) -> tasks.Task:
        return tasks.get(cls.task)

    def strategy_class(self) -> type[strategies.Strategy]:
        return strategies.get(self.strategy, self.task)

    def resolved_config(self):
        """The strategy's validated config built from these hyper-parameters."""
        cls = self.strategy_class()
        values = {k: v for k, v in self.get_params().items()
                  if k not in self.not_config and v is not None}
        values.update(self._config_values(cls))
        values.update(self.options or {})
        return validate(cls.Config, values, self.strategy)

    def default_run_dir(self, out: str | Path) -> Path | None:
        """Where ``ronghe train --out OUT`` keeps checkpoints and metrics: ``OUT.run`` for
        strategies that train a network, none for the others."""
        if self.run_dir:
            return Path(self.run_dir)
        return Path(str(out).rstrip("/") + ".run") if self.strategy_class().trains_network else None

    # -- hooks: what differs between tasks ----------------------------------------------------

    def _config_values(self, cls) -> dict[str, Any]:
        """Config values derived from hyper-parameters that are not plain config fields."""
        return {}

    def _as_data(self, X, y=None, *, role: str, labeled: bool = True):
        """Whatever a user passes (lists, frames, files, the task's data set) as the data set."""
        raise NotImplementedError

    def _valid_from_y(self, y, valid):
        """``fit(train, valid_set)``: a data set passed as ``y`` is the validation data."""
        return y, valid

    def _check_train(self, train, cls) -> None:
        raise NotImplementedError

    def _check_valid(self, train, valid, strict: bool = True) -> None:
        """Validation (or, not ``strict``, evaluation) data against the training data."""
        raise NotImplementedError

    def _strategy_labels(self, train) -> list:
        """The label list a fresh strategy is built with."""
        raise NotImplementedError

    def _set_labels(self, inner) -> None:
        """``classes_`` (and anything else label-like) from a fitted strategy."""
        raise NotImplementedError

    def _describe(self, train, valid) -> str:
        raise NotImplementedError

    def _data_record(self, train, valid) -> dict:
        return {"fingerprint": train.fingerprint(), "n_train": len(train), "n_valid": len(valid),
                "source": train.source, "valid_fingerprint": valid.fingerprint(),
                "notes": train.notes + [n for n in valid.notes if n not in train.notes]}

    def _valid_metrics(self, valid) -> dict:
        raise NotImplementedError

    def _check_outputs(self) -> None:
        """Run the rebuilt model once on a tiny input and check its outputs fit its labels (a
        loaded bundle whose manifest and weights disagree is refused, not served)."""
        raise NotImplementedError

    # -- fitting --------------------------------------------------------------------------------

    def fit(self, X, y=None, valid=None, *, resume: bool = False, callbacks: list | None = None):
        """Fit on training data ``X`` (with labels ``y`` where ``X`` is bare inputs).

        Validation data (``valid``, or a data set passed as the second argument) selects
        hyper-parameters and the stopping epoch; without it a seeded share of the training data
        (``valid_fraction``) is held out. With ``run_dir`` set, network strategies write
        checkpoints, ``metrics.csv`` and TensorBoard events there, and ``resume=True`` continues
        from its last checkpoint. ``callbacks`` are extra training-loop callbacks.
        """
        y, valid = self._valid_from_y(y, valid)
        cls = self.strategy_class()
        config = self.resolved_config()
        train = self._as_data(X, y, role="training data")
        self._check_train(train, cls)
        everything = None  # all the training data, when part of it is held out here
        if valid is None:
            everything = train
            train, valid = self.task_spec().split(train, config.valid_fraction, config.seed)
        else:
            valid = self._as_data(valid, role="validation data")
            self._check_valid(train, valid)
        if resume and not self.run_dir:
            raise ConfigError("resume needs the run directory of the interrupted run "
                              "(run_dir / --run-dir)")
        if cls.small_data_batch and not self._batch_given():
            config = config.model_copy(update={"batch_size": auto_batch_size(len(train))})
            info("batch_size %d (chosen for %d training examples; give batch_size to set it)",
                 config.batch_size, len(train))
        backbone = backbones.resolve(config.model) if cls.uses_backbone else None
        info("training %s", self._describe(train, valid))
        context = strategies.TrainContext(Path(self.run_dir) if self.run_dir else None, resume,
                                          list(callbacks or []))
        start = time.perf_counter()
        inner = cls(config, self._strategy_labels(train), backbone, context).fit(train, valid)
        self._set_fitted(inner, backbone)
        self.data_ = self._data_record(train, valid)
        scores = self._valid_metrics(valid)  # before a refit: the only unseen-data estimate
        history, refit = inner.history, None
        if everything is not None and _refits(config, inner, len(everything)):
            refit = self._refit(cls, config, inner, everything, valid, backbone, context)
            inner = self.strategy_
        self.train_seconds_ = time.perf_counter() - start
        self.metrics_ = {"valid": scores, "train_seconds": round(self.train_seconds_, 2),
                         "history": history, **inner.report}
        if refit is not None:
            self.metrics_["refit"] = refit
        problems = self._fit_warnings(scores, inner)
        if problems:  # kept in the manifest and said loudly; the model is still saved
            self.metrics_["warnings"] = problems
            for p in problems:
                warn("%s", p)
        return self

    def _batch_given(self) -> bool:
        return (self.get_params().get("batch_size") is not None
                or "batch_size" in (self.options or {}))

    def _refit(self, cls, config, first, everything, valid, backbone, context) -> dict:
        """Train a fresh model on ``everything`` (the held-out part included) for the epoch count
        the first run's validation chose, keeping its last epoch; it replaces the fitted model.
        The validation scores stay the first run's (the refit has seen those examples)."""
        epochs = first.best_epoch
        info("refit: training again on all %d examples for %d epoch(s), the count validation "
             "chose (refit=%s; --option refit=off skips it)", len(everything), epochs, config.refit)
        again = config.model_copy(update={"epochs": epochs, "keep": "last", "patience": epochs})
        run_dir = context.run_dir / "refit" if context.run_dir else None
        t0 = time.perf_counter()
        # no extra callbacks: they follow the first run's validation (e.g. pruning a trial)
        inner = cls(again, self._strategy_labels(everything), backbone,
                    strategies.TrainContext(run_dir, context.resume)).fit(everything, valid)
        self._set_fitted(inner, backbone)
        self.data_ = {**self._data_record(everything, valid), "valid_seen_in_refit": True}
        return {"epochs": epochs, "examples": len(everything), "seconds":
                round(time.perf_counter() - t0, 2), "history": inner.history,
                "note": "metrics.valid and metrics.history are the first run's, on held-out "
                        "examples; this run trained on them too, so its own validation "
                        "scores (history here) are on seen examples"}

    def _fit_warnings(self, scores: dict, inner) -> list[str]:
        """What is wrong with a fitted model that fit() must not pass over silently (a model
        that predicts one class, or no entity, on validation); each warning names the likely
        causes and the options to try. Tasks override."""
        return []

    @staticmethod
    def _collapse_hints(inner, n_train: int) -> str:
        """Likely causes and what to try, for a collapsed fit of ``inner``."""
        c = inner.config
        if not getattr(inner, "trains_network", False):
            return ("Likely causes: too few examples per label, or labels the inputs do not "
                    "predict. Try more training data, or check the labels.")
        steps = getattr(c, "epochs", 1) * -(-n_train // max(getattr(c, "batch_size", 1), 1))
        return (f"Likely causes: too few optimiser steps ({steps}: {getattr(c, 'epochs', '?')} "
                f"epoch(s) x {n_train} examples / batch {getattr(c, 'batch_size', '?')}), a learning "
                f"rate too low or too high for this backbone (encoder "
                f"{getattr(c, 'learning_rate', '?')}), or too few examples of the rare labels. "
                "Try: --epochs 3 or more, --learning-rate 1e-4 (or 2e-5), --option "
                "head_learning_rate=5e-3, another --model, and compare with --strategy classic.")

    def _set_fitted(self, inner, backbone) -> None:
        self.strategy_ = inner
        self.config_ = inner.config
        self.backbone_ = backbone
        self._set_labels(inner)

    def _check_fitted(self):
        if not hasattr(self, "strategy_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit() or "
                                 "ronghe.load()")

    # -- rebuilding around a fitted strategy ------------------------------------------------------

    @classmethod
    def from_strategy(cls, inner, params: dict | None = None, *, backbone=None,
                      data: dict | None = None, metrics: dict | None = None,
                      compression: dict | None = None, train_seconds: float | None = None):
        """A fitted estimator around a fitted strategy (loading, distillation, bench fusion)."""
        est = cls(**(params or {"strategy": inner.name}))
        est._set_fitted(inner, backbone if backbone is not None else inner.backbone)
        est.data_ = dict(data or {})
        est.metrics_ = dict(metrics or {})
        if train_seconds is not None:
            est.train_seconds_ = train_seconds
        if compression is not None:
            est.compression_ = compression
        return est

    def with_strategy(self, inner, params: dict | None = None, **changes):
        """This fitted estimator around another fitted strategy (merged, exported or compressed
        from it): the same labels, backbone record, data and metrics; hyper-parameters as here
        with ``strategy`` set to the new one's (or ``params``), updated by ``changes``."""
        self._check_fitted()
        params = params or {**self.get_params(), "strategy": inner.name, "options": None}
        return type(self).from_strategy(inner, {**params, **changes}, backbone=self.backbone_,
                                        data=self.data_, metrics=self.metrics_,
                                        train_seconds=getattr(self, "train_seconds_", None))

    # -- persistence ----------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the bundle folder atomically; returns its path."""
        self._check_fitted()
        header = {
            "task": self.task,
            "strategy": self.strategy,
            "labels": [c.item() if hasattr(c, "item") else c for c in self.classes_],
            "backbone": self.backbone_.to_json() if self.backbone_ else None,
            "config": self.config_.model_dump(mode="json"),
            "params": {k: (str(v) if isinstance(v, Path) else v)
                       for k, v in self.get_params().items()},
            "metrics": self.metrics_,
            "data": self.data_,
            "compression": getattr(self, "compression_", None),
        }
        return bundle.save(path, header, self.strategy_.to_state())


def label_array(labels) -> np.ndarray:
    """Class labels as the array ``classes_`` holds (strings as objects, integers as integers)."""
    labels = list(labels)
    return np.array(labels, dtype=object if labels and isinstance(labels[0], str) else None)


def load(path: str | Path, expect: type[Estimator] | None = None) -> Estimator:
    """Rebuild the fitted estimator a bundle folder holds, whatever its task (no pickle, no
    remote code). ``expect`` refuses a bundle of another estimator class with a clear message."""
    reader = bundle.open_bundle(path)
    m = reader.manifest
    cls = tasks.get(m.task).estimator_class()
    if expect is not None and not issubclass(cls, expect):
        raise ConfigError(f"{path} holds a '{m.task}' model; {expect.__name__} loads "
                          f"'{expect.task}' bundles (ronghe.load reads any)")
    try:
        inner = strategies.from_bundle(reader)
    except RongheError:
        raise
    except (KeyError, IndexError, ValueError, TypeError, AttributeError, RuntimeError) as e:
        raise BundleError(f"bundle {reader.root}: its '{m.strategy}' model cannot be rebuilt from "
                          f"{bundle.MANIFEST} and its files ({_reason(e)}); the bundle is damaged "
                          "or was edited. Save it again from the original model.") from None
    est = cls.from_strategy(inner, getattr(m, "params", None) or {"strategy": m.strategy},
                            backbone=inner.backbone or backbones.from_json(m.backbone_json()),
                            data=m.data, metrics=m.metrics, compression=m.compression)
    est.bundle_path_ = reader.root
    est.manifest_ = m
    try:
        est._check_outputs()
    except RongheError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever a damaged model does, it is a bad bundle
        raise BundleError(f"bundle {reader.root}: the rebuilt '{m.strategy}' model does not run "
                          f"({_reason(e)}); {bundle.MANIFEST}'s labels, state or config do not fit "
                          "its weights. Save it again from the original model.") from None
    return est


def _reason(e: Exception) -> str:
    if isinstance(e, KeyError):
        return f"missing entry {e}"
    return f"{type(e).__name__}: {str(e)[:300]}"
