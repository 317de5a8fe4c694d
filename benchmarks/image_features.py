#!/usr/bin/env python
"""Which backbone features ``frozen`` reads, and how, on images far from ImageNet (issue 14).

Fashion-MNIST at 100 training images per class (the seeded sample and 10 % validation split of
``images.py``), EfficientNet-Lite0 (ImageNet) untouched, standardised logistic regression with C
on validation. ``frozen`` with ``features=last`` (the final pooled features), ``features=stages``
(those plus the global-average pooled outputs of the last 3 stages, timm's
``forward_intermediates``), ``features=grid`` (those plus the same stage outputs average-pooled
over a 2 x 2 grid of cells: a coarse layout) and ``features=auto`` (the default: all three
fitted, the best on validation kept), each with ``power=none`` (the features as pooled) and
``power=sqrt`` (the default since 2026-12-04: each feature's signed square root before
standardising), at 112 px and
at the backbone's 224 px, beside ``classic`` (HOG + logistic regression). Scored on a seeded 2,000
of the 10,000 test images (feature extraction at 224 px is the cost: the full test set is what
``images.py`` scores).

A second data set, so the choice is not made on one: scikit-learn's bundled handwritten digits
(1,797 grey 8 x 8 images, 10 classes; offline), 20 training and 10 validation images per class
drawn per seed (5 seeds), the rest (1,497) the test; 112 px, ``features=auto`` with each power,
and ``stages`` against ``grid`` with ``sqrt``.

``--part seeds`` asks whether frozen is *clearly* above classic at 100 per class (the issue's
aim) on more than one sample: 5 seeded samples of 100 images per class (seed 0 is the one
``images.py`` uses), each split 90 / 10 as there, ``classic`` against ``frozen`` with its
defaults (224 px, the backbone's size) and at 112 px, every model scored on the full 10,000 test
images; the part's result is added to the saved JSON.
Accuracy only: no timing.

    python benchmarks/image_features.py [--quick] [--part all|seeds]
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
POWERS = ("none", "sqrt")
DIGITS_SEEDS = 5
SAMPLE_SEEDS = 5  # --part seeds


def _score(rows: list, test, name: str, clf, seconds: float, **extra) -> None:
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
                 "selection": getattr(s.config, "selection", "valid"),
                 "C": getattr(getattr(s, "model", None), "C", None),
                 "train_seconds": round(seconds, 1), **extra})
    print(rows[-1], flush=True)


def _frozen(train, valid, size: int, features: str, power: str, **options):
    import ronghe

    return ronghe.ImageClassifier(strategy="frozen", model="efficientnet-lite0", seed=0, options={
        "image_size": size, "features": features, "power": power, **options}).fit(train,
                                                                                  valid=valid)


def fashion(quick: bool) -> dict:
    import numpy as np

    import ronghe

    per_class = 20 if quick else 100
    train, valid, test = images.splits(per_class, quick)
    if not quick:
        test = test.subset(np.random.default_rng(0).permutation(len(test))[:TEST_IMAGES])
    rows = []
    t = time.perf_counter()
    _score(rows, test, "classic",
           ronghe.ImageClassifier(strategy="classic", seed=0).fit(train, valid=valid),
           time.perf_counter() - t)
    for size in (112, 224):
        for features in ("last", "stages", "grid", "auto"):
            for power in POWERS:
                t = time.perf_counter()
                clf = _frozen(train, valid, size, features, power)
                _score(rows, test, f"frozen {size} px, features={features}, power={power}", clf,
                       time.perf_counter() - t, image_size=size, features=features, power=power)
    return {"per_class": per_class, "n_train": len(train), "n_valid": len(valid),
            "n_test": len(test), "rows": rows}


def digits_folder() -> Path:
    """scikit-learn's digits as an image folder (PNG, grey, 0-16 scaled to 0-255)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    folder = common.WORK / "digits"
    if not (folder / ".done").exists():
        d = load_digits()
        for i, (x, y) in enumerate(zip(d.images, d.target)):
            (folder / str(y)).mkdir(parents=True, exist_ok=True)
            Image.fromarray((x * (255 / 16)).round().astype(np.uint8)).save(
                folder / str(y) / f"{i:04d}.png")
        (folder / ".done").write_text("ok")
    return folder


