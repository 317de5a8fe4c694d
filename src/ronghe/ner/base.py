"""What NER strategies share on top of the one strategy contract (``strategies.base``), and the
BIO tag set.

An NER strategy is built from its validated config, the BIO tag list (its ``classes``, also
``tags``) and, if it uses one, the resolved backbone; ``fit(train, valid)`` learns from
``Sentences``; ``predict(tokens)`` returns for each sentence its BIO tags and a confidence per
token (the probability of the chosen tag). Its saved state carries the tag list (``tags``), so
that a bundle rebuilds with the tags it was trained with. Users hold
``ronghe.ner.TokenClassifier``; strategies are its interchangeable insides.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..bundle import BundleReader
from ..strategies.base import Strategy


def tag_list(types: list[str]) -> list[str]:
    """``["O", "B-LOC", "I-LOC", "B-PER", ...]`` for the sorted entity types."""
    return ["O"] + [f"{p}-{t}" for t in sorted(types) for p in "BI"]


def bio_allowed(tags: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(allowed[from, to], allowed_start[to])`` for BIO tags: ``I-X`` only after ``B-X``/``I-X``
    (the moves a CRF may make when it decodes)."""
    n = len(tags)
    allowed = np.ones((n, n), dtype=bool)
    start = np.ones(n, dtype=bool)
    for j, to in enumerate(tags):
        if to.startswith("I-"):
            start[j] = False
            for i, frm in enumerate(tags):
                allowed[i, j] = frm in (f"B-{to[2:]}", f"I-{to[2:]}")
    return allowed, start


def tag_types(tags: list[str]) -> list[str]:
    """The entity types of a tag list, in its order (``tag_list``'s inverse)."""
    return list(dict.fromkeys(t[2:] for t in tags if t != "O"))


class NerStrategy(Strategy):
    task: ClassVar[str] = "token-classification"
    stores_backbone: ClassVar[bool] = True  # the bundle holds every weight it needs

    @property
    def tags(self) -> list[str]:
        return self.classes

    def predict(self, tokens: list[list[str]]) -> tuple[list[list[str]], list[list[float]]]:
        raise NotImplementedError

    @classmethod
    def bundle_classes(cls, reader: BundleReader) -> list[str]:
        return reader.meta.get("tags") or tag_list([str(x) for x in reader.manifest.labels])
