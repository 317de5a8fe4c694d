"""Export a fine-tuned transformer to ONNX (dynamic batch and sequence axes) and check parity."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..log import info


def network(clf):
    """The fitted strategy holding a ``TextModel`` with a head (finetune, merged PEFT, distilled)."""
    inner = clf.strategy_
    if hasattr(inner, "to_finetune") and getattr(inner, "mergeable", False):
        inner = inner.to_finetune()
    model = getattr(inner, "model", None)
    if model is None or getattr(model, "head", None) is None or not hasattr(inner, "tokenizer"):
        raise ConfigError(f"only fine-tuned transformer bundles (finetune, lora, adalora, ia3, "
                          f"distilled students) can be exported or compressed this way, not "
                          f"'{clf.strategy}'")
    if hasattr(model.encoder, "peft_config"):
        raise ConfigError(f"a '{clf.strategy}' model cannot be exported: its adapter is not merged")
    return inner


def onnx_bytes(inner, opset: int = 17) -> bytes:
    import torch

    from ..modeling import collate

    model = copy.deepcopy(inner.model).float().cpu().eval()  # never change the caller's model
    sample = collate([inner.tokenizer("a short example")["input_ids"],
                      inner.tokenizer("another, slightly longer example text")["input_ids"]],
                     inner.pad_id)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                "logits": {0: "batch"}}
        torch.onnx.export(model, (sample["input_ids"], sample["attention_mask"]), str(path),
                          input_names=["input_ids", "attention_mask"], output_names=["logits"],
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
        return path.read_bytes()


def as_onnx(clf, data: bytes | None = None, *, inner=None, note: dict | None = None):
    """A TextClassifier whose strategy runs ``data`` (ONNX bytes) with onnxruntime."""
    from ..classifier import TextClassifier
    from ..runtime.onnx import OnnxConfig, OnnxStrategy

    inner = inner or network(clf)
    data = data or onnx_bytes(inner)
    tokenizer_json = inner.tokenizer.backend_tokenizer.to_str().encode()
    cfg = OnnxConfig(max_length=inner.config.max_length, source_strategy=clf.strategy,
                     seed=inner.config.seed)
    strategy = OnnxStrategy.build(cfg, list(inner.classes), data, tokenizer_json, inner.pad_id,
                                  {"source_strategy": clf.strategy, **(note or {})})
    out = TextClassifier(strategy="onnx", seed=clf.seed)
    out.strategy_, out.config_, out.classes_ = strategy, cfg, clf.classes_
    out.backbone_, out.data_ = clf.backbone_, dict(getattr(clf, "data_", {}))
    out.metrics_ = dict(getattr(clf, "metrics_", {}))
    return out


def parity(reference, candidate, texts: list[str]) -> dict:
    """Max abs logit difference (for exports) or probability difference, and label agreement."""
    texts = list(texts)[:512]
    ref_inner, cand_inner = reference.strategy_, candidate.strategy_
    if hasattr(cand_inner, "logits") and hasattr(ref_inner, "_logits"):
        from ..modeling import tokenize

        a = ref_inner._logits(tokenize(ref_inner.tokenizer, texts, ref_inner.config.max_length))
        b = cand_inner.logits(texts)
        kind = "logits"
    else:
        a, b = reference.predict_proba(texts), candidate.predict_proba(texts)
        kind = "probabilities"
    out = {"texts": len(texts), f"max_abs_{kind}_diff": float(np.abs(a - b).max()),
           "label_agreement": float((a.argmax(1) == b.argmax(1)).mean())}
    info("parity on %d texts: max |diff| %.2e, label agreement %.4f", len(texts),
         out[f"max_abs_{kind}_diff"], out["label_agreement"])
    return out
