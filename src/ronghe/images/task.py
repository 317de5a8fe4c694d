"""Image classification: the task's declaration.

Its parts live beside this file: reading and checking images (``data.py``), the estimator
(``estimator.py``) and the strategies (``classic.py``: HOG + colour histograms; ``frozen.py``:
pooled features of a pretrained vision backbone; ``finetune.py``: the backbone trained end to
end, and ``lora`` adapters on it; ``concat.py``: image features + a text column + tabular columns
in one classic learner; ``fusion.py``: weighted, stack and vote over them; ``onnx.py``: an
exported model run by onnxruntime without torch, also int8). Serving (``ServingModel`` below)
decodes uploads with the same conversion as training. Scores, the evaluation report and the
confusion-matrix plot are classification's (``tasks.text_classification.ClassificationTask``).
"""

from __future__ import annotations

from ..tasks.text_classification import ClassificationTask


class ImageClassification(ClassificationTask):
    name = "image-classification"
    cli_name = "image"
    description = ("one label per image (an image folder with a sub-folder per class, or a table "
                   "of image paths)")
    estimator = "ronghe.images.estimator:ImageClassifier"
    strategies = {
        "classic": "ronghe.images.classic:Classic",
        "frozen": "ronghe.images.frozen:Frozen",
        "finetune": "ronghe.images.finetune:Finetune",
        "lora": "ronghe.images.finetune:Lora",
        "concat": "ronghe.images.concat:Concat",
        "weighted": "ronghe.images.fusion:Weighted",
        "stack": "ronghe.images.fusion:Stack",
        "vote": "ronghe.images.fusion:Vote",
        "onnx": "ronghe.images.onnx:OnnxImageClassifier",
    }
    default_strategy = "frozen"
    portfolio = ("classic", "frozen", "stack", "finetune", "weighted")
    cost_order = ("classic", "frozen", "concat", "stack", "lora", "finetune", "weighted", "vote")
    data_options = ("label_col", "feature_cols", "skip_bad_images", "text_col")
    exporter = "ronghe.images.onnx"
    compressions = ("int8-static",)
    compression_note = ("a convolutional network is quantised statically, its activation ranges "
                        "calibrated on real images (dynamic int8 quantises MatMul weights, "
                        "which a CNN has few of); pruning and bf16 are not implemented for image "
                        "models")
    label_noun = "classes"

    def read(self, path, *, labeled: bool = True, label_col=None, feature_cols=None,
             skip_bad_images: bool = False, text_col=None, **_):
        from . import data

        return data.read(path, labeled=labeled, label_col=label_col, feature_cols=feature_cols,
                         skip_bad_images=skip_bad_images, text_col=text_col)

    def markdown(self, report: dict, title: str) -> str:
        from ..tasks.text_classification import markdown

        text = markdown(report, title)
        if report.get("mistakes"):
            text += (f"\n{report['n_mistakes']} mistakes; the most confident "
                     f"{len(report['mistakes'])} are in the contact sheet (`.mistakes.png`):\n\n"
                     "| image | true | predicted | score |\n|---|---|---|---:|\n")
            text += "".join(f"| {m['path']} | {m['true']} | {m['predicted']} | {m['score']:.3f} |\n"
                            for m in report["mistakes"])
        return text

    def write_report(self, report: dict, out, title: str) -> dict:
        """``.json``, ``.md``, the confusion matrix ``.png`` and the contact sheet of the most
        confident mistakes ``.mistakes.png``."""
        from pathlib import Path

        from .report import contact_sheet

        paths = super().write_report(report, out, title)
        if report.get("mistakes"):
            paths["mistakes"] = contact_sheet(report["mistakes"],
                                              Path(out).with_suffix(".mistakes.png"),
                                              f"{title}: most confident mistakes")
        return paths

    def read_inputs(self, paths: list[str]):
        """Image files, folders (recursively) and globs (``"photos/*.jpg"``) as one ImageSet,
        in the order given (each folder's and glob's files sorted)."""
        from . import data

        return data.collect(paths)

    def probe_pool(self, inputs: list, n: int) -> list:
        """Decoded sample images, each copy with one pixel changed (distinct content, same
        size and look), so the frozen strategy's content cache cannot answer from memory."""
        from .estimator import decode

        base = decode(list(inputs)[:64])
        pool = []
        for k in range(n):
            img = base[k % len(base)].copy()
            x, y = k // len(base) % img.size[0], k // len(base) // img.size[0] % img.size[1]
            r, g, b = img.getpixel((x, y))
            img.putpixel((x, y), ((r + 1 + k) % 256, g, b))
            pool.append(img)
        return pool

    def inputs(self, data_set) -> list:
        return list(data_set.paths)

    def serving_model(self, estimator) -> "ServingModel":
        return ServingModel(estimator)


#: what ``ronghe serve`` decodes (Pillow format names); anything else is refused with 415
SERVED_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF")


class ServingModel:
    """``prepare(raw_bytes_list, max_pixels)`` -> RGB images (run per request, before queueing,
    so a bad upload is that request's error: 413 over the pixel limit or a decompression bomb,
    415 not one of ``SERVED_FORMATS``, 422 truncated or corrupt); ``predict(images)`` -> the
    records ``ronghe predict`` prints (label, score, probabilities)."""

    accepts = ("images",)

    def __init__(self, estimator):
        from ..errors import ConfigError

        if getattr(estimator, "feature_cols", None) or getattr(
                getattr(estimator, "strategy_", None), "text_backbone", None):
            raise ConfigError("this image model also needs each image's text or feature columns "
                              f"{list(estimator.feature_cols or [])}, which the service cannot "
                              "take; serve a model trained on the images alone")
        self.estimator = estimator
        self.classes = estimator.classes_

    @staticmethod
    def prepare(raw: list[bytes], max_pixels: int | None = None) -> list:
        from ..errors import DataError, InputRejected
        from . import data

        out = []
        for i, b in enumerate(raw):
            try:
                out.append(data.load_image(b, max_pixels, formats=SERVED_FORMATS))
            except data.TooLarge as e:
                raise InputRejected(f"image {i}: {e}", status=413, code="image_too_large",
                                    index=i) from None
            except data.NotAnImage as e:
                raise InputRejected(f"image {i}: {e}", status=415, code="unsupported_image",
                                    index=i) from None
            except DataError as e:
                raise InputRejected(f"image {i}: {e}", status=422, code="invalid_image",
                                    index=i) from None
        return out

    def predict(self, images: list) -> list[dict]:
        from ..tasks.text_classification import records

        return records(self.classes, self.estimator.predict_proba(images))

    def warmup(self) -> None:
        from PIL import Image

        out = self.predict([Image.new("RGB", (64, 64), (128, 128, 128))])
        if len(out) != 1:
            from ..errors import RongheError

            raise RongheError(f"the model returned {len(out)} results for 1 warm-up image")


TASK = ImageClassification()