def digits(quick: bool) -> dict:
    import numpy as np

    import ronghe
    from ronghe.images import data as idata

    ds = idata.read(digits_folder())
    labels = np.array(ds.labels)
    rows = []
    for seed in range(2 if quick else DIGITS_SEEDS):
        rng = np.random.default_rng(seed)
        tr, va, te = [], [], []
        for c in sorted(set(labels)):
            idx = rng.permutation(np.flatnonzero(labels == c))
            tr += idx[:20].tolist()
            va += idx[20:30].tolist()
            te += idx[30:].tolist()
        train, valid, test = ds.subset(tr), ds.subset(va), ds.subset(te)
        t = time.perf_counter()
        _score(rows, test, "classic",
               ronghe.ImageClassifier(strategy="classic", seed=0).fit(train, valid=valid),
               time.perf_counter() - t, seed=seed)
        for features, power in [("auto", p) for p in POWERS] + [("stages", "sqrt"),
                                                                ("grid", "sqrt")]:
            t = time.perf_counter()
            _score(rows, test, f"frozen 112 px, features={features}, power={power}",
                   _frozen(train, valid, 112, features, power), time.perf_counter() - t,
                   seed=seed, power=power, features=features)
    return {"n_train": 200, "n_valid": 100, "n_test": len(labels) - 300, "rows": rows}


def fashion_seeds(quick: bool, selection: str | None = None) -> dict:
    """classic vs frozen (224 px default, and 112 px) over seeded samples of 100 per class;
    ``selection`` (valid, cv, auto) for both, else their default."""
    import ronghe

    per_class = 20 if quick else 100
    rows = []
    opts = {"selection": selection} if selection else {}
    for seed in range(2 if quick else SAMPLE_SEEDS):
        train, valid, test = images.splits(per_class, quick, seed)
        t = time.perf_counter()
        _score(rows, test, "classic",
               ronghe.ImageClassifier(strategy="classic", seed=0, options=opts).fit(
                   train, valid=valid), time.perf_counter() - t, seed=seed)
        for size in (224, 112):
            t = time.perf_counter()
            _score(rows, test, f"frozen {size} px",
                   _frozen(train, valid, size, "auto", "sqrt", **opts),
                   time.perf_counter() - t, seed=seed, image_size=size)
    return {"per_class": per_class, "n_test": len(test), "rows": rows,
            "selection": selection or "default", "machine": common.machine_info()}


def run(quick: bool) -> dict:
    return {**fashion(quick), "digits": digits(quick)}


