"""``finetune``: the backbone and a classification head trained end to end.

Mean pooling (the way sentence encoders such as MiniLM were pre-trained) or CLS pooling, dropout,
a linear head; trained by ``training.loop`` with early stopping on validation macro-F1. Training
controls: freezing (embeddings, the bottom k layers, or everything but the head), layer-wise
learning-rate decay, a separate head learning rate, label smoothing, class weights, adversarial
training (FGM/PGD), augmentation, checkpoints and resume. The bundle holds all weights
(safetensors), the encoder config and the tokenizer files, so it loads without the original
backbone folder. Parameter-efficient variants (``lora`` ...) subclass this and change how the
encoder is wrapped and what is saved.
"""

from __future__ import annotations

import json
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from sklearn.metrics import accuracy_score, f1_score

from .. import backbones
from ..bundle import BundleReader, State
from ..config import NetworkConfig, TrainingFields
from ..errors import BundleError, ConfigError
from ..log import info
from ..modeling import run_batches, setup_network, tokenize
from ..training import loop
from ..training.augment import EmbeddingSynonyms, augment, load_translate
from ..training.tracking import run_callbacks
from .base import Strategy


class FinetuneConfig(NetworkConfig, TrainingFields):
    freeze: Literal["none", "embeddings", "encoder"] = Field(
        "none", description="encoder = train the head only")
    freeze_layers: int = Field(0, ge=0, description="freeze the embeddings and the bottom k layers")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    class_weight: Literal["none", "auto"] = Field("none", description="auto = inverse frequency")
    adversarial: Literal["none", "fgm", "pgd"] = "none"
    adv_epsilon: float = Field(1.0, gt=0)
    adv_steps: int = Field(3, ge=1, description="PGD steps")
    augment: list[str] = Field([], description="swap, delete, insert, synonym, back_translate")
    augment_per_example: int = Field(1, ge=1)
    augment_rate: float = Field(0.1, gt=0, le=0.5, description="share of words an operation touches")
    back_translate: str | None = Field(None, description="module:function translating a list of texts")
    init_from: str | None = Field(None, description="bundle whose fine-tuned encoder to start from "
                                                    "(transfer from an earlier task)")


def _freeze(encoder: torch.nn.Module, cfg: FinetuneConfig) -> None:
    for name, p in encoder.named_parameters():
        layer = loop._LAYER.search("." + name)
        if (cfg.freeze == "encoder"
                or (cfg.freeze == "embeddings" and "embeddings" in name)
                or (cfg.freeze_layers and (layer and int(layer.group(1)) < cfg.freeze_layers
                                           or "embeddings" in name))):
            p.requires_grad_(False)


REUSE_MAX = 256  # texts of one embed() call kept for the next call on the same texts


