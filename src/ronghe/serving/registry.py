"""The models a service holds, by name, and how they are loaded and switched.

A *source* is a bundle folder (served under its folder name) or a folder of versions, one bundle
per sub-folder (served under the folder's name; the newest version is served - highest folder name
in natural order, ``v2 < v10``, or latest ``ronghe.json`` modification time). ``NAME=PATH`` sets the
name. Hidden folders (``.v3.tmp-...``, what ``bundle.save`` writes before its rename) are ignored.

Loading asks the task registry: the manifest's ``task`` -> ``ronghe.load`` and that task's
``serving_model(estimator)`` (``tasks.base.Task``), an object with ``predict(list_of_inputs) ->
list[record]``, ``accepts`` (``("texts",)`` or ``("tokens",)`` or both) and optionally
``warmup()``. ``LOADERS`` holds overrides (task name -> ``function(bundle_path)`` returning such
an object), e.g. for a model kind that is not a ronghe task; ``register_loader`` adds one.

Switching is load-then-swap: the new version is loaded and warmed up in the caller's thread (the
watcher or the reload endpoint) under the model's lock while the old one keeps serving; then one
reference assignment makes it current. Requests already queued keep the model object they were
pinned to (see ``batcher``), so nothing fails and nothing sees a half-loaded model. Both versions are
in memory for the moment of the switch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from .. import tasks
from ..bundle import MANIFEST, Manifest
from ..errors import BundleError, ConfigError, RongheError

log = logging.getLogger("ronghe.serving")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

Loader = Callable[[Path], Any]
LOADERS: dict[str, Loader] = {}


def register_loader(task: str, loader: Loader) -> None:
    """Serve bundles whose manifest says ``task`` with ``loader(bundle_path)``."""
    LOADERS[task] = loader


def load_predictor(path: Path):
    """The object that serves the bundle at ``path``, through its task's declaration."""
    from ..estimator import load

    estimator = load(path)
    return tasks.get(estimator.task).serving_model(estimator)


# -- sources and versions -----------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSpec:
    name: str
    path: Path
    versioned: bool  # a folder of version sub-folders rather than one bundle


def _is_bundle(p: Path) -> bool:
    return (p / MANIFEST).is_file()


def _version_dirs(p: Path) -> list[Path]:
    try:
        return [d for d in p.iterdir() if d.is_dir() and not d.name.startswith(".") and _is_bundle(d)]
    except OSError:
        return []


def parse_specs(items: Iterable[str | os.PathLike]) -> list[ModelSpec]:
    """``PATH`` or ``NAME=PATH`` items -> specs; ``ConfigError`` says what is wrong with each."""
    specs: list[ModelSpec] = []
    for item in items:
        text = str(item)
        name = None
        if "=" in text and not Path(text).expanduser().exists():
            left, right = text.split("=", 1)
            if NAME_RE.match(left):
                name, text = left, right
        path = Path(text).expanduser().resolve()
        if not path.exists():
            raise ConfigError(f"model path not found: {text}")
        if not path.is_dir():
            raise ConfigError(f"{text} is a file; serve a bundle folder (written by `ronghe train "
                              "--out`) or a folder of bundle versions")
        if _is_bundle(path):
            versioned = False
        elif _version_dirs(path):
            versioned = True
        else:
            raise ConfigError(f"{text} is neither a bundle (no {MANIFEST}) nor a folder of bundle "
                              f"versions (no sub-folder holds a {MANIFEST})")
        name = name or path.name
        if not NAME_RE.match(name):
            raise ConfigError(f"'{name}' cannot be a model name (letters, digits, '.', '_', '-'; at "
                              f"most 64); give one with NAME={text}")
        if any(s.name == name for s in specs):
            raise ConfigError(f"two models would be served as '{name}'; name them with NAME=PATH")
        specs.append(ModelSpec(name, path, versioned))
    if not specs:
        raise ConfigError("no model to serve: give one or more bundle folders")
    return specs


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


@dataclass(frozen=True)
class Candidate:
    label: str | None  # version folder name; None for a single bundle (version from its manifest)
    path: Path
    signature: tuple  # (inode, mtime_ns, size) of ronghe.json: changes on every save


def _signature(path: Path) -> tuple | None:
    try:
        st = (path / MANIFEST).stat()
    except OSError:
        return None
    return (str(path), st.st_ino, st.st_mtime_ns, st.st_size)


