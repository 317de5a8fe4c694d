"""``TokenClassifier``: named-entity recognition with the same estimator and bundle shape as
``TextClassifier``.

>>> ner = TokenClassifier(strategy="finetune", model="minilm", crf=True, epochs=3)
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

import time
from pathlib import Path
from typing import Any

from sklearn.base import BaseEstimator

from .. import backbones, bundle
from ..config import validate
from ..errors import ConfigError, DataError, NotFittedError
from ..log import info, warn
from ..strategies.base import TrainContext
from . import data as ner_data
from .base import NerStrategy, tag_list
from .crf import CrfTagger
from .data import Sentences
from .finetune import FinetuneTagger, LoraTagger
from .metrics import entity_metrics

TASK = "token-classification"
STRATEGIES: dict[str, type[NerStrategy]] = {"classic": CrfTagger, "finetune": FinetuneTagger,
                                            "lora": LoraTagger}


def get_strategy(name: str) -> type[NerStrategy]:
    if name not in STRATEGIES:
        raise ConfigError(f"unknown NER strategy '{name}'; choose one of: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


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


class TokenClassifier(BaseEstimator):
    """Named-entity recognition: ``classic`` (CRF on hand-made features), ``finetune`` (backbone +
    token head, ``crf=True`` for a jointly trained CRF) or ``lora``."""

    def __init__(self, strategy: str = "finetune", model: str | None = None, *,
                 crf: bool = False, epochs: int | None = None, batch_size: int | None = None,
                 learning_rate: float | None = None, max_length: int | None = None,
                 stride: int | None = None, scheme: str = "auto", seed: int | None = None,
                 valid_fraction: float | None = None, device: str | None = None,
                 precision: str | None = None, options: dict[str, Any] | None = None,
                 run_dir: str | Path | None = None):
        self.strategy = strategy
        self.model = model
        self.crf = crf
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_length = max_length
        self.stride = stride
        self.scheme = scheme
        self.seed = seed
        self.valid_fraction = valid_fraction
        self.device = device
        self.precision = precision
        self.options = options
        self.run_dir = run_dir

    # -- configuration --------------------------------------------------------------------------

    def resolved_config(self):
        cls = get_strategy(self.strategy)
        values = {k: v for k, v in self.get_params().items()
                  if k not in ("strategy", "options", "run_dir", "scheme", "crf") and v is not None}
        if self.crf:
            if cls is CrfTagger:
                raise ConfigError("crf=True applies to the network strategies (finetune, lora); "
                                  "'classic' is a CRF already")
            values["crf"] = True
        values.update(self.options or {})
        return validate(cls.Config, values, self.strategy)

    # -- fitting --------------------------------------------------------------------------------

    def fit(self, X, y=None, valid=None, *, resume: bool = False, callbacks: list | None = None):
        """Fit on tagged sentences: a CoNLL or JSONL file, ``Sentences``, records, or token lists
        ``X`` with tag lists ``y`` (tags in ``scheme``, converted to BIO).

        ``valid`` (same forms; or passed as ``y`` when it is a file/Sentences) selects the CRF's
        regularisation or the stopping epoch; without it a seeded share of the training sentences
        (``valid_fraction``) is held out.
        """
        if valid is None and y is not None and (isinstance(y, (Sentences, str, Path))
                                                or (isinstance(y, list) and y
                                                    and isinstance(y[0], dict))):
            y, valid = None, y
        cls = get_strategy(self.strategy)
        config = self.resolved_config()
        train = as_sentences(X, y, role="training data", scheme=self.scheme)
        types = train.types
        if not types:
            raise DataError(f"{train.source}: no entities in the training data (every tag is "
                            "'O'); there is nothing to learn")
        if valid is None:
            train, valid = ner_data.split(train, config.valid_fraction, config.seed)
        else:
            valid = as_sentences(valid, role="validation data", scheme=self.scheme)
        unseen = sorted(set(valid.types) - set(types))
        if unseen:
            warn("validation data has entity types never seen in training (%s); they count as "
                 "misses", ", ".join(unseen))
        tags = tag_list(types)
        backbone = backbones.resolve(config.model) if cls.uses_backbone else None
        info("training NER %s on %d sentences (%d entities, types %s), validating on %d",
             self.strategy, len(train), train.n_entities(), ", ".join(types), len(valid))
        if resume and not self.run_dir:
            raise ConfigError("resume needs the run directory of the interrupted run (run_dir)")
        context = TrainContext(Path(self.run_dir) if self.run_dir else None, resume,
                               list(callbacks or []))
        start = time.perf_counter()
        inner = cls(config, tags, backbone, context).fit(train, valid)
        self.train_seconds_ = time.perf_counter() - start
        self.strategy_ = inner
        self.config_ = config
        self.tags_ = tags
        self.classes_ = list(types)
        self.backbone_ = backbone
        self.data_ = {"fingerprint": train.fingerprint(), "n_train": len(train),
                      "n_valid": len(valid), "source": train.source, "scheme": train.scheme,
                      "valid_fingerprint": valid.fingerprint(),
                      "invalid_sequences": len(train.invalid) + len(valid.invalid),
                      "notes": train.notes + [n for n in valid.notes if n not in train.notes]}
        valid_m = entity_metrics(valid.tags, self.predict_tags(valid))
        self.metrics_ = {"valid": {k: (round(v, 5) if isinstance(v, float) else v)
                                   for k, v in valid_m.items() if k != "per_type"},
                         "train_seconds": round(self.train_seconds_, 2),
                         "history": inner.history, **inner.report}
        return self

    # -- prediction -----------------------------------------------------------------------------

    def _check_fitted(self):
        if not hasattr(self, "strategy_"):
            raise NotFittedError("this TokenClassifier is not fitted yet: call fit() or "
                                 "ronghe.ner.load()")

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

    # -- persistence ----------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the bundle folder atomically (task ``token-classification``); returns its path."""
        self._check_fitted()
        header = {
            "task": TASK,
            "strategy": self.strategy,
            "labels": list(self.classes_),
            "backbone": self.backbone_.to_json() if self.backbone_ else None,
            "config": self.config_.model_dump(mode="json"),
            "params": {k: (str(v) if isinstance(v, Path) else v)
                       for k, v in self.get_params().items()},
            "metrics": self.metrics_,
            "data": self.data_,
        }
        state = self.strategy_.to_state()
        state.meta = {**state.meta, "tags": self.tags_}
        return bundle.save(path, header, state)


