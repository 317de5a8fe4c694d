"""``onnx`` for images: a fine-tuned image classifier exported to ONNX and run by onnxruntime,
with the torch-free preprocessing of ``preprocess.py`` (Pillow + numpy) - the same steps the torch
model was validated with, so an exported bundle predicts without torch, torchvision or timm.

Made by ``ronghe export BUNDLE --format onnx`` (``compression/export.py`` calls this module as the
image task's exporter: ``network``, ``onnx_bytes``, ``as_onnx``, ``parity``, ``sample_inputs``,
``calibration`` for ``ronghe compress --quantize int8-static``),
never by ``fit``. The graph takes ``pixel_values`` ``(batch, 3, size, size)`` (batch dynamic) and
returns ``logits``; the bundle holds ``model.onnx`` and the preprocessing in its metadata.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ..bundle import BundleReader, State
from ..config import StrategyConfig
from ..errors import BundleError, ConfigError
from ..log import info
from ..runtime.onnx import Exported, session
from ..strategies.base import Strategy
from .preprocess import Preprocess


class OnnxImageConfig(StrategyConfig):
    batch_size: int = Field(32, ge=1)
    source_strategy: str = Field("finetune", description="what the model was exported from")
    threads: int = Field(0, ge=0, description="onnxruntime intra-op threads; 0 = OMP_NUM_THREADS "
                                              "if set, else the usable cores")


class OnnxImageClassifier(Exported, Strategy):
    task = "image-classification"
    Config = OnnxImageConfig

    def logits(self, images) -> np.ndarray:
        from .estimator import decode

        out = []
        items = list(images)
        for start in range(0, len(items), self.config.batch_size):
            x = self.preprocess(decode(items[start:start + self.config.batch_size]))
            out.append(self.session.run(["logits"], {"pixel_values": x})[0])
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def predict_proba(self, images) -> np.ndarray:
        z = self.logits(images).astype(np.float64)
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    def to_state(self) -> State:
        return State(meta=dict(self.meta), files={"model.onnx": self.onnx_bytes})

    @classmethod
    def build(cls, config: OnnxImageConfig, classes, onnx_bytes: bytes, preprocess: dict,
              meta: dict) -> "OnnxImageClassifier":
        self = cls(config, classes)
        self.onnx_bytes = onnx_bytes
        self.meta = {**meta, "preprocess": preprocess}
        self.preprocess = Preprocess.from_config(preprocess)
        self.session = session(onnx_bytes, config.threads)
        return self

    @classmethod
    def from_state(cls, config, classes, backbone, reader: BundleReader):
        model = reader.path("model.onnx")
        if not model.is_file() or "preprocess" not in reader.meta:
            raise BundleError(f"{reader.root}: model.onnx or the preprocessing record is missing")
        return cls.build(config, classes, model.read_bytes(), reader.meta["preprocess"],
                         reader.meta)


# --------------------------------------------------------------------------- the export recipe

def network(clf):
    """The fine-tuned torch model of an ``ImageClassifier``, or a clear refusal."""
    inner = clf.strategy_
    if getattr(inner, "model", None) is None or not hasattr(inner, "preprocess"):
        raise ConfigError(f"only fine-tuned image models (finetune) can be exported to ONNX, not "
                          f"'{clf.strategy}'" + (": classic runs without torch already"
                                                 if clf.strategy == "classic" else ""))
    return inner


def onnx_bytes(inner, opset: int = 17, fuse: bool = False) -> bytes:
    """The vision network as ONNX (``fuse`` is for transformer encoders; CNNs are left to
    onnxruntime's own graph optimisations at load)."""
    import copy
    import tempfile
    from pathlib import Path

    import torch

    model = copy.deepcopy(inner.model).float().cpu().eval()
    size = inner.preprocess.size
    sample = torch.zeros(2, 3, size, size)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(model, (sample,), str(path), input_names=["pixel_values"],
                          output_names=["logits"], opset_version=opset, dynamo=False,
                          dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}})
        return path.read_bytes()


def as_onnx(clf, data: bytes | None = None, *, inner=None, note: dict | None = None):
    inner = inner or network(clf)
    data = data or onnx_bytes(inner)
    cfg = OnnxImageConfig(source_strategy=clf.strategy, seed=inner.config.seed)
    strategy = OnnxImageClassifier.build(cfg, list(inner.classes), data,
                                         inner.preprocess.to_json(),
                                         {"source_strategy": clf.strategy, **(note or {})})
    return clf.with_strategy(strategy, {"strategy": "onnx", "seed": clf.seed})


# a CNN's weights and time are in its convolutions; the head (one small Gemm) stays fp32: its
# input, the pooled features, spans a wide range per channel and one 8-bit scale for all of them
# cost 42 points of accuracy on Fashion-MNIST (EfficientNet-Lite0, 0.893 -> 0.468; convolutions
# only: 0.884 = fp32 on the same 500 images)
QUANTIZE_OPS = ("Conv",)
CALIBRATION_UNIT = "images"


def calibration(inner, images, batch_size: int = 16) -> list[dict]:
    """Preprocessed batches of real images (as the model sees them at prediction), for static
    int8 calibration of the activation ranges."""
    from .estimator import decode

    items = list(images)
    return [{"pixel_values": inner.preprocess(decode(items[i:i + batch_size]))}
            for i in range(0, len(items), batch_size)]


def sample_inputs() -> list:
    """Images for a parity check when the user gives none: seeded noise and gradients."""
    from PIL import Image

    rng = np.random.default_rng(0)
    out = [Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)) for _ in range(4)]
    ramp = np.linspace(0, 255, 200, dtype=np.uint8)
    out.append(Image.fromarray(np.stack([np.tile(ramp, (150, 1))] * 3, axis=2)))
    return out


def parity(reference, candidate, images) -> dict:
    """Max abs logit difference and label agreement between the torch and the ONNX model."""
    images = list(images)[:512]
    from .estimator import decode

    decoded = decode(images)
    a = reference.strategy_._logits(decoded)
    b = candidate.strategy_.logits(decoded)
    out = {"inputs": len(images), "max_abs_logits_diff": float(np.abs(a - b).max()),
           "label_agreement": float((a.argmax(1) == b.argmax(1)).mean())}
    info("parity on %d images: max |logit diff| %.2e, label agreement %.4f", len(images),
         out["max_abs_logits_diff"], out["label_agreement"])
    return out
