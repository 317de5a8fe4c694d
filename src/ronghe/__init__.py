"""ronghe (融合, "fusion"): pretrained foundation models inside classic ML systems."""

from importlib.metadata import PackageNotFoundError, version

from .classifier import TextClassifier
from .estimator import load


def __getattr__(name):
    if name == "TokenClassifier":
        from .ner import TokenClassifier

        return TokenClassifier
    if name == "ImageClassifier":
        from .images.estimator import ImageClassifier

        return ImageClassifier
    if name in ("ner", "images"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(name)


try:
    __version__ = version("ronghe")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["ImageClassifier", "TextClassifier", "TokenClassifier", "load", "__version__"]
