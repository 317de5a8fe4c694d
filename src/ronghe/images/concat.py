"""``concat`` for images: multimodal feature-level fusion into one classic learner - the product
photo + its title + its price -> category case.

Inputs, concatenated: pooled features of the (frozen) vision backbone, pooled embeddings of the
table's text column (``title``, ``caption``, ... or ``text_col``) from a text backbone
(``text_model``, MiniLM by default), and the numeric/categorical ``feature_cols`` (``Tabular``:
standardised numbers, one-hot categories for logistic regression; native categoricals for
LightGBM). Learner, validation-based selection and the bundle (arrays and LightGBM's text format,
never a pickle) are text ``concat``'s (``fusion/concat.py``); the text backbone is recorded by
reference and sha256 in the bundle and checked again when it is loaded, like the vision one.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from .. import backbones
from ..errors import ConfigError, DataError
from ..fusion import concat
from ..fusion.tabular import Tabular
from .data import TEXT_FEATURE
from .frozen import VisionEmbedder


class ConcatConfig(concat.ConcatConfig):
    model: str = Field("efficientnet-lite0", description="vision backbone: alias, local timm "
                                                         "folder or hub id")
    image_size: int | None = Field(None, ge=16, le=1024, description="input side; default: the "
                                                                     "backbone's")
    embeddings: bool = Field(True, description="include the image features")
    text_model: str | None = Field("minilm", description="text backbone for the table's text "
                                                         "column; null leaves the text out")
    max_length: int = Field(128, ge=8, le=4096, description="tokens per text")
    svd_components: int = Field(0, ge=0, description="not used for images (text is embedded)")


class Concat(concat.Concat):
    task = "image-classification"
    Config = ConcatConfig

    def _vision(self) -> VisionEmbedder:
        if getattr(self, "_vis", None) is None:
            c = self.config
            self._vis = VisionEmbedder(self.backbone.path, self.backbone.sha256, c.batch_size,
                                       c.device, c.image_size)
        return self._vis

    def _text(self):
        from ..modeling import Embedder

        if getattr(self, "_txt", None) is None:
            c = self.config
            self._txt = Embedder(self.text_backbone.path, self.text_backbone.sha256,
                                 pooling=c.pooling, max_length=c.max_length,
                                 batch_size=c.batch_size, device=c.device, precision=c.precision)
        return self._txt

    def _features(self, images, features, n) -> tuple[np.ndarray, list[int]]:
        parts = []
        if self.config.embeddings:
            parts.append(self._vision()(list(images)).astype(np.float64))
        if self.text_backbone is not None:
            if features is None or TEXT_FEATURE not in getattr(features, "columns", ()):
                raise DataError("this model also reads each image's text (the table's text "
                                "column): predict on a table (CSV/Parquet/JSONL) with the path "
                                "and text columns")
            texts = ["" if t is None else str(t) for t in features[TEXT_FEATURE].tolist()]
            parts.append(self._text()(texts).astype(np.float64))
        return self._with_columns(parts, features, n)

    def fit(self, train, valid):
        c = self.config
        uses_text = bool(c.text_model) and train.texts is not None
        if not c.embeddings and not uses_text and train.features is None:
            raise ConfigError("concat has no inputs: keep the image features (embeddings=true), "
                              "add a text column, or pass --feature-cols")
        self.text_backbone = backbones.resolve(c.text_model) if uses_text else None
        self.tabular = Tabular().fit(train.features)
        self.tfidf = self.svd = None
        X, cats = self._features(train.inputs, train.model_features, len(train))
        Xv, _ = self._features(valid.inputs, valid.model_features, len(valid))
        self.report["inputs"] = {"image_features": bool(c.embeddings), "text": uses_text,
                                 "feature_columns": [col["name"] for col in self.tabular.columns],
                                 "width": int(X.shape[1])}
        return self._fit_learner(X, Xv, cats, train, valid)

    def to_state(self):
        state = super().to_state()
        state.meta["text_backbone"] = self.text_backbone.to_json() if self.text_backbone else None
        state.meta["inputs"] = self.report.get("inputs")
        return state

    @classmethod
    def from_state(cls, config, classes, backbone, reader):
        self = super().from_state(config, classes, backbone, reader)
        ref = reader.meta.get("text_backbone")
        self.text_backbone = backbones.verify(ref, f"{reader.root}") if ref else None
        self.report["inputs"] = reader.meta.get("inputs")
        return self
