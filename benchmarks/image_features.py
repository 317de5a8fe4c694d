#!/usr/bin/env python
"""Which backbone features ``frozen`` reads, on images far from ImageNet (issue 14).

Fashion-MNIST at 100 training images per class (the seeded sample and 10 % validation split of
``images.py``), EfficientNet-Lite0 (ImageNet) untouched, standardised logistic regression with C
on validation. ``frozen`` with ``features=last`` (the final pooled features, what ``frozen`` read
before), ``features=stages`` (those plus the global-average pooled outputs of the last 3 stages,
timm's ``forward_intermediates``) and ``features=auto`` (the default: both fitted, the better on
validation kept), at 112 px and at the backbone's 224 px, beside ``classic`` (HOG + logistic
regression). Scored on a seeded 2,000 of the 10,000 test images (feature extraction at 224 px
is the cost: the full test set is what ``images.py`` scores). Accuracy only: no timing.

    python benchmarks/image_features.py [--quick]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import images  # noqa: E402

NAME = "image_features"
TEST_IMAGES = 2000


def run(quick: bool) -> dict:
    import numpy as np

    import ronghe

    per_class = 20 if quick else 100
    train, valid, test = images.splits(per_class, quick)
    if not quick:
        test = test.subset(np.random.default_rng(0).permutation(len(test))[:TEST_IMAGES])
    rows = []

    def score(name: str, clf, seconds: float, **extra) -> None:
        report = clf.evaluate(test)
        s = clf.strategy_
        valid_f1 = {}
        for h in getattr(s, "history", []) or []:
            k = h.get("features", "-")
            valid_f1[k] = max(valid_f1.get(k, 0.0), h["valid_macro_f1"])
        rows.append({"model": name, "test_accuracy": round(report["accuracy"], 4),
                     "test_macro_f1": round(report["macro_f1"], 4),
                     "valid_macro_f1": {k: round(v, 4) for k, v in valid_f1.items()},
                     "features_kept": getattr(s, "features_", None),
                     "train_seconds": round(seconds, 1), **extra})
        print(rows[-1], flush=True)

    t = time.perf_counter()
    score("classic", ronghe.ImageClassifier(strategy="classic", seed=0).fit(train, valid=valid),
          time.perf_counter() - t)
    for size in (112, 224):
        for features in ("last", "stages", "auto"):
            t = time.perf_counter()
            clf = ronghe.ImageClassifier(strategy="frozen", model="efficientnet-lite0", seed=0,
                                         options={"image_size": size, "features": features})
            clf.fit(train, valid=valid)
            score(f"frozen {size} px, features={features}", clf, time.perf_counter() - t,
                  image_size=size, features=features)
    return {"per_class": per_class, "n_train": len(train), "n_valid": len(valid),
            "n_test": len(test), "rows": rows}


def readme(result: dict, quick: bool) -> str:
    r = result["run"]
    rows = [[f"`{x['model']}`", f"**{x['test_accuracy']:.4f}**", f"{x['test_macro_f1']:.4f}",
             ", ".join(f"{k}: {v:.3f}" for k, v in x["valid_macro_f1"].items()) or "-",
             x["features_kept"] or "-"] for x in r["rows"]]
    classic = next(x for x in r["rows"] if x["model"] == "classic")["test_accuracy"]
    auto = {x["image_size"]: x for x in r["rows"] if x.get("features") == "auto"}
    last = {x["image_size"]: x for x in r["rows"] if x.get("features") == "last"}
    lines = ["## Frozen image features: final vs stage outputs (`image_features.py`)", "",
             common.quick_note(quick, "python benchmarks/image_features.py"),
             f"Fashion-MNIST, {r['per_class']} training images per class ({r['n_train']} train, "
             f"{r['n_valid']} validation: the split `images.py` uses), scored on a seeded "
             f"{r['n_test']:,} of the test images; EfficientNet-Lite0 untouched, standardised "
             "logistic regression, C on validation. `features=last`: the final pooled features; "
             "`stages`: those plus the pooled outputs of the last 3 stages; `auto` (the "
             "default): both fitted, the better on validation kept.", "",
             common.md_table(["model", "test accuracy", "macro-F1", "validation macro-F1 "
                              "(best C) per feature set", "kept"], rows), "",
             f"Machine: {common.machine_line(result['machine'])}.", "",
             "- The default (`auto`) against the final features alone: "
             + "; ".join(f"{s} px {last[s]['test_accuracy']:.4f} -> {auto[s]['test_accuracy']:.4f}"
                         for s in sorted(auto))
             + f"; classic (HOG) {classic:.4f}. The issue's aim at 100 per class, frozen "
             "clearly above classic: "
             + ("**met**." if max(a["test_accuracy"] for a in auto.values()) > classic + 0.01
                else "**missed**: ImageNet features of 28 px grey scans, even mid-level ones, "
                     "do not clearly beat HOG at 900 training images.")
             + " The `frozen` rows of `images.py` above were measured before this option "
               "(the final features only).", "",
             *common.reproduce("python benchmarks/image_features.py", NAME, quick,
                               ("apt-get install dataset-fashion-mnist",))]
    return "\n".join(lines)


def main() -> None:
    ap = common.parser(__doc__)
    args = ap.parse_args()
    if common.handled(args, NAME, readme):
        return
    common.pin_threads()
    common.torch_threads()
    t0 = time.perf_counter()
    result = {"machine": common.machine_info(), "run": run(args.quick)}
    common.finish(NAME, result, args, readme, t0)


if __name__ == "__main__":
    main()
