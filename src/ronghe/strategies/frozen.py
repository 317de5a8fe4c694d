"""``frozen``: pooled embeddings from an untouched backbone + a scikit-learn classifier.

The backbone is not trained, so the bundle stores only the classifier (standardisation and
logistic-regression arrays) plus the backbone reference and the sha256 of its weights; loading
checks that the same weights are present.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from .. import linear
from ..bundle import BundleReader, State
from ..config import NetworkConfig, SelectionFields
from ..modeling import Embedder
from .base import Strategy


class FrozenConfig(NetworkConfig, SelectionFields):
    batch_size: int = Field(64, ge=1)
    max_length: int = Field(256, ge=8, le=4096)
    classifier: str = Field("logreg", pattern="^logreg$",
                            description="scikit-learn classifier on the embeddings")
    C_grid: list[float] = Field([0.03, 0.1, 0.3, 1.0, 3.0], min_length=1,
                                description="C values tried; the best on validation is kept")
    max_iter: int = 2000


class Frozen(Strategy):
    name = "frozen"
    Config = FrozenConfig
    uses_backbone = True

    def _embedder(self) -> Embedder:
        if getattr(self, "_emb", None) is None:
            c = self.config
            self._emb = Embedder(self.backbone.path, self.backbone.sha256, pooling=c.pooling,
                                 max_length=c.max_length, batch_size=c.batch_size, device=c.device,
                                 precision=c.precision)
        return self._emb

    def embed(self, texts) -> np.ndarray:
        return self._embedder()(list(texts))

    def _scaled(self, texts) -> np.ndarray:
        return (self.embed(texts) - self.mean) / self.scale

    def fit(self, train, valid):
        return self.fit_features(self.embed(train.inputs), self.label_ids(train.labels),
                                 self.embed(valid.inputs) if valid is not None else None,
                                 self.label_ids(valid.labels) if valid is not None else None)

    def fit_features(self, X, y, Xv=None, yv=None):
        """The standardised logistic regression on features already computed."""
        self.mean = X.mean(0)
        self.scale = X.std(0) + 1e-6
        X = (X - self.mean) / self.scale
        Xv = (Xv - self.mean) / self.scale if Xv is not None else None
        c = self.config
        self.model, self.history = linear.fit_logreg(
            X, y, Xv, yv, c.C_grid, c.seed, c.max_iter, selection=c.selection)
        return self

    def predict_proba(self, texts):
        return linear.proba_full(self.model, self._scaled(texts), len(self.classes))

    def to_state(self) -> State:
        arrays, meta = linear.to_arrays(self.model)
        arrays.update({"scaler.mean": self.mean, "scaler.scale": self.scale})
        return State(meta=meta, arrays=arrays)

    @classmethod
    def from_state(cls, config, classes, backbone, reader: BundleReader):
        self = cls(config, classes, backbone)
        arrays = reader.arrays()
        self.mean, self.scale = arrays["scaler.mean"], arrays["scaler.scale"]
        self.model = linear.from_arrays(arrays, reader.meta)
        return self
