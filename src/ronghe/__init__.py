"""ronghe (融合, "fusion"): pretrained foundation models inside classic ML systems."""

from importlib.metadata import PackageNotFoundError, version

from .classifier import TextClassifier
from .classifier import load as _load_text


def load(path):
    """Rebuild any bundle: a TextClassifier, or a TokenClassifier for NER bundles."""
    import json
    from pathlib import Path

    manifest = Path(path).expanduser() / "ronghe.json"
    try:
        task = json.loads(manifest.read_text()).get("task")
    except (OSError, ValueError, AttributeError):
        task = None  # the loader below reports what is wrong with the bundle
    if task == "token-classification":
        from . import ner

        return ner.load(path)
    return _load_text(path)


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
