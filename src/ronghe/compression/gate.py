"""``compress``: apply pruning and/or quantisation, then let the accuracy gate decide.

Accuracy is measured on the validation data before and after; if the compressed model lost more
than ``max_drop`` points, nothing is written and ``GateError`` says by how much it missed. The
written bundle's manifest records what was done (``compression``); ``report`` adds size on disk and
latency p50/p95 at batch 1 and 32 for the original and the compressed bundle, each measured the
same way in a fresh process.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError, RongheError
from ..log import info
from . import prune as prune_mod
from . import quantize

QUANTIZE = ("int8", "int8-static", "bf16")


class GateError(RongheError):
    """The compressed model lost more accuracy than allowed (exit code 3)."""

    exit_code = 3


def compress(clf, *, valid, train=None, quantize_to: str | None = None, prune: str | None = None,
             max_drop: float = 0.5, recovery_epochs: int = 1):
    """Return (compressed estimator, description with the scores before and after); raise
    GateError. The gate protects the task's ``gate_metric`` (accuracy; NER: entity F1)."""
    from .export import exporter

    if quantize_to is None and prune is None:
        raise ConfigError("nothing to do: give --quantize (int8, int8-static, bf16) and/or --prune")
    if quantize_to and quantize_to not in QUANTIZE:
        raise ConfigError(f"--quantize {quantize_to!r}: choose one of {', '.join(QUANTIZE)}")
    spec = clf.task_spec()
    ex = exporter(clf)
    asked = [c for c in (quantize_to, "prune" if prune else None) if c]
    refused = [c for c in asked if c not in spec.compressions]
    if refused and not spec.compressions:
        raise ConfigError(f"no compression applies to '{spec.name}' models yet"
                          + (f": {spec.compression_note}" if spec.compression_note else ""))
    if refused:
        raise ConfigError(f"{', '.join(refused)} do(es) not apply to a '{spec.name}' model; use "
                          f"--quantize {' or '.join(c for c in spec.compressions if c != 'prune')}"
                          + (f" ({spec.compression_note})" if spec.compression_note else ""))
    if getattr(valid, "labels", getattr(valid, "tags", None)) is None:
        raise ConfigError("the accuracy gate needs labeled validation data (--valid)")
    metric = spec.gate_metric
    before = clf.evaluate(valid)
    inner = ex.network(clf)
    steps = []
    if prune:
        inner, note = prune_mod.prune(inner, prune, train, valid, recovery_epochs)
        steps.append({"step": "prune", **note})
    current = clf.with_strategy(inner)
    if quantize_to == "bf16":
        current, note = quantize.bf16(current)
        steps.append({"step": "quantize", **note})
    elif quantize_to in ("int8", "int8-static"):
        model = ex.onnx_bytes(inner)
        if quantize_to == "int8":
            model, note = quantize.int8_dynamic(model)
        else:
            pool = spec.inputs(train or valid)  # a seeded sample: files are often sorted by label
            pick = np.random.default_rng(0).permutation(len(pool))[:512]
            feeds = ex.calibration(inner, [pool[i] for i in sorted(pick)])
            model, note = quantize.int8_static(model, feeds, getattr(ex, "QUANTIZE_OPS", (
                "MatMul", "Gemm")), getattr(ex, "CALIBRATION_UNIT", "texts"))
        steps.append({"step": "quantize", **note})
        current = ex.as_onnx(clf, model, inner=inner, note={"compression": steps})
    after = current.evaluate(valid)
    drop = (before[metric] - after[metric]) * 100
    desc = {"steps": steps, "metric": metric, "before": round(before[metric], 5),
            "after": round(after[metric], 5)}
    for key in dict.fromkeys((metric, *spec.summary)):
        desc.setdefault(f"{key}_before", round(before[key], 5))
        desc.setdefault(f"{key}_after", round(after[key], 5))
    desc.update({"drop_points": round(drop, 3), "max_drop_points": max_drop, "valid_n": len(valid),
                 "valid_source": valid.source})
    info("%s %.4f -> %.4f (%.2f points lost, allowed %.2f)", metric, before[metric],
         after[metric], drop, max_drop)
    if drop > max_drop:
        raise GateError(f"accuracy gate failed: the compressed model lost {drop:.2f} points of "
                        f"{metric} ({before[metric]:.4f} -> {after[metric]:.4f}), "
                        f"{drop - max_drop:.2f} more than --max-drop {max_drop}. Nothing was "
                        "written. Try milder settings (lower sparsity, more layers, int8 instead "
                        "of int8-static) or more recovery data/epochs.")
    current.compression_ = desc
    return current, desc


def report(original: Path, compressed: Path, texts: list[str], desc: dict) -> dict:
    from ..bench import measure

    def size(p: Path) -> float:
        return round(sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 1e6, 3)

    rows = {}
    for name, path in (("original", original), ("compressed", compressed)):
        rows[name] = {"bundle": str(path), "size_mb": size(path), **measure(path, texts)}
    rows["speedup_b1"] = round(rows["original"]["latency_b1_p50_ms"] /
                               rows["compressed"]["latency_b1_p50_ms"], 3)
    rows["speedup_b32"] = round(rows["original"]["latency_b32_p50_ms"] /
                                rows["compressed"]["latency_b32_p50_ms"], 3)
    return {**desc, **rows}


def write_json(path: Path, obj: dict) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as fh:
        json.dump(obj, fh, indent=2)
    shutil.move(fh.name, path)
