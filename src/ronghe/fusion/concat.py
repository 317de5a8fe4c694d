"""``concat``: feature-level fusion into one classic learner.

Inputs, concatenated: pooled embeddings of the (frozen) backbone, TF-IDF reduced to a dense
``svd_components``-dimensional space with truncated SVD, and the user's numeric/categorical
columns (``--feature-cols``). Learner: logistic regression on standardised features (C chosen on
validation) or LightGBM (early stopping on validation; categoricals handled natively). The
LightGBM model is stored in its own text format (``Booster.model_to_string``), never pickled.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field
from sklearn.decomposition import TruncatedSVD

from .. import linear
from ..bundle import State
from ..config import NetworkConfig
from ..errors import ConfigError
from ..modeling import Embedder
from ..strategies.base import Strategy
from ..strategies.classic import TfidfFeatures
from .tabular import Tabular


class ConcatConfig(NetworkConfig):
    batch_size: int = Field(64, ge=1)
    max_length: int = Field(256, ge=8, le=4096)
    embeddings: bool = Field(True, description="include backbone embeddings")
    svd_components: int = Field(256, ge=0, description="TF-IDF -> SVD dims; 0 leaves TF-IDF out")
    tfidf_max_features: int = Field(30_000, ge=100, description="per vectoriser, before the SVD "
                                                                "(the SVD matrix is dims x features)")
    learner: Literal["logreg", "lightgbm"] = "logreg"
    C_grid: list[float] = Field([0.03, 0.1, 0.3, 1.0, 3.0], min_length=1)
    n_estimators: int = Field(1000, ge=10, description="LightGBM boosting rounds (early stopped)")
    lgb_learning_rate: float = Field(0.05, gt=0, le=1)
    num_leaves: int = Field(31, ge=2)
    early_stopping_rounds: int = Field(50, ge=1)


class Concat(Strategy):
    name = "concat"
    Config = ConcatConfig
    uses_backbone = True
    uses_features = True

    def _embedder(self):
        if getattr(self, "_emb", None) is None:
            c = self.config
            self._emb = Embedder(self.backbone.path, self.backbone.sha256, pooling=c.pooling,
                                 max_length=c.max_length, batch_size=c.batch_size,
                                 device=c.device, precision=c.precision)
        return self._emb

    def _features(self, texts, features, n) -> tuple[np.ndarray, list[int]]:
        parts = []
        if self.config.embeddings:
            parts.append(self._embedder()(list(texts)).astype(np.float64))
        if self.svd is not None:
            parts.append(self.svd.transform(self.tfidf.transform(texts)))
        return self._with_columns(parts, features, n)

    def _with_columns(self, parts: list, features, n) -> tuple[np.ndarray, list[int]]:
        """The dense parts and the feature columns side by side (indices of LightGBM's
        categorical columns second)."""
        width = sum(p.shape[1] for p in parts)
        if self.config.learner == "lightgbm":
            tab, cats = self.tabular.lightgbm(features, n)
            return np.hstack(parts + [tab]), [width + i for i in cats]
        return np.hstack(parts + [self.tabular.linear(features, n)]), []

    def fit(self, train, valid):
        c = self.config
        if not c.embeddings and not c.svd_components and train.features is None:
            raise ConfigError("concat has no inputs: enable embeddings, svd_components or "
                              "pass --feature-cols")
        self.tabular = Tabular().fit(train.features)
        self.tfidf, self.svd = None, None
        if c.svd_components:
            self.tfidf = TfidfFeatures(max_features=c.tfidf_max_features).fit(train.texts)
            X = self.tfidf.transform(train.texts)
            k = min(c.svd_components, X.shape[1] - 1, len(train) - 1)
            self.svd = TruncatedSVD(k, random_state=c.seed).fit(X)
            self.svd.components_ = self.svd.components_.astype(np.float32)  # as stored
        X, cats = self._features(train.texts, train.features, len(train))
        Xv, _ = self._features(valid.texts, valid.features, len(valid))
        return self._fit_learner(X, Xv, cats, train, valid)

    def _fit_learner(self, X, Xv, cats, train, valid) -> "Concat":
        """The learner on the concatenated features (C or the rounds chosen on validation)."""
        c = self.config
        y, yv = self.label_ids(train.labels), self.label_ids(valid.labels)
        if c.learner == "logreg":
            self.mean, self.scale = X.mean(0), X.std(0) + 1e-6
            self.model, self.history = linear.fit_logreg((X - self.mean) / self.scale, y,
                                                         (Xv - self.mean) / self.scale, yv,
                                                         c.C_grid, c.seed, 2000)
        else:
            self._fit_lightgbm(X, y, Xv, yv, cats)
        return self

    def _fit_lightgbm(self, X, y, Xv, yv, cats):
        import lightgbm as lgb

        c, k = self.config, len(self.classes)
        params = {"objective": "multiclass" if k > 2 else "binary", "learning_rate": c.lgb_learning_rate,
                  "num_leaves": c.num_leaves, "seed": c.seed, "verbose": -1, "num_threads": 0,
                  "deterministic": True, "force_row_wise": True}
        if k > 2:
            params["num_class"] = k
        train_set = lgb.Dataset(X, y, categorical_feature=cats or "auto", free_raw_data=False)
        valid_set = lgb.Dataset(Xv, yv, reference=train_set, categorical_feature=cats or "auto")
        self.booster = lgb.train(params, train_set, c.n_estimators, valid_sets=[valid_set],
                                 callbacks=[lgb.early_stopping(c.early_stopping_rounds, verbose=False)])
        self.history = [{"best_iteration": self.booster.best_iteration}]
        self._iterations = self.booster.best_iteration or None

    def predict_proba(self, texts, features=None):
        X, _ = self._features(texts, features, len(texts))
        if self.config.learner == "logreg":
            return linear.proba_full(self.model, (X - self.mean) / self.scale, len(self.classes))
        p = self.booster.predict(X, num_iteration=getattr(self, "_iterations", None))
        return np.column_stack([1 - p, p]) if p.ndim == 1 else p

    def to_state(self) -> State:
        state = State(meta={"tabular": self.tabular.state, "learner": self.config.learner})
        if self.svd is not None:
            arrays, files, names = self.tfidf.export("tfidf.")
            state.arrays.update(arrays)
            state.files.update(files)
            state.arrays["svd.components"] = self.svd.components_.astype(np.float32)
            state.meta["vectorisers"] = names
        if self.config.learner == "logreg":
            arrays, meta = linear.to_arrays(self.model)
            state.arrays.update(arrays)
            state.arrays.update({"scaler.mean": self.mean, "scaler.scale": self.scale})
            state.meta.update(meta)
        else:
            state.files["lightgbm.txt"] = self.booster.model_to_string(
                num_iteration=self._iterations).encode()
        return state

    @classmethod
    def from_state(cls, config, classes, backbone, reader):
        self = cls(config, classes, backbone)
        arrays, meta = reader.arrays(), reader.meta
        self.tabular = Tabular(meta["tabular"])
        self.tfidf = self.svd = None
        if "svd.components" in arrays:
            self.tfidf = TfidfFeatures(max_features=config.tfidf_max_features).restore(
                arrays, reader, meta["vectorisers"], "tfidf.")
            self.svd = TruncatedSVD(arrays["svd.components"].shape[0])
            self.svd.components_ = arrays["svd.components"]
        if config.learner == "logreg":
            self.model = linear.from_arrays(arrays, meta)
            self.mean, self.scale = arrays["scaler.mean"], arrays["scaler.scale"]
        else:
            import lightgbm as lgb

            self.booster = lgb.Booster(model_str=reader.path("lightgbm.txt").read_text())
        return self
