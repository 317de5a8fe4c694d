"""Evaluation preprocessing of a vision backbone, in Pillow and numpy only.

The same steps as timm's eval transform (``timm.data.create_transform(is_training=False)``,
``crop_mode="center"``) for the backbone's ``pretrained_cfg``: resize the shorter side to
``floor(size / crop_pct)`` with the configured interpolation (Pillow's, as torchvision does for
PIL images), centre-crop ``size`` x ``size`` (torchvision's rounding), scale to [0, 1], subtract
``mean`` and divide by ``std`` per channel, channels first. Written without torch so that an
exported ONNX bundle predicts with onnxruntime, Pillow and numpy alone; a test checks it against
timm's transform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_INTERP = {"bicubic": "BICUBIC", "bilinear": "BILINEAR", "nearest": "NEAREST",
           "lanczos": "LANCZOS", "box": "BOX", "hamming": "HAMMING"}


@dataclass(frozen=True)
class Preprocess:
    size: int
    crop_pct: float
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_config(cls, cfg: dict, size: int | None = None) -> "Preprocess":
        """From a ``pretrained_cfg``; ``size`` overrides its input side (e.g. 112 for
        28-pixel scans: convolutional backbones accept any size, and smaller is faster)."""
        if size is None:
            size = cfg["input_size"]
            size = int(size[-1] if isinstance(size, (list, tuple)) else size)
        return cls(size, float(cfg.get("crop_pct") or 1.0), str(cfg.get("interpolation", "bicubic")),
                   tuple(float(x) for x in cfg["mean"]), tuple(float(x) for x in cfg["std"]))

    def to_json(self) -> dict:
        return {"input_size": [3, self.size, self.size], "crop_pct": self.crop_pct,
                "interpolation": self.interpolation, "mean": list(self.mean),
                "std": list(self.std)}

    def resize_crop(self, img):
        """RGB ``PIL.Image`` -> the ``size`` x ``size`` crop the network sees."""
        from PIL import Image

        scale = math.floor(self.size / self.crop_pct)
        w, h = img.size
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = scale, int(scale * long / short)
        new = (new_short, new_long) if w <= h else (new_long, new_short)
        if new != (w, h):
            img = img.resize(new, getattr(Image.Resampling, _INTERP.get(self.interpolation,
                                                                       "BICUBIC")))
        w, h = img.size
        top = int(round((h - self.size) / 2.0))
        left = int(round((w - self.size) / 2.0))
        return img.crop((left, top, left + self.size, top + self.size))

    def __call__(self, images) -> np.ndarray:
        """RGB ``PIL`` images -> float32 ``(n, 3, size, size)``."""
        out = np.empty((len(images), 3, self.size, self.size), dtype=np.float32)
        mean = np.asarray(self.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(self.std, dtype=np.float32)[:, None, None]
        for i, img in enumerate(images):
            a = np.asarray(self.resize_crop(img), dtype=np.float32).transpose(2, 0, 1) / 255.0
            out[i] = (a - mean) / std
        return out
