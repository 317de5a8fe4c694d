"""``frozen`` for images: pooled features of an untouched pretrained vision backbone (timm) +
standardised logistic regression.

``features``: ``last`` pools the network's final features; ``stages`` adds the global-average
pooled outputs of its last ``STAGES`` stages (timm's ``forward_intermediates``), mid-level
features that carry over better than the final ImageNet ones to images far from ImageNet (grey
scans, X-rays, micrographs; measured in ``benchmarks/image_features.py``); ``grid`` adds to those
the same stage outputs average-pooled over a ``GRID`` x ``GRID`` grid of cells (a spatial pyramid,
Lazebnik et al. 2006): global pooling forgets where in the image a pattern is, the grid keeps a
coarse layout - what tells classes apart in aligned images (a fixed camera on a production line,
centred product shots, scans, characters; measured there too). ``auto`` (default) fits all
three on one pass of features and keeps the best on validation (ties: the fewer columns), so
images where layout does not matter keep the global features. ``power``: ``sqrt``
(default) takes each feature's signed square root before standardising - power normalisation
(Perronnin et al., 2010): it compresses each feature's heavy upper tail (a few images with large
pooled activations), which standardising leaves as it is. Measured in ``image_features.py`` on
two grey data sets far from ImageNet (Fashion-MNIST, scikit-learn's digits): better test
accuracy in every pairing and seed there; ``none`` keeps the features as pooled. Image
``concat`` reads the pooled features as they are.

Only the feature extractor differs from text's ``frozen`` (``strategies/frozen.py``), so fitting
(C chosen on validation), prediction and the bundle (scaler + regression arrays, the backbone
reference and the sha256 of its weights - checked again at load) are that class's. Features are
computed in batches with the backbone's own evaluation preprocessing (``preprocess.py``) and cached
in memory per image content (SHA-256 of the decoded pixels), so candidates of C, fusion members
and repeated predictions on the same images embed each image once.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np
from pydantic import Field

from ..bundle import BundleReader, State
from ..config import SelectionFields, StrategyConfig
from ..errors import BundleError, ConfigError
from ..strategies.frozen import Frozen as TextFrozen

_CACHE: dict[tuple[str, str], np.ndarray] = {}
_CACHE_LIMIT = 200_000
STAGES = 3  # intermediate stages pooled beside the final features (``features="stages"``)
GRID = 2  # cells per side of the stage outputs' pooling grid (``features="grid"``)
KINDS = ("last", "stages", "grid")  # the feature sets; each one's columns extend the one before


class FrozenConfig(StrategyConfig, SelectionFields):
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
    features: Literal["auto", "last", "stages", "grid"] = Field("auto", description=(
        "last: the final pooled features; stages: also the pooled outputs of the last 3 "
        "stages (mid-level features, for images far from ImageNet); grid: also those stage "
        "outputs pooled over a 2 x 2 grid of cells (keeps a coarse layout, for aligned images); "
        "auto: all three, the best on validation kept (last without validation data)"))
    power: Literal["sqrt", "none"] = Field("sqrt", description=(
        "sqrt: each feature's signed square root before standardising (power normalisation: "
        "compresses each feature's heavy upper tail); none: the features as pooled"))


class VisionEmbedder:
    """Pooled backbone features of RGB images, batched, cached per image content. With
    ``stages`` > 0 each vector is the final pooled features followed by the global-average
    pooled outputs of the network's last ``stages`` stages, and with ``grid`` > 0 by those
    outputs average-pooled over a ``grid`` x ``grid`` grid of cells (channels of a cell side by
    side, cells in row order). A network without timm's ``forward_intermediates`` gives the
    final features only: ``self.stages`` is then 0. ``columns(kind, total)`` is where each kind
    of ``KINDS`` ends in a vector."""

    def __init__(self, path, sha256: str, batch_size: int = 32, device: str = "auto",
                 image_size: int | None = None, stages: int = 0, grid: int = 0):
        import torch

        from ..backbones.vision import load_vision, preprocess_config
        from ..modeling import pick_device
        from .preprocess import Preprocess

        self.batch_size = batch_size
        self.device = pick_device(device)
        self.model = load_vision(path).to(self.device).eval()
        self.preprocess = Preprocess.from_config(preprocess_config(path), image_size)
        self.stages = stages if hasattr(self.model, "forward_intermediates") else 0
        self.grid = grid if self.stages else 0
        self.width = self.model.num_features  # of the final pooled features, first in a vector
        # the cache key: weights, size, stages and grid
        self.sha256 = f"{sha256}:{self.preprocess.size}:{self.stages}:{self.grid}"
        self._torch = torch

    def columns(self, kind: str, total: int) -> slice:
        """The first columns of a ``total``-wide vector that feature set ``kind`` reads (a kind
        this embedder does not compute reads what it does: a bundle fitted before ``grid``
        existed). The stage width follows from ``total``: each stage channel gives one global
        and ``grid ** 2`` cell columns."""
        if kind == "last" or not self.stages:
            return slice(0, self.width)
        if kind == "grid" and self.grid:
            return slice(0, total)
        return slice(0, self.width + (total - self.width) // (1 + self.grid ** 2))

    def _forward(self, x):
        if not self.stages:
            return self.model(x)
        final, inter = self.model.forward_intermediates(x, indices=self.stages)
        parts = [self.model.forward_head(final)] + [t.float().mean((2, 3)) for t in inter]
        if self.grid:
            pool = self._torch.nn.functional.adaptive_avg_pool2d
            parts += [pool(t.float(), self.grid).flatten(1) for t in inter]
        return self._torch.cat(parts, 1)

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
                    feats = self._forward(x.to(self.device)).float().cpu().numpy()
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
    features_ = "last"  # what the fitted classifier reads (bundles from before: the last)
    power_ = "none"  # and how it was transformed (bundles from before: as pooled)

    def _embedder(self) -> VisionEmbedder:
        if getattr(self, "_emb", None) is None:
            c = self.config
            # each kind reads the first columns of the widest vector (the same forward pass)
            self._emb = VisionEmbedder(self.backbone.path, self.backbone.sha256, c.batch_size,
                                       c.device, c.image_size,
                                       0 if c.features == "last" else STAGES,
                                       0 if c.features in ("last", "stages") else GRID)
        return self._emb

    def embed(self, images) -> np.ndarray:
        emb = self._embedder()
        X = emb(list(images))
        return power(X[:, emb.columns(self.features_, X.shape[1])], self.power_)

    def fit(self, train, valid):
        c, emb = self.config, self._embedder()
        if c.features in ("stages", "grid") and not emb.stages:
            raise ConfigError(f"features={c.features}: the backbone {c.model!r} has no timm "
                              "forward_intermediates to take stage outputs from; use "
                              "features=last")
        kinds = list(KINDS) if c.features == "auto" else [c.features]
        if c.features == "auto" and (not emb.stages or valid is None):
            kinds = ["last"]  # nothing to choose with
        # each image decoded and embedded once: each kind reads the first columns of the vector
        self.power_ = c.power
        X = power(emb(list(train.inputs)), c.power)
        Xv = power(emb(list(valid.inputs)), c.power) if valid is not None else None
        y, yv = self.label_ids(train.labels), (self.label_ids(valid.labels)
                                               if valid is not None else None)
        fitted = {}
        for kind in kinds:
            self.features_ = kind
            cut = emb.columns(kind, X.shape[1])
            self.fit_features(X[:, cut], y, None if Xv is None else Xv[:, cut], yv)
            best = max((h["selection_score"] for h in self.history), default=-np.inf)
            fitted[kind] = (best, self.model, self.mean, self.scale,
                            [{**h, "features": kind} for h in self.history])
        # ties: the fewer columns
        self.features_ = max(fitted, key=lambda k: (fitted[k][0], -KINDS.index(k)))
        _, self.model, self.mean, self.scale, _ = fitted[self.features_]
        self.history = [h for k in kinds for h in fitted[k][4]]
        return self

    def to_state(self) -> State:
        state = super().to_state()
        state.meta["features"] = self.features_
        state.meta["power"] = self.power_
        return state

    @classmethod
    def from_state(cls, config, classes, backbone, reader: BundleReader):
        self = super().from_state(config, classes, backbone, reader)
        self.features_ = reader.meta.get("features", "last")
        self.power_ = reader.meta.get("power", "none")
        if self.features_ not in KINDS:
            raise BundleError(f"{reader.root}: unknown feature set features={self.features_!r} "
                              f"(this ronghe knows {', '.join(KINDS)}); upgrade ronghe or re-fit")
        if self.power_ not in ("sqrt", "none"):
            raise BundleError(f"{reader.root}: unknown feature transform power={self.power_!r} "
                              "(this ronghe knows sqrt and none); upgrade ronghe or re-fit")
        # a bundle from before the option has no power in its config: say what it does
        self.config = self.config.model_copy(update={"power": self.power_})
        return self


def power(X: np.ndarray, kind: str) -> np.ndarray:
    """``sqrt``: sign(x) * sqrt(|x|) elementwise; ``none``: X unchanged."""
    return np.sign(X) * np.sqrt(np.abs(X)) if kind == "sqrt" else X
