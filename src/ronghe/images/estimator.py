"""``ImageClassifier``: the image-classification estimator users hold, whatever strategy is inside.

Everything classification shares (probabilities, evaluation, records, the collapse check) is
``classifier.Classifier``; fitting, saving and loading are ``estimator.Estimator``. This file says
only how images come in: a folder, a table of paths, an ``ImageSet``, or a list of paths, bytes
or ``PIL`` images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..classifier import Classifier
from ..data import check_evaluation, check_trainable
from ..errors import BundleError, ConfigError, DataError
from ..log import warn
from . import data


def _as_imageset(X, y=None, *, role: str, labeled: bool = True, feature_cols=None,
                 skip_bad_images: bool = False, text_col=None) -> data.ImageSet:
    if isinstance(X, data.ImageSet):
        return X
    if isinstance(X, (str, Path)):
        return data.read(X, labeled=labeled, feature_cols=feature_cols,
                         skip_bad_images=skip_bad_images, text_col=text_col)
    if y is None and labeled:
        raise DataError(f"{role}: a list of images needs its labels (y), or give an image folder "
                        "(one sub-folder per class) or a table with a path and a label column")
    return data.from_paths(list(X), None if y is None else list(y))


class ImageClassifier(Classifier):
    """Image classification with a pretrained vision backbone, classic features, or both.

    >>> clf = ImageClassifier(strategy="frozen", model="efficientnet-lite0").fit("photos/")
    >>> clf.predict(["new/001.jpg"]); clf.save("qc-model")
    """

    task = "image-classification"
    input_key = "path"
    input_noun = "images"
    not_config = ("strategy", "options", "run_dir", "feature_cols", "skip_bad_images", "text_col")

    def __init__(self, strategy: str = "frozen", model: str | None = None, *,
                 epochs: int | None = None, batch_size: int | None = None,
                 learning_rate: float | None = None, seed: int | None = None,
                 valid_fraction: float | None = None, device: str | None = None,
                 options: dict[str, Any] | None = None, run_dir: str | Path | None = None,
                 feature_cols: list[str] | None = None, skip_bad_images: bool = False,
                 text_col: str | None = None):
        self._keep_params(locals())

    # -- the task's hooks (see ``Estimator``) -------------------------------------------------

    def _as_data(self, X, y=None, *, role: str, labeled: bool = True) -> data.ImageSet:
        return _as_imageset(X, y, role=role, labeled=labeled, feature_cols=self.feature_cols,
                            skip_bad_images=self.skip_bad_images, text_col=self.text_col)

    def _valid_from_y(self, y, valid):
        if valid is None and isinstance(y, (data.ImageSet, str, Path)):
            return None, y
        return y, valid

    def _check_train(self, train: data.ImageSet, cls) -> None:
        if train.features is not None and not cls.uses_features:
            raise ConfigError(f"strategy '{self.strategy}' uses the images only; feature columns "
                              f"{list(train.features.columns)} need concat")
        check_trainable(train)

    def _check_valid(self, train: data.ImageSet, valid: data.ImageSet,
                     strict: bool = True) -> None:
        role = "validation" if strict else "evaluation"
        check_evaluation(train.classes, valid, role, strict=strict)
        shared = len(set(valid.hashes) & set(train.hashes))
        if shared:
            note = (f"{shared} of {len(valid)} {role} images are byte-identical to training "
                    "images; scores may be optimistic")
            warn("%s", note)
            valid.notes.append(note)

    def _data_record(self, train, valid) -> dict:
        return {**super()._data_record(train, valid), "images": train.stats(),
                "valid_images": valid.stats()}

    def _check_outputs(self) -> None:
        if self.feature_cols or getattr(self.strategy_, "text_backbone", None):
            return  # needs columns beside the images; checked when it predicts on a table
        from PIL import Image

        probe = Image.new("RGB", (32, 32), (127, 127, 127))
        n = self.predict_proba([probe]).shape[1]
        if n != len(self.classes_):
            raise BundleError(f"the model has {n} outputs but its manifest's 'labels' list "
                              f"{len(self.classes_)} classes")

    # -- prediction -----------------------------------------------------------------------------

    def _inputs(self, X):
        if isinstance(X, data.ImageSet):
            return X.paths, X.model_features
        if isinstance(X, (str, Path)):
            ds = data.read(X, labeled=None if Path(X).is_file() else False,
                           feature_cols=self.feature_cols, text_col=self.text_col)
            return ds.paths, ds.model_features
        items = list(X)
        bad = [i for i, x in enumerate(items) if not _is_image_source(x)]
        if bad:
            raise DataError(f"images must be paths, bytes or PIL images; items {bad[:10]} are "
                            f"{sorted({type(items[i]).__name__ for i in bad})}")
        return items, None

    def _report_extras(self, ds, proba: np.ndarray, n: int = 24) -> dict:
        """The ``n`` most confident mistakes (path, true and predicted label, score), for the
        report's contact sheet: people check a model by looking at what it gets wrong."""
        from ..tasks.text_classification import label_key

        pred = proba.argmax(1)
        wrong = [i for i, (y, k) in enumerate(zip(ds.labels, pred))
                 if label_key(y) != label_key(self.classes_[k])]
        wrong.sort(key=lambda i: -proba[i, pred[i]])
        return {"mistakes": [{"path": ds.paths[i], "row": ds.rows[i] if ds.rows else i + 1,
                              "true": label_key(ds.labels[i]),
                              "predicted": label_key(self.classes_[pred[i]]),
                              "score": round(float(proba[i, pred[i]]), 4)} for i in wrong[:n]],
                "n_mistakes": len(wrong)}

    def _shown(self, x):
        return str(x) if isinstance(x, (str, Path)) else f"<{type(x).__name__}>"


def _is_image_source(x) -> bool:
    if isinstance(x, (str, Path, bytes, bytearray)):
        return True
    return hasattr(x, "mode") and hasattr(x, "size") and hasattr(x, "convert")  # PIL.Image


def decode(items, max_pixels: int | None = None) -> list:
    """Paths, bytes or PIL images -> RGB ``PIL.Image`` list; bad items are one error naming
    each (what, which, why)."""
    out, bad = [], []
    for i, x in enumerate(items):
        try:
            if isinstance(x, (str, Path)):
                out.append(data.load_image(Path(x), max_pixels))
            elif isinstance(x, (bytes, bytearray)):
                out.append(data.load_image(bytes(x), max_pixels))
            else:
                out.append(data.to_rgb(x))
        except DataError as e:
            bad.append(f"item {i} ({x if isinstance(x, (str, Path)) else type(x).__name__}): {e}")
        except OSError as e:
            bad.append(f"item {i} ({x}): cannot be read: {e.strerror or e}")
    if bad:
        raise DataError(f"{len(bad)} of {len(items)} images cannot be used:\n  "
                        + "\n  ".join(bad[:10]))
    return out


def as_array(img, size: tuple[int, int]) -> np.ndarray:
    """An RGB image resized (bilinear) to ``size`` (width, height) as uint8 ``(h, w, 3)``."""
    from PIL import Image

    if img.size != size:
        img = img.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)