def _deep_signature(path: Path) -> str:
    """Every file's name, size and mtime: a failed version is retried only once it changes."""
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        try:
            st = f.stat()
        except OSError:
            continue
        h.update(f"{f.relative_to(path)}|{st.st_size}|{st.st_mtime_ns}\n".encode("utf-8",
                                                                              "surrogateescape"))
    return h.hexdigest()


def candidates(spec: ModelSpec, order: str = "name") -> list[Candidate]:
    """Loadable-looking versions, oldest first."""
    if not spec.versioned:
        sig = _signature(spec.path)
        return [Candidate(None, spec.path, sig)] if sig else []
    out = []
    for d in _version_dirs(spec.path):
        sig = _signature(d)
        if sig:
            out.append(Candidate(d.name, d, sig))
    if order == "mtime":
        out.sort(key=lambda c: (c.signature[2], _natural(c.label)))
    else:
        out.sort(key=lambda c: _natural(c.label))
    return out


# -- loaded models ------------------------------------------------------------------------------

@dataclass(eq=False)
class LoadedModel:
    """One loaded, warmed-up version. Immutable once current; compared by identity."""

    name: str
    version: str
    path: Path
    manifest: Manifest
    predictor: Any
    signature: tuple
    loaded_at: str
    accepts: tuple[str, ...] = ("texts",)

    @property
    def task(self) -> str:
        return self.manifest.task

    def predict(self, inputs: list) -> list:
        return self.predictor.predict(inputs)


def read_manifest(path: Path) -> tuple[Manifest, bytes]:
    f = path / MANIFEST
    try:
        raw = f.read_bytes()
        return Manifest.model_validate(json.loads(raw)), raw
    except FileNotFoundError:
        raise BundleError(f"{path} is not a bundle: {MANIFEST} is missing") from None
    except Exception as e:  # noqa: BLE001 - JSON or schema errors: a broken bundle
        raise BundleError(f"{f} cannot be read as a bundle manifest: {e}") from None


def _warm_up(predictor: Any, accepts: tuple[str, ...]) -> None:
    if hasattr(predictor, "warmup"):
        predictor.warmup()
        return
    sample = ["ronghe warm-up"] if "texts" in accepts else [["ronghe", "warm-up"]]
    out = predictor.predict(sample)
    if len(out) != 1:
        raise RongheError(f"the model returned {len(out)} results for 1 warm-up input")


@dataclass
class Slot:
    """A served name: its source, the current version, and reload bookkeeping."""

    spec: ModelSpec
    current: LoadedModel | None = None
    versions: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    reloads: int = 0
    reload_failures: int = 0
    last_error: str | None = None
    failed: dict[str, str] = field(default_factory=dict)  # path -> deep signature that failed

    @property
    def name(self) -> str:
        return self.spec.name


class ReloadError(RongheError):
    """The newest version could not be loaded; the previous one is still served."""


