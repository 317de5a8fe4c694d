"""Scoring items with saved bundles: a sentiment classifier (what counts as negative), an
optional topic classifier and an optional NER tagger, each called on whole batches.

Any bundle ``ronghe.load`` reads works (classic, finetune, ONNX, int8 ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import ConfigError
from .config import ModelsConfig

NEGATIVE_NAMES = ("negative", "neg", "0", "负面", "消极", "bad")


@dataclass
class Scores:
    sentiment: str
    sentiment_score: float
    neg_prob: float
    negative: bool
    topic: str | None = None
    topic_score: float | None = None
    probabilities: dict = field(default_factory=dict)
    entities: list = field(default_factory=list)


def _load(path: str, what: str):
    from ... import load
    from ...errors import BundleError

    try:
        return load(path)
    except BundleError as e:
        raise ConfigError(f"models.{what}: {e}") from None
    except FileNotFoundError:
        raise ConfigError(f"models.{what}: no bundle at {path}") from None


class Scorer:
    def __init__(self, config: ModelsConfig):
        self.config = config
        self.sentiment = _load(config.sentiment, "sentiment")
        if not hasattr(self.sentiment, "predict_proba"):
            raise ConfigError(f"models.sentiment: {config.sentiment} is not a classifier bundle")
        labels = [str(c) for c in self.sentiment.classes_]
        wanted = config.negative_labels or [n for n in NEGATIVE_NAMES if n in
                                            {x.lower() for x in labels}][:1]
        neg = [i for i, c in enumerate(labels) if c in wanted or c.lower() in wanted]
        if not neg:
            raise ConfigError(f"models.negative_labels: none of {wanted or list(NEGATIVE_NAMES)} "
                              f"is a label of the sentiment bundle (its labels: {labels}); set "
                              "models.negative_labels to the label(s) that mean negative")
        self.labels, self.neg_cols = labels, neg
        self.topic = _load(config.topic, "topic") if config.topic else None
        self.ner = _load(config.ner, "ner") if config.ner else None
        if self.ner is not None and hasattr(self.ner, "predict_proba"):
            raise ConfigError(f"models.ner: {config.ner} is a classifier, not an NER bundle")

    def score(self, texts: list[str]) -> list[Scores]:
        out: list[Scores] = []
        b = self.config.batch_size
        for i in range(0, len(texts), b):
            out.extend(self._batch(texts[i:i + b]))
        return out

    def _batch(self, texts: list[str]) -> list[Scores]:
        proba = np.asarray(self.sentiment.predict_proba(texts), dtype=float)
        neg = proba[:, self.neg_cols].sum(1)
        best = proba.argmax(1)
        res = [Scores(self.labels[j], float(proba[i, j]), float(neg[i]),
                      bool(j in self.neg_cols),
                      probabilities={"sentiment": dict(zip(self.labels,
                                                           np.round(proba[i], 6).tolist()))})
               for i, j in enumerate(best)]
        if self.topic is not None:
            tp = np.asarray(self.topic.predict_proba(texts), dtype=float)
            tl = [str(c) for c in self.topic.classes_]
            for r, row in zip(res, tp):
                j = int(row.argmax())
                r.topic, r.topic_score = tl[j], float(row[j])
                r.probabilities["topic"] = dict(zip(tl, np.round(row, 6).tolist()))
        if self.ner is not None:
            types = set(self.config.entity_types)
            for r, ents in zip(res, self.ner.predict(texts)):
                r.entities = [{"label": e["label"], "text": e["text"], "start": e["start"],
                               "end": e["end"], "score": e["score"]}
                              for e in ents if e["label"] in types]
        return res
