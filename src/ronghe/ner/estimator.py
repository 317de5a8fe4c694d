"""``TokenClassifier``: named-entity recognition with the same estimator and bundle shape as
``TextClassifier``.

>>> ner = TokenClassifier(strategy="finetune", model="minilm", epochs=3)  # crf=False: softmax
>>> ner.fit("train.conll", "valid.conll")            # files, Sentences, records or token/tag lists
>>> ner.predict(["Angela Merkel visited Paris."])     # character spans into each text
[[{'start': 0, 'end': 13, 'label': 'PER', 'score': 0.98, 'text': 'Angela Merkel', ...}, ...]]
>>> ner.evaluate("test.conll")                        # strict entity P/R/F1, micro and per type
>>> ner.save("my-ner"); same = load("my-ner")         # identical predictions

scikit-learn's contract: hyper-parameters stored as given, checked in ``fit``; ``fit`` returns
``self``; learned state ends in ``_``; ``get_params``/``set_params``/``clone`` work. ``None`` means
the strategy's default; strategy-specific knobs go in ``options``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import BundleError, ConfigError, DataError
from ..estimator import Estimator
from ..estimator import load as load_any
from ..log import warn
from . import data as ner_data
from .base import tag_list, tag_types
from .data import Sentences
from .metrics import entity_metrics


def as_sentences(X, y=None, *, role: str, scheme: str = "auto", require_tags: bool = True,
                 on_invalid: str = "warn") -> Sentences:
    """Whatever a user passes as NER data, as ``Sentences``: a ``Sentences``, a file path, a list
    of records (``{"text", "entities"}`` or ``{"tokens", "tags"}``), or token lists with tag
    lists ``y``."""
    if isinstance(X, Sentences):
        if y is not None:
            raise DataError(f"{role}: pass Sentences or token lists with tags, not both")
        if require_tags and X.tags is None:
            raise DataError(f"{role}: {X.source} has no tags")
        return X
    if isinstance(X, (str, Path)):
        if isinstance(X, str) and not Path(X).expanduser().exists() and (" " in X or not Path(X).suffix):
            raise DataError(f"{role}: expected a file path or a list, got the string {X[:40]!r}; "
                            "wrap raw texts in a list")
        return ner_data.read(X, scheme, require_tags=require_tags, on_invalid=on_invalid)
    items = list(X)
    if items and all(isinstance(r, dict) for r in items):
        return ner_data.from_records(items, scheme, require_tags=require_tags,
                                     on_invalid=on_invalid, source=role)
    if items and all(isinstance(r, (list, tuple)) for r in items):
        return ner_data.from_lists([list(t) for t in items], None if y is None else list(y),
                                   scheme, on_invalid=on_invalid, source=role)
    raise DataError(f"{role}: expected a CoNLL/JSONL file, Sentences, records with 'text' + "
                    "'entities' or 'tokens' + 'tags', or token lists with tag lists")


class TokenClassifier(Estimator):
    """Named-entity recognition: ``classic`` (CRF on hand-made features), ``finetune`` (backbone +
    token head decoded by a jointly trained CRF; ``crf=False`` for a softmax head) or ``lora``."""

    task = "token-classification"
    not_config = ("strategy", "options", "run_dir", "scheme", "crf")

    def __init__(self, strategy: str = "finetune", model: str | None = None, *,
                 crf: bool | None = None, epochs: int | None = None, batch_size: int | None = None,
                 learning_rate: float | None = None, max_length: int | None = None,
                 stride: int | None = None, scheme: str = "auto", seed: int | None = None,
                 valid_fraction: float | None = None, device: str | None = None,
                 precision: str | None = None, options: dict[str, Any] | None = None,
                 run_dir: str | Path | None = None):
        self._keep_params(locals())

    # -- the task's hooks (see ``Estimator``) -------------------------------------------------

    def _config_values(self, cls) -> dict[str, Any]:
        if self.crf is None:  # the strategy's default (finetune, lora: a CRF layer)
            return {}
        if "crf" not in cls.Config.model_fields:
            raise ConfigError(f"crf={self.crf} applies to the network strategies (finetune, lora); "
                              f"'{self.strategy}' " + ("is a CRF already" if self.strategy == "classic"
                                                       else "has no CRF layer"))
        return {"crf": bool(self.crf)}

    def _as_data(self, X, y=None, *, role: str, labeled: bool = True) -> Sentences:
        return as_sentences(X, y, role=role, scheme=self.scheme, require_tags=labeled)

    def _valid_from_y(self, y, valid):
        if valid is None and y is not None and (isinstance(y, (Sentences, str, Path))
                                                or (isinstance(y, list) and y
                                                    and isinstance(y[0], dict))):
            return None, y
        return y, valid

    def _check_train(self, train: Sentences, cls) -> None:
        if not train.types:
            raise DataError(f"{train.source}: no entities in the training data (every tag is "
                            "'O'); there is nothing to learn")

    def _check_valid(self, train: Sentences, valid: Sentences, strict: bool = True) -> None:
        unseen = sorted(set(valid.types) - set(train.types))
        if unseen:
            warn("validation data has entity types never seen in training (%s); they count as "
                 "misses", ", ".join(unseen))

    def _strategy_labels(self, train: Sentences) -> list[str]:
        return tag_list(train.types)

    def _set_labels(self, inner) -> None:
        self.tags_ = list(inner.tags)
        self.classes_ = tag_types(inner.tags)

    def _describe(self, train, valid) -> str:
        return (f"NER {self.strategy} on {len(train)} sentences ({train.n_entities()} entities, "
                f"types {', '.join(train.types)}), validating on {len(valid)}")

    def _data_record(self, train: Sentences, valid: Sentences) -> dict:
        return {**super()._data_record(train, valid), "scheme": train.scheme,
                "invalid_sequences": len(train.invalid) + len(valid.invalid)}

    def _valid_metrics(self, valid: Sentences) -> dict:
        m = entity_metrics(valid.tags, self.predict_tags(valid))
        return {k: (round(v, 5) if isinstance(v, float) else v)
                for k, v in m.items() if k != "per_type"}

    #: below this validation entity F1 a tagger is reported as unusable: 0 is the usual collapse
    #: (no entity predicted), a few hundredths is what an untrained, random head scores
    COLLAPSED_F1 = 0.05

    def _fit_warnings(self, scores: dict, inner) -> list[str]:
        f1 = scores.get("f1", 0)
        if not scores.get("n_entities") or f1 >= self.COLLAPSED_F1:
            return []
        n_pred = scores.get("n_predicted", 0)
        what = ("predicts no entity at all" if not n_pred else
                f"predicts {n_pred} entities, none of them right" if f1 == 0 else
                f"predicts {n_pred} entities, almost none of them right")
        n_train = self.data_.get("n_train", 0)
        return [f"the model {what} on the validation data ({scores['n_entities']} gold entities "
                f"in {scores.get('n_sentences', '?')} sentences): validation entity F1 is "
                f"{f1:.3g}. " + self._collapse_hints(inner, n_train)]

    def _check_outputs(self) -> None:
        tags, conf = self.strategy_.predict([["ronghe", "checks", "Paris"]])
        if len(tags) != 1 or len(tags[0]) != 3 or not set(tags[0]) <= set(self.tags_):
            raise BundleError("the tagger's output does not fit its tag list")

    # -- prediction -----------------------------------------------------------------------------

    def _inputs(self, X) -> Sentences:
        """Raw texts (tokenised here), token lists, records, a file, or ``Sentences``."""
        if isinstance(X, Sentences):
            return X
        if isinstance(X, str):
            if Path(X).expanduser().is_file():
                return ner_data.read(X, self.scheme, require_tags=False)
            raise DataError("expected a list of texts, got a single string; wrap it in a list")
        if isinstance(X, Path):
            return ner_data.read(X, self.scheme, require_tags=False)
        items = list(X)
        if all(isinstance(t, str) for t in items):
            return ner_data.from_texts(items)
        if all(isinstance(t, (list, tuple)) for t in items):
            bad = [i for i, t in enumerate(items) if not all(isinstance(w, str) for w in t)]
            if bad:
                raise DataError(f"token lists must hold strings; items {bad[:10]} do not")
            texts, offsets = zip(*(ner_data.join_tokens(list(t)) for t in items))
            return Sentences(tokens=[list(t) for t in items], tags=None, offsets=list(offsets),
                             texts=list(texts), source="<tokens>", lines=[0] * len(items))
        if all(isinstance(t, dict) for t in items):
            return ner_data.from_records(items, self.scheme, require_tags=False,
                                         source="<records>")
        raise DataError("predict takes a list of texts, a list of token lists, records, a file "
                        "or Sentences")

    def _tag(self, sents: Sentences) -> tuple[list[list[str]], list[list[float]]]:
        if not len(sents):
            return [], []
        return self.strategy_.predict(sents.tokens)

    def predict_tags(self, X) -> list[list[str]]:
        """BIO tags per token (always a valid BIO sequence)."""
        self._check_fitted()
        return self._tag(self._inputs(X))[0]

    def predict(self, X) -> list[list[dict]]:
        """For each input, its entities: ``{"start", "end", "label", "score", "text",
        "token_start", "token_end"}``. ``start``/``end`` are character offsets (end exclusive)
        into the input text - for token lists, into the tokens joined by spaces (no space
        between two CJK tokens); ``token_start``/``token_end`` index the tokens; ``score`` is the
        mean confidence of the entity's tags."""
        self._check_fitted()
        sents = self._inputs(X)
        tags, conf = self._tag(sents)
        out = []
        for i, (ts, cs) in enumerate(zip(tags, conf)):
            offs, text = sents.offsets[i], sents.texts[i]
            ents = []
            for a, b, lab in ner_data.bio_entities(ts):
                s, e = offs[a][0], offs[b - 1][1]
                ents.append({"start": s, "end": e, "label": lab,
                             "score": round(float(sum(cs[a:b]) / (b - a)), 6),
                             "text": text[s:e], "token_start": a, "token_end": b})
            out.append(ents)
        return out

    def predict_records(self, X) -> list[dict]:
        """``{"text", "entities"}`` per input: the JSON-lines format ``read`` takes back."""
        sents = self._inputs(X)
        return [{"text": t, "entities": e} for t, e in zip(sents.texts, self.predict(sents))]

    def evaluate(self, X, y=None) -> dict:
        """Strict entity-level precision, recall, F1 (micro), macro F1, per type, on tagged data
        (the same forms ``fit`` takes)."""
        self._check_fitted()
        sents = as_sentences(X, y, role="evaluation data", scheme=self.scheme)
        report = entity_metrics(sents.tags, self.predict_tags(sents))
        unseen = sorted(set(sents.types) - set(self.classes_))
        if unseen:
            report["unseen_types"] = unseen
        report["invalid_sequences"] = len(sents.invalid)
        report["notes"] = sents.notes
        return report


def load(path: str | Path) -> TokenClassifier:
    """Rebuild a fitted ``TokenClassifier`` from a bundle folder (no pickle, no remote code)."""
    return load_any(path, expect=TokenClassifier)
