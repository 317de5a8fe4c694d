"""``classic``: TF-IDF over word and character n-grams + logistic regression.

The traditional baseline every comparison should include: fast, small, no backbone.
"""

from __future__ import annotations

import json

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from sklearn.feature_extraction.text import TfidfVectorizer

from .. import linear
from ..bundle import BundleReader, State
from ..config import StrategyConfig
from .base import Strategy


class ClassicConfig(StrategyConfig):
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] | None = Field((2, 5), description="None disables char n-grams")
    max_features: int = Field(200_000, ge=100, description="per vectoriser")
    min_df: int = Field(1, ge=1)
    lowercase: bool = True
    C_grid: list[float] = Field([0.5, 2.0, 8.0, 32.0], min_length=1,
                                description="C values tried; the best on validation is kept")
    max_iter: int = 1000


def _vectorisers(cfg: ClassicConfig) -> dict[str, TfidfVectorizer]:
    common = dict(lowercase=cfg.lowercase, sublinear_tf=True, dtype=np.float32)
    out = {"word": TfidfVectorizer(analyzer="word", ngram_range=tuple(cfg.word_ngrams),
                                   token_pattern=r"(?u)\b\w+\b|[^\w\s]", **common)}
    if cfg.char_ngrams:
        out["char"] = TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(cfg.char_ngrams), **common)
    return out


class Classic(Strategy):
    name = "classic"
    Config = ClassicConfig

    def _features(self, texts):
        return sp.hstack([v.transform(texts) for v in self.vectorisers.values()], format="csr")

    def fit(self, train, valid):
        cfg = self.config
        self.vectorisers = _vectorisers(cfg)
        for v in self.vectorisers.values():
            v.set_params(max_features=cfg.max_features, min_df=cfg.min_df)
            v.fit(train.texts)
        X = self._features(train.texts)
        Xv = self._features(valid.texts) if valid is not None else None
        yv = self.label_ids(valid.labels) if valid is not None else None
        self.model, self.history = linear.fit_logreg(X, self.label_ids(train.labels), Xv, yv,
                                                     cfg.C_grid, cfg.seed, cfg.max_iter)
        return self

    def predict_proba(self, texts):
        return linear.proba_full(self.model, self._features(list(texts)), len(self.classes))

    def to_state(self) -> State:
        arrays, meta = linear.to_arrays(self.model)
        files = {}
        for name, v in self.vectorisers.items():
            arrays[f"{name}.idf"] = v.idf_
            terms = sorted(v.vocabulary_, key=v.vocabulary_.get)
            files[f"vocab_{name}.json"] = json.dumps(terms, ensure_ascii=False).encode()
        meta["vectorisers"] = list(self.vectorisers)
        return State(meta=meta, arrays=arrays, files=files)

    @classmethod
    def from_state(cls, config, classes, backbone, reader: BundleReader):
        self = cls(config, classes, backbone)
        arrays, meta = reader.arrays(), reader.meta
        self.vectorisers = {}
        templates = _vectorisers(config)
        for name in meta["vectorisers"]:
            terms = json.loads(reader.path(f"vocab_{name}.json").read_text())
            v = templates[name]
            v.set_params(vocabulary={t: i for i, t in enumerate(terms)})
            v.idf_ = arrays[f"{name}.idf"]
            self.vectorisers[name] = v
        self.model = linear.from_arrays(arrays, meta)
        return self
