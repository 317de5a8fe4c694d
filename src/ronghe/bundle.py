"""The bundle: a folder of plain files that holds one fitted model.

::

    my-model/
      ronghe.json          manifest: format version, task, strategy, labels, backbone + sha256,
                           resolved config, metrics, data fingerprint, library versions, and the
                           sha256 of every other file in the folder
      arrays.safetensors   numeric state of classic parts (vectoriser idf, coefficients ...)
      model.safetensors    network weights (strategies that train one)
      model/ tokenizer/    config.json and tokenizer files, as transformers writes them

This module is the only one that touches a bundle on disk. Strategies hand it a ``State``
(``to_state``) and get a ``BundleReader`` back (``from_state``). Saving writes to a hidden temporary
folder next to the target and renames it into place, so an interrupted save leaves no half bundle.
Loading verifies every file's sha256 before anything is read, and never unpickles anything.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import BundleError

FORMAT_VERSION = 1
MANIFEST = "ronghe.json"
ARRAYS = "arrays.safetensors"
TENSORS = "model.safetensors"


class BackboneRef(BaseModel):
    """A manifest's ``backbone``: what the model was trained on, checked by sha256 at load."""

    model_config = ConfigDict(extra="allow")

    ref: str
    source: str
    sha256: str
    path: str


class Manifest(BaseModel):
    """What ``ronghe.json`` holds. Extra keys written by newer minor versions are kept."""

    model_config = ConfigDict(extra="allow")

    format_version: int
    ronghe_version: str
    task: str
    strategy: str
    labels: list[int | str]
    backbone: BackboneRef | None = None
    config: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    data: dict[str, Any] = {}
    versions: dict[str, str] = {}
    created_at: str = ""
    state: dict[str, Any] = {}
    compression: dict[str, Any] | None = None
    files: dict[str, str] = {}
    sealed_sha256: str | None = None  # over SEALED; absent in bundles written before 2026-12

    def backbone_json(self) -> dict | None:
        return self.backbone.model_dump() if self.backbone else None


# The manifest fields that decide what a bundle predicts: their sha256 is the manifest's seal, so
# an edit of ronghe.json (labels reversed, another config) is refused like an edit of a weight file.
SEALED = ("format_version", "task", "strategy", "labels", "backbone", "config", "params", "state",
          "compression", "files")


def seal(manifest: dict) -> str:
    canonical = json.dumps({k: manifest.get(k) for k in SEALED}, sort_keys=True,
                           ensure_ascii=False, separators=(",", ":"), default=json_default)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class State:
    """What a strategy hands to ``save``: JSON metadata, numpy arrays, torch tensors and files."""

    meta: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    tensors: dict[str, Any] = field(default_factory=dict)  # name -> torch.Tensor
    files: dict[str, bytes] = field(default_factory=dict)  # relative path -> content
    members: dict[str, "tuple[dict, State]"] = field(default_factory=dict)  # sub-bundles

    def add_pretrained(self, prefix: str, obj, **kwargs) -> None:
        """Take what ``obj.save_pretrained`` writes (a tokenizer, a PEFT adapter ...)."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            obj.save_pretrained(tmp, **kwargs)
            self.add_dir(prefix, Path(tmp))

    def add_dir(self, prefix: str, folder: Path) -> None:
        """Take every file under ``folder`` (e.g. a tokenizer's save_pretrained output)."""
        for f in sorted(Path(folder).rglob("*")):
            if f.is_file():
                self.files[f"{prefix}/{f.relative_to(folder).as_posix()}"] = f.read_bytes()


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("ronghe", "torch", "transformers", "tokenizers", "scikit-learn", "numpy",
                "safetensors", "peft", "onnxruntime"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_tree(root: Path, header: dict, state: State) -> None:
    root.mkdir(parents=True)
    if state.arrays:
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in state.arrays.items()}, str(root / ARRAYS))
    if state.tensors:
        from safetensors.torch import save_file as save_torch

        save_torch({k: v.detach().contiguous().cpu() for k, v in state.tensors.items()},
                   str(root / TENSORS))
    for rel, content in state.files.items():
        target = root / rel
        if target.resolve().parent != root.resolve() and root.resolve() not in target.resolve().parents:
            raise BundleError(f"refusing to write {rel!r} outside the bundle")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    for name, (member_header, member_state) in state.members.items():
        _write_tree(root / "members" / name, member_header, member_state)
    files = {rel: sha256(root / rel) for rel in _own_files(root)}
    manifest = {
        "format_version": FORMAT_VERSION,
        "ronghe_version": library_versions().get("ronghe", "0"),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": library_versions(),
        **header,
        "state": state.meta,
        "files": files,
    }
    manifest = json.loads(json.dumps(manifest, ensure_ascii=False, default=json_default))
    manifest["sealed_sha256"] = seal(manifest)
    Manifest.model_validate(manifest)
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))


