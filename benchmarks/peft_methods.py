#!/usr/bin/env python
"""Parameter-efficient strategies (lora, adalora, ia3, prefix) against ``finetune`` on SST-2.

Every strategy runs with ronghe's own defaults (epochs, learning rate, adapter settings: see
``src/ronghe/strategies/``), on the same seeded sample of SST-2 train with the same 10 %
validation split, in a fresh subprocess with 2 pinned threads. Reported: dev accuracy, train
seconds (``train_seconds_``), trainable / total parameters, bundle size on disk (all files, and
without the ``tokenizer/`` folder), and prediction latency at batch 32 relative to ``finetune``.

Latency is measured after all trainings, in ONE process that loads every bundle with
``ronghe.load`` and times ``predict_proba`` on the same batches of 32 dev sentences (tokenisation
included), the models taking turns round after round so that machine load hits them alike; the
median per batch is reported, and its ratio to finetune's. LoRA, AdaLoRA and IA3 are merged into
the weights at load time, so they should cost what finetune costs; prefix tuning cannot be merged.

    python benchmarks/peft_methods.py                 # full run: 8k sample
    python benchmarks/peft_methods.py --size 4000     # smaller sample
    python benchmarks/peft_methods.py --quick         # smoke run: 400 examples, 1 epoch each
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import common  # benchmarks/common.py: this script's folder is first on sys.path

common.pin_threads()

NAME = "peft"
STRATEGIES = ("finetune", "lora", "adalora", "ia3", "prefix")


def worker_train(spec: dict) -> dict:
    common.torch_threads()
    from ronghe import TextClassifier, data

    tr, ytr = common.read_jsonl(spec["train"])
    va, yva = common.read_jsonl(spec["valid"])
    dev, ydev = common.read_jsonl(spec["dev"])
    options = dict(spec.get("options") or {})
    clf = TextClassifier(strategy=spec["strategy"], model="minilm", options=options or None,
                         epochs=spec.get("epochs"))
    clf.fit(tr, ytr, valid=data.from_texts(va, yva))
    rep = clf.evaluate(dev, ydev)
    out = Path(spec["bundle"])
    if out.exists():
        import shutil

        shutil.rmtree(out)
    clf.save(out)
    cfg = clf.config_.model_dump(mode="json")
    return {"strategy": spec["strategy"], "train_seconds": round(clf.train_seconds_, 2),
            "dev_accuracy": round(rep["accuracy"], 4), "dev_macro_f1": round(rep["macro_f1"], 4),
            "parameters": clf.metrics_["parameters"], "history": clf.metrics_["history"],
            "config": {k: cfg[k] for k in ("epochs", "learning_rate", "batch_size", "max_length",
                                           "precision") if k in cfg},
            "bundle_bytes": common.dir_size(out),
            "bundle_bytes_without_tokenizer": common.dir_size(out, ("tokenizer",)),
            "bundle_files": sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                                   if p.is_file())}


def worker_latency(spec: dict) -> dict:
    common.torch_threads()
    import numpy as np

    import ronghe

    dev, _ = common.read_jsonl(spec["dev"])
    models = {s: ronghe.load(p) for s, p in spec["bundles"].items()}
    rng = np.random.default_rng(0)
    batches = [[dev[i] for i in rng.choice(len(dev), 32, replace=False)]
               for _ in range(spec["batches"])]
    times: dict[str, list[float]] = {s: [] for s in models}
    for m in models.values():  # warm-up
        m.predict_proba(batches[0])
    for r in range(spec["rounds"]):
        order = list(models) if r % 2 == 0 else list(models)[::-1]
        for s in order:
            for b in batches:
                t = time.perf_counter()
                models[s].predict_proba(b)
                times[s].append(time.perf_counter() - t)
    med = {s: statistics.median(v) for s, v in times.items()}
    base = med.get("finetune")
    return {"median_ms": {s: round(1000 * v, 2) for s, v in med.items()},
            "ratio_to_finetune": {s: round(v / base, 2) for s, v in med.items()} if base else {},
            "n_timed_batches": {s: len(v) for s, v in times.items()},
            "encoder_class_at_prediction": {s: type(m.strategy_.model.encoder).__name__
                                            for s, m in models.items()}}


def prepare(size: int, quick: bool) -> dict:
    work = common.WORK / NAME / ("quick" if quick else f"n{size}")
    work.mkdir(parents=True, exist_ok=True)
    return {**common.sst2_split(size, work), "work": str(work)}


def run(kind: str, spec: dict, tag: str) -> dict:
    print(f"[{time.strftime('%H:%M:%S')}] {tag} (load {common.load_average()})", flush=True)
    res = common.run_worker(__file__, kind, spec, tag, spec["work"])
    print("    " + json.dumps({k: v for k, v in res.items()
                               if k in ("train_seconds", "dev_accuracy", "median_ms")}), flush=True)
    return res


def mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def readme(result: dict, quick: bool) -> str:
    s, info = result["setup"], result["machine"]
    lat = result.get("latency", {})
    rows = []
    for r in result["runs"]:
        st = r["strategy"]
        p = r["parameters"]
        rows.append([f"`{st}`", r["config"].get("epochs"), f"{r['config'].get('learning_rate'):g}",
                     f"{r['dev_accuracy']:.3f}", f"{r['train_seconds']:.0f}",
                     f"{p['trainable']:,} ({100 * p['trainable'] / p['total']:.2f} %)",
                     mb(r["bundle_bytes_without_tokenizer"]), mb(r["bundle_bytes"]),
                     f"{lat.get('median_ms', {}).get(st, float('nan')):.0f}",
                     f"{lat.get('ratio_to_finetune', {}).get(st, float('nan')):.2f}x"])
    loads = ", ".join(f"{r['strategy']} {r['load']['load1_mean']}" for r in result["runs"])
    cmd = "python benchmarks/peft_methods.py" + ("" if quick else f" --size {s['n_sample']}")
    return "\n".join([
        "## Parameter-efficient fine-tuning: lora, adalora, ia3, prefix vs finetune",
        "",
        common.quick_note(quick, "python benchmarks/peft_methods.py") +
        f"SST-2: seeded sample of {s['n_sample']:,} training sentences ({s['n_train']:,} train / "
        f"{s['n_valid']:,} validation, the same split for every strategy), accuracy on the dev set "
        f"({s['n_dev']}). Each strategy with ronghe's defaults (batch 32, max_length 128, early "
        "stopping on validation macro-F1 with patience 2, precision `auto` = fp32 on this CPU "
        "without AMX). Bundle size: all files, and without the `tokenizer/` folder (PEFT bundles "
        "reference the 90.9 MB base model by sha256 instead of storing it). Latency: median time "
        "of `predict_proba` on a batch of 32 dev sentences after `ronghe.load`, tokenisation "
        "included, all models timed in turns in one process.",
        "",
        common.md_table(["strategy", "epochs", "lr", "dev accuracy", "train s",
                         "trainable parameters", "bundle w/o tokenizer", "bundle", "latency ms "
                         "@32", "latency vs finetune"], rows),
        "",
        f"Machine: {common.machine_line(info)}. Mean 1-minute load average while training: "
        f"{loads}; while timing latency: {result.get('latency', {}).get('load', {}).get('load1_mean')} "
        f"({common.load_note([r['load']['load1_mean'] for r in result['runs']])}; the latency "
        "ratios were measured side by side).",
        "",
        *common.reproduce(cmd, NAME, quick),
    ])


def main() -> None:
    ap = common.parser(__doc__, "400 examples, 1 epoch each")
    ap.add_argument("--size", type=int, default=8000, help="training sample (before the split)")
    ap.add_argument("--only", default=",".join(STRATEGIES), help="comma-separated strategies")
    a = ap.parse_args()
    if common.handled(a, NAME, readme, {"train": worker_train, "latency": worker_latency}):
        return
    t0 = time.perf_counter()
    info = common.machine_info()
    size = 400 if a.quick else a.size
    spec = prepare(size, a.quick)
    work = Path(spec["work"])
    runs, bundles = [], {}
    for st in [s.strip() for s in a.only.split(",") if s.strip()]:
        bundle = work / "bundles" / st
        runs.append(run("train", {**spec, "strategy": st, "bundle": str(bundle),
                                  "epochs": 1 if a.quick else None}, st))
        bundles[st] = str(bundle)
    lat = run("latency", {**spec, "bundles": bundles, "batches": 4 if a.quick else 8,
                          "rounds": 2 if a.quick else 6}, "latency")
    result = {"benchmark": NAME, "quick": a.quick, "machine": info,
              "setup": {k: v for k, v in spec.items() if k != "work"}, "runs": runs,
              "latency": lat}
    common.finish(NAME, result, a, readme, t0)


if __name__ == "__main__":
    main()
