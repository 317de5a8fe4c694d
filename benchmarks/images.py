#!/usr/bin/env python
"""Image classification on Fashion-MNIST: classic vs frozen vs finetune (issue 14).

Fashion-MNIST from Debian (``apt-get install dataset-fashion-mnist``: idx files under
``/usr/share/datasets/fashion-mnist``; 60,000 training and 10,000 test images, 28x28 grey, 10
classes). Seeded samples of ``--per-class`` training images per class (default 100 and 1000) are
written as an image folder (one sub-folder per class, PNG) and trained on through the public API
(``ronghe.ImageClassifier(...).fit(folder)``: ronghe's own 10 % stratified validation split);
every model is scored on the full 10,000 test images.

Strategies: ``classic`` (HOG + colour histogram + logistic regression, C on validation),
``frozen`` (EfficientNet-Lite0 ImageNet features + logistic regression), ``finetune``
(EfficientNet-Lite0 end to end, LP-FT head, augmentation, 3 epochs, early stopping). The
backbone runs at 112 px (``image_size=112``) rather than its 224: the scans are 28 px, and a
convolutional network accepts any size - four times fewer pixels. Measured per run: train
seconds (the whole fit: decoding, features, training, validation), test accuracy and macro-F1,
prediction throughput at batch 1 (median of 30 single-image calls) and batch 32 (the test set in
chunks of 32), bundle size. Threads pinned (``--threads``).

Usage::

    python benchmarks/images.py                    # 100 and 1000 per class, all strategies
    python benchmarks/images.py --per-class 100 --only classic,frozen
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


def data(per_class: int) -> tuple[Path, Path]:
    if not FMNIST.exists():
        raise SystemExit(f"{FMNIST} not found: apt-get install dataset-fashion-mnist")
    work = common.WORK / "fmnist"
    tr_x, tr_y = read_idx("train")
    te_x, te_y = read_idx("test")
    idx = common.per_class_sample(tr_y.tolist(), per_class, seed=0)
    train = write_folder(work / f"train-{per_class}", tr_x, tr_y, idx)
    test = write_folder(work / "test", te_x, te_y, range(len(te_y)))
    return train, test


def run(strategy: str, per_class: int, threads: int, quick: bool = False) -> dict:
    import ronghe

    train, test = data(per_class)
    clf = ronghe.ImageClassifier(strategy=strategy, seed=0, **STRATEGIES[strategy])
    t0 = time.perf_counter()
    clf.fit(train)
    train_seconds = time.perf_counter() - t0
    test_set = ronghe.images.data.read(test)
    if quick:
        test_set = test_set.subset(np.random.default_rng(0).permutation(len(test_set))[:1100])
    t0 = time.perf_counter()
    report = clf.evaluate(test_set)
    eval_seconds = time.perf_counter() - t0
    paths = test_set.paths
    singles = []
    for p in paths[:30]:
        t = time.perf_counter()
        clf.predict_proba([p])
        singles.append(time.perf_counter() - t)
    chunk = paths[1000:2024]
    t = time.perf_counter()
    for s in range(0, len(chunk), 32):
        clf.predict_proba(chunk[s:s + 32])
    batch32 = len(chunk) / (time.perf_counter() - t)
    out = common.WORK / "fmnist" / "bundles" / f"{strategy}-{per_class}"
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    clf.save(out)
    return {"strategy": strategy, "per_class": per_class, "params": STRATEGIES[strategy],
            "n_train": clf.data_["n_train"], "n_valid": clf.data_["n_valid"],
            "n_test": report["n"], "test_accuracy": round(report["accuracy"], 4),
            "test_macro_f1": round(report["macro_f1"], 4), "valid": clf.metrics_["valid"],
            "history": clf.metrics_.get("history"), "train_seconds": round(train_seconds, 1),
            "evaluate_seconds": round(eval_seconds, 1),
            "batch1_ms_median": round(1000 * statistics.median(singles), 1),
            "batch32_images_per_second": round(batch32, 1),
            "bundle_mb": round(common.dir_size(out) / 1e6, 2),
            "load_average": common.load_average()}


def readme(result: dict, quick: bool) -> str:
    rows = []
    for r in result["runs"]:
        rows.append([r["per_class"], f"`{r['strategy']}`", f"{r['n_train']:,}",
                     f"**{r['test_accuracy']:.4f}**", f"{r['test_macro_f1']:.4f}",
                     f"{r['train_seconds'] / 60:.1f} min" if r["train_seconds"] >= 60
                     else f"{r['train_seconds']:.0f} s",
                     f"{r['batch1_ms_median']:.0f} ms", f"{r['batch32_images_per_second']:.0f}",
                     f"{r['bundle_mb']} MB"])
    body = [
        "## Image classification (`benchmarks/images.py`)", "",
        common.quick_note(quick, "python benchmarks/images.py"),
        "Fashion-MNIST (Debian `dataset-fashion-mnist`), seeded samples of 100 and 1,000 training "
        "images per class (`--quick`: 20), ronghe's own 10 % validation split, scored on the full "
        "10,000 test images (`--quick`: a seeded 1,100). EfficientNet-Lite0 (ImageNet) at 112 px for `frozen` and `finetune` (3 epochs, "
        "LP-FT head, augmentation: random resized crop 35-100 %, flip, colour jitter 0.2). Batch 1:"
        " median of 30 single-image calls (decode + preprocess + model); batch 32: 1,024 test "
        f"images in calls of 32. {PUBLISHED}.", "",
        common.md_table(["per class", "strategy", "train images", "test accuracy", "macro-F1",
                         "train time", "batch 1", "images/s at 32", "bundle"], rows), "",
        f"Machine: {common.machine_line(result['machine'])}.",
        "", *result.get("notes", []), "",
        *common.reproduce("python benchmarks/images.py", NAME, quick,
                          ("apt-get install dataset-fashion-mnist",)),
    ]
    return "\n".join(body)


def main(argv=None) -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--per-class", default="100,1000")
    ap.add_argument("--only", default=",".join(STRATEGIES))
    ap.add_argument("--threads", type=int, default=common.THREADS)
    args = ap.parse_args(argv)
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
        for strategy in args.only.split(","):
            print(f"== {strategy} {per_class}/class", flush=True)
            r = run(strategy, 20 if args.quick else per_class, args.threads, args.quick)
            print(json.dumps({k: r[k] for k in ("strategy", "per_class", "test_accuracy",
                                                "train_seconds")}), flush=True)
            result["runs"] = [x for x in result["runs"]
                              if (x["strategy"], x["per_class"]) != (strategy, r["per_class"])]
            result["runs"].append(r)
            result["runs"].sort(key=lambda x: (x["per_class"], list(STRATEGIES).index(x["strategy"])))
            common.write_json(NAME, result, args.quick)
    common.finish(NAME, result, args, readme, t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
