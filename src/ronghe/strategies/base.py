"""The contract every strategy implements, whatever its task.

A strategy belongs to one task (``task``) and has a name and a pydantic ``Config``. It is
constructed with its validated config, its label list (``classes``: the class names for text
classification, the BIO tag list for NER) and, if it uses one, the resolved backbone; ``fit``
learns from the task's data sets, ``to_state`` describes what to save and ``from_state`` rebuilds
from a bundle. How it predicts is the task's part of the contract: text classification's
``predict_proba(texts)`` returns an (n, n_classes) array in ``classes`` order, NER's
``predict(tokens)`` returns tags and confidences per token. Users hold the task's ``Estimator``
(``TextClassifier``, ``TokenClassifier``); strategies are its interchangeable insides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..backbones import Backbone
from ..bundle import BundleReader, State
from ..config import StrategyConfig
from ..data import Dataset


@dataclass
class TrainContext:
    """Where and how a fit runs: the run directory (checkpoints, metrics, TensorBoard), whether to
    resume from its checkpoint, and extra training-loop callbacks (e.g. Optuna pruning)."""

    run_dir: Path | None = None
    resume: bool = False
    callbacks: list = field(default_factory=list)


class Strategy:
    name: ClassVar[str]
    task: ClassVar[str] = "text-classification"
    Config: ClassVar[type[StrategyConfig]]
    uses_backbone: ClassVar[bool] = False  # needs a backbone to fit
    stores_backbone: ClassVar[bool] = False  # bundle holds the (trained) backbone weights itself
    uses_features: ClassVar[bool] = False  # predict_proba(texts, features) with tabular columns
    trains_network: ClassVar[bool] = False  # runs the training loop: gets a run dir by default
    # no batch_size given: the training batch follows the data's size (config.auto_batch_size)
    small_data_batch: ClassVar[bool] = False

    def __init__(self, config: StrategyConfig, classes: list, backbone: Backbone | None = None,
                 context: TrainContext | None = None):
        self.config = config
        self.context = context or TrainContext()
        self.classes = list(classes)
        self.backbone = backbone
        self.history: list[dict] = []  # per-epoch / per-candidate validation scores
        self.report: dict = {}  # what fit did beyond the history (augmentation, parameters ...)

    def fit(self, train: Dataset, valid: Dataset | None) -> "Strategy":
        raise NotImplementedError

    def predict_proba(self, texts: list[str]) -> np.ndarray:  # text classification
        raise NotImplementedError

    def to_state(self) -> State:
        raise NotImplementedError

    @classmethod
    def from_state(cls, config: StrategyConfig, classes: list, backbone: Backbone | None,
                   reader: BundleReader) -> "Strategy":
        raise NotImplementedError

    @classmethod
    def bundle_classes(cls, reader: BundleReader) -> list:
        """The ``classes`` a saved strategy is rebuilt with (default: the manifest's labels)."""
        return list(reader.manifest.labels)

    # helpers shared by strategies
    def label_ids(self, labels) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[y] for y in labels], dtype=np.int64)