class Registry:
    """Models by name. Thread-safe: loading happens in any thread; readers take ``slot.current``."""

    def __init__(self, specs: list[ModelSpec], loaders: dict[str, Loader] | None = None,
                 version_order: str = "name"):
        self.loaders = LOADERS if loaders is None else loaders
        self.version_order = version_order
        self.slots: dict[str, Slot] = {s.name: Slot(s) for s in specs}
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.load_error: str | None = None

    @classmethod
    def from_sources(cls, sources: Iterable[str | os.PathLike], **kw) -> "Registry":
        return cls(parse_specs(sources), **kw)

    # -- reading ----------------------------------------------------------------------------------

    def get(self, name: str) -> Slot | None:
        return self.slots.get(name)

    @property
    def names(self) -> list[str]:
        return list(self.slots)

    @property
    def loaded(self) -> bool:
        return all(s.current is not None for s in self.slots.values())

    # -- loading ----------------------------------------------------------------------------------

    def _load(self, slot: Slot, cand: Candidate) -> LoadedModel:
        manifest, raw = read_manifest(cand.path)
        loader = self.loaders.get(manifest.task)
        if loader is None and manifest.task in tasks.REGISTRY:
            loader = load_predictor
        if loader is None:
            served = sorted({*tasks.REGISTRY, *self.loaders})
            raise ConfigError(f"{cand.path} holds a '{manifest.task}' model; this server can serve "
                              f"{', '.join(served)}")
        predictor = loader(cand.path)
        accepts = tuple(getattr(predictor, "accepts", ("texts",)))
        _warm_up(predictor, accepts)
        version = cand.label or hashlib.sha256(raw).hexdigest()[:12]
        return LoadedModel(slot.name, version, cand.path, manifest, predictor, cand.signature,
                           datetime.now(timezone.utc).isoformat(timespec="seconds"), accepts)

    def _load_best(self, slot: Slot) -> None:
        """At start: the newest version that loads (older ones only if newer ones fail)."""
        cands = candidates(slot.spec, self.version_order)
        slot.versions = [c.label for c in cands if c.label]
        errors = []
        for cand in reversed(cands):
            try:
                slot.current = self._load(slot, cand)
            except Exception as e:  # noqa: BLE001
                errors.append(f"{cand.path}: {e}")
                slot.failed[str(cand.path)] = _deep_signature(cand.path)
                log.error("model '%s': cannot load %s: %s", slot.name, cand.path, e)
                continue
            if errors:
                slot.last_error = errors[0]
                log.error("model '%s': serving older version %s because newer ones failed",
                          slot.name, slot.current.version)
            log.info("model '%s': version %s loaded from %s", slot.name, slot.current.version,
                     cand.path)
            return
        if not cands:
            errors.append(f"{slot.spec.path}: no bundle found")
        raise BundleError(f"model '{slot.name}' cannot be served: " + "; ".join(errors))

    def load_all(self) -> None:
        """Load every model (raises the first ``RongheError``; the others are still tried)."""
        first: Exception | None = None
        for slot in self.slots.values():
            if slot.current is not None:
                continue
            with slot.lock:
                try:
                    self._load_best(slot)
                except Exception as e:  # noqa: BLE001
                    self.load_error = str(e)
                    first = first or e
        if first is not None:
            raise first

    def _switch(self, slot: Slot, cand: Candidate) -> LoadedModel:
        """Load ``cand`` and make it current (caller holds ``slot.lock``)."""
        previous = slot.current
        try:
            new = self._load(slot, cand)
        except Exception as e:
            slot.reload_failures += 1
            slot.failed[str(cand.path)] = _deep_signature(cand.path)
            slot.last_error = f"{cand.path}: {e}"
            log.error("model '%s': cannot load %s, still serving %s: %s", slot.name, cand.path,
                      previous.version if previous else "nothing", e)
            raise ReloadError(f"model '{slot.name}': {cand.path.name} could not be loaded ({e}); "
                              f"still serving version "
                              f"{previous.version if previous else 'none'}") from None
        slot.current = new  # the atomic switch
        slot.reloads += 1
        slot.last_error = None
        slot.failed.pop(str(cand.path), None)
        log.info("model '%s': switched %s -> %s", slot.name,
                 previous.version if previous else "-", new.version)
        return new

    def reload(self, name: str, force: bool = False) -> dict[str, Any]:
        """Switch ``name`` to its newest version (even if unchanged when ``force``)."""
        slot = self.slots[name]
        with slot.lock:
            cands = candidates(slot.spec, self.version_order)
            slot.versions = [c.label for c in cands if c.label]
            if not cands:
                raise ReloadError(f"model '{name}': no bundle found under {slot.spec.path}")
            newest = cands[-1]
            previous = slot.current
            if (not force and previous is not None and previous.signature == newest.signature):
                return {"model": name, "changed": False, "version": previous.version,
                        "previous_version": previous.version}
            new = self._switch(slot, newest)
            return {"model": name, "changed": new is not previous, "version": new.version,
                    "previous_version": previous.version if previous else None}

    def poll(self) -> list[str]:
        """Switch every model whose newest version changed on disk; returns the names switched.
        A version that failed is retried only after its files change."""
        switched = []
        for slot in self.slots.values():
            if not slot.lock.acquire(blocking=False):
                continue  # a reload is running
            try:
                cands = candidates(slot.spec, self.version_order)
                slot.versions = [c.label for c in cands if c.label]
                if not cands:
                    continue
                newest = cands[-1]
                if slot.current is not None and slot.current.signature == newest.signature:
                    continue
                failed = slot.failed.get(str(newest.path))
                if failed is not None and failed == _deep_signature(newest.path):
                    continue
                try:
                    self._switch(slot, newest)
                    switched.append(slot.name)
                except ReloadError:
                    pass
            except Exception:  # noqa: BLE001 - the watcher must survive anything
                log.exception("model '%s': watching for new versions failed", slot.name)
            finally:
                slot.lock.release()
        return switched

    # -- the watcher ------------------------------------------------------------------------------

    def start_watcher(self, interval: float) -> None:
        if interval <= 0 or self._watcher is not None:
            return
        self._stop.clear()

        def watch():
            while not self._stop.wait(interval):
                self.poll()

        self._watcher = threading.Thread(target=watch, name="ronghe-model-watcher", daemon=True)
        self._watcher.start()

    def stop_watcher(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
            self._watcher = None
