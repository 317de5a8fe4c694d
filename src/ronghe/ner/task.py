"""Named-entity recognition (token classification): the task's declaration.

Its parts live beside this file: readers and tag schemes (``data.py``), strict entity metrics
(``metrics.py``), the estimator (``estimator.py``) and the strategies (``crf.py``: ``classic``;
``finetune.py``: ``finetune``, ``lora``; ``onnx.py``: an exported tagger run by onnxruntime).
"""

from __future__ import annotations

from ..tasks.base import Task


class ServingModel:
    """``predict(inputs)`` -> ``{"text", "entities"}`` per input, from raw texts (tokenised by the
    model) or pre-tokenised token lists; a batch mixing both is answered kind by kind."""

    accepts = ("texts", "tokens")

    def __init__(self, estimator):
        self.estimator = estimator

    def predict(self, inputs: list) -> list[dict]:
        texts = [i for i, x in enumerate(inputs) if isinstance(x, str)]
        if len(texts) in (0, len(inputs)):
            return list(self.estimator.predict_records(inputs))
        tokens = [i for i, x in enumerate(inputs) if not isinstance(x, str)]
        out: list = [None] * len(inputs)
        for idx in (texts, tokens):
            for i, rec in zip(idx, self.estimator.predict_records([inputs[i] for i in idx])):
                out[i] = rec
        return out


class TokenClassification(Task):
    name = "token-classification"
    cli_name = "ner"
    description = "entity spans in texts (CoNLL / BIO, BIOES, BMES, JSON lines with spans)"
    estimator = "ronghe.ner.estimator:TokenClassifier"
    strategies = {
        "classic": "ronghe.ner.crf:CrfTagger",
        "finetune": "ronghe.ner.finetune:FinetuneTagger",
        "lora": "ronghe.ner.finetune:LoraTagger",
        "onnx": "ronghe.ner.onnx:OnnxTagger",
    }
    default_strategy = "finetune"
    score = "f1"
    summary = ("precision", "recall", "f1")
    portfolio = ("classic", "finetune")
    cost_order = ("classic", "lora", "finetune")
    data_options = ("scheme",)
    gate_metric = "f1"
    compression_note = ("pruning needs the recovery fine-tune, which the tagger's windows do "
                        "not have; bf16 is not implemented for taggers")
    label_noun = "entity types"
    exporter = "ronghe.ner.onnx"

    def read(self, path, *, labeled: bool = True, scheme: str | None = None, **_):
        from . import data

        return data.read(path, scheme or "auto", require_tags=labeled)

    def split(self, data_set, fraction: float, seed: int):
        from . import data

        return data.split(data_set, fraction, seed)

    def markdown(self, report: dict, title: str) -> str:
        from .metrics import markdown

        return markdown(report, title)

    def serving_model(self, estimator) -> ServingModel:
        return ServingModel(estimator)


TASK = TokenClassification()
