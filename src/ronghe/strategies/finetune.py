"""``finetune``: the backbone and a classification head trained end to end.

Mean pooling (the way sentence encoders such as MiniLM were pre-trained) or CLS pooling, dropout,
a linear head; trained by ``training.loop`` with early stopping on validation macro-F1. The bundle
holds all weights (safetensors), the encoder config and the tokenizer files, so it loads with no
access to the original backbone folder.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from sklearn.metrics import accuracy_score, f1_score

from .. import backbones
from ..bundle import BundleReader, State
from ..config import NetworkConfig
from ..modeling import TextModel, autocast_dtype, pick_device, run_batches, tokenize
from ..training import loop
from .base import Strategy


class FinetuneConfig(NetworkConfig):
    epochs: int = Field(3, ge=1, le=1000)
    learning_rate: float = Field(5e-5, gt=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    max_grad_norm: float = Field(1.0, ge=0, description="0 disables clipping")
    patience: int = Field(2, ge=1, description="epochs without macro-F1 gain before stopping")
    eval_batch_size: int = Field(128, ge=1)


class Finetune(Strategy):
    name = "finetune"
    Config = FinetuneConfig
    uses_backbone = True
    stores_backbone = True

    def _setup(self, encoder, tokenizer):
        c = self.config
        self.device = pick_device(c.device)
        self.dtype = autocast_dtype(c.precision, self.device)
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id or 0
        self.model = TextModel(encoder, len(self.classes), c.pooling, c.dropout).to(self.device)

    def fit(self, train, valid):
        c = self.config
        loop.set_seed(c.seed)
        self._setup(backbones.load_encoder(self.backbone.path),
                    backbones.load_tokenizer(self.backbone.path))
        ids = tokenize(self.tokenizer, train.texts, c.max_length)
        valid_ids = tokenize(self.tokenizer, valid.texts, c.max_length)
        y_valid = self.label_ids(valid.labels)

        def evaluate() -> dict:
            pred = self._logits(valid_ids).argmax(1)
            return {"accuracy": float(accuracy_score(y_valid, pred)),
                    "macro_f1": float(f1_score(y_valid, pred, average="macro"))}

        result = loop.train(self.model, ids, self.label_ids(train.labels), self.pad_id, evaluate,
                            loop.LoopConfig(c.epochs, c.batch_size, c.learning_rate, c.weight_decay,
                                            c.warmup_ratio, c.max_grad_norm, c.patience, c.seed),
                            self.device, self.dtype)
        self.history = result.history
        self.best_epoch = result.best_epoch
        return self

    def _logits(self, ids) -> np.ndarray:
        self.model.eval()
        return run_batches(self.model, ids, self.pad_id, self.config.eval_batch_size, self.device,
                           self.dtype)

    def predict_proba(self, texts):
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(self.classes)))
        logits = self._logits(tokenize(self.tokenizer, texts, self.config.max_length))
        return torch.softmax(torch.from_numpy(logits).double(), dim=1).numpy()

    def to_state(self) -> State:
        state = State(meta={"best_epoch": getattr(self, "best_epoch", None)},
                      tensors=dict(self.model.state_dict()))
        with tempfile.TemporaryDirectory() as tmp:
            self.tokenizer.save_pretrained(tmp)
            state.add_dir("tokenizer", Path(tmp))
        state.files["model/config.json"] = json.dumps(
            self.model.encoder.config.to_dict(), indent=2, default=str).encode()
        return state

    @classmethod
    def from_state(cls, config, classes, backbone, reader: BundleReader):
        self = cls(config, classes, backbone)
        encoder = backbones.load_encoder(reader.path("model"), config_only=True)
        self._setup(encoder, backbones.load_tokenizer(reader.path("tokenizer")))
        missing, unexpected = self.model.load_state_dict(reader.tensors(), strict=False)
        if missing or unexpected:
            from ..errors import BundleError

            raise BundleError(f"{reader.root}: weights do not fit the model (missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]})")
        self.model.to(self.device).eval()
        return self
