"""``classic`` for images: the traditional computer-vision pipeline, hand-made features into a
linear model - the baseline a plant's QC team often already runs.

Features per image (scikit-image, no network):

* HOG (``skimage.feature.hog``) of the greyscale image resized to ``size`` x ``size``: gradient
  orientation histograms in ``cell`` x ``cell`` pixel cells, block-normalised (L2-Hys) - shape;
* an HSV colour histogram (``hue_bins`` x ``sat_bins`` x ``val_bins``, normalised to sum 1) -
  colour, which HOG does not see;
* optionally the raw pixels of a ``thumb`` x ``thumb`` greyscale thumbnail (``thumb`` > 0).

They are standardised and fed to the same multinomial logistic regression as ``frozen`` (C chosen
on validation data, ``linear.fit_logreg``); only the feature extractor differs, so the two share
their fit, prediction and bundle code (``Frozen``). The bundle holds the scaler and the
regression (safetensors + JSON); feature settings are in the config.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ..config import SelectionFields, StrategyConfig
from ..strategies.frozen import Frozen
from .estimator import as_array, decode


class ClassicConfig(StrategyConfig, SelectionFields):
    size: int = Field(64, ge=16, le=512, description="side the image is resized to for HOG")
    cell: int = Field(8, ge=4, le=64, description="HOG cell side in pixels")
    orientations: int = Field(9, ge=4, le=18)
    hue_bins: int = Field(8, ge=1, le=64)
    sat_bins: int = Field(4, ge=1, le=64)
    val_bins: int = Field(4, ge=1, le=64)
    thumb: int = Field(0, ge=0, le=64, description="raw greyscale thumbnail side; 0 = none")
    C_grid: list[float] = Field([0.01, 0.03, 0.1, 0.3, 1.0], min_length=1,
                                description="C values tried; the best on validation is kept")
    max_iter: int = 2000


def features(images, c: ClassicConfig) -> np.ndarray:
    """One row of HOG + colour histogram (+ thumbnail) features per RGB ``PIL`` image."""
    from skimage.feature import hog

    rows = []
    for img in images:
        rgb = as_array(img, (c.size, c.size))
        grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        parts = [hog(grey, orientations=c.orientations, pixels_per_cell=(c.cell, c.cell),
                     cells_per_block=(2, 2), block_norm="L2-Hys", feature_vector=True)]
        hsv = np.asarray(img.convert("HSV").resize((c.size, c.size)), dtype=np.float32) / 256.0
        hist, _ = np.histogramdd(hsv.reshape(-1, 3), bins=(c.hue_bins, c.sat_bins, c.val_bins),
                                 range=((0, 1), (0, 1), (0, 1)))
        parts.append(hist.reshape(-1) / max(hist.sum(), 1.0))
        if c.thumb:
            parts.append(as_array(img, (c.thumb, c.thumb)).mean(2).reshape(-1) / 255.0)
        rows.append(np.concatenate(parts).astype(np.float32))
    return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)


class Classic(Frozen):
    name = "classic"
    task = "image-classification"
    Config = ClassicConfig
    uses_backbone = False

    def embed(self, images) -> np.ndarray:
        from ..log import progress

        out = []
        items = list(images)
        with progress("image features", len(items)) as bar:
            for start in range(0, len(items), 256):
                chunk = items[start:start + 256]
                out.append(features(decode(chunk), self.config))
                bar.advance(len(chunk))
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
