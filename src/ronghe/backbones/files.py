"""The weight files of a model folder: safetensors only (pickles refused), and their sha256.

Shared by the backbone resolver (``backbones/__init__.py``) and the loaders of each kind of
backbone (``vision.py``), which therefore need not import each other.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import BackboneError


def weight_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        if any(folder.glob("pytorch_model*.bin")) or any(folder.glob("*.pt")):
            raise BackboneError(
                f"model folder {folder} has only pickle weights (pytorch_model.bin); ronghe loads "
                "safetensors only, because unpickling can run arbitrary code. Convert it once in a "
                "trusted environment: AutoModel.from_pretrained(folder).save_pretrained(folder, "
                "safe_serialization=True).")
        raise BackboneError(f"model folder {folder} has no *.safetensors weights file")
    return files


_SHA_CACHE: dict[tuple, str] = {}


def weights_sha256(folder: Path) -> str:
    """sha256 over the folder's safetensors files (name + bytes), cached per size/mtime."""
    files = weight_files(folder)
    key = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        for f in files:
            h.update(f.name.encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]