def _umask() -> int:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it (and put it back)
    os.umask(mask)
    return mask


def _normalise_modes(root: Path) -> None:
    """Every file 0666 and folder 0777 less the umask, as ``open`` would make them: libraries
    that write through a private temporary file (safetensors) leave 0600, and a bundle trained
    by one user could then not be served by another."""
    mask = _umask()
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o777 & ~mask)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o666 & ~mask)


def _own_files(root: Path) -> list[str]:
    """Files a manifest lists: everything in the folder except the manifest itself and, inside
    member bundles, everything but their manifests (each member's manifest lists its own files,
    so the checksums chain from the top manifest down)."""
    out = []
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        parts = p.relative_to(root).parts
        if parts == (MANIFEST,):
            continue
        if parts[0] == "members" and not (len(parts) == 3 and parts[2] == MANIFEST):
            continue
        out.append(p.relative_to(root).as_posix())
    return out


def json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def save(path: str | os.PathLike, header: dict, state: State) -> Path:
    """Write a bundle atomically. ``header`` holds the manifest fields (task, strategy, labels ...).

    An existing folder at ``path`` is replaced only if it is a ronghe bundle or empty; anything
    else is refused so a typo cannot wipe a user's folder.
    """
    check_target(path)
    target = Path(path).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _write_tree(tmp, header, state)
        _normalise_modes(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return swap_into_place(tmp, target)


def swap_into_place(tmp: Path, target: Path) -> Path:
    """Rename a fully written folder ``tmp`` to ``target``, replacing what is there; on failure
    the previous ``target`` is put back and ``tmp`` removed, so no half state is ever visible."""
    old = target.parent / f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not target.exists():
            os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return target


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale(target: Path, older_than_s: float = 3600.0) -> list[Path]:
    """Remove what killed saves to ``target`` left behind (``.NAME.tmp-PID-*``, ``.NAME.old-PID-*``)
    when the process that wrote it is gone (names without a pid, from older versions: when older
    than an hour), and say so."""
    import re
    import time

    from .log import info

    removed = []
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(tmp|old)-(?:(\d+)-)?[0-9a-f]{{8}}$")
    for p in target.parent.glob(f".{target.name}.*-*"):
        m = pattern.match(p.name)
        if not m or not p.is_dir() or p.is_symlink():
            continue
        pid = m.group(2)
        stale = (not _alive(int(pid))) if pid else time.time() - p.stat().st_mtime > older_than_s
        if stale and int(pid or 0) != os.getpid():
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    if removed:
        info("removed %d folder(s) left by interrupted saves to %s: %s", len(removed), target,
             ", ".join(p.name for p in removed))
    return removed


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write a (report, prediction) file so that a reader never sees half of it: a hidden
    temporary file beside it, renamed into place."""
    path = Path(path)
    if path.is_dir():
        raise BundleError(f"{path} is a folder; give a file name such as {path}/predictions.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_target(path: str | os.PathLike) -> None:
    """Fail before any work if ``save(path, ...)`` would be refused."""
    target = Path(path).expanduser()
    if target.exists():
        if not target.is_dir():
            raise BundleError(f"cannot save bundle to {target}: a file with that name exists")
        if any(target.iterdir()) and not (target / MANIFEST).exists():
            raise BundleError(f"cannot save bundle to {target}: the folder exists, is not empty and "
                              "is not a ronghe bundle. Choose another --out folder.")


class BundleReader:
    """An opened, verified bundle: manifest plus lazy access to arrays, tensors and files."""

    def __init__(self, root: Path, manifest: Manifest):
        self.root = root
        self.manifest = manifest

    @property
    def meta(self) -> dict:
        return self.manifest.state

    def arrays(self) -> dict[str, np.ndarray]:
        from safetensors.numpy import load_file

        return self._safetensors(ARRAYS, load_file)

    def tensors(self) -> dict:
        from safetensors.torch import load_file

        return self._safetensors(TENSORS, load_file)

    def _safetensors(self, name: str, load_file) -> dict:
        path = self.root / name
        if not path.exists():
            return {}
        try:
            return load_file(str(path))
        except Exception as e:  # SafetensorError, OSError ... : a damaged or foreign file
            raise BundleError(f"{path} is not a readable safetensors file ({type(e).__name__}: "
                              f"{str(e)[:200]}); the bundle is damaged. Save it again from the "
                              "original model.") from None

    def path(self, rel: str) -> Path:
        return inside(self.root, rel, "a strategy asked for")

    def member(self, name: str) -> "BundleReader":
        return open_bundle(self.root / "members" / name)


def open_app(path, task: str, what: str, how: str) -> BundleReader:
    """An application's bundle (``task``), opened and verified; another task is refused, saying
    ``how`` to make a ``what``."""
    reader = open_bundle(path)
    if reader.manifest.task != task:
        raise BundleError(f"{path} holds a '{reader.manifest.task}' model, not {what}; "
                          f"{how}")
    return reader


def inside(root: Path, rel: str, what: str) -> Path:
    """``root / rel`` if it stays inside the bundle folder, else a ``BundleError``."""
    p = Path(rel)
    target = (root / p).resolve()
    if p.is_absolute() or ".." in p.parts or not target.is_relative_to(root.resolve()):
        raise BundleError(f"bundle {root}: {what} {rel!r}, which is outside the bundle folder; "
                          "a bundle only refers to its own files. Do not use this bundle.")
    return target


def _refuse_links(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                raise BundleError(f"bundle {root} contains a symbolic link ({p.relative_to(root)} "
                                  f"-> {os.readlink(p)}); a bundle holds plain files only. Do not "
                                  "use this bundle.")


def open_bundle(path: str | os.PathLike) -> BundleReader:
    """Read and verify a bundle's manifest and files; raise ``BundleError`` with the reason."""
    root = Path(path).expanduser()
    if not root.exists():
        raise BundleError(f"bundle not found: {root}")
    if not root.is_dir():
        raise BundleError(f"{root} is a file; a bundle is a folder written by `ronghe train --out`")
    mpath = root / MANIFEST
    if not mpath.exists():
        raise BundleError(f"{root} is not a ronghe bundle: {MANIFEST} is missing")
    try:
        raw = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{mpath} is not valid JSON ({e}); the bundle is damaged") from None
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version != FORMAT_VERSION:
        raise BundleError(f"{root} has bundle format version {version!r}; this ronghe reads version "
                          f"{FORMAT_VERSION}. Re-export it with a matching ronghe version.")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as e:
        fields = "; ".join(f"{'.'.join(str(x) for x in err['loc']) or 'manifest'}: {err['msg']}"
                           for err in e.errors()[:5])
        raise BundleError(f"{mpath} does not describe a valid bundle ({fields}); the bundle is "
                          "damaged. Save it again from the original model.") from None
    _refuse_links(root)
    for rel in manifest.files:
        inside(root, rel, f"{MANIFEST} lists")
    if manifest.sealed_sha256 is not None and manifest.sealed_sha256 != seal(raw):
        raise BundleError(f"bundle {root}: {MANIFEST} was modified after saving (its "
                          f"{', '.join(k for k in SEALED if k != 'format_version')} no longer "
                          "match its seal). Do not use this bundle; save it again from the "
                          "original model.")
    unlisted = [rel for rel in _own_files(root) if rel not in manifest.files]
    if unlisted:
        raise BundleError(f"bundle {root} holds files its {MANIFEST} does not list "
                          f"({', '.join(sorted(unlisted)[:5])}); it was modified after saving.")
    for rel, digest in manifest.files.items():
        f = root / rel
        if not f.is_file():
            raise BundleError(f"bundle {root} is incomplete: {rel} is missing")
        if sha256(f) != digest:
            raise BundleError(f"bundle {root}: {rel} does not match the sha256 in {MANIFEST}; the "
                              "file was modified or damaged after saving. Do not use this bundle; "
                              "save it again from the original model.")
    if manifest.sealed_sha256 is None and not root.parent.name == "members":
        from .log import warn

        warn("bundle %s was written before ronghe sealed its manifest: its files are checked, "
             "its labels and config are not. Save it again to seal it.", root)
    return BundleReader(root, manifest)
