"""Quantisation: onnxruntime int8 (dynamic, or static with calibration data) and torch bf16."""

from __future__ import annotations

import copy
import re
import tempfile
from pathlib import Path

from ..errors import ConfigError
from ..log import warn


def _cpu() -> tuple[str, set[str]]:
    """The CPU's model name and its feature flags (Linux; empty elsewhere)."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return model, flags


def cpu_has_vnni() -> bool:
    """AVX-512 VNNI / AVX-VNNI: int8 dot products without the u8*s8 saturation risk of plain
    AVX2, so full-range weights are safe; otherwise use reduce_range (7-bit weights)."""
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & _cpu()[1])


def cpu_int8() -> dict:
    """What this CPU offers int8 matrix products and what that limits, for the report."""
    model, flags = _cpu()
    if "amx_int8" in flags:
        kind, limits = "AMX int8 tiles", "nothing: int8 runs on the matrix units"
    elif {"avx512_vnni", "avx_vnni"} & flags:
        kind, limits = "VNNI", "nothing: full-range int8 weights, one-instruction int8 dot products"
    elif "avx2" in flags:
        kind, limits = "AVX2 without VNNI", (
            "int8 products go through vpmaddubsw, which can saturate with full-range weights: "
            "weights keep 7 bits (reduce_range), and int8 gains less over fp32 than on a VNNI CPU")
    else:
        kind, limits = "no AVX2", "int8 kernels may be slower than fp32 on this CPU"
    return {"cpu": model or "unknown", "int8": kind, "limits": limits}


DYNAMIC_OPS = ("MatMul", "Gemm", "Gather", "Conv", "Attention", "EmbedLayerNormalization")
_GROUP = re.compile(r"(?:layers?|blocks?|stages?)[./_](\d+)")


def node_groups(model: bytes, op_types: tuple[str, ...]) -> dict[str, list[str]]:
    """The graph's quantisable nodes (those of ``op_types`` with a weight among their inputs) by
    the part of the network they belong to: ``layer.3`` (a transformer layer), ``blocks.2`` (a
    CNN stage), ``embeddings``, else the node alone (the head, a stem convolution)."""
    import onnx

    graph = onnx.load_from_string(model).graph
    weights = {t.name for t in graph.initializer}
    readers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node.name)

    def part(node) -> str:
        if node.op_type == "EmbedLayerNormalization" or "embeddings" in node.name:
            return "embeddings"
        # a fused kernel (Attention_3) has no layer in its name: take its readers' layer
        for name in [node.name] + [r for o in node.output for r in readers.get(o, [])]:
            m = _GROUP.search(name)
            if m:
                return m.group(0)
        return node.name

    groups: dict[str, list[str]] = {}
    for node in graph.node:
        if node.op_type in op_types and node.name and weights & set(node.input):
            groups.setdefault(part(node), []).append(node.name)
    return groups


def int8_dynamic(model: bytes, exclude: list[str] | tuple = ()) -> tuple[bytes, dict]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    vnni = cpu_has_vnni()
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        src.write_bytes(model)
        # DefaultTensorType: onnx's shape inference cannot type the outputs of onnxruntime's
        # fused kernels (Attention, SkipLayerNormalization), which are float here
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=not vnni, nodes_to_exclude=list(exclude),
                         extra_options={"DefaultTensorType": 1})  # onnx.TensorProto.FLOAT
        return dst.read_bytes(), {"method": "int8-dynamic", "per_channel": True,
                                  "reduce_range": not vnni, "vnni": vnni, "cpu": cpu_int8()}


def int8_static(model: bytes, feeds: list[dict], op_types: tuple[str, ...] = ("MatMul", "Gemm"),
                what: str = "texts", exclude: list[str] | tuple = ()) -> tuple[bytes, dict]:
    """Static int8 (QDQ) with activation ranges calibrated on real inputs: ``feeds`` are the
    graph's input batches (the exporter's ``calibration``), ``op_types`` what is quantised."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not feeds:
        raise ConfigError(f"static int8 needs calibration {what}: pass --valid or --train")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(feeds)

        def get_next(self):
            return next(self.batches, None)

    vnni = cpu_has_vnni()
    n = sum(len(next(iter(f.values()))) for f in feeds)
    with tempfile.TemporaryDirectory() as tmp:
        src, pre, dst = (Path(tmp) / n_ for n_ in ("in.onnx", "pre.onnx", "out.onnx"))
        src.write_bytes(model)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        per_channel=True, reduce_range=not vnni,
                        calibrate_method=CalibrationMethod.MinMax,
                        op_types_to_quantize=list(op_types), nodes_to_exclude=list(exclude))
        return dst.read_bytes(), {"method": "int8-static", "format": "QDQ",
                                  f"calibration_{what}": n, "ops": list(op_types),
                                  "reduce_range": not vnni, "cpu": cpu_int8()}


def bf16(clf):
    """A copy of a fine-tuned model with bf16 weights and bf16 autocast (CPUs with AVX-512 bf16 /
    AMX, and GPUs): half the size; faster where the hardware has bf16 matrix units."""
    import torch

    from ..modeling import bf16_supported
    from .export import network

    inner = copy.deepcopy(network(clf))
    if not bf16_supported(inner.device):
        warn("this %s has no bf16 matrix units (AMX tiles or a bf16 GPU): a bf16 model is half "
             "the size but usually slower than fp32 here; int8 (ONNX) is the faster choice on "
             "this machine", inner.device.type.upper())
    inner.model = inner.model.to(torch.bfloat16)
    inner.dtype = torch.bfloat16
    inner.report = {**inner.report, "weights_dtype": "bfloat16"}  # loaded back as bf16
    inner.config = inner.config.model_copy(update={"precision": "bf16"})
    return clf.with_strategy(inner, precision="bf16"), {"method": "bf16", "dtype": "bfloat16"}
