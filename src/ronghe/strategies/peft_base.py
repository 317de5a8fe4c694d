"""What the parameter-efficient strategies share: PEFT wraps the encoder, only adapters train.

Each method (``lora``, ``adalora``, ``ia3``, ``prefix``) is a small file with its config (the
knobs PEFT exposes, with defaults that suit BERT-like encoders) and ``peft_config()``; PEFT does
the rest. The bundle stores only the adapter (PEFT's own ``adapter_config.json`` +
``adapter_model.safetensors``), the head weights and the tokenizer, plus the base model's reference
and sha256 - typically well under 1 MB beside a 90 MB backbone. At load time the adapter is
applied to the verified base model and, where the method allows it (LoRA, AdaLoRA, IA3), merged
into the weights, so prediction costs exactly what a plain fine-tuned model costs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from .. import backbones
from ..bundle import BundleReader, State
from ..errors import BundleError, ConfigError
from .finetune import Finetune, FinetuneConfig


class PeftConfigBase(FinetuneConfig):
    learning_rate: float = Field(5e-4, gt=0, lt=1, description="adapters train best at higher rates")
    head_learning_rate: float | None = Field(None, gt=0, lt=1)
    epochs: int = Field(5, ge=1, le=1000)


class PeftStrategy(Finetune):
    uses_backbone = True
    stores_backbone = False  # adapter + head only; the base model is referenced by sha256
    mergeable: ClassVar[bool] = True

    def peft_config(self):
        raise NotImplementedError

    def _prepare_encoder(self, encoder):
        from peft import get_peft_model

        if self.config.freeze != "none" or self.config.freeze_layers:
            raise ConfigError(f"{self.name}: the base model is frozen by construction; "
                              "freeze/freeze_layers apply to finetune only")
        return get_peft_model(encoder, self.peft_config())

    def _after_fit(self) -> None:
        """Keep the adapter files for the bundle, then merge them into the weights, so the fitted
        model predicts as fast as a plain one - and exactly as the reloaded bundle will."""
        with tempfile.TemporaryDirectory() as tmp:
            self.model.encoder.save_pretrained(tmp, safe_serialization=True)
            adapter = State()
            adapter.add_dir("adapter", Path(tmp))
            self._adapter_files = adapter.files
            if self.mergeable:
                # Rebuilt from the saved files, exactly as load does: merging the in-memory
                # model directly differs from the bundle by ~1e-5 (AdaLoRA's rank re-allocation
                # changes the summation order of the merge).
                self.model.encoder = self._encoder_from_adapter(Path(tmp)).to(self.device)
        self.model.eval()

    def _encoder_from_adapter(self, folder: Path):
        from peft import PeftModel

        base = backbones.load_encoder(self.backbone.path)
        encoder = PeftModel.from_pretrained(base, str(folder), is_trainable=False)
        return encoder.merge_and_unload() if self.mergeable else encoder

    def to_state(self) -> State:
        state = State(meta={"best_epoch": getattr(self, "best_epoch", None), **self.report},
                      tensors={k: v for k, v in self.model.state_dict().items()
                               if not k.startswith("encoder.")},
                      files=dict(self._adapter_files))
        state.add_pretrained("tokenizer", self.tokenizer)
        return state

    @classmethod
    def from_state(cls, config, classes, backbone, reader: BundleReader):
        if backbone is None:
            raise BundleError(f"{reader.root}: a {cls.name} bundle needs its base model")
        self = cls(config, classes, backbone)
        encoder = self._encoder_from_adapter(reader.path("adapter"))  # merged where possible
        self._setup(encoder, backbones.load_tokenizer(reader.path("tokenizer")))
        adapter = State()
        adapter.add_dir("adapter", reader.path("adapter"))
        self._adapter_files = adapter.files
        self._load_weights(reader, strict=False)
        self.best_epoch = reader.meta.get("best_epoch")
        self.model.to(self.device).eval()
        return self


    def to_finetune(self) -> Finetune:
        """The same model as a plain ``finetune`` strategy: adapter merged into full weights."""
        if not self.mergeable:
            raise ConfigError(f"{self.name} adapters cannot be merged into the weights; "
                              "export the bundle as it is")
        fields = {k: v for k, v in self.config.model_dump().items() if k in FinetuneConfig.model_fields}
        ft = Finetune(FinetuneConfig(**fields), self.classes, self.backbone)
        for attr in ("model", "tokenizer", "pad_id", "device", "dtype", "history", "best_epoch"):
            setattr(ft, attr, getattr(self, attr, None))
        ft.report = {**self.report, "merged_from": self.name}
        return ft
