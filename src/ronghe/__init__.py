"""ronghe (融合, "fusion"): pretrained foundation models inside classic ML systems."""

from importlib.metadata import PackageNotFoundError, version

from .classifier import TextClassifier
from .estimator import load


def __getattr__(name):
    if name == "TokenClassifier":
        from .ner import TokenClassifier

        return TokenClassifier
    raise AttributeError(name)


try:
    __version__ = version("ronghe")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["TextClassifier", "TokenClassifier", "load", "__version__"]