class Finetune(Strategy):
    name = "finetune"
    Config = FinetuneConfig
    uses_backbone = True
    trains_network = True
    stores_backbone = True
    small_data_batch = True  # measured: benchmarks/finetune_small.py

    # -- building ------------------------------------------------------------------------------

    def _setup(self, encoder, tokenizer):
        setup_network(self, encoder, tokenizer, len(self.classes), self.config.dropout)

    def _prepare_encoder(self, encoder):
        """Freeze per the config; subclasses wrap the encoder (PEFT) here."""
        _freeze(encoder, self.config)
        return encoder

    def _callbacks(self) -> list:
        return []

    def _extra_loss(self):
        return None

    def _augment(self, texts, labels):
        c = self.config
        if not c.augment:
            return texts, labels
        synonyms = None
        if {"synonym", "insert"} & set(c.augment):
            emb = self.model.encoder.get_input_embeddings().weight.detach().cpu().float().numpy()
            synonyms = EmbeddingSynonyms(self.tokenizer, emb)
        translate = load_translate(c.back_translate) if c.back_translate else None
        texts, labels, report = augment(texts, labels, c.augment, per_example=c.augment_per_example,
                                        rate=c.augment_rate, seed=c.seed, synonyms=synonyms,
                                        translate=translate)
        info("augmentation added %d training examples to %d (%s)", report["added"],
             report["original"], report["by_operation"])
        self.report["augmentation"] = report
        return texts, labels

    # -- training ------------------------------------------------------------------------------

    def fit(self, train, valid):
        c = self.config
        loop.set_seed(c.seed)
        if c.freeze_layers and c.freeze == "encoder":
            raise ConfigError("freeze='encoder' already freezes every layer; drop freeze_layers")
        source = self._transfer_source()
        if source is None:
            encoder = backbones.load_encoder(self.backbone.path)
            tokenizer = backbones.load_tokenizer(self.backbone.path)
        else:
            encoder, tokenizer = source.model.encoder, source.tokenizer
        self._setup(self._prepare_encoder(encoder), tokenizer)
        if source is not None and source.model.head is not None and list(source.classes) == self.classes:
            self.model.head.load_state_dict(source.model.head.state_dict())
            self.report["transfer"] = {"from": c.init_from, "head": "reused (same labels)"}
        elif source is not None:
            self.report["transfer"] = {"from": c.init_from, "head": "new (labels differ)"}
        return self.train_model(train, valid)

    def train_model(self, train, valid):
        """Run the training loop on the current ``self.model`` (also used for the short recovery
        fine-tune after pruning)."""
        c = self.config
        self._last_embed = None  # the weights change: no embedding kept from before
        texts, labels = self._augment(list(train.texts), list(train.labels))
        ids = tokenize(self.tokenizer, texts, c.max_length)
        valid_ids = tokenize(self.tokenizer, valid.texts, c.max_length)
        y_valid = self.label_ids(valid.labels)
        y = self.label_ids(labels)
        weight = None
        if c.class_weight == "auto":
            counts = np.bincount(self.label_ids(train.labels), minlength=len(self.classes))
            weight = torch.tensor(len(train) / (len(self.classes) * np.maximum(counts, 1)),
                                  dtype=torch.float32, device=self.device)
        loss_fn = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=c.label_smoothing)
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.model.parameters())
        self.report["parameters"] = {"trainable": trainable, "total": total}
        info("trainable parameters: %s of %s (%.2f%%)", f"{trainable:,}", f"{total:,}",
             100 * trainable / total)

        def evaluate() -> dict:
            pred = self._logits(valid_ids).argmax(1)
            return {"accuracy": float(accuracy_score(y_valid, pred)),
                    "macro_f1": float(f1_score(y_valid, pred, average="macro"))}

        ctx = self.context
        callbacks = self._callbacks() + run_callbacks(ctx, c)
        cfg = loop.LoopConfig.from_config(c)
        result = loop.Loop(self.model, ids, y, self.pad_id, evaluate, cfg, self.device, self.dtype,
                           loss_fn=loss_fn, callbacks=callbacks, run_dir=ctx.run_dir,
                           resume=ctx.resume, extra_loss=self._extra_loss()).run()
        self.history = result.history
        self.best_epoch = result.best_epoch
        self._after_fit()
        self._last_embed = None
        return self

    def _after_fit(self) -> None:
        pass

    def _transfer_source(self):
        """The fitted strategy of ``init_from`` (its encoder is the starting point), or None."""
        if not self.config.init_from:
            return None
        from ..bundle import open_bundle
        from . import from_bundle

        source = from_bundle(open_bundle(self.config.init_from))
        model = getattr(source, "model", None)
        if model is None or not hasattr(model, "encoder") or hasattr(model.encoder, "peft_config"):
            raise ConfigError(f"init_from: {self.config.init_from} holds a '{source.name}' model "
                              "without a plain fine-tuned encoder; use a finetune, contrastive or "
                              "merged LoRA bundle (ronghe export --merge)")
        info("starting from the encoder of %s (%s)", self.config.init_from, source.name)
        return source

    # -- prediction ----------------------------------------------------------------------------

    def _logits(self, ids) -> np.ndarray:
        self.model.eval()
        return run_batches(self.model, ids, self.pad_id, self.config.eval_batch_size, self.device,
                           self.dtype)

    def predict_proba(self, texts):
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(self.classes)))
        # the head on the pooled encoder output: what forward() computes in eval mode (dropout
        # is off), from the embeddings embed() returns - one encoder pass serves both
        with torch.inference_mode():
            head = self.model.head
            logits = head(torch.from_numpy(self.embed(texts)).to(self.device, head.weight.dtype))
        return torch.softmax(logits.double().cpu(), dim=1).numpy()

    def embed(self, texts) -> np.ndarray:
        """Pooled sentence embeddings from the fine-tuned encoder (for fusion, transfer and the
        assistant's out-of-scope distance). The last call's are kept when it had at most
        ``REUSE_MAX`` texts, so the probabilities and the embeddings of the same messages (an
        assistant reply needs both) cost one encoder pass, not two."""
        texts = list(texts)
        # keyed on the network object too: a copy being changed (pruning, bf16) is another one;
        # training this one in place forgets the kept call (train_model)
        key = (id(self.model), texts)
        last = getattr(self, "_last_embed", None)
        if last is not None and last[0] == key:
            return last[1].copy()  # a copy: the caller may change its array in place
        ids = tokenize(self.tokenizer, texts, self.config.max_length)
        self.model.eval()
        E = run_batches(self.model.embed, ids, self.pad_id, self.config.eval_batch_size,
                        self.device, self.dtype, "embedding")
        self._last_embed = (key, E.copy()) if len(texts) <= REUSE_MAX else None
        return E

    # -- persistence ---------------------------------------------------------------------------

    def to_state(self) -> State:
        state = State(meta={"best_epoch": getattr(self, "best_epoch", None), **self.report},
                      tensors=dict(self.model.state_dict()))
        state.add_pretrained("tokenizer", self.tokenizer)
        state.files["model/config.json"] = json.dumps(
            self.model.encoder.config.to_dict(), indent=2, default=str).encode()
        return state

    def _load_weights(self, reader: BundleReader, strict: bool = True) -> None:
        missing, unexpected = self.model.load_state_dict(reader.tensors(), strict=False)
        if (missing and strict) or unexpected:
            raise BundleError(f"{reader.root}: weights do not fit the model (missing "
                              f"{missing[:5]}, unexpected {unexpected[:5]})")

    @classmethod
    def from_state(cls, config, classes, backbone, reader: BundleReader):
        self = cls(config, classes, backbone)
        encoder = backbones.load_encoder(reader.path("model"), config_only=True)
        if reader.meta.get("pruned_heads"):  # structured pruning changed the attention shapes
            from ..compression.surgery import prune_heads

            prune_heads(encoder, reader.meta["pruned_heads"])
        self._setup(encoder, backbones.load_tokenizer(reader.path("tokenizer")))
        if reader.meta.get("weights_dtype") == "bfloat16":  # `ronghe compress --quantize bf16`
            self.model.to(torch.bfloat16)
        self._load_weights(reader)
        self.report = {k: v for k, v in reader.meta.items() if k != "best_epoch"}
        self.best_epoch = reader.meta.get("best_epoch")
        self.model.to(self.device).eval()
        return self
