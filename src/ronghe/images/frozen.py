"""``frozen`` for images: pooled features of an untouched pretrained vision backbone (timm) +
standardised logistic regression.

Only the feature extractor differs from text's ``frozen`` (``strategies/frozen.py``), so fitting
(C chosen on validation), prediction and the bundle (scaler + regression arrays, the backbone
reference and the sha256 of its weights - checked again at load) are that class's. Features are
computed in batches with the backbone's own evaluation preprocessing (``preprocess.py``) and cached
in memory per image content (SHA-256 of the decoded pixels), so candidates of C, fusion members
and repeated predictions on the same images embed each image once.
"""

from __future__ import annotations

import hashlib

import numpy as np
from pydantic import Field

from ..config import StrategyConfig
from ..strategies.frozen import Frozen as TextFrozen

_CACHE: dict[tuple[str, str], np.ndarray] = {}
_CACHE_LIMIT = 200_000


class FrozenConfig(StrategyConfig):
    model: str = Field("efficientnet-lite0", description="vision backbone: alias, local timm "
                                                         "folder or hub id")
    batch_size: int = Field(32, ge=1)
    device: str = Field("auto", description="auto, cpu, cuda, cuda:0 ...")
    image_size: int | None = Field(None, ge=16, le=1024, description="input side; default: the "
                                                                     "backbone's (224 for "
                                                                     "efficientnet-lite0)")
    C_grid: list[float] = Field([0.03, 0.1, 0.3, 1.0, 3.0], min_length=1,
                                description="C values tried; the best on validation is kept")
    max_iter: int = 2000


class VisionEmbedder:
    """Pooled backbone features of RGB images, batched, cached per image content."""

    def __init__(self, path, sha256: str, batch_size: int = 32, device: str = "auto",
                 image_size: int | None = None):
        import torch

        from ..backbones.vision import load_vision, preprocess_config
        from ..modeling import pick_device
        from .preprocess import Preprocess

        self.batch_size = batch_size
        self.device = pick_device(device)
        self.model = load_vision(path).to(self.device).eval()
        self.preprocess = Preprocess.from_config(preprocess_config(path), image_size)
        self.sha256 = f"{sha256}:{self.preprocess.size}"  # the cache key: weights and size
        self._torch = torch

    def __call__(self, images) -> np.ndarray:
        from ..log import progress
        from .estimator import decode

        items = list(images)
        keys: list = [None] * len(items)
        todo: dict[tuple, object] = {}
        decoded = {}
        for start in range(0, len(items), 256):  # decode in chunks: bounded memory
            chunk = decode(items[start:start + 256])
            for j, img in enumerate(chunk):
                k = (self.sha256, hashlib.sha256(img.tobytes()).hexdigest())
                keys[start + j] = k
                if k not in _CACHE and k not in todo:
                    todo[k] = img
        if todo:
            if len(_CACHE) + len(todo) > _CACHE_LIMIT:
                _CACHE.clear()
            pending = list(todo.items())
            with progress("image features", len(pending)) as bar, self._torch.inference_mode():
                for start in range(0, len(pending), self.batch_size):
                    batch = pending[start:start + self.batch_size]
                    x = self._torch.from_numpy(self.preprocess([img for _, img in batch]))
                    feats = self.model(x.to(self.device)).float().cpu().numpy()
                    for (k, _), f in zip(batch, feats):
                        decoded[k] = f
                    bar.advance(len(batch))
            _CACHE.update(decoded)
        return np.stack([_CACHE[k] for k in keys]) if keys else np.zeros((0, 0), np.float32)


class Frozen(TextFrozen):
    name = "frozen"
    task = "image-classification"
    Config = FrozenConfig
    uses_backbone = True

    def _embedder(self) -> VisionEmbedder:
        if getattr(self, "_emb", None) is None:
            c = self.config
            self._emb = VisionEmbedder(self.backbone.path, self.backbone.sha256, c.batch_size,
                                       c.device, c.image_size)
        return self._emb
