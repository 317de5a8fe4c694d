#!/usr/bin/env python
"""Image classification on Fashion-MNIST: classic vs frozen vs finetune (issue 14).

Fashion-MNIST from Debian (``apt-get install dataset-fashion-mnist``: idx files under
``/usr/share/datasets/fashion-mnist``; 60,000 training and 10,000 test images, 28x28 grey, 10
classes). Seeded samples of ``--per-class`` training images per class (default 100 and 1000) are
written as an image folder (one sub-folder per class, PNG) and trained on through the public API
(``ronghe.ImageClassifier(...).fit(folder)``: ronghe's own 10 % stratified validation split);
every model is scored on the full 10,000 test images.

Strategies: ``classic`` (HOG + colour histogram + logistic regression, C on validation), ``frozen``
(EfficientNet-Lite0 ImageNet features + logistic regression; ``frozen@224`` at the backbone's own
input size), ``finetune`` (EfficientNet-Lite0 end to end, LP-FT head, augmentation, 3 epochs, early
stopping; ``finetune@224`` at 224 px, asked for by name: ``--only finetune@224``, ``--resumable`` to
continue it across interrupted runs); ``fusion``: ``weighted`` late fusion of every pair of the
fitted models (weight chosen on the shared validation split); ``stack``: stacking of ``classic``
with ``frozen`` and with ``frozen@224`` (both always; the meta-learner fitted on 5-fold out-of-fold
probabilities of the whole training split, so it learns from 900 images at 100 per class where a
weight chosen on validation sees 100); the fusion row with the best validation macro-F1 is the one
to compare (``choose_fusion``); ``onnx``: the fine-tuned model exported (fp32) and statically
quantised to int8 behind the accuracy gate. All models share one seeded validation split. The
backbone runs at 112 px (``image_size=112``) rather than its 224: the scans are 28 px, and a
convolutional network accepts any size - four times fewer pixels. Measured per run: train seconds
(the whole fit: decoding, features, training, validation), test accuracy and macro-F1, prediction
throughput at batch 1 (median of 30 single-image calls) and batch 32 (the test set in chunks of 32),
bundle size. Threads pinned (``--threads``).

Usage::

    python benchmarks/images.py                    # 100 and 1000 per class, all of them
    python benchmarks/images.py --per-class 100 --only classic,frozen,frozen@224,fusion
    python benchmarks/images.py --per-class 1000 --only finetune@224 --finetune-epochs 5 \
        --resumable                                # about 1.3 h here; run again to continue
    python benchmarks/images.py --rewrite-readme
"""

from __future__ import annotations

import gzip
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import common

NAME = "images"
FMNIST = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
           "ankle-boot"]
STRATEGIES = {
    "classic": {},
    "frozen": {"model": "efficientnet-lite0", "options": {"image_size": 112}},
    "finetune": {"model": "efficientnet-lite0", "epochs": 3, "batch_size": 32,
                 "options": {"image_size": 112}},
    "frozen@224": {"strategy": "frozen", "model": "efficientnet-lite0"},  # the backbone's size
    # at the backbone's size: 2.7-5x the 112 px time per image (AMD EPYC Zen 4, 2026-12-05:
    # 111 s vs 19-22 s per epoch of 900 images; 867 s vs 323 s for the first of 9,000)
    "finetune@224": {"strategy": "finetune", "model": "efficientnet-lite0", "epochs": 3,
                     "batch_size": 32},
}
PUBLISHED = ("published for orientation: logistic regression on pixels about 84 %, small CNNs "
             "91-93 %, fine-tuned ImageNet models 94-96 %")


