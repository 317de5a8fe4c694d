#!/usr/bin/env python
"""Fine-tuning quality at small n: ronghe ``finetune`` vs a plain transformers ``Trainer`` script
at equal epochs.

Data: seeded samples of ``--n`` (2,000) training examples of SST-2 (train -> dev, 872) and
BANKING77 (train.csv -> test.csv, 3,080), one sample per seed, the same for every side. Model: the
packaged all-MiniLM-L6-v2, 2 epochs, max_length 128, fp32, 2 pinned threads, a fresh process per
run.

Sides:

* ``trainer``: the plain script a user writes - ``AutoModelForSequenceClassification`` (CLS +
  pooler head), all n examples for training, ``TrainingArguments`` at their defaults (lr 5e-5,
  batch 8, no warm-up, no weight decay, linear decay), ``DataCollatorWithPadding``, the last
  epoch kept; nothing held out, so nothing protects it from a bad epoch count.
* ``ronghe-before``: ``finetune`` with the defaults before this benchmark: batch 32, 10 % held
  out for validation, the best validation epoch kept (``batch_size=32``);
* ``ronghe-before-refit``: the same, then a second run on all n examples for the epoch count
  validation chose (``refit=auto``);
* ``ronghe``: today's defaults - the training batch follows the data's size
  (``config.auto_batch_size``: 8 at n = 2,000, i.e. 450 optimiser steps in 2 epochs
  instead of 114), no refit;
* ``ronghe-refit``: today's defaults with ``refit=auto``.

Accuracy on the test set; train seconds (model loading + tokenisation + training, both runs of a
refit) for the cost.

    python benchmarks/finetune_small.py                 # 3 seeds, both data sets (~1 h on 2 cores)
    python benchmarks/finetune_small.py --quick         # 300 examples, 1 seed, 1 epoch
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import common  # benchmarks/common.py: this script's folder is first on sys.path

common.pin_threads()

NAME = "finetune_small"
EPOCHS, MAX_LENGTH = 2, 128
SIDES = {  # side: the ronghe options it sets (None: the Trainer script)
    "trainer": None,
    "ronghe-before": {"refit": "off", "batch_size": 32},  # the defaults before this benchmark
    "ronghe-before-refit": {"refit": "auto", "batch_size": 32},
    "ronghe": {},  # today's defaults: the batch follows the data's size (8 here), no refit
    "ronghe-refit": {"refit": "auto"},
}
# the run of 2026-12-03 named the sides by their explicit settings; the same settings, renamed
RENAMED = {"ronghe": "ronghe-before-refit", "ronghe-b8-before": "ronghe",
           "ronghe-b8": "ronghe-refit"}


def worker_ronghe(spec: dict) -> dict:
    common.torch_threads()
    from ronghe import TextClassifier

    tr, ytr = common.read_jsonl(spec["train"])
    te, yte = common.read_jsonl(spec["test"])
    opts = dict(SIDES[spec["side"]])
    batch = opts.pop("batch_size", None)  # None: the default, chosen by the data's size
    t0 = time.perf_counter()
    clf = TextClassifier(strategy="finetune", model="minilm", epochs=spec["epochs"],
                         max_length=MAX_LENGTH, batch_size=batch, seed=spec["seed"],
                         precision="fp32", options=opts or None).fit(tr, ytr)
    wall = time.perf_counter() - t0
    report = clf.evaluate(te, yte)
    refit = clf.metrics_.get("refit")
    return {"side": spec["side"], "wall_seconds": round(wall, 2),
            "test_accuracy": round(report["accuracy"], 4),
            "test_macro_f1": round(report["macro_f1"], 4),
            "valid_accuracy": clf.metrics_["valid"]["accuracy"],
            "history": clf.metrics_["history"],
            "refit_epochs": refit["epochs"] if refit else None,
            "batch_size": clf.config_.batch_size}


def worker_trainer(spec: dict) -> dict:
    """The plain transformers script, as a user would write it (Trainer defaults)."""
    common.torch_threads()
    import numpy as np
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer,
                              DataCollatorWithPadding, Trainer, TrainingArguments)

    tr, ytr = common.read_jsonl(spec["train"])
    te, yte = common.read_jsonl(spec["test"])
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(spec["model_path"])
    model = AutoModelForSequenceClassification.from_pretrained(
        spec["model_path"], num_labels=spec["n_classes"])

    def encode(texts, labels):
        enc = tokenizer(texts, truncation=True, max_length=MAX_LENGTH)
        return [{**{k: enc[k][i] for k in enc}, "labels": labels[i]} for i in range(len(texts))]

    args = TrainingArguments(output_dir=spec["out_dir"], num_train_epochs=spec["epochs"],
                             save_strategy="no", report_to="none", seed=spec["seed"],
                             use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=encode(tr, ytr),
                      data_collator=DataCollatorWithPadding(tokenizer),
                      processing_class=tokenizer)
    trainer.train()
    wall = time.perf_counter() - t0
    pred = trainer.predict(encode(te, yte))
    y = np.asarray(pred.label_ids)  # the order predict used
    from sklearn.metrics import f1_score

    guess = pred.predictions.argmax(-1)
    return {"side": "trainer", "wall_seconds": round(wall, 2),
            "test_accuracy": round(float((guess == y).mean()), 4),
            "test_macro_f1": round(float(f1_score(y, guess, average="macro")), 4),
            "batch_size": args.per_device_train_batch_size,
            "learning_rate": args.learning_rate}


def prepare(data: str, n: int, seed: int, work: Path) -> dict:
    from ronghe import backbones

    texts, labels = common.read_data(data, "train")
    idx = common.sample_indices(len(texts), n, seed=seed)
    te, yte = common.read_data(data, "test")

    def dump(name, t, y):
        return common.write_jsonl(work / f"{data}-{name}.jsonl", t, y)

    return {"train": dump(f"train-{seed}", [texts[i] for i in idx], [labels[i] for i in idx]),
            "test": dump("test", te, yte), "n_classes": len(set(labels)), "seed": seed,
            "model_path": str(backbones.resolve("minilm").path), "out_dir": str(work / "trainer"),
            "work": str(work), "data": data, "n": n, "n_test": len(te)}


def summarise(runs: list[dict]) -> dict:
    out = {}
    for data in sorted({r["data"] for r in runs}):
        out[data] = {}
        for side in SIDES:
            rs = [r for r in runs if r["data"] == data and r["side"] == side]
            if rs:
                acc = [r["test_accuracy"] for r in rs]
                out[data][side] = {
                    "test_accuracy": acc, "mean": round(statistics.mean(acc), 4),
                    "std": round(statistics.stdev(acc), 4) if len(acc) > 1 else 0.0,
                    "wall_mean": round(statistics.mean(r["wall_seconds"] for r in rs), 1)}
    return out


def readme(result: dict, quick: bool) -> str:
    s, info = result["summary"], result["machine"]
    what = {"trainer": "`Trainer` script (defaults: batch 8, no warm-up, all n for training)",
            "ronghe-before": "ronghe `finetune`, the defaults before (batch 32, 10 % held out)",
            "ronghe-before-refit": "ronghe `finetune`, batch 32, `refit=auto`",
            "ronghe": "ronghe `finetune`, today's defaults (batch by data size: 8 here)",
            "ronghe-refit": "ronghe `finetune`, today's defaults + `refit=auto`"}
    rows, verdicts = [], []
    for data, sides in s.items():
        for side, d in sides.items():
            rows.append([data, what[side], len(d["test_accuracy"]),
                         " / ".join(f"{x:.3f}" for x in d["test_accuracy"]),
                         f"**{d['mean']:.4f}** ± {d['std']:.4f}", f"{d['wall_mean']:.0f}"])
        if "trainer" in sides and "ronghe" in sides:
            gap = (sides["ronghe"]["mean"] - sides["trainer"]["mean"]) * 100
            before = (sides["ronghe-before"]["mean"] - sides["trainer"]["mean"]) * 100 \
                if "ronghe-before" in sides else None
            verdicts.append(f"- {data}: ronghe's defaults {sides['ronghe']['mean']:.4f} vs the "
                            f"script {sides['trainer']['mean']:.4f} ({gap:+.1f} points"
                            + (f"; before: {before:+.1f}" if before is not None else "")
                            + f") - {'met' if gap >= 0 else 'missed'}")
    spec = result["setup"]
    lines = [
        "## Fine-tuning quality at small n: ronghe `finetune` vs a plain `Trainer` script "
        "(`finetune_small.py`)", "",
        common.quick_note(quick, "python benchmarks/finetune_small.py"),
        f"Seeded samples of {spec['n']:,} training examples (seeds {spec['seeds']}; the same sample "
        f"for every side), {spec['epochs']} epochs, MiniLM (packaged all-MiniLM-L6-v2), "
        f"max_length {MAX_LENGTH}, fp32; SST-2 scored on dev (872), BANKING77 on test (3,080). The "
        "script keeps its last epoch and trains on all n; ronghe holds out 10 % to choose the "
        "epoch (and, with `refit`, then trains again on all n for that many epochs). Seconds = "
        "model loading + tokenisation + training (both runs of a refit).", "",
        common.md_table(["data", "side", "runs", "test accuracy (each seed)", "mean ± std",
                         "train s (mean)"], rows), "",
        "**Aim (issue 20): ronghe's defaults at least as accurate as the plain script at equal "
        "epochs.**", "", *verdicts, "",
        *[f"Note: {n}\n" for n in result.get("notes", [])],
        f"Machine: {common.machine_line(info)}.", "",
        *common.reproduce("flock /tmp/ronghe-bench.lock python benchmarks/finetune_small.py"
                          + "".join(f" {a}" for a in result.get("argv", [])), NAME, quick)]
    return "\n".join(lines)


def main() -> None:
    ap = common.parser(__doc__, "300 examples, 1 seed, 1 epoch")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--data", default="sst2,banking77")
    ap.add_argument("--sides", default=",".join(SIDES))
    ap.add_argument("--merge", action="store_true",
                    help="keep the saved runs, replacing those of the same data, seed and side")
    a = ap.parse_args()
    if common.handled(a, NAME, readme, {"ronghe": worker_ronghe, "trainer": worker_trainer}):
        return
    t0 = time.perf_counter()
    n, seeds, epochs = (300, [0], 1) if a.quick else (a.n, [int(x) for x in a.seeds.split(",")],
                                                       EPOCHS)
    work = common.WORK / NAME / ("quick" if a.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    info = common.machine_info()
    runs = []
    for data in a.data.split(","):
        for seed in seeds:
            spec = {**prepare(data, n, seed, work), "epochs": epochs}
            for side in [s for s in SIDES if s in a.sides.split(",")]:
                tag = f"{data}-{seed}-{side}"
                print(f"[{time.strftime('%H:%M:%S')}] {tag}", flush=True)
                res = common.run_worker(__file__, "trainer" if side == "trainer" else "ronghe",
                                        {**spec, "side": side}, tag, work)
                runs.append({**res, "data": data, "seed": seed})
                print(f"    acc {res['test_accuracy']}  {res['wall_seconds']} s", flush=True)
    notes, argv = [], sys.argv[1:]
    if a.merge:
        saved = json.loads(common.result_path(NAME, a.quick).read_text())
        new = {(r["data"], r["seed"], r["side"]) for r in runs}
        kept = [r for r in saved["runs"] if (r["data"], r["seed"], r["side"]) not in new]
        runs = kept + runs
        notes = saved.get("notes", []) + [
            f"{', '.join(sorted('/'.join(map(str, k)) for k in new))} re-run on "
            f"{time.strftime('%Y-%m-%d %H:%M')} (same machine) and merged"]
        info, seeds, argv = saved["machine"], saved["setup"]["seeds"], saved.get("argv", [])
    result = {"machine": info, "setup": {"n": n, "seeds": seeds, "epochs": epochs},
              "runs": runs, "summary": summarise(runs), "argv": argv, "notes": notes}
    common.finish(NAME, result, a, readme, t0)


if __name__ == "__main__":
    main()