def readme(result: dict, quick: bool) -> str:
    import statistics

    r = result["run"]
    rows = [[f"`{x['model']}`", f"**{x['test_accuracy']:.4f}**", f"{x['test_macro_f1']:.4f}",
             ", ".join(f"{k}: {v:.3f}" for k, v in x["valid_macro_f1"].items()) or "-",
             x["features_kept"] or "-"] for x in r["rows"]]
    classic = next(x for x in r["rows"] if x["model"] == "classic")["test_accuracy"]
    by = {(x["image_size"], x["features"], x.get("power", "none")): x["test_accuracy"]
          for x in r["rows"] if "features" in x}
    # independent pairings only: auto repeats a last, stages or grid row
    gains = [by[k[0], k[1], "sqrt"] - by[k] for k in by if k[2] == "none"
             and k[1] != "auto" and (k[0], k[1], "sqrt") in by]
    grid_gains = [by[k[0], "grid", k[2]] - by[k] for k in by
                  if k[1] == "stages" and (k[0], "grid", k[2]) in by]
    default = by.get((224, "auto", "sqrt"))  # the defaults: the backbone's size, auto, sqrt
    d = r.get("digits")
    lines = ["## Frozen image features: final vs stage outputs, power normalisation "
             "(`image_features.py`)", "",
             common.quick_note(quick, "python benchmarks/image_features.py"),
             f"Fashion-MNIST, {r['per_class']} training images per class ({r['n_train']} train, "
             f"{r['n_valid']} validation: the split `images.py` uses), scored on a seeded "
             f"{r['n_test']:,} of the test images; EfficientNet-Lite0 untouched, standardised "
             "logistic regression, C on validation. `features=last`: the final pooled features; "
             "`stages`: those plus the pooled outputs of the last 3 stages; `grid`: those plus "
             "the same stage outputs average-pooled over a 2 x 2 grid of cells (a coarse "
             "layout); `auto` (the default): all three fitted, the best on validation kept "
             "(`grid` since 2026-12-05; before: `last` or `stages`). `power=none`: the features "
             "as pooled; `power=sqrt` (the default since 2026-12-04): each feature's signed "
             "square root before standardising.", "",
             common.md_table(["model", "test accuracy", "macro-F1", "validation macro-F1 "
                              "(best C) per feature set", "kept"], rows), ""]
    if d:
        seeds = sorted({x["seed"] for x in d["rows"]})
        acc = {(x["model"], x["seed"]): x["test_accuracy"] for x in d["rows"]}
        models = list(dict.fromkeys(x["model"] for x in d["rows"]))
        drows = [[f"`{m}`"] + [f"{acc[m, s]:.4f}" for s in seeds]
                 + [f"**{statistics.mean(acc[m, s] for s in seeds):.4f}**"] for m in models]
        none_m, sqrt_m = (f"frozen 112 px, features=auto, power={p}" for p in POWERS)
        dg = [acc[sqrt_m, s] - acc[none_m, s] for s in seeds]
        st_m, gr_m = (f"frozen 112 px, features={f}, power=sqrt" for f in ("stages", "grid"))
        gg = ([acc[gr_m, s] - acc[st_m, s] for s in seeds]
              if all((gr_m, s) in acc and (st_m, s) in acc for s in seeds) else [])
        classic_d = statistics.mean(acc["classic", s] for s in seeds)
        lines += [f"scikit-learn digits (8 x 8 grey, offline): {d['n_train']} training and "
                  f"{d['n_valid']} validation images drawn per seed (20 / 10 per class), the "
                  f"other {d['n_test']:,} the test; test accuracy per seed:", "",
                  common.md_table(["model"] + [f"seed {s}" for s in seeds] + ["mean"], drows),
                  "", f"- digits, power=sqrt against none: {statistics.mean(dg) * 100:+.2f} "
                  f"points on average, better in {sum(g > 0 for g in dg)} of {len(dg)} seeds."]
        if gg:
            auto_d = statistics.mean(acc[sqrt_m, s] for s in seeds)
            lines += [f"- digits, grid against stages (sqrt): {statistics.mean(gg) * 100:+.2f} "
                      f"points on average, better in {sum(g > 0 for g in gg)} of {len(gg)} "
                      f"seeds; the default (auto, sqrt) {auto_d:.4f} against classic "
                      f"{classic_d:.4f}."]
        lines += [""]
    lines += [f"Machine: {common.machine_line(result['machine'])}.", ""]
    if gains:
        lines += [f"- Fashion-MNIST, power=sqrt against none at the same size and feature set "
                  f"(last, stages, grid): {statistics.mean(gains) * 100:+.2f} points on average, "
                  f"better in {sum(g > 0 for g in gains)} of {len(gains)} pairings."]
    if grid_gains:
        lines += [f"- Fashion-MNIST, grid against stages at the same size and power: "
                  f"{statistics.mean(grid_gains) * 100:+.2f} points on average, better in "
                  f"{sum(g > 0 for g in grid_gains)} of {len(grid_gains)} pairings."]
    if default is not None and not quick:
        lines += [f"- With the defaults (224 px, auto, sqrt) frozen gives {default:.4f} against "
                  f"classic (HOG) {classic:.4f} on these {r['n_test']:,} test images: the "
                  "issue's aim at 100 per class, frozen clearly above classic (by more than a "
                  "point), is " + ("**met** on this one sample and subset"
                                   if default > classic + 0.01 else "**missed** here")
                  + (" - the seeded samples below, each on the full test set, are the "
                     "stronger evidence." if r.get("fashion_seeds") else ".")]
    lines += _seeds_lines(r.get("fashion_seeds"))
    lines += _selection_lines(r.get("fashion_seeds"), r.get("fashion_seeds_valid_selection"))
    lines += ["", *common.reproduce("python benchmarks/image_features.py", NAME, quick,
                                    ("apt-get install dataset-fashion-mnist",))]
    return "\n".join(lines)


