"""``classic``: TF-IDF over word and character n-grams + logistic regression.

The traditional baseline every comparison should include: fast, small, no backbone.
``TfidfFeatures`` is also used by the feature-fusion strategy (``concat``).

Cost on long, many-class data (see the ``classic_longdoc`` section of benchmarks/README.md): each
vectoriser analyses the training texts once (``fit_transform``, not ``fit`` then ``transform``),
and the logistic regressions of the C grid - most of the time - are fitted at once, one per
available core (``n_jobs``; fewer when memory is short, see ``ronghe.linear.auto_jobs``), in
worker processes when the fit is large (``parallel``).
Two measured candidates stay options, off by default: ``C_path="warm"`` (the C grid as a
warm-started path, see ``ronghe.linear``) needed as many lbfgs iterations as cold fits once its
continuation fits were held to a tolerance that makes them move, and picked a worse C on SST-2
20k (0.802 vs 0.809); ``char_max_chars`` lets the char n-grams read only the start of each text
(the word n-grams always read all of it): the character features of a long text are the bulk of the matrix, but on
300-word documents a 1,000-character cap cut the matrix by only 20 % and cost 2 points of
accuracy, so it is left to the user. ``fit`` records the seconds of each stage in
``stage_seconds``.
"""

from __future__ import annotations

import json
import time
from typing import Literal

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
    n_jobs: int = Field(0, ge=0, description="C values fitted at once (cold path); 0 = one per "
                                             "available core, fewer when memory is short")
    parallel: Literal["auto", "threads", "processes"] = Field(
        "auto", description="where C values fitted at once run: auto = worker processes for "
                            "large fits (see ronghe.linear.PROCESS_MIN_WORK), threads for small")
    C_path: Literal["warm", "cold"] = Field(
        "cold", description="warm: one model refitted with C increasing, each fit starting from "
                            "the previous solution; cold: every C fitted from scratch")
    char_max_chars: int | None = Field(
        None, ge=1, description="char n-grams read at most this many characters of "
                                          "each text (None: all, the default); word n-grams "
                                          "read all")


class TfidfFeatures:
    """Word and char_wb TF-IDF vectorisers, stored as vocabulary JSON + idf arrays."""

    def __init__(self, word_ngrams=(1, 2), char_ngrams=(2, 5), max_features=200_000, min_df=1,
                 lowercase=True, char_max_chars=None):
        self.char_max_chars = char_max_chars
        self.stage_seconds: dict[str, float] = {}
        common = dict(lowercase=lowercase, sublinear_tf=True, dtype=np.float32,
                      max_features=max_features, min_df=min_df)
        self.vectorisers = {"word": TfidfVectorizer(analyzer="word", ngram_range=tuple(word_ngrams),
                                                    token_pattern=r"(?u)\b\w+\b|[^\w\s]", **common)}
        if char_ngrams:
            self.vectorisers["char"] = TfidfVectorizer(analyzer="char_wb",
                                                       ngram_range=tuple(char_ngrams), **common)

    @classmethod
    def from_config(cls, cfg) -> "TfidfFeatures":
        return cls(cfg.word_ngrams, cfg.char_ngrams, cfg.max_features, cfg.min_df, cfg.lowercase,
                   getattr(cfg, "char_max_chars", None))

    def _input(self, name: str, texts: list) -> list:
        cap = self.char_max_chars
        if name == "char" and cap:
            return [t[:cap] for t in texts]
        return texts

    def fit(self, texts) -> "TfidfFeatures":
        self.fit_transform(texts)
        return self

    def fit_transform(self, texts) -> sp.csr_matrix:
        """Fit every vectoriser and return the training matrix, analysing each text once."""
        texts = list(texts)
        parts = []
        for name, v in self.vectorisers.items():
            start = time.perf_counter()
            parts.append(v.fit_transform(self._input(name, texts)))
            self.stage_seconds[f"{name}_fit_transform"] = round(time.perf_counter() - start, 3)
        return sp.hstack(parts, format="csr")

    def transform(self, texts) -> sp.csr_matrix:
        texts = list(texts)
        return sp.hstack([v.transform(self._input(name, texts))
                          for name, v in self.vectorisers.items()], format="csr")

    def export(self, prefix: str = "") -> tuple[dict, dict, list]:
        arrays, files = {}, {}
        for name, v in self.vectorisers.items():
            arrays[f"{prefix}{name}.idf"] = v.idf_
            terms = sorted(v.vocabulary_, key=v.vocabulary_.get)
            files[f"{prefix}vocab_{name}.json"] = json.dumps(terms, ensure_ascii=False).encode()
        return arrays, files, list(self.vectorisers)

    def restore(self, arrays: dict, reader: BundleReader, names: list, prefix: str = "") -> "TfidfFeatures":
        for name in list(self.vectorisers):
            if name not in names:
                del self.vectorisers[name]
        for name in names:
            terms = json.loads(reader.path(f"{prefix}vocab_{name}.json").read_text())
            v = self.vectorisers[name]
            v.set_params(vocabulary={t: i for i, t in enumerate(terms)})
            v.idf_ = arrays[f"{prefix}{name}.idf"]
        return self


class Classic(Strategy):
    name = "classic"
    Config = ClassicConfig

    def fit(self, train, valid):
        cfg = self.config
        self.tfidf = TfidfFeatures.from_config(cfg)
        X = self.tfidf.fit_transform(train.texts)
        start = time.perf_counter()
        Xv = self.tfidf.transform(valid.texts) if valid is not None else None
        valid_transform = time.perf_counter() - start
        yv = self.label_ids(valid.labels) if valid is not None else None
        start = time.perf_counter()
        self.model, self.history = linear.fit_logreg(X, self.label_ids(train.labels), Xv, yv,
                                                     cfg.C_grid, cfg.seed, cfg.max_iter,
                                                     path=cfg.C_path, n_jobs=cfg.n_jobs,
                                                     backend=cfg.parallel)
        self.stage_seconds = {**self.tfidf.stage_seconds,
                              "valid_transform": round(valid_transform, 3),
                              "C_search": round(time.perf_counter() - start, 3)}
        return self

    def predict_proba(self, texts):
        return linear.proba_full(self.model, self.tfidf.transform(texts), len(self.classes))

    def to_state(self) -> State:
        arrays, meta = linear.to_arrays(self.model)
        tf_arrays, files, names = self.tfidf.export()
        arrays.update(tf_arrays)
        meta["vectorisers"] = names
        return State(meta=meta, arrays=arrays, files=files)

    @classmethod
    def from_state(cls, config, classes, backbone, reader: BundleReader):
        self = cls(config, classes, backbone)
        arrays = reader.arrays()
        self.tfidf = TfidfFeatures.from_config(config).restore(arrays, reader,
                                                               reader.meta["vectorisers"])
        self.model = linear.from_arrays(arrays, reader.meta)
        return self
