"""``TextClassifier``: the text-classification estimator users hold, whatever strategy is inside.

The shared estimator plumbing (fit, save, load, the scikit-learn contract) is ``estimator.py``;
this file holds what is text classification's own: its hyper-parameters, how texts, frames and
files become a ``data.Dataset``, the checks before training, probabilities and evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin

from . import data
from .errors import BundleError, ConfigError, DataError
from .estimator import Estimator, label_array
from .estimator import load as load_any
from .log import warn
from .tasks.text_classification import label_key, metrics, records


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


class Classifier(ClassifierMixin, Estimator):
    """What every classification task's estimator shares (text, images): one label per input,
    ``classes_``, probabilities, the evaluation report, prediction records and the collapse
    check. A subclass says how inputs become its data set (``_as_data``, ``_inputs``) and what
    a record calls its input (``input_key``)."""

    input_key: ClassVar[str] = "text"  # what a prediction record calls its input
    input_noun: ClassVar[str] = "texts"  # and what messages call the inputs

    def _inputs(self, X) -> tuple[list, "pd.DataFrame | None"]:
        """The model inputs of ``X`` and its feature columns (or ``None``)."""
        raise NotImplementedError

    def _strategy_labels(self, train: Any) -> list:
        return train.classes

    def _set_labels(self, inner) -> None:
        self.classes_ = label_array(inner.classes)

    def _describe(self, train, valid) -> str:
        return (f"{self.strategy} on {len(train)} {self.input_noun} ({len(train.classes)} "
                f"classes), validating on {len(valid)}")

    def _valid_metrics(self, valid: Any) -> dict:
        pred = self.predict(valid)
        out = metrics(valid.labels, pred, list(self.classes_), brief=True)
        out["predicted_classes"] = len({label_key(p) for p in pred})
        out["gold_classes"] = len({label_key(y) for y in valid.labels})
        return out

    def _fit_warnings(self, scores: dict, inner) -> list[str]:
        n_gold = scores.get("gold_classes", 0)
        if scores.get("predicted_classes", 2) > 1 or n_gold < 2:
            return []
        return [f"the model predicts one class for every validation example ({scores['n']} "
                f"examples of {n_gold} classes): validation macro-F1 "
                f"{scores.get('macro_f1', 0):.3f}. "
                + self._collapse_hints(inner, self.data_.get("n_train", 0))]

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order. ``X``: a list of inputs (texts,
        images), or a data set / DataFrame (which also carries feature columns when the model
        uses them)."""
        self._check_fitted()
        inputs, features = self._inputs(X)
        if not len(inputs):
            return np.zeros((0, len(self.classes_)))
        if self.strategy_.uses_features:
            return self.strategy_.predict_proba(inputs, features)
        return self.strategy_.predict_proba(inputs)

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(1)]

    def evaluate(self, X, y=None) -> dict:
        """Full report on labeled data: accuracy, macro/weighted F1, per-class scores, confusion
        matrix. Labels the model never saw are reported and count as errors."""
        self._check_fitted()
        ds = self._as_data(X, y, role="evaluation data")
        if ds.labels is None:
            raise DataError(f"{ds.source}: evaluation needs labels, but no label column was found")
        data.check_evaluation(list(self.classes_), ds, "evaluation", strict=False)
        proba = self.predict_proba(ds)
        report = metrics(ds.labels, self.classes_[proba.argmax(1)], list(self.classes_))
        report.update(self._report_extras(ds, proba))
        report["notes"] = ds.notes
        return report

    def _report_extras(self, ds, proba: np.ndarray) -> dict:
        """Task-specific additions to the evaluation report (images: the confident mistakes)."""
        return {}

    def predict_records(self, X) -> list[dict]:
        """One JSON-ready record per input: ``row`` (a data file's own 1-based row numbers;
        else the position), the input (``text``, ``path`` ...), ``label``, ``score`` and all
        class ``probabilities``."""
        self._check_fitted()
        inputs, _ = self._inputs(X)
        rows = getattr(X, "rows", None)  # a data set's own row numbers
        rows = rows if isinstance(rows, list) and rows else range(1, len(inputs) + 1)
        recs = records(self.classes_, self.predict_proba(X))
        return [{"row": r, self.input_key: self._shown(x), **rec}
                for r, x, rec in zip(rows, inputs, recs)]

    def _shown(self, x):
        """An input as its prediction record shows it."""
        return x


class TextClassifier(Classifier):
    """Text classification with a pretrained backbone, a classic model, or both.

    >>> clf = TextClassifier(strategy="finetune", model="minilm", epochs=3).fit(train_df, valid_df)
    >>> clf.predict(["what a fine film"]); clf.save("my-model")
    """

    task = "text-classification"
    not_config = ("strategy", "options", "run_dir", "feature_cols")

    def __init__(self, strategy: str = "finetune", model: str | None = None, *,
                 epochs: int | None = None, batch_size: int | None = None,
                 learning_rate: float | None = None, max_length: int | None = None,
                 seed: int | None = None, valid_fraction: float | None = None,
                 device: str | None = None, precision: str | None = None,
                 options: dict[str, Any] | None = None, run_dir: str | Path | None = None,
                 feature_cols: list[str] | None = None):
        self._keep_params(locals())

    # -- the task's hooks (see ``Estimator``) -------------------------------------------------

    def _as_data(self, X, y=None, *, role: str, labeled: bool = True) -> data.Dataset:
        return _as_dataset(X, y, role=role, require_labels=labeled, feature_cols=self.feature_cols)

    def _valid_from_y(self, y, valid):
        if isinstance(y, (pd.DataFrame, data.Dataset)) and valid is None:
            return None, y
        return y, valid

    def _check_train(self, train: data.Dataset, cls) -> None:
        if train.features is not None and not cls.uses_features:
            raise ConfigError(f"strategy '{self.strategy}' uses text only; feature columns "
                              f"{list(train.features.columns)} need concat, stack or weighted")
        data.check_trainable(train)

    def _check_valid(self, train: data.Dataset, valid: data.Dataset, strict: bool = True) -> None:
        data.check_evaluation(train.classes, valid, "validation" if strict else "evaluation",
                              train_texts=train.texts, strict=strict)

    def _check_outputs(self) -> None:
        if self.feature_cols:  # a prediction needs real values of the tabular columns: not run
            return
        n = self.predict_proba(["ronghe checks a loaded model with this text"]).shape[1]
        if n != len(self.classes_):
            raise BundleError(f"the model has {n} outputs but its manifest's 'labels' list "
                              f"{len(self.classes_)} classes")

    # -- prediction -----------------------------------------------------------------------------

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
        long_note = data.long_texts(texts, "the input")
        if long_note:
            warn("%s", long_note)
        return texts, None

    def merged(self) -> "TextClassifier":
        """A parameter-efficient model (lora, adalora, ia3) as a plain ``finetune`` model with
        the adapter merged into full weights (``ronghe export --merge``)."""
        self._check_fitted()
        if not hasattr(self.strategy_, "to_finetune"):
            raise ConfigError(f"--merge applies to lora, adalora and ia3 bundles, not "
                              f"'{self.strategy}'")
        return self.with_strategy(self.strategy_.to_finetune())



def load(path: str | Path) -> TextClassifier:
    """Rebuild a fitted ``TextClassifier`` from a bundle folder (no pickle, no remote code)."""
    return load_any(path, expect=TextClassifier)
