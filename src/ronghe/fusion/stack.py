"""``stack``: stacking - a meta-learner on out-of-fold probabilities of base strategies.

Each base strategy is trained k times on k-1 folds and predicts the held-out fold, so every
training example gets base-model probabilities from models that never saw it (no leakage); the
meta-learner (logistic regression, C chosen on validation) learns from those, plus the user's
feature columns if given. The bases are then refit on all training data for prediction.
Defaults are the cheap bases (TF-IDF and frozen embeddings, whose embeddings are computed once
and cached); ``members=[finetune, classic]`` works too at k times the fine-tuning cost.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field
from sklearn.model_selection import StratifiedKFold

from .. import linear
from ..log import info
from ..strategies.base import Strategy
from . import members as M
from .tabular import Tabular


class StackConfig(M.FusionConfig):
    members: list[str] = Field(["classic", "frozen"], min_length=2)
    folds: int = Field(5, ge=2, le=20)
    C_grid: list[float] = Field([0.03, 0.1, 0.3, 1.0, 3.0, 10.0], min_length=1)


class Stack(Strategy):
    name = "stack"
    Config = StackConfig
    uses_features = True

    def _meta_features(self, probas: list[np.ndarray], features, n) -> np.ndarray:
        logp = [np.log(np.clip(p, 1e-6, 1.0)) for p in probas]
        return np.hstack(logp + [self.tabular.linear(features, n)])

    def fit(self, train, valid):
        c = self.config
        y = self.label_ids(train.labels)
        n_min = np.bincount(y).min()
        folds = min(c.folds, int(n_min)) if n_min >= 2 else 2
        skf = StratifiedKFold(folds, shuffle=True, random_state=c.seed)
        oof = [np.zeros((len(train), len(self.classes))) for _ in c.members]
        for k, (tr, te) in enumerate(skf.split(np.zeros(len(y)), y)):
            info("stack: fold %d/%d", k + 1, folds)
            part, held = train.subset(tr), train.subset(te)
            for j, name in enumerate(c.members):
                m = M.build(name, c, self.classes, task=self.task).fit(part, valid)
                oof[j][te] = M.predict(m, held.inputs, held.features)
        self.tabular = Tabular().fit(train.features)
        self.members = [M.build(n, c, self.classes, self.context, self.task).fit(train, valid)
                        for n in c.members]
        X = self._meta_features(oof, train.features, len(train))
        Xv = self._meta_features(M.probas(self.members, valid.inputs, valid.features),
                                 valid.features, len(valid))
        self.meta, self.history = linear.fit_logreg(X, y, Xv, self.label_ids(valid.labels),
                                                    c.C_grid, c.seed, 2000)
        self.report["folds"] = folds
        return self

    def predict_proba(self, inputs, features=None):
        X = self._meta_features(M.probas(self.members, inputs, features), features, len(inputs))
        return linear.proba_full(self.meta, X, len(self.classes))

    def to_state(self):
        arrays, meta = linear.to_arrays(self.meta, "meta")
        return M.to_state(self.members, {**meta, "tabular": self.tabular.state}, arrays)

    @classmethod
    def from_state(cls, config, classes, backbone, reader):
        self = cls(config, classes, backbone)
        self.members = M.load(reader)
        self.tabular = Tabular(reader.meta["tabular"])
        self.meta = linear.from_arrays(reader.arrays(), reader.meta, "meta")
        return self
