#!/usr/bin/env python
"""bf16 autocast against fp32 when fine-tuning on this CPU: speed and accuracy of ``finetune``.

The same ronghe ``finetune`` run (packaged all-MiniLM-L6-v2, a seeded SST-2 sample with a 10 %
validation split, lr 5e-5, batch 32, max_length 128, the hyper-parameters of finetune_speed.py)
with ``precision="fp32"`` and ``precision="bf16"`` (``torch.autocast`` to bfloat16 on the forward
pass, fp32 master weights and optimizer). Each run is a fresh subprocess with 2 pinned threads;
runs alternate A B B A so that a change of machine load hits both. Timed: model loading +
tokenisation + training + per-epoch validation (as in finetune_speed.py); accuracy on the SST-2
dev set (872).

Why it matters: ``precision="auto"`` picks bf16 only where it is faster (CUDA, CPUs with AMX
tiles); this benchmark is the evidence for what ``auto`` does on a CPU without AMX.

    python benchmarks/bf16_training.py           # 2,000 examples, 2 epochs, 2 pairs
    python benchmarks/bf16_training.py --quick   # 400 examples, 1 epoch, 1 pair
"""

from __future__ import annotations

import statistics
import time

import common  # benchmarks/common.py: this script's folder is first on sys.path

common.pin_threads()

import finetune_speed as F  # noqa: E402 - the ronghe worker and hyper-parameters live there

NAME = "bf16_training"
PRECISIONS = ("fp32", "bf16")


def summarise(runs: list[dict]) -> dict:
    by = {p: [r for r in runs if r["precision"] == p] for p in PRECISIONS}
    out = {p: {"wall_seconds": [r["wall_seconds"] for r in rs],
               "dev_accuracy": [r["dev_accuracy"] for r in rs],
               "wall_median": statistics.median(r["wall_seconds"] for r in rs),
               "cpu_median": statistics.median(r["cpu_seconds"] for r in rs)}
           for p, rs in by.items()}
    pairs = list(zip(by["fp32"], by["bf16"]))
    out["bf16_speedup_wall"] = round(out["fp32"]["wall_median"] / out["bf16"]["wall_median"], 3)
    out["bf16_speedup_per_pair"] = [round(a["wall_seconds"] / b["wall_seconds"], 3) for a, b in pairs]
    out["accuracy_difference_points"] = round(
        100 * (statistics.mean(out["bf16"]["dev_accuracy"]) - statistics.mean(out["fp32"]["dev_accuracy"])), 2)
    return out


def readme(result: dict, quick: bool) -> str:
    s, spec, info = result["summary"], result["setup"], result["machine"]
    isa = info.get("cpu_details", {}).get("isa", [])
    amx = any(f.startswith("amx") for f in isa)
    rows = [[p, " / ".join(f"{x:.0f}" for x in s[p]["wall_seconds"]), f"{s[p]['wall_median']:.0f}",
             f"{s[p]['cpu_median']:.0f}", " / ".join(f"{x:.3f}" for x in s[p]["dev_accuracy"])]
            for p in PRECISIONS]
    verdict = ("faster" if s["bf16_speedup_wall"] > 1.05 else
               "no faster" if s["bf16_speedup_wall"] >= 0.95 else "slower")
    auto = result.get("auto_precision_here")
    return "\n".join([
        "## Mixed precision: bf16 autocast vs fp32 fine-tuning on this CPU",
        "",
        common.quick_note(quick, "python benchmarks/bf16_training.py")
        + f"ronghe `finetune`, SST-2 seeded sample of {spec['n_sample']:,} sentences "
        f"({spec['n_train']:,} train / {spec['n_valid']:,} validation), {spec['hp']['epochs']} "
        "epoch(s), lr 5e-5, batch 32, max_length 128; dev accuracy on 872 sentences. Time = "
        "loading + tokenisation + training + per-epoch validation, each run a fresh process with "
        "2 pinned threads" + (", runs alternating A B B A." if len(result["runs"]) > 2 else "."),
        "",
        common.md_table(["precision", "wall s (each run)", "wall s (median)", "CPU s (median)",
                         "dev accuracy (each run)"], rows),
        "",
        f"**bf16 is {s['bf16_speedup_wall']}x the speed of fp32 here** (per pair: "
        f"{', '.join(map(str, s['bf16_speedup_per_pair']))}); accuracy difference "
        f"{s['accuracy_difference_points']:+.2f} points (bf16 - fp32, mean over runs). "
        f"This CPU {'has' if amx else 'exposes no'} AMX tiles (it has "
        f"{'AVX512-BF16' if 'avx512_bf16' in isa else 'no AVX512-BF16'}), so bf16 is {verdict} "
        f"here; `precision=\"auto\"` resolves to **{auto}** on this machine"
        + (" - the AMX rule measured, the choice confirmed." if amx else
           " and to bf16 on CUDA and on AMX CPUs, where bf16 runs on matrix units (not measured "
           "here: this machine has none)."),
        "",
        f"Machine: {common.machine_line(info)}. Mean 1-minute load average during the runs: "
        f"{', '.join(str(r['load']['load1_mean']) for r in result['runs'])} "
        f"({common.load_note([r['load']['load1_mean'] for r in result['runs']])}).",
        "",
        *common.reproduce("python benchmarks/bf16_training.py", NAME, quick),
    ])


def main() -> None:
    ap = common.parser(__doc__, "400 examples, 1 epoch, one pair")
    ap.add_argument("--size", type=int, default=2000, help="training sample (before the split)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=2, help="A/B pairs")
    a = ap.parse_args()
    if common.handled(a, NAME, readme, {"ronghe": F.worker_ronghe}):
        return
    import torch

    from ronghe import backbones
    from ronghe.modeling import autocast_dtype

    t0 = time.perf_counter()
    info = common.machine_info()
    size, epochs, pairs = (400, 1, 1) if a.quick else (a.size, a.epochs, a.pairs)
    work = common.WORK / NAME / ("quick" if a.quick else f"n{size}")
    work.mkdir(parents=True, exist_ok=True)
    spec = {**common.sst2_split(size, work), "hp": dict(F.HP, epochs=epochs),
            "model_path": str(backbones.resolve("minilm").path), "work": str(work)}
    order = []
    for p in range(pairs):
        order += list(PRECISIONS) if p % 2 == 0 else list(reversed(PRECISIONS))
    runs = []
    for i, prec in enumerate(order):
        print(f"[{time.strftime('%H:%M:%S')}] {prec}-{i} (load {common.load_average()})", flush=True)
        res = common.run_worker(__file__, "ronghe", {**spec, "precision": prec}, f"{prec}-{i}", work)
        print(f"    wall {res['wall_seconds']} s, dev acc {res['dev_accuracy']}", flush=True)
        runs.append(res)
    auto = autocast_dtype("auto", torch.device("cpu"))
    result = {"benchmark": NAME, "quick": a.quick, "machine": info,
              "setup": {k: v for k, v in spec.items() if k != "work"}, "runs": runs,
              "summary": summarise(runs),
              "auto_precision_here": "bf16" if auto is torch.bfloat16 else "fp32"}
    print(result["summary"])
    common.finish(NAME, result, a, readme, t0)


if __name__ == "__main__":
    main()
