"""Named-entity recognition (token classification): data, metrics, strategies, the estimator.

``TokenClassifier`` (``estimator.py``) is the user-facing model; ``load`` rebuilds one from a
bundle whose manifest says ``task: token-classification``. Readers and tag schemes live in
``data.py``, strict entity metrics in ``metrics.py``, the strategies in ``crf.py`` (``classic``)
and ``finetune.py`` (``finetune``, ``lora``; ``crf=True`` adds the CRF layer of ``crf_layer.py``).
"""

from .data import Sentences, from_lists, from_records, from_texts, read, tokenize
from .estimator import STRATEGIES, TASK, TokenClassifier, load
from .metrics import entity_metrics, markdown

__all__ = ["STRATEGIES", "TASK", "Sentences", "TokenClassifier", "entity_metrics", "from_lists",
           "from_records", "from_texts", "load", "markdown", "read", "tokenize"]
