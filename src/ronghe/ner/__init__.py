"""Named-entity recognition (token classification): data, metrics, strategies, the estimator.

``TokenClassifier`` (``estimator.py``) is the user-facing model; ``load`` rebuilds one from a
bundle whose manifest says ``task: token-classification`` (``ronghe.load`` reads any bundle). The
task's declaration is ``task.py``; readers and tag schemes live in ``data.py``, strict entity
metrics in ``metrics.py``, the strategies in ``crf.py`` (``classic``), ``finetune.py``
(``finetune``, ``lora``; ``crf=True`` adds the CRF layer of ``crf_layer.py``) and ``onnx.py`` (an
exported tagger). Importing this package does not import torch.
"""

from .data import Sentences, from_lists, from_records, from_texts, read, tokenize
from .estimator import TokenClassifier, load
from .metrics import entity_metrics, markdown
from .task import TASK

__all__ = ["TASK", "Sentences", "TokenClassifier", "entity_metrics", "from_lists",
           "from_records", "from_texts", "load", "markdown", "read", "tokenize"]