def read_idx(kind: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if kind == "train" else "t10k"
    with gzip.open(FMNIST / f"{prefix}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(FMNIST / f"{prefix}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images, labels


def write_folder(folder: Path, images: np.ndarray, labels: np.ndarray, idx) -> Path:
    from PIL import Image

    if (folder / ".done").exists():
        return folder
    for c in CLASSES:
        (folder / c).mkdir(parents=True, exist_ok=True)
    for i in idx:
        Image.fromarray(images[i], mode="L").save(folder / CLASSES[labels[i]] / f"{i:05d}.png")
    (folder / ".done").write_text("ok")
    return folder


def data(per_class: int, seed: int = 0) -> tuple[Path, Path]:
    """(train folder, test folder): a seeded sample of ``per_class`` training images per class
    (seed 0 is the benchmark's own), and all test images."""
    if not FMNIST.exists():
        raise SystemExit(f"{FMNIST} not found: apt-get install dataset-fashion-mnist")
    work = common.WORK / "fmnist"
    tr_x, tr_y = read_idx("train")
    te_x, te_y = read_idx("test")
    idx = common.per_class_sample(tr_y.tolist(), per_class, seed=seed)
    train = write_folder(work / (f"train-{per_class}" + (f"-seed{seed}" if seed else "")),
                         tr_x, tr_y, idx)
    test = write_folder(work / "test", te_x, te_y, range(len(te_y)))
    return train, test


def order(name: str) -> int:
    kinds = ["classic", "frozen", "frozen@224", "finetune", "finetune@224", "weighted", "stack",
             "finetune-onnx-fp32", "finetune-onnx-int8"]
    return next((i for i, k in enumerate(kinds) if name == k or name.startswith(k + ":")), 99)


def splits(per_class: int, quick: bool, seed: int = 0):
    """(train, valid, test) data sets: ronghe's own stratified 10 % validation split of the
    sample (seeded by ``seed``, see ``data``), made once so every strategy and every fusion sees
    the same validation images."""
    from ronghe import tasks
    from ronghe.images import data as idata

    train_dir, test_dir = data(per_class, seed)
    train, valid = tasks.get("image").split(idata.read(train_dir), 0.1, 0)
    test = idata.read(test_dir)
    if quick:
        test = test.subset(np.random.default_rng(0).permutation(len(test))[:1100])
    return train, valid, test


def speed(clf, paths: list[str]) -> dict:
    """Batch 1: median of 30 single-image calls; batch 32: 1,024 images in calls of 32. The
    images are ``bench``'s probe images: test images each with a pixel changed, so no feature
    cache (``frozen`` caches by content) has seen them."""
    from ronghe import tasks

    from ronghe.images import frozen

    pool = tasks.get("image").probe_pool(paths[:200], 30 + 1024)
    frozen._CACHE.clear()  # earlier rows embedded this same pool
    singles = []
    for p in pool[:30]:
        t = time.perf_counter()
        clf.predict_proba([p])
        singles.append(time.perf_counter() - t)
    chunk = pool[30:]
    t = time.perf_counter()
    for s in range(0, len(chunk), 32):
        clf.predict_proba(chunk[s:s + 32])
    return {"batch1_ms_median": round(1000 * statistics.median(singles), 1),
            "batch32_images_per_second": round(len(chunk) / (time.perf_counter() - t), 1)}


def _feature_choice(strategy) -> dict:
    """What a frozen model (or each frozen member of a fusion) reads: features and power."""
    members = getattr(strategy, "members", None) or [strategy]
    got = [{"features": m.features_, "power": m.power_} for m in members
           if hasattr(m, "features_") and hasattr(m, "power_")]
    return {"frozen_features": got} if got else {}


def scored(name: str, clf, per_class: int, test, train_seconds: float, **extra) -> dict:
    import shutil

    t0 = time.perf_counter()
    report = clf.evaluate(test)
    eval_seconds = time.perf_counter() - t0
    out = common.WORK / "fmnist" / "bundles" / f"{name}-{per_class}"
    shutil.rmtree(out, ignore_errors=True)
    clf.save(out)
    return {"strategy": name, "per_class": per_class, "n_train": clf.data_["n_train"],
            "n_valid": clf.data_.get("n_valid"), "n_test": report["n"],
            "test_accuracy": round(report["accuracy"], 4),
            "test_macro_f1": round(report["macro_f1"], 4), "valid": clf.metrics_.get("valid"),
            **_feature_choice(clf.strategy_),
            "history": clf.metrics_.get("history"), "train_seconds": round(train_seconds, 1),
            "evaluate_seconds": round(eval_seconds, 1), **speed(clf, test.paths),
            "bundle_mb": round(common.dir_size(out) / 1e6, 2),
            "load_average": common.load_average(), **extra}


RESUMABLE_EVERY = 50  # steps between checkpoints of a --resumable fine-tune


def run_dir(strategy: str, per_class: int) -> Path:
    """Where a ``--resumable`` fine-tune keeps its checkpoints (one per row and epoch count)."""
    epochs = STRATEGIES[strategy]["epochs"]
    return common.WORK / "fmnist" / "runs" / f"{strategy}-{per_class}-e{epochs}"


def earlier_seconds(folder: Path) -> float:
    """The training seconds an interrupted run had spent when its checkpoint was written (0: no
    checkpoint)."""
    from ronghe.training import checkpoint

    if not checkpoint.exists(folder):
        return 0.0
    state = json.loads((folder / checkpoint.NAME / "state.json").read_text())
    return float(state["position"]["elapsed"])


def fit(strategy: str, per_class: int, train, valid, test,
        resumable: bool = False) -> tuple[dict, object]:
    """Fit and score one row. ``resumable`` (fine-tunes): checkpoints every
    ``RESUMABLE_EVERY`` steps in ``run_dir``, and a run interrupted there (a session's end)
    continues from its checkpoint; the train time then adds the earlier processes' seconds."""
    import ronghe

    params = dict(STRATEGIES[strategy])
    name = params.pop("strategy", strategy)
    folder, before = None, 0.0
    if resumable and name == "finetune":
        folder = run_dir(strategy, per_class)
        before = earlier_seconds(folder)
        params["options"] = {**params.get("options", {}), "checkpoint_every": RESUMABLE_EVERY}
    clf = ronghe.ImageClassifier(strategy=name, seed=0, run_dir=folder, **params)
    t0 = time.perf_counter()
    clf.fit(train, valid=valid, resume=before > 0)
    extra = {"resumed_after_seconds": round(before, 1)} if before else {}
    row = scored(strategy, clf, per_class, test, time.perf_counter() - t0 + before,
                 params=STRATEGIES[strategy], **extra)
    return row, clf


def reused(strategy: str, per_class: int, test, before: dict) -> tuple[dict, object]:
    """An earlier run's saved bundle of ``strategy`` (fitted on the same seeded sample and
    split), scored again; its train time is the one recorded when it was fitted."""
    import ronghe

    clf = ronghe.load(common.WORK / "fmnist" / "bundles" / f"{strategy}-{per_class}")
    clf.train_seconds_ = before["train_seconds"]  # the fusion rows add the members' times
    row = scored(strategy, clf, per_class, test, before["train_seconds"],
                 params=STRATEGIES[strategy], reused_bundle=True)
    return row, clf


def fusions(fitted: dict, per_class: int, valid, test) -> list[dict]:
    """``weighted`` late fusion of each pair of the fitted models (no retraining: the weight is
    chosen on the shared validation split, as ``ronghe bench`` fuses its leaderboard);
    ``choose_fusion`` marks the one to compare."""
    from ronghe.images.fusion import Weighted
    from ronghe.tasks.text_classification import metrics

    rows = []
    names = [n for n in ("finetune", "finetune@224", "frozen", "frozen@224", "classic")
             if n in fitted]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            t0 = time.perf_counter()
            inner = Weighted.from_members([fitted[a].strategy_, fitted[b].strategy_], valid)
            clf = fitted[a].from_strategy(inner, {"strategy": "weighted", "seed": 0},
                                          data=fitted[a].data_, train_seconds=0.0)
            clf.metrics_ = {"valid": metrics(valid.labels, clf.predict(valid),
                                             list(clf.classes_), brief=True)}
            secs = time.perf_counter() - t0 + sum(r for r in (
                fitted[a].train_seconds_, fitted[b].train_seconds_))
            rows.append(scored(f"weighted:{a}+{b}", clf, per_class, test, secs,
                               alpha=inner.alpha))
    return rows


def choose_fusion(runs: list[dict], per_class: int) -> None:
    """Mark the fusion row (``weighted`` pair or ``stack``) with the best validation macro-F1
    at ``per_class`` as the one to compare - the test set plays no part in it."""
    rows = [r for r in runs if r["per_class"] == per_class and r.get("valid")
            and r["strategy"].startswith(("weighted:", "stack:"))]
    for r in rows:
        r.pop("chosen_on_validation", None)
    if rows:
        max(rows, key=lambda r: r["valid"]["macro_f1"])["chosen_on_validation"] = True


def stacks(per_class: int, train, valid, test) -> list[dict]:
    """``stack`` of ``classic`` with ``frozen`` and with ``frozen@224`` (their options), fitted
    as a user would: ``strategy="stack"`` on the training split (5 folds), C on validation."""
    import ronghe

    rows = []
    for name in ("frozen", "frozen@224"):
        opts = dict(STRATEGIES[name].get("options", {}))
        clf = ronghe.ImageClassifier(strategy="stack", model="efficientnet-lite0", seed=0,
                                     options={"members": ["classic", "frozen"],
                                              "member_options": {"frozen": opts}})
        t0 = time.perf_counter()
        clf.fit(train, valid=valid)
        rows.append(scored(f"stack:classic+{name}", clf, per_class, test,
                           time.perf_counter() - t0))
    return rows


def compressed(ft, per_class: int, train, valid, test) -> list[dict]:
    """The fine-tuned model exported to ONNX (fp32) and quantised (int8 static, gate on the
    validation split with the default 0.5 points)."""
    from ronghe.compression.export import export
    from ronghe.compression.gate import GateError, compress

    rows = []
    t0 = time.perf_counter()
    fp32 = export(ft, format="onnx", inputs=valid)
    rows.append(scored("finetune-onnx-fp32", fp32, per_class, test, time.perf_counter() - t0,
                       parity=fp32.compression_.get("parity")))
    t0 = time.perf_counter()
    try:
        int8, desc = compress(ft, quantize_to="int8-static", valid=valid, train=train)
    except GateError as e:
        rows.append({"strategy": "finetune-onnx-int8", "per_class": per_class,
                     "gate_failed": str(e)})
        return rows
    rows.append(scored("finetune-onnx-int8", int8, per_class, test, time.perf_counter() - t0,
                       gate=desc))
    return rows


def _finetune_epochs(result: dict) -> list[tuple[int, int]]:
    """(per class, epochs) of each finetune row (rows before the epochs were recorded: 3)."""
    return [(r["per_class"], (r.get("params") or {}).get("epochs", 3))
            for r in result["runs"] if r["strategy"] == "finetune"]


def readme(result: dict, quick: bool) -> str:
    rows = []
    for r in result["runs"]:
        if "gate_failed" in r:
            rows.append([r["per_class"], f"`{r['strategy']}`", "", "gate failed", "", "", "", "",
                         ""])
            continue
        name = f"`{r['strategy']}`" + (f" (a={r['alpha']:.2f})" if "alpha" in r else "") \
            + (" **chosen on validation**" if r.get("chosen_on_validation") else "")
        rows.append([r["per_class"], name, f"{r['n_train']:,}",
                     f"**{r['test_accuracy']:.4f}**", f"{r['test_macro_f1']:.4f}",
                     f"{r['train_seconds'] / 60:.1f} min" if r["train_seconds"] >= 60
                     else f"{r['train_seconds']:.0f} s",
                     f"{r['batch1_ms_median']:.0f} ms", f"{r['batch32_images_per_second']:.0f}",
                     f"{r['bundle_mb']} MB"])
    body = [
        "## Image classification (`benchmarks/images.py`)", "",
        common.quick_note(quick, "python benchmarks/images.py"),
        "Fashion-MNIST (Debian `dataset-fashion-mnist`), seeded samples of 100 and 1,000 training "
        "images per class (`--quick`: 20), one stratified 10 % validation split shared by every "
        "model, scored on the full 10,000 test images (`--quick`: a seeded 1,100). "
        "EfficientNet-Lite0 (ImageNet) at 112 px for `frozen` and `finetune` ("
        + ", ".join(f"{pc} per class: {ep} epochs" for pc, ep in _finetune_epochs(result))
        + "; LP-FT head, pretrained batch-norm statistics, augmentation: random resized crop "
        "35-100 %, "
        "flip, colour jitter 0.2); `frozen@224` (and `finetune@224`, when run) at the "
        "backbone's own 224 px. `weighted` "
        "rows fuse two of the fitted models (weight chosen on validation, no retraining; train "
        "time = both members'); `stack` rows: the classic pipeline stacked with a frozen model "
        "(meta-learner on 5-fold out-of-fold probabilities of the training split, C on "
        "validation); the fusion row (either kind) with the best validation macro-F1 is the one "
        "to compare. "
        "ONNX rows: the fine-tuned model exported (fp32) and statically quantised to int8 "
        "(QDQ, calibrated on 512 training images, accuracy gate 0.5 points on validation); their "
        "train time is the export/quantisation time. Batch 1: median of 30 single-image calls "
        "(preprocess + model, on decoded test images with one pixel changed, so no feature "
        "cache has seen them); batch 32: 1,024 such images in calls of 32. "
        f"{PUBLISHED}.", "",
        common.md_table(["per class", "model", "train images", "test accuracy", "macro-F1",
                         "train time", "batch 1", "images/s at 32", "bundle"], rows), "",
        f"Machine: {common.machine_line(result['machine'])}.",
        "", *[f"- {n}" for n in result.get("notes", [])], "",
        *common.reproduce("python benchmarks/images.py", NAME, quick,
                          ("apt-get install dataset-fashion-mnist",)),
    ]
    return "\n".join(body)


def main(argv=None) -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--per-class", default="100,1000")
    ap.add_argument("--only", default="classic,frozen,finetune,fusion,stack,onnx",
                    help="strategies, plus 'fusion' (weighted pairs), 'stack' (classic with "
                         "each frozen) and 'onnx' (fp32, int8)")
    ap.add_argument("--reuse", default="", help="strategies whose saved bundle from an earlier "
                                                "run is loaded and re-scored instead of refitted")
    ap.add_argument("--threads", type=int, default=common.THREADS)
    ap.add_argument("--finetune-epochs", type=int, default=STRATEGIES["finetune"]["epochs"],
                    help="epochs of the finetune rows (the strategy's own default is 5)")
    ap.add_argument("--resumable", action="store_true",
                    help="fine-tunes checkpoint every %d steps under .work/fmnist/runs and, run "
                         "again, continue an interrupted run" % RESUMABLE_EVERY)
    args = ap.parse_args(argv)
    STRATEGIES["finetune"]["epochs"] = STRATEGIES["finetune@224"]["epochs"] = args.finetune_epochs
    if common.handled(args, NAME, readme):
        return 0
    common.pin_threads(args.threads)
    common.torch_threads(args.threads)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sys.path.insert(0, str(common.ROOT / "src"))
    t0 = time.perf_counter()
    path = common.result_path(NAME, args.quick)
    result = json.loads(path.read_text()) if path.exists() else {"runs": []}
    result["machine"] = common.machine_info()
    for per_class in [int(x) for x in args.per_class.split(",")]:
        n = 20 if args.quick else per_class
        train, valid, test = splits(n, args.quick)
        fitted = {}

        def keep(rows):
            names = {(r["strategy"], r["per_class"]) for r in rows}
            result["runs"] = [x for x in result["runs"]
                              if (x["strategy"], x["per_class"]) not in names] + rows
            result["runs"].sort(key=lambda x: (x["per_class"], order(x["strategy"])))
            choose_fusion(result["runs"], n)  # new fusion rows may change the choice
            common.write_json(NAME, result, args.quick)
            for r in rows:
                print(json.dumps({k: r.get(k) for k in ("strategy", "per_class", "test_accuracy",
                                                        "train_seconds")}), flush=True)

        for strategy in [x for x in args.only.split(",") if x in STRATEGIES]:
            print(f"== {strategy} {n}/class", flush=True)
            if strategy in args.reuse.split(","):  # the bundle an earlier run saved, re-scored
                before = next(r for r in result["runs"]
                              if (r["strategy"], r["per_class"]) == (strategy, n))
                row, fitted[strategy] = reused(strategy, n, test, before)
            else:
                row, fitted[strategy] = fit(strategy, n, train, valid, test, args.resumable)
            keep([row])
        if "fusion" in args.only.split(",") and len(fitted) >= 2:
            keep(fusions(fitted, n, valid, test))
        if "stack" in args.only.split(","):
            keep(stacks(n, train, valid, test))
        if "onnx" in args.only.split(",") and "finetune" in fitted:
            keep(compressed(fitted["finetune"], n, train, valid, test))
    common.finish(NAME, result, args, readme, t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
