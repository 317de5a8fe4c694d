"""``onnx``: an exported network run by onnxruntime; tokenisation by the ``tokenizers`` library.

Made by ``ronghe export --format onnx`` / ``ronghe compress --quantize int8`` from a fine-tuned
bundle, never by ``fit``. Imports neither torch nor transformers.
"""

from __future__ import annotations

import os

import numpy as np
from pydantic import Field

from ..batching import length_grouped_batches, pad
from ..bundle import BundleReader, State
from ..config import StrategyConfig
from ..errors import BundleError, ConfigError
from ..machine import available_cores
from ..strategies.base import Strategy


class OnnxConfig(StrategyConfig):
    max_length: int = Field(128, ge=8)
    batch_size: int = Field(64, ge=1)
    source_strategy: str = Field("finetune", description="what the model was exported from")
    threads: int = Field(0, ge=0, description="onnxruntime intra-op threads; 0 = OMP_NUM_THREADS "
                                              "if set, else the usable cores")


_process_threads: int | None = None


def set_process_threads(n: int | None) -> None:
    """The intra-op threads of every session made from now on whose bundle does not set
    ``threads`` (None: back to ``default_threads``'s rule). ``ronghe serve`` sets its
    ``inference_threads`` here as it sets torch's, so one setting governs both (before, ONNX
    models ignored it)."""
    global _process_threads
    _process_threads = n


def default_threads() -> int:
    """The process's setting (``set_process_threads``), else what torch would use:
    OMP_NUM_THREADS if set, else the cores this process may run on."""
    if _process_threads:
        return _process_threads
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return available_cores()


def session(model: str | bytes, threads: int = 0):
    """An onnxruntime CPU session for a model file or the model's bytes."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("ONNX bundles need onnxruntime: pip install 'ronghe[onnx]'") from None
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def fast_tokenizer(tokenizer_json: bytes, max_length: int):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json.decode())
    tok.no_padding()
    tok.enable_truncation(max_length)
    return tok


class Exported:
    """Mixed into the strategies ``ronghe export --format onnx`` makes (one per task): they are
    built from a fitted bundle, never fitted."""

    name = "onnx"

    def fit(self, train, valid):
        raise ConfigError("onnx models are exported from fitted bundles: "
                          "ronghe export BUNDLE --format onnx --out DIR")


class OnnxStrategy(Exported, Strategy):
    Config = OnnxConfig

    def _ids(self, texts) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

    def logits(self, texts) -> np.ndarray:
        ids = self._ids(texts)
        out = np.empty((len(ids), len(self.classes)), dtype=np.float32)
        for idx in length_grouped_batches([len(s) for s in ids], self.config.batch_size, None):
            input_ids, mask = pad([ids[i] for i in idx], self.pad_id)
            out[idx] = self.session.run(["logits"], {"input_ids": input_ids,
                                                     "attention_mask": mask})[0]
        return out

    def predict_proba(self, texts):
        if not len(texts):
            return np.zeros((0, len(self.classes)))
        z = self.logits(texts).astype(np.float64)
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    def to_state(self) -> State:
        return State(meta=dict(self.meta), files={"model.onnx": self.onnx_bytes,
                                                  "tokenizer/tokenizer.json": self.tokenizer_json})

    @classmethod
    def build(cls, config: OnnxConfig, classes, onnx_bytes: bytes, tokenizer_json: bytes,
              pad_id: int, meta: dict) -> "OnnxStrategy":
        self = cls(config, classes)
        self.onnx_bytes, self.tokenizer_json = onnx_bytes, tokenizer_json
        self.pad_id, self.meta = pad_id, {**meta, "pad_id": pad_id}
        self.session = session(onnx_bytes, config.threads)
        self.tokenizer = fast_tokenizer(tokenizer_json, config.max_length)
        return self

    @classmethod
    def from_state(cls, config, classes, backbone, reader: BundleReader):
        model, tj = reader.path("model.onnx"), reader.path("tokenizer/tokenizer.json")
        if not tj.exists():
            raise BundleError(f"{reader.root}: tokenizer/tokenizer.json is missing")
        return cls.build(config, classes, model.read_bytes(), tj.read_bytes(),
                         int(reader.meta.get("pad_id", 0)), reader.meta)
