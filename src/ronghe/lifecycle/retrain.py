"""Retraining with a champion/challenger gate: never ship a model worse than the one running.

``retrain(champion, new)``:

1. The newest ``holdout`` share of the new labelled rows (the file's last rows: files are read
   in time order) is set aside; neither model has seen it.
2. A challenger is trained with the champion's hyper-parameters (``get_params``) on the rest of
   the new data plus, with ``keep_old``, the old training data (``init_from``: a fine-tuned
   champion's encoder is the starting point instead of the pretrained backbone).
3. Both predict the held-out slice. The challenger is promoted only when all three hold:
   - it is better by at least ``margin`` (accuracy points),
   - the gain is significant: exact one-sided McNemar test on the items where exactly one model
     is right, p < ``alpha`` (paired: the same items, so noise in the slice cancels),
   - on the old validation data it loses at most ``max_forgetting`` accuracy against the
     champion (no catastrophic forgetting).
4. Promotion saves the challenger as the next version folder (``v3`` after ``v2``) of ``out``,
   which ``ronghe serve OUT`` hot-reloads (the registry serves the highest version name; the
   folder appears by an atomic rename). The decision and its numbers go to the model history
   (``history.py``) either way.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError, DataError
from ..log import info


class RetrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    holdout: float = Field(0.2, gt=0, lt=1, description="newest share of the new rows held out "
                                                        "for the comparison")
    min_holdout: int = Field(50, ge=10, description="fewer held-out rows: refuse (a comparison "
                                                    "on a handful of items is noise)")
    margin: float = Field(0.0, ge=0, lt=1, description="accuracy points the challenger must gain")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="McNemar p-value to call the gain real")
    max_forgetting: float = Field(0.01, ge=0, lt=1, description="old-validation accuracy the "
                                                                "challenger may lose")
    init_from: bool = Field(False, description="start from the champion's fine-tuned encoder")
    seed: int = 0


# -- versions -----------------------------------------------------------------------------------

def current_version(path: Path) -> tuple[str | None, Path]:
    """``(version label, bundle path)`` that ``ronghe serve PATH`` would serve now."""
    from ..serving.registry import candidates, parse_specs

    spec = parse_specs([path])[0]
    found = candidates(spec)
    if not found:
        raise ConfigError(f"{path}: no bundle version found")
    return found[-1].label, found[-1].path


def next_version(out: Path, after: str | None = None) -> str:
    """``vN`` one above the highest numbered version in ``out`` (and ``after``)."""
    nums = [0]
    if out.is_dir():
        nums += [int(m.group(1)) for d in out.iterdir()
                 if (m := re.fullmatch(r"v(\d+)", d.name))]
    if after and (m := re.fullmatch(r"v(\d+)", after)):
        nums.append(int(m.group(1)))
    return f"v{max(nums) + 1}"


def seed_versions(out: Path, bundle_path: Path) -> tuple[str, Path]:
    """``out``'s newest version, or - when it has none - a copy of ``bundle_path`` as ``v1``
    (copied under a hidden name, then renamed: the server never sees half a folder)."""
    import shutil

    from ..serving.registry import _version_dirs

    if out.is_dir() and _version_dirs(out):
        return current_version(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".v1.tmp-{time.time_ns()}"
    shutil.copytree(bundle_path, tmp)
    tmp.rename(out / "v1")
    return "v1", out / "v1"


# -- the comparison -----------------------------------------------------------------------------

def mcnemar(champion_right: np.ndarray, challenger_right: np.ndarray) -> dict:
    """Exact one-sided McNemar test that the challenger is right more often (binomial test on
    the discordant pairs)."""
    from scipy.stats import binomtest

    b = int((champion_right & ~challenger_right).sum())  # only the champion right
    c = int((~champion_right & challenger_right).sum())  # only the challenger right
    p = binomtest(c, b + c, 0.5, alternative="greater").pvalue if b + c else 1.0
    return {"test": "mcnemar-exact", "only_champion_right": b, "only_challenger_right": c,
            "p_value": float(p)}


def _right(estimator, ds) -> np.ndarray:
    from ..tasks.text_classification import label_key

    pred = estimator.predict(ds)
    return np.array([label_key(p) == label_key(y) for p, y in zip(pred, ds.labels)])


def decide(champion, challenger, holdout, old_valid, config: RetrainConfig | None = None) -> dict:
    """Compare two fitted models on the held-out newest slice and the old validation data."""
    c = config or RetrainConfig()
    a, b = _right(champion, holdout), _right(challenger, holdout)
    test = mcnemar(a, b)
    gain = float(b.mean() - a.mean())
    out = {"holdout_n": len(holdout), "champion_accuracy": float(a.mean()),
           "challenger_accuracy": float(b.mean()), "gain": gain, "margin": c.margin,
           "mcnemar": test, "alpha": c.alpha}
    reasons = []
    if gain < c.margin or gain <= 0:
        reasons.append(f"gain {gain:+.4f} on the newest {len(holdout)} items is below the margin "
                       f"{c.margin:.4f}" if gain > 0 else f"no gain on the newest {len(holdout)} "
                       f"items ({gain:+.4f})")
    if test["p_value"] >= c.alpha:
        reasons.append(f"not significant: McNemar p={test['p_value']:.3g} >= {c.alpha}")
    if old_valid is not None:
        oa, ob = _right(champion, old_valid).mean(), _right(challenger, old_valid).mean()
        out.update(old_valid_n=len(old_valid), champion_old_accuracy=float(oa),
                   challenger_old_accuracy=float(ob), max_forgetting=c.max_forgetting)
        if ob < oa - c.max_forgetting:
            reasons.append(f"forgets: old-validation accuracy {ob:.4f} < champion's {oa:.4f} "
                           f"- {c.max_forgetting}")
    else:
        out["old_valid_n"] = 0
    out["decision"] = "kept" if reasons else "promoted"
    out["reasons"] = reasons or [f"better by {gain:+.4f} (McNemar p={test['p_value']:.3g})"
                                 + ("" if old_valid is None else ", no forgetting")]
    return out


# -- the whole step -------------------------------------------------------------------------------

def concat(parts: list, source: str):
    from .. import data

    texts = [t for p in parts for t in p.texts]
    labels = [y for p in parts for y in p.labels]
    return data.from_texts(texts, labels)


def split_newest(ds, config: RetrainConfig):
    """(older rows for training, newest ``holdout`` share) of a data set in file order."""
    n_hold = int(round(len(ds) * config.holdout))
    if n_hold < config.min_holdout:
        raise DataError(f"{ds.source}: {len(ds)} new rows give {n_hold} held-out rows at "
                        f"holdout={config.holdout}; the comparison needs at least "
                        f"{config.min_holdout}. Wait for more labelled data, or raise --holdout")
    idx = np.arange(len(ds))
    return ds.subset(idx[: len(ds) - n_hold]), ds.subset(idx[len(ds) - n_hold:])


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def retrain(champion_path: Path, new, *, out: Path | None = None, keep_old=None,
            old_valid=None, config: RetrainConfig | None = None, store=None,
            challenger=None, new_sha256: str | None = None, extra: dict | None = None) -> dict:
    """Train a challenger on ``new`` (+ ``keep_old``), gate it, promote it into ``out``.
    ``challenger``: an already fitted model to gate instead of training one (tests, benchmarks).
    Returns the decision (also recorded in ``store``'s model history when given)."""
    from .. import load

    c = config or RetrainConfig()
    champion_path = Path(champion_path)
    version, bundle_path = current_version(champion_path)
    if version is None:  # a single bundle: it becomes v1 of the versions folder ``out``
        if out is None:
            raise ConfigError(f"{champion_path} is a single bundle: say with --out DIR which "
                              "folder of versions to write (it gets the champion as v1)")
        version, bundle_path = seed_versions(Path(out), bundle_path)
    out = Path(out) if out else champion_path
    champion = load(bundle_path)
    if champion.task != "text-classification":
        raise ConfigError(f"retrain takes text-classification bundles; {bundle_path} is "
                          f"{champion.task}")
    if getattr(champion, "feature_cols", None):
        raise ConfigError("retrain does not yet handle models with feature columns")
    if new.labels is None:
        raise DataError(f"{new.source}: retraining needs labels; no label column was found")
    train_new, holdout = split_newest(new, c)
    train = concat([train_new] + ([keep_old] if keep_old is not None else []), new.source)
    started = time.perf_counter()
    if challenger is None:
        params = {k: v for k, v in champion.get_params().items() if k != "run_dir"}
        if c.init_from:
            if champion.strategy != "finetune":
                raise ConfigError(f"--init-from needs a finetune champion; this one is "
                                  f"'{champion.strategy}' (retrain from scratch instead)")
            params["options"] = {**(params.get("options") or {}), "init_from": str(bundle_path)}
        info("training the challenger (%s) on %d rows", params["strategy"], len(train))
        challenger = type(champion)(**params).fit(train)
    decision = decide(champion, challenger, holdout, old_valid, c)
    decision.update(model=out.name, champion=version or str(bundle_path),
                    n_train=len(train), train_seconds=round(time.perf_counter() - started, 1),
                    new_data=new.source, config=c.model_dump(), **(extra or {}))
    if decision["decision"] == "promoted":
        label = next_version(out, version)
        challenger.save(out / label)
        decision["challenger"] = label
        decision["path"] = str(out / label)
    else:
        decision["challenger"] = None
    if store is not None:
        from . import history

        decision["history_id"] = history.record(store, out.name, decision, new_data=new.source,
                                                new_data_sha256=new_sha256)
    return decision


def watch(folder: Path, step, store, *, interval: float = 30.0, once: bool = False,
          settle_s: float = 2.0, on_look=None) -> int:
    """Call ``step(path)`` for each labelled file that appears in ``folder`` (oldest first), once
    per content (the model history remembers each file's sha256, so a restart skips what was
    done). Files modified in the last ``settle_s`` seconds wait for the next look (still being
    written). A file that fails is reported and skipped until its content changes.
    ``on_look(files)``, when given, runs after each look with the settled files (oldest first):
    the drift trigger of ``ronghe retrain --watch DIR --drift-reference ...``."""
    from .. import data
    from ..errors import RongheError
    from ..log import warn
    from . import history

    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"--watch {folder}: not a folder")
    failed: set[str] = set()
    done = 0
    while True:
        files = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                        and any(p.name.endswith(e) for e in data.SUPPORTED_EXTENSIONS)),
                       key=lambda p: (p.stat().st_mtime, p.name))
        digests = {p: file_sha256(p) for p in files
                   if once or time.time() - p.stat().st_mtime >= settle_s}
        for path, digest in digests.items():
            if digest in failed or history.seen(store, digest):
                continue
            try:
                step(path)
                done += 1
            except RongheError as e:
                warn("%s: %s", path.name, e)
                failed.add(digest)
        if on_look is not None:
            try:
                on_look([p for p, d in digests.items() if d not in failed])
            except RongheError as e:
                warn("drift check: %s", e)
        if once:
            return done
        time.sleep(interval)
