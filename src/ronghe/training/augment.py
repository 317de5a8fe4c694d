"""Data augmentation for training texts (never validation or test data).

EDA-style operations (Wei & Zou 2019) on whitespace tokens - random swap, random deletion, random
insertion - and synonym replacement whose synonyms are the nearest neighbours of a word in the
backbone's own input-embedding table, so it works offline and in any language the backbone's
vocabulary covers. A back-translation hook accepts any ``translate(texts) -> texts`` function
(e.g. a round trip through a local MT model); none ships with ronghe, because no translation
model is available offline. Everything is seeded and the number of examples added is reported.
"""

from __future__ import annotations

import importlib
import random
from collections import Counter
from typing import Callable

import numpy as np

from ..errors import ConfigError

OPS = ("swap", "delete", "insert", "synonym", "back_translate")


class EmbeddingSynonyms:
    """Nearest neighbours of whole-word vocabulary entries in an input-embedding matrix."""

    def __init__(self, tokenizer, embeddings: np.ndarray, top_k: int = 5, min_similarity: float = 0.5):
        vocab = tokenizer.get_vocab()
        special = set(getattr(tokenizer, "all_special_tokens", []))
        self.words, ids = [], []
        for tok, i in vocab.items():
            word = tok[1:] if tok.startswith(("▁", "Ġ")) else tok
            if tok in special or tok.startswith("##") or len(word) < 3 or not word.isalpha():
                continue
            self.words.append(word)
            ids.append(i)
        e = embeddings[np.array(ids)].astype(np.float32)
        self.matrix = e / np.linalg.norm(e, axis=1, keepdims=True).clip(1e-8)
        self.index = {w: k for k, w in enumerate(self.words)}
        self.top_k, self.min_similarity = top_k, min_similarity
        self._cache: dict[str, list[str]] = {}

    def __call__(self, word: str) -> list[str]:
        key = word.lower()
        if key not in self._cache:
            k = self.index.get(key)
            if k is None:
                self._cache[key] = []
            else:
                sims = self.matrix @ self.matrix[k]
                order = np.argsort(-sims)[: self.top_k + 1]
                self._cache[key] = [self.words[j] for j in order
                                    if j != k and sims[j] >= self.min_similarity
                                    and self.words[j].lower() != key][: self.top_k]
        return self._cache[key]


def load_translate(spec: str) -> Callable[[list[str]], list[str]]:
    """'package.module:function' -> the function (for --option back_translate=...)."""
    if ":" not in spec:
        raise ConfigError(f"back_translate must be 'module:function', got {spec!r}")
    mod, fn = spec.split(":", 1)
    try:
        return getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"back_translate: cannot import {spec!r} ({e})") from None


def _swap(words, rng, rate, syn):
    w = list(words)
    for _ in range(max(1, int(rate * len(w)))):
        if len(w) < 2:
            break
        i, j = rng.sample(range(len(w)), 2)
        w[i], w[j] = w[j], w[i]
    return w


def _delete(words, rng, rate, syn):
    if len(words) < 2:
        return list(words)
    kept = [x for x in words if rng.random() > rate]
    return kept or [rng.choice(words)]


def _synonym(words, rng, rate, syn):
    w = list(words)
    slots = [i for i, x in enumerate(w) if syn(x)]
    rng.shuffle(slots)
    for i in slots[: max(1, int(rate * len(w)))]:
        w[i] = rng.choice(syn(w[i]))
    return w


def _insert(words, rng, rate, syn):
    w = list(words)
    for _ in range(max(1, int(rate * len(w)))):
        pool = [s for x in w for s in syn(x)]
        if not pool:
            break
        w.insert(rng.randrange(len(w) + 1), rng.choice(pool))
    return w


_WORD_OPS = {"swap": _swap, "delete": _delete, "insert": _insert, "synonym": _synonym}


def augment(texts: list[str], labels: list, ops: list[str], *, per_example: int = 1,
            rate: float = 0.1, seed: int = 0, synonyms: Callable[[str], list[str]] | None = None,
            translate: Callable[[list[str]], list[str]] | None = None) -> tuple[list, list, dict]:
    """Return (texts, labels) with augmented copies appended, and a report of what was added."""
    unknown = set(ops) - set(OPS)
    if unknown:
        raise ConfigError(f"augment: unknown operation(s) {sorted(unknown)}; choose from {OPS}")
    if ("synonym" in ops or "insert" in ops) and synonyms is None:
        raise ConfigError("augment: 'synonym' and 'insert' need an embedding synonym table")
    if "back_translate" in ops and translate is None:
        raise ConfigError("augment: 'back_translate' needs a translate function "
                          "(--option back_translate=module:function); none ships offline")
    rng = random.Random(seed)
    word_ops = [o for o in ops if o in _WORD_OPS]
    new_texts, new_labels, counts = [], [], Counter()
    seen = set(texts)
    for text, label in zip(texts, labels):
        words = text.split()
        for _ in range(per_example if word_ops else 0):
            op = rng.choice(word_ops)
            out = " ".join(_WORD_OPS[op](words, rng, rate, synonyms or (lambda w: [])))
            if out and out not in seen:
                seen.add(out)
                new_texts.append(out)
                new_labels.append(label)
                counts[op] += 1
    if "back_translate" in ops:
        back = translate(list(texts))
        if len(back) != len(texts):
            raise ConfigError(f"back_translate returned {len(back)} texts for {len(texts)} inputs")
        for out, label in zip(back, labels):
            if isinstance(out, str) and out.strip() and out not in seen:
                seen.add(out)
                new_texts.append(out)
                new_labels.append(label)
                counts["back_translate"] += 1
    report = {"original": len(texts), "added": len(new_texts), "by_operation": dict(counts),
              "seed": seed, "rate": rate, "per_example": per_example}
    return list(texts) + new_texts, list(labels) + new_labels, report
