"""ronghe (融合, "fusion"): pretrained foundation models inside classic ML systems."""

from importlib.metadata import PackageNotFoundError, version

from .classifier import TextClassifier, load

try:
    __version__ = version("ronghe")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["TextClassifier", "load", "__version__"]
