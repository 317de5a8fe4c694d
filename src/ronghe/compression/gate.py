"""``compress``: apply pruning and/or quantisation, then let the accuracy gate decide.

Accuracy is measured on the validation data before and after; if the compressed model lost more
than ``max_drop`` points, nothing is written and ``GateError`` says by how much it missed.

int8 looks for a variant that passes before refusing (``max_fp32_parts`` > 0, default 4): when the
fully quantised model loses too much, each part of the network (a transformer layer, a CNN stage,
the embeddings, the head) is quantised alone to measure what it costs, and the most sensitive
parts are kept in fp32, one more at a time (at most ``max_fp32_parts``), until the drop is within
``max_drop``. Every candidate tried - what stayed fp32, its score and size - is in the
description (``quantize.search``). The
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
from ..log import info, progress
from . import prune as prune_mod
from . import quantize

QUANTIZE = ("int8", "int8-static", "bf16")


class GateError(RongheError):
    """The compressed model lost more accuracy than allowed (exit code 3)."""

    exit_code = 3


def compress(clf, *, valid, train=None, quantize_to: str | None = None, prune: str | None = None,
             max_drop: float = 0.5, recovery_epochs: int = 1, max_fp32_parts: int = 4):
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
    current, after = clf.with_strategy(inner), None
    if quantize_to == "bf16":
        current, note = quantize.bf16(current)
        steps.append({"step": "quantize", **note})
    elif quantize_to in ("int8", "int8-static"):
        current, after = _int8(clf, ex, spec, inner, steps, quantize_to, train, valid,
                               before[metric], metric, max_drop, max_fp32_parts)
    if after is None:
        after = current.evaluate(valid)
    drop = points_lost(before[metric], after[metric])
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
        search = next((s.get("search") for s in steps if s.get("search")), None)
        tried = (" Keeping the most sensitive parts in fp32 did not pass either (tried "
                 + "; ".join(f"{', '.join(t['fp32']) or 'none'}: -{t['drop_points']:.2f}"
                             for t in search["tried"]) + ").") if search else ""
        raise GateError(f"accuracy gate failed: the compressed model lost {drop:.2f} points of "
                        f"{metric} ({before[metric]:.4f} -> {after[metric]:.4f}), "
                        f"{drop - max_drop:.2f} more than --max-drop {max_drop}.{tried} Nothing "
                        "was written. Try milder settings (lower sparsity, more layers, int8 instead "
                        "of int8-static), a larger --max-fp32-parts, or more recovery "
                        "data/epochs.")
    current.compression_ = desc
    return current, desc


def points_lost(before: float, after: float) -> float:
    """Points of the metric lost, rounded to 6 decimals: scores are ratios of counts, and without
    the rounding 0.92625 - 0.92125 is 0.5000000000000004 points - over a 0.5 gate that the
    fp32-parts search, reading the same drop, had let through."""
    return round((before - after) * 100, 6)


def _int8(clf, ex, spec, inner, steps, method, train, valid, before: float, metric: str,
          max_drop: float, max_fp32_parts: int):
    """Quantise to int8 (dynamic or static); if that loses more than ``max_drop``, keep the most
    sensitive parts in fp32 until it does not. Returns (estimator, its scores)."""
    fp32 = ex.onnx_bytes(inner, fuse=method == "int8")  # static QDQ works on the plain graph
    if method == "int8":
        ops = quantize.DYNAMIC_OPS

        def build(exclude):
            return quantize.int8_dynamic(fp32, exclude)
    else:
        ops = getattr(ex, "QUANTIZE_OPS", ("MatMul", "Gemm"))
        pool = spec.inputs(train or valid)  # a seeded sample: files are often sorted by label
        pick = np.random.default_rng(0).permutation(len(pool))[:512]
        feeds = ex.calibration(inner, [pool[i] for i in sorted(pick)])
        unit = getattr(ex, "CALIBRATION_UNIT", "texts")

        def build(exclude):
            return quantize.int8_static(fp32, feeds, ops, unit, exclude)

    def attempt(exclude: list[str]):
        model, note = build(exclude)
        est = ex.as_onnx(clf, model, inner=inner)
        scores = est.evaluate(valid)
        return model, note, scores, {"size_mb": round(len(model) / 1e6, 2),
                                     metric: round(scores[metric], 5),
                                     "drop_points": points_lost(before, scores[metric])}

    model, note, scores, row = attempt([])
    info("%s, every part quantised: %s %.4f (%.2f points lost)", method, metric, scores[metric],
         row["drop_points"])
    groups = quantize.node_groups(fp32, ops)
    if max_fp32_parts > 0 and row["drop_points"] > max_drop and len(groups) > 1:
        tried = [{"fp32": [], **row}]
        names = [n for g in groups.values() for n in g]
        cost = {}
        with progress("int8: sensitivity of each part", len(groups)) as bar:
            for key, nodes in groups.items():
                alone = set(nodes)
                *_, r = attempt([n for n in names if n not in alone])
                cost[key] = r["drop_points"]
                bar.advance()
        order = sorted(groups, key=lambda k: (-cost[k], k))
        info("int8: most sensitive parts %s", ", ".join(f"{k} ({cost[k]:+.2f})"
                                                       for k in order[:max_fp32_parts]))
        for k in range(1, min(max_fp32_parts, len(order) - 1) + 1):
            keep = order[:k]
            m, n, s, r = attempt([x for g in keep for x in groups[g]])
            tried.append({"fp32": keep, **r})
            info("int8 with %s in fp32: %s %.4f (%.2f points lost)", ", ".join(keep), metric,
                 s[metric], r["drop_points"])
            if r["drop_points"] <= max_drop:
                model, note, scores = m, {**n, "fp32_parts": keep}, s
                break
        note = {**note, "search": {"sensitivity_points": cost, "tried": tried}}
    steps.append({"step": "quantize", **note})
    return ex.as_onnx(clf, model, inner=inner, note={"compression": steps}), scores


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
