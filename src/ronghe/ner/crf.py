"""``classic``: a linear-chain CRF on hand-made token features (python-crfsuite), the traditional
NER baseline.

Features of each token: the lower-cased word, its shape (``Xxxx``, ``dd-dd``) and short shape
(``Xx``), prefixes and suffixes up to 3 characters, case and digit flags, hyphen/punctuation/CJK
flags, and the word, short shape and case of the two tokens on either side, plus word bigrams
with the neighbours. CRFsuite trains with L-BFGS and elastic-net regularisation; the ``(c1, c2)``
pair with the best entity F1 on validation data is kept.

CRFsuite writes its model as its own binary file (``Trainer.train(path)``); the bundle stores
that file as it is (``crf.model``: data, read by ``Tagger.open``, never unpickled).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from pydantic import Field

from ..bundle import BundleReader, State
from ..config import StrategyConfig
from ..errors import BundleError, ConfigError
from ..log import info, progress
from .base import NerStrategy
from .data import Sentences, bio_entities, entities_to_bio, is_cjk
from .metrics import entity_metrics

MODEL_FILE = "crf.model"


class ClassicConfig(StrategyConfig):
    c1: list[float] = Field([0.05, 0.2], min_length=1,
                            description="L1 strengths to try (the best on validation is kept)")
    c2: list[float] = Field([0.05], min_length=1, description="L2 strengths to try")
    max_iterations: int = Field(100, ge=1, le=10000, description="L-BFGS iterations")
    min_freq: int = Field(1, ge=1, description="drop features seen fewer times in training")
    all_possible_transitions: bool = Field(
        True, description="learn (negative) weights for tag transitions never seen in training")


# --------------------------------------------------------------------------- features

def shape(word: str) -> str:
    out = []
    for ch in word:
        if "A" <= ch <= "Z":
            out.append("X")
        elif "a" <= ch <= "z":
            out.append("x")
        elif ch.isdigit():
            out.append("d")
        elif ch.isalpha():
            out.append("C" if is_cjk(ch) else ("U" if ch.isupper() else "u" if ch.islower() else "a"))
        else:
            out.append(ch)
    return "".join(out)


def short_shape(word: str) -> str:
    return re.sub(r"(.)\1+", r"\1", shape(word))


def _word(word: str) -> dict:
    lower = word.lower()
    f = {"bias": 1.0, "w": lower, "shape": shape(word)[:12], "short": short_shape(word)}
    if len(word) > 1:
        for k in (1, 2, 3):
            if len(word) > k:
                f[f"p{k}"] = lower[:k]
                f[f"s{k}"] = lower[-k:]
    if word[:1].isupper():
        f["title"] = 1.0
    if word.isupper() and any(c.isalpha() for c in word):
        f["upper"] = 1.0
    if word.isdigit():
        f["digit"] = 1.0
    elif any(c.isdigit() for c in word):
        f["has_digit"] = 1.0
    if "-" in word and len(word) > 1:
        f["hyphen"] = 1.0
    if not any(c.isalnum() for c in word):
        f["punct"] = 1.0
    if is_cjk(word):
        f["cjk"] = 1.0
    return f


def sentence_features(tokens: list[str]) -> list[dict]:
    """One feature dict per token (CRFsuite turns ``{"w": "paris"}`` into ``w=paris``)."""
    base = [_word(t) for t in tokens]
    n = len(tokens)
    out = []
    for j in range(n):
        f = dict(base[j])
        for o in (-2, -1, 1, 2):
            k = j + o
            if 0 <= k < n:
                nb = base[k]
                f[f"{o}:w"] = nb["w"]
                f[f"{o}:short"] = nb["short"]
                if "title" in nb:
                    f[f"{o}:title"] = 1.0
                if "upper" in nb:
                    f[f"{o}:upper"] = 1.0
            elif abs(o) == 1:
                f["BOS" if o < 0 else "EOS"] = 1.0
        if j > 0:
            f["-1|0"] = base[j - 1]["w"] + "|" + base[j]["w"]
        if j < n - 1:
            f["0|+1"] = base[j]["w"] + "|" + base[j + 1]["w"]
        out.append(f)
    return out


def valid_bio(tags: list[str]) -> list[str]:
    """CRFsuite's Viterbi has no BIO constraints; read its output the conlleval way (an ``I-X``
    that continues nothing begins an entity) and write it back as valid BIO."""
    return entities_to_bio(len(tags), bio_entities(tags))


# --------------------------------------------------------------------------- the strategy

class CrfTagger(NerStrategy):
    name = "classic"
    Config = ClassicConfig
    uses_backbone = False

    def _trainer(self, c1: float, c2: float):
        import pycrfsuite

        c = self.config
        trainer = pycrfsuite.Trainer(algorithm="lbfgs", verbose=False)
        trainer.set_params({"c1": c1, "c2": c2, "max_iterations": c.max_iterations,
                            "feature.minfreq": c.min_freq,
                            "feature.possible_transitions": c.all_possible_transitions})
        return trainer

    def _open(self, model: bytes) -> None:
        import pycrfsuite

        self._model = model
        self._tagger = pycrfsuite.Tagger()
        self._tagger.open_inmemory(model)

    def fit(self, train: Sentences, valid: Sentences) -> "CrfTagger":
        try:
            import pycrfsuite  # noqa: F401
        except ImportError as e:
            raise ConfigError("the classic NER strategy needs python-crfsuite: "
                              "pip install python-crfsuite") from e
        c = self.config
        x_train = [sentence_features(t) for t in train.tokens]
        best = None
        with tempfile.TemporaryDirectory() as tmp:
            for c1 in c.c1:
                for c2 in c.c2:
                    trainer = self._trainer(c1, c2)
                    for x, y in zip(x_train, train.tags):
                        trainer.append(x, y)
                    path = Path(tmp) / "crf.model"
                    with progress(f"CRF c1={c1} c2={c2}", None):
                        trainer.train(str(path))
                    self._open(path.read_bytes())
                    pred, _ = self.predict(valid.tokens)
                    m = entity_metrics(valid.tags, pred)
                    row = {"c1": c1, "c2": c2, "valid_f1": round(m["f1"], 5),
                           "valid_precision": round(m["precision"], 5),
                           "valid_recall": round(m["recall"], 5),
                           "iterations": len(trainer.logparser.iterations)}
                    info("CRF %s", ", ".join(f"{k}={v}" for k, v in row.items()))
                    self.history.append(row)
                    if best is None or m["f1"] > best[0] + 1e-9:
                        best = (m["f1"], c1, c2, self._model)
        self._open(best[3])
        self.report["selected"] = {"c1": best[1], "c2": best[2]}
        info("CRF: kept c1=%s c2=%s (validation entity F1 %.4f)", best[1], best[2], best[0])
        return self

    def predict(self, tokens: list[list[str]]) -> tuple[list[list[str]], list[list[float]]]:
        tags, conf = [], []
        for toks in tokens:
            if not toks:
                tags.append([])
                conf.append([])
                continue
            y = self._tagger.tag(sentence_features(toks))
            p = [self._tagger.marginal(t, j) for j, t in enumerate(y)]
            tags.append(valid_bio(y))
            conf.append(p)
        return tags, conf

    def to_state(self) -> State:
        return State(meta={"selected": self.report.get("selected"), "tags": self.tags},
                     files={MODEL_FILE: self._model})

    @classmethod
    def from_state(cls, config, tags, backbone, reader: BundleReader) -> "CrfTagger":
        self = cls(config, tags)
        path = reader.path(MODEL_FILE)
        if not path.is_file():
            raise BundleError(f"{reader.root}: {MODEL_FILE} is missing")
        self._open(path.read_bytes())
        self.report["selected"] = reader.meta.get("selected")
        return self