def load(path: str | Path) -> TokenClassifier:
    """Rebuild a fitted ``TokenClassifier`` from a bundle folder (no pickle, no remote code)."""
    reader = bundle.open_bundle(path)
    m = reader.manifest
    if m.task != TASK:
        raise ConfigError(f"{path} holds a '{m.task}' model; ronghe.ner.load reads '{TASK}' "
                          "bundles (ronghe.load reads any)")
    cls = get_strategy(m.strategy)
    config = validate(cls.Config, m.config, m.strategy)
    tags = reader.meta.get("tags") or tag_list([str(x) for x in m.labels])
    params = getattr(m, "params", None) or {"strategy": m.strategy}
    clf = TokenClassifier(**params)
    backbone = None
    if m.backbone:
        backbone = backbones.Backbone(m.backbone["ref"], Path(m.backbone["path"]),
                                      m.backbone["source"], m.backbone["sha256"])
    clf.strategy_ = cls.from_state(config, tags, backbone, reader)
    clf.config_ = config
    clf.tags_ = tags
    clf.classes_ = [str(x) for x in m.labels]
    clf.backbone_ = backbone
    clf.metrics_ = m.metrics
    clf.data_ = m.data
    clf.bundle_path_ = reader.root
    clf.manifest_ = m
    return clf