def _selection_lines(now: dict | None, before: dict | None) -> list[str]:
    """Each model's mean over the seeded samples with C chosen as today against the same
    samples with C chosen on validation macro-F1 (``--selection valid``, the rule before)."""
    import statistics

    if not now or not before:
        return []
    mean = {}
    for name, p in (("now", now), ("before", before)):
        for m in dict.fromkeys(x["model"] for x in p["rows"]):
            mean[name, m] = statistics.mean(x["test_accuracy"] for x in p["rows"]
                                            if x["model"] == m)
    models = [m for m in dict.fromkeys(x["model"] for x in now["rows"]) if ("before", m) in mean]
    rows = [[f"`{m}`", f"{mean['before', m]:.4f}", f"{mean['now', m]:.4f}",
             f"{100 * (mean['now', m] - mean['before', m]):+.2f}"] for m in models]
    return ["", "How C (and frozen's feature set) is chosen, on the same samples: on the "
            "validation split's macro-F1 (100 images; the rule before 2026-12-05 - that part ran "
            "before the option existed, `--part seeds --selection valid --as "
            "fashion_seeds_valid_selection` runs the same rule again) against today's default "
            "`selection=auto` - cross-validated log-loss over training + validation when the "
            "validation split has under 500 images (the model is still fitted on the training "
            "split alone). Mean test accuracy over the samples:", "",
            common.md_table(["model", "C on validation F1", "C by cross-validation",
                             "points"], rows)]


def _seeds_lines(p: dict | None) -> list[str]:
    """The --part seeds table: test accuracy per sample, and frozen's margin over classic."""
    import statistics

    if not p:
        return []
    seeds = sorted({x["seed"] for x in p["rows"]})
    acc = {(x["model"], x["seed"]): x["test_accuracy"] for x in p["rows"]}
    models = list(dict.fromkeys(x["model"] for x in p["rows"]))
    rows = [[f"`{m}`"] + [f"{acc[m, s]:.4f}" for s in seeds]
            + [f"**{statistics.mean(acc[m, s] for s in seeds):.4f}**"] for m in models]
    lines = ["", f"Is frozen clearly above classic at {p['per_class']} per class on more than one "
             f"sample (`--part seeds`)? {len(seeds)} seeded samples of {p['per_class']} training "
             "images per class (seed 0 is `images.py`'s), each split 90 / 10 as there; test "
             f"accuracy on {p['n_test']:,} test images; frozen with its defaults "
             "(`features=auto`, `power=sqrt`):", "",
             common.md_table(["model"] + [f"seed {s}" for s in seeds] + ["mean"], rows), ""]
    for m in models[1:]:
        g = [(acc[m, s] - acc["classic", s]) * 100 for s in seeds]
        se = statistics.stdev(g) / len(g) ** 0.5 if len(g) > 1 else float("nan")
        lines.append(f"- `{m}` against `classic`: {statistics.mean(g):+.2f} points on average "
                     f"(standard error {se:.2f}), above in {sum(x > 0 for x in g)} of {len(g)} "
                     f"samples, by more than a point in {sum(x > 1 for x in g)}.")
    default = "frozen 224 px"
    if default in models and len(seeds) > 1:
        g = statistics.mean(acc[default, s] - acc["classic", s] for s in seeds) * 100
        lines += ["", f"The issue's aim at 100 per class, frozen clearly above classic (read as: "
                  f"by more than a point), with frozen's defaults over these {len(seeds)} "
                  f"samples: {g:+.2f} points - **{'met' if g > 1 else 'missed'}**."]
    return lines + ["", f"Machine for this part: {common.machine_line(p['machine'])}."]


def main() -> None:
    ap = common.parser(__doc__)
    ap.add_argument("--part", choices=("all", "seeds"), default="all",
                    help="seeds: only the seeded-samples comparison, added to the saved JSON")
    ap.add_argument("--selection", choices=("valid", "cv", "auto"), default=None,
                    help="--part seeds: how classic and frozen choose C (default: theirs)")
    ap.add_argument("--as", dest="save_as", default="fashion_seeds",
                    help="--part seeds: the key the part is saved under")
    args = ap.parse_args()
    if common.handled(args, NAME, readme):
        return
    common.pin_threads()
    common.torch_threads()
    t0 = time.perf_counter()
    if args.part == "seeds":
        import json

        saved = common.result_path(NAME, args.quick)
        if not saved.exists():
            raise SystemExit(f"{saved} not found: --part seeds adds to a saved run; run "
                             "`python benchmarks/image_features.py` first")
        result = json.loads(saved.read_text())
        part = fashion_seeds(args.quick, args.selection)
        part["machine"]["load_average_end"] = common.load_average()
        part["wall_seconds"] = round(time.perf_counter() - t0, 1)
        result["run"][args.save_as] = part
        common.write_json(NAME, result, args.quick)
        if not args.quick or args.readme:
            common.write_readme_section(NAME, readme(result, args.quick))
        return
    result = {"machine": common.machine_info(), "run": run(args.quick)}
    common.finish(NAME, result, args, readme, t0)


if __name__ == "__main__":
    main()
