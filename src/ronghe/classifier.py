"""``TextClassifier``: the estimator users hold, whatever strategy is inside.

Follows scikit-learn's contract: hyper-parameters are stored as given in ``__init__`` and checked
in ``fit``; ``fit`` returns ``self``; learned state ends in ``_``; ``get_params``/``set_params``/
``clone`` work. ``None`` for a hyper-parameter means "the strategy's default" (see each strategy's
``Config``); strategy-specific knobs go in ``options``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from . import backbones, bundle, data, strategies
from .config import validate
from .errors import ConfigError, DataError, NotFittedError
from .log import info

TASK = "text-classification"


def _as_dataset(X, y=None, *, role: str, require_labels: bool = True,
                feature_cols=None) -> data.Dataset:
    if isinstance(X, data.Dataset):
        return X
    if isinstance(X, pd.DataFrame):
        if y is not None:
            raise DataError(f"{role}: pass either a DataFrame with a label column or texts and "
                            "labels, not a DataFrame and labels")
        return data.from_frame(X, require_labels=require_labels, feature_cols=feature_cols)
    if isinstance(X, (str, Path)) and Path(X).suffix:
        return data.load(X, require_labels=require_labels, feature_cols=feature_cols)
    if isinstance(X, str):
        raise DataError(f"{role}: expected a list of texts, got a single string")
    return data.from_texts(list(X), None if y is None else list(y))


class TextClassifier(ClassifierMixin, BaseEstimator):
    """Text classification with a pretrained backbone, a classic model, or both.

    >>> clf = TextClassifier(strategy="finetune", model="minilm", epochs=3).fit(train_df, valid_df)
    >>> clf.predict(["what a fine film"]); clf.save("my-model")
    """

    def __init__(self, strategy: str = "finetune", model: str | None = None, *,
                 epochs: int | None = None, batch_size: int | None = None,
                 learning_rate: float | None = None, max_length: int | None = None,
                 seed: int | None = None, valid_fraction: float | None = None,
                 device: str | None = None, precision: str | None = None,
                 options: dict[str, Any] | None = None, run_dir: str | Path | None = None,
                 feature_cols: list[str] | None = None):
        self.strategy = strategy
        self.model = model
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_length = max_length
        self.seed = seed
        self.valid_fraction = valid_fraction
        self.device = device
        self.precision = precision
        self.options = options
        self.run_dir = run_dir
        self.feature_cols = feature_cols

    # -- configuration --------------------------------------------------------------------------

    def resolved_config(self):
        """The strategy's validated config built from these hyper-parameters."""
        cls = strategies.get(self.strategy)
        values = {k: v for k, v in self.get_params().items()
                  if k not in ("strategy", "options", "run_dir", "feature_cols") and v is not None}
        values.update(self.options or {})
        return validate(cls.Config, values, self.strategy)

    # -- fitting --------------------------------------------------------------------------------

    def fit(self, X, y=None, valid=None, *, resume: bool = False, callbacks: list | None = None):
        """Fit on ``X`` (texts with labels ``y``, a DataFrame, a ``Dataset`` or a data file).

        Validation data (``valid``, or a DataFrame/Dataset passed as the second argument) selects
        hyper-parameters and the stopping epoch; without it a seeded, stratified share of the
        training data (``valid_fraction``) is held out. With ``run_dir`` set, network strategies
        write checkpoints, ``metrics.csv`` and TensorBoard events there, and ``resume=True``
        continues from its last checkpoint. ``callbacks`` are extra training-loop callbacks.
        """
        if isinstance(y, (pd.DataFrame, data.Dataset)) and valid is None:
            y, valid = None, y
        cls = strategies.get(self.strategy)
        config = self.resolved_config()
        train = _as_dataset(X, y, role="training data", feature_cols=self.feature_cols)
        if train.features is not None and not cls.uses_features:
            raise ConfigError(f"strategy '{self.strategy}' uses text only; feature columns "
                              f"{list(train.features.columns)} need concat, stack or weighted")
        data.check_trainable(train)
        if valid is None:
            train, valid = data.split(train, config.valid_fraction, config.seed)
        else:
            valid = _as_dataset(valid, role="validation data", feature_cols=self.feature_cols)
            data.check_evaluation(train.classes, valid, "validation", train_texts=train.texts)
        classes = train.classes
        backbone = backbones.resolve(config.model) if cls.uses_backbone else None
        info("training %s on %d examples (%d classes), validating on %d", self.strategy,
             len(train), len(classes), len(valid))
        start = time.perf_counter()
        if resume and not self.run_dir:
            raise ConfigError("resume needs the run directory of the interrupted run (run_dir / --run-dir)")
        context = strategies.TrainContext(Path(self.run_dir) if self.run_dir else None, resume,
                                          list(callbacks or []))
        inner = cls(config, classes, backbone, context).fit(train, valid)
        self.train_seconds_ = time.perf_counter() - start
        self.strategy_ = inner
        self.config_ = config
        self.classes_ = np.array(classes, dtype=object if isinstance(classes[0], str) else None)
        self.backbone_ = backbone
        self.data_ = {"fingerprint": train.fingerprint(), "n_train": len(train),
                      "n_valid": len(valid), "source": train.source,
                      "valid_fingerprint": valid.fingerprint(), "notes": train.notes + valid.notes}
        from .tasks.text_classification import metrics

        self.metrics_ = {"valid": metrics(valid.labels, self.predict(valid), classes,
                                          brief=True),
                         "train_seconds": round(self.train_seconds_, 2),
                         "history": inner.history, **inner.report}
        return self

    # -- prediction -----------------------------------------------------------------------------

    def _check_fitted(self):
        if not hasattr(self, "strategy_"):
            raise NotFittedError("this TextClassifier is not fitted yet: call fit() or ronghe.load()")

    def _inputs(self, X) -> tuple[list[str], pd.DataFrame | None]:
        if isinstance(X, data.Dataset):
            return X.texts, X.features
        if isinstance(X, pd.DataFrame):
            ds = data.from_frame(X, require_labels=False, on_empty="keep",
                                 feature_cols=self.feature_cols)
            return ds.texts, ds.features
        if isinstance(X, str):
            raise DataError("expected a list of texts, got a single string; wrap it in a list")
        texts = list(X)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise DataError(f"texts must be strings; items {bad[:10]} are "
                            f"{sorted({type(texts[i]).__name__ for i in bad})}")
        return texts, None

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order. ``X``: a list of texts, or a
        DataFrame / ``Dataset`` (which also carries feature columns when the model uses them)."""
        self._check_fitted()
        texts, features = self._inputs(X)
        if not texts:
            return np.zeros((0, len(self.classes_)))
        if self.strategy_.uses_features:
            return self.strategy_.predict_proba(texts, features)
        return self.strategy_.predict_proba(texts)

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(1)]

    def evaluate(self, X, y=None) -> dict:
        """Full report on labeled data: accuracy, macro/weighted F1, per-class scores, confusion
        matrix. Labels the model never saw are reported and count as errors."""
        self._check_fitted()
        ds = _as_dataset(X, y, role="evaluation data", feature_cols=self.feature_cols)
        if ds.labels is None:
            raise DataError(f"{ds.source}: evaluation needs labels, but no label column was found")
        data.check_evaluation(list(self.classes_), ds, "evaluation", strict=False)
        from .tasks.text_classification import metrics

        report = metrics(ds.labels, self.predict(ds), list(self.classes_))
        report["notes"] = ds.notes
        return report

    def merged(self) -> "TextClassifier":
        """A parameter-efficient model (lora, adalora, ia3) as a plain ``finetune`` model with
        the adapter merged into full weights (``ronghe export --merge``)."""
        self._check_fitted()
        if not hasattr(self.strategy_, "to_finetune"):
            raise ConfigError(f"--merge applies to lora, adalora and ia3 bundles, not "
                              f"'{self.strategy}'")
        inner = self.strategy_.to_finetune()
        twin = TextClassifier(**{**self.get_params(), "strategy": "finetune", "options": None})
        for attr in ("classes_", "backbone_", "metrics_", "data_"):
            setattr(twin, attr, getattr(self, attr))
        twin.strategy_, twin.config_ = inner, inner.config
        twin.train_seconds_ = getattr(self, "train_seconds_", None)
        return twin

    # -- persistence ----------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the bundle folder atomically; returns its path."""
        self._check_fitted()
        header = {
            "task": TASK,
            "strategy": self.strategy,
            "labels": [c.item() if hasattr(c, "item") else c for c in self.classes_],
            "backbone": self.backbone_.to_json() if self.backbone_ else None,
            "config": self.config_.model_dump(mode="json"),
            "params": {k: v for k, v in self.get_params().items()},
            "metrics": self.metrics_,
            "data": self.data_,
            "compression": getattr(self, "compression_", None),
        }
        return bundle.save(path, header, self.strategy_.to_state())



def load(path: str | Path) -> TextClassifier:
    """Rebuild a fitted estimator from a bundle folder (no pickle, no remote code)."""
    reader = bundle.open_bundle(path)
    m = reader.manifest
    if m.task != TASK:
        raise ConfigError(f"{path} holds a '{m.task}' model; TextClassifier loads '{TASK}' bundles")
    inner = strategies.from_bundle(reader)
    params = getattr(m, "params", None) or {"strategy": m.strategy}
    clf = TextClassifier(**params)
    clf.strategy_ = inner
    clf.config_ = inner.config
    backbone = inner.backbone
    clf.classes_ = np.array(m.labels, dtype=object if isinstance(m.labels[0], str) else None)
    clf.backbone_ = backbone or backbones.from_json(m.backbone)
    clf.metrics_ = m.metrics
    clf.data_ = m.data
    clf.bundle_path_ = reader.root
    clf.compression_ = m.compression
    clf.manifest_ = m
    return clf
