"""Export a fine-tuned transformer to ONNX (dynamic batch and sequence axes) and check parity.

``export`` is what ``ronghe export`` runs for a bundle of any task: ``--merge`` folds a PEFT
adapter into the weights, ``--format onnx`` exports through the task's exporter (its
``Task.exporter`` module: this one for text classification, ``ner/onnx.py`` for NER), checks the
export against the original on real inputs and records both in the bundle's ``compression``. An
exporter module provides ``network(clf)``, ``onnx_bytes(inner)``, ``as_onnx(clf, data, inner=,
note=)``, ``parity(reference, candidate, inputs)``, ``calibration(inner, inputs)`` (the graph's
input batches made from real inputs, for static int8), ``sample_inputs()`` and optionally
``QUANTIZE_OPS`` (what static int8 quantises; default MatMul and Gemm) and ``CALIBRATION_UNIT``.

Transformer encoders are exported with eager attention and then rewritten by onnxruntime's
transformer optimiser (``fuse``): attention, embedding + LayerNorm, residual + LayerNorm and
bias + GELU become single fused kernels (``Attention``, ``EmbedLayerNormalization``,
``SkipLayerNormalization``, ``BiasGelu``), which dynamic int8 then quantises as a whole. The
fused graph is kept only if it gives the same outputs as the plain one on the export's sample;
static int8 quantises the plain graph (its QDQ pass works on MatMul/Gemm nodes).
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..log import info, warn


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


def graph_bytes(model, ids: list[list[int]], pad_id: int, output: str, output_axes: dict,
                opset: int = 17, fuse: bool = False) -> bytes:
    """``model(input_ids, attention_mask) -> output`` as ONNX bytes, traced on the padded sample
    ``ids``, with dynamic batch and sequence axes (``output_axes`` for the output); with
    ``fuse``, onnxruntime's transformer fusions applied (``fuse_transformer``). A copy is
    exported: the caller's model is never changed."""
    import torch

    from ..modeling import collate

    model = copy.deepcopy(model).float().cpu().eval()
    encoder = getattr(model, "encoder", None)
    if fuse and hasattr(encoder, "set_attn_implementation"):
        try:  # the eager attention graph is the pattern onnxruntime's fusion recognises
            encoder.set_attn_implementation("eager")
        except (ValueError, NotImplementedError):
            fuse = False
    sample = collate(ids, pad_id)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                output: output_axes}
        torch.onnx.export(model, (sample["input_ids"], sample["attention_mask"]), str(path),
                          input_names=["input_ids", "attention_mask"], output_names=[output],
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
        data = path.read_bytes()
    if fuse and encoder is not None:
        feeds = {k: v.numpy().astype(np.int64) for k, v in sample.items()}
        data = fuse_transformer(data, encoder.config, feeds, output)
    return data


def fuse_transformer(data: bytes, config, feeds: dict, output: str) -> bytes:
    """``data`` rewritten by onnxruntime's transformer optimiser, if the fused graph computes the
    same ``output`` on ``feeds`` (max abs difference <= 1e-4); otherwise ``data`` unchanged."""
    try:
        from onnxruntime.transformers import optimizer
    except ImportError:
        return data
    from ..runtime.onnx import session

    heads = getattr(config, "num_attention_heads", None)
    hidden = getattr(config, "hidden_size", None)
    if not heads or not hidden:
        return data
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(data)
        try:
            opt = optimizer.optimize_model(str(path), model_type="bert", num_heads=heads,
                                           hidden_size=hidden, opt_level=0)
        except Exception as e:  # noqa: BLE001 - an unfusable graph is still a valid export
            warn("onnxruntime's transformer fusion failed (%s); the graph is kept unfused",
                 type(e).__name__)
            return data
        if not any(o.domain == "com.microsoft" for o in opt.model.opset_import):
            from onnx import helper  # the fused kernels live in onnxruntime's contrib domain

            opt.model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
        fused = opt.model.SerializeToString()
        stats = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
    a = session(data, 1).run([output], feeds)[0]
    b = session(fused, 1).run([output], feeds)[0]
    diff = float(np.abs(a - b).max())
    if diff > 1e-4:
        warn("onnxruntime's transformer fusion changed the outputs (max |diff| %.2e); the graph "
             "is kept unfused", diff)
        return data
    info("onnxruntime transformer fusions: %s", ", ".join(f"{k} {v}" for k, v in stats.items())
         or "none matched")
    return fused


def onnx_bytes(inner, opset: int = 17, fuse: bool = True) -> bytes:
    ids = [inner.tokenizer(t)["input_ids"]
           for t in ("a short example", "another, slightly longer example text")]
    return graph_bytes(inner.model, ids, inner.pad_id, "logits", {0: "batch"}, opset, fuse)


def as_onnx(clf, data: bytes | None = None, *, inner=None, note: dict | None = None):
    """The estimator rebuilt around an ``onnx`` strategy that runs ``data`` (ONNX bytes, by
    default the export of ``clf``'s network) with onnxruntime."""
    from ..runtime.onnx import OnnxConfig, OnnxStrategy

    inner = inner or network(clf)
    data = data or onnx_bytes(inner)
    tokenizer_json = inner.tokenizer.backend_tokenizer.to_str().encode()
    cfg = OnnxConfig(max_length=inner.config.max_length, source_strategy=clf.strategy,
                     seed=inner.config.seed)
    strategy = OnnxStrategy.build(cfg, list(inner.classes), data, tokenizer_json, inner.pad_id,
                                  {"source_strategy": clf.strategy, **(note or {})})
    return clf.with_strategy(strategy, {"strategy": "onnx", "seed": clf.seed})


def exporter(clf):
    """The task's exporter module, or a clear refusal."""
    from ..tasks import import_ref

    spec = clf.task_spec()
    if not spec.exporter:
        raise ConfigError(f"'{spec.name}' models cannot be exported to ONNX or compressed yet")
    return import_ref(spec.exporter, "ONNX export")


def export(clf, *, merge: bool = False, format: str | None = None, inputs=None):
    """``ronghe export``: the estimator merged and/or as an ONNX model (with its parity check
    on ``inputs``, a data set or list, or the exporter's built-in sample)."""
    if not merge and format is None:
        raise ConfigError("choose what to export: --merge and/or --format onnx")
    if format not in (None, "onnx"):
        raise ConfigError(f"--format {format!r}: only onnx is supported")
    if merge:
        if not hasattr(clf, "merged"):
            raise ConfigError(f"--merge applies to text-classification PEFT bundles; a "
                              f"'{clf.task}' {clf.strategy} bundle already holds merged weights")
        clf = clf.merged()
    if format == "onnx":
        ex = exporter(clf)
        if inputs is None:
            sample = ex.sample_inputs()
        elif hasattr(inputs, "texts"):  # a data set
            sample = clf.task_spec().inputs(inputs)
        else:
            sample = list(inputs)
        onnx_clf = ex.as_onnx(clf)
        check = ex.parity(clf, onnx_clf, sample)
        onnx_clf.compression_ = {"steps": [{"step": "export", "format": "onnx", "opset": 17}],
                                 "parity": check}
        clf = onnx_clf
    return clf


def sample_inputs() -> list[str]:
    """Texts for a parity check when the user gives none: the packaged SST-2 dev sample."""
    from .. import data
    from ..demo import sample_paths

    return data.load(sample_paths()[1]).texts


def calibration(inner, texts: list[str]) -> list[dict]:
    """Padded token batches of real texts, the graph's inputs for static int8 calibration."""
    from ..modeling import tokenize
    from ..batching import token_feeds

    return token_feeds(tokenize(inner.tokenizer, texts, inner.config.max_length), inner.pad_id)


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
    out = {"inputs": len(texts), f"max_abs_{kind}_diff": float(np.abs(a - b).max()),
           "label_agreement": float((a.argmax(1) == b.argmax(1)).mean())}
    info("parity on %d texts: max |diff| %.2e, label agreement %.4f", len(texts),
         out[f"max_abs_{kind}_diff"], out["label_agreement"])
    return out
