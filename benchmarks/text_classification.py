#!/usr/bin/env python
"""Text-classification benchmark: ronghe's strategies on SST-2 (binary sentiment).

For each configuration (strategy x training-set size) this measures dev accuracy and macro-F1,
training time, prediction latency at batch 1 and batch 32 (tokenisation included), peak memory and
the size of the saved bundle. Every configuration runs in two fresh subprocesses with pinned
threads:

* ``train``: load data, sample the training set, ``TextClassifier(...).fit`` (ronghe holds out a
  seeded stratified 10 % for validation itself; dev is never used for selection), evaluate on dev,
  save the bundle;
* ``serve``: ``ronghe.load`` the bundle, evaluate on dev again (checks the round trip), then time
  ``predict_proba`` at batch 1 and batch 32.

Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of each subprocess, so the numbers do
not mix configurations. Latencies are also given as a ratio to ``classic`` measured in the same
invocation (with ``--only`` and no classic selected, a classic reference run is added).

Usage::

    python benchmarks/text_classification.py                 # full run (~40-60 min on 2 cores)
    python benchmarks/text_classification.py --quick         # smoke run, small sizes
    python benchmarks/text_classification.py --only frozen,finetune
    taskset -c 1 python benchmarks/text_classification.py --part longdoc   # classic, long docs

``--part longdoc`` is a separate measurement (code in ``benchmarks/classic_longdoc.py``): the
``classic`` strategy's training stages on ~300-word, 77-class documents made from BANKING77, the
old code vs today's defaults, plus an accuracy check on SST-2 and BANKING77; it writes
``benchmarks/results/classic_longdoc.json`` and the ``classic_longdoc`` README section.

Writes ``benchmarks/results/text_classification.json`` (``...quick.json`` with ``--quick``) and
rewrites the section between ``<!-- text_classification:start -->`` and
``<!-- text_classification:end -->`` in ``benchmarks/README.md`` (not for ``--quick`` unless
``--readme`` is given).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NAME = "text_classification"
RESULTS = HERE / "results"
WORK = HERE / ".work" / NAME  # bundles and logs (git-ignored)
README = HERE / "README.md"
START, END = f"<!-- {NAME}:start -->", f"<!-- {NAME}:end -->"
DATA = Path(os.environ.get("SST2_DIR", "/work/shared/data/sst2"))
SEED = 0
STRATEGIES = ("classic", "frozen", "finetune")


def thread_env(threads: int) -> dict[str, str]:
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "OPENBLAS_NUM_THREADS": str(threads), "RAYON_NUM_THREADS": str(threads),
            "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_VERBOSITY": "error", "PYTHONHASHSEED": "0"}


# ============================================================================ CPU contention

def cpu_busy_seconds() -> tuple[float, float]:
    """(busy CPU-seconds of the whole machine since boot, monotonic time) from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK"), \
        time.monotonic()


def own_cpu_seconds(who) -> float:
    import resource

    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


class Contention:
    """Share of the machine's CPU capacity used by *other* processes during a block:
    (machine busy CPU-s - our CPU-s) / (wall-s x cores). 0 = we had the machine to ourselves."""

    def __init__(self, who):
        self.who = who

    def __enter__(self):
        self.busy0, self.t0 = cpu_busy_seconds()
        self.own0 = own_cpu_seconds(self.who)
        return self

    def __exit__(self, *exc):
        busy1, t1 = cpu_busy_seconds()
        own = own_cpu_seconds(self.who) - self.own0
        wall = max(t1 - self.t0, 1e-6)
        foreign = max(0.0, (busy1 - self.busy0) - own)
        self.share = round(foreign / (wall * (os.cpu_count() or 1)), 3)
        return False


def wait_idle(max_wait: float, threshold: float = 0.1, window: float = 2.0, need: int = 3) -> float:
    """Wait until other processes use < ``threshold`` of the machine for ``need`` consecutive
    ``window``-second samples (or ``max_wait`` seconds passed); returns the seconds waited."""
    start = time.monotonic()
    calm = 0
    busy0, t0 = cpu_busy_seconds()
    while calm < need and time.monotonic() - start < max_wait:
        time.sleep(window)
        busy1, t1 = cpu_busy_seconds()
        share = (busy1 - busy0) / ((t1 - t0) * (os.cpu_count() or 1))
        busy0, t0 = busy1, t1
        calm = calm + 1 if share < threshold else 0
    return round(time.monotonic() - start, 1)


# ============================================================================ configurations

def configurations(quick: bool) -> list[dict]:
    """Every (strategy, training size) run, classic first (it is the latency reference)."""
    if quick:
        small, full, ft, epochs = 400, 2000, 300, 1
    else:
        small, full, ft, epochs = 2000, None, 8000, 3
    out = []
    for strategy in ("classic", "frozen"):
        out.append({"name": f"{strategy}-{_size_name(small)}", "strategy": strategy,
                    "n_train": small, "params": {}})
        out.append({"name": f"{strategy}-{_size_name(full)}", "strategy": strategy,
                    "n_train": full, "params": {}})
    out.append({"name": f"finetune-{_size_name(ft)}", "strategy": "finetune", "n_train": ft,
                "params": {"epochs": epochs}})
    return out


def _size_name(n: int | None) -> str:
    if n is None:
        return "full"
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


# ============================================================================ worker side

def _rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:  # pragma: no cover - psutil is installed in the venv
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6


def _worker_setup(threads: int):
    """Pin threads before torch is imported; returns (torch, ronghe)."""
    os.environ.update(thread_env(threads))
    import torch

    torch.set_num_threads(threads)
    import logging

    import ronghe

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("transformers", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    return torch, ronghe


def _load_sets(spec: dict):
    """(train sample, dev) as ronghe Datasets; the sample is seeded and drawn without replacement."""
    import numpy as np
    from ronghe import data

    train = data.load(DATA / "train.tsv")
    dev = data.load(DATA / "dev.tsv")
    n_file = len(train)
    n = spec["n_train"]
    if n is not None and n < len(train):
        rng = np.random.default_rng(SEED)
        train = train.subset(np.sort(rng.choice(len(train), size=n, replace=False)))
    return train, dev, n_file


def _clear_embedding_cache() -> int:
    """Empty ronghe's per-process embedding cache (frozen strategy) so that timed calls really
    encode; returns how many entries were dropped."""
    try:
        from ronghe import modeling
    except ImportError:  # pragma: no cover
        return 0
    dropped = 0
    for cache in getattr(modeling, "_EMBED_CACHE", {}).values():
        dropped += len(cache)
        cache.clear()
    return dropped


def worker_train(spec: dict) -> dict:
    t0 = time.perf_counter()
    torch, ronghe = _worker_setup(spec["threads"])
    rss = {"after_imports": _rss_mb()}
    train, dev, n_file = _load_sets(spec)
    rss["after_data"] = _rss_mb()
    shared = len({t.strip().lower() for t in dev.texts}
                 & {t.strip().lower() for t in train.texts})

    clf = ronghe.TextClassifier(strategy=spec["strategy"], seed=SEED, **spec["params"])
    import resource

    start = time.perf_counter()
    with Contention(resource.RUSAGE_SELF) as busy:
        cpu0 = own_cpu_seconds(resource.RUSAGE_SELF)
        clf.fit(train)  # no valid=: ronghe holds out a seeded stratified valid_fraction itself
        fit_cpu = own_cpu_seconds(resource.RUSAGE_SELF) - cpu0
    fit_wall = time.perf_counter() - start
    rss["after_fit"] = _rss_mb()
    peak_fit = _peak_rss_mb()

    start = time.perf_counter()
    report = clf.evaluate(dev)
    eval_s = time.perf_counter() - start

    bundle_dir = Path(spec["bundle"])
    start = time.perf_counter()
    clf.save(bundle_dir)
    save_s = time.perf_counter() - start
    cfg = clf.config_
    return {
        "n_train_file": n_file, "n_train_sample": len(train),
        "n_fit": clf.data_["n_train"], "n_valid": clf.data_["n_valid"], "n_dev": len(dev),
        "dev_texts_in_training_sample": shared,
        "train_fingerprint": clf.data_["fingerprint"],
        "config": cfg.model_dump(mode="json"),
        "valid": clf.metrics_["valid"], "history": clf.metrics_["history"],
        "dev": {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
                "weighted_f1": report["weighted_f1"], "n": report["n"],
                "confusion_matrix": report["confusion_matrix"]},
        "train_seconds": round(fit_wall, 2),
        "train_seconds_strategy": round(clf.train_seconds_, 2),
        "train_cpu_seconds": round(fit_cpu, 2),
        "train_foreign_cpu_share": busy.share,
        "dev_predict_seconds": round(eval_s, 3),
        "save_seconds": round(save_s, 3),
        "bundle_mb": round(_dir_mb(bundle_dir), 3),
        "backbone": clf.backbone_.to_json() if clf.backbone_ else None,
        "backbone_mb": round(_dir_mb(clf.backbone_.path), 3) if clf.backbone_ else 0.0,
        "rss_mb": {k: round(v, 1) for k, v in rss.items()},
        "peak_rss_fit_mb": round(peak_fit, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "ronghe_file": ronghe.__file__,
        "process_seconds": round(time.perf_counter() - t0, 2),
    }


def _pcts(values: list[float]) -> dict:
    import numpy as np

    a = np.asarray(values) * 1000.0
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "mean": float(a.mean()), "n": int(a.size)}


def _median_of(reps: list[dict]) -> dict:
    import numpy as np

    out = {k: round(float(np.median([r[k] for r in reps])), 4) for k in ("p50", "p95", "mean")}
    out["n_calls_per_rep"] = reps[0]["n"]
    out["reps"] = len(reps)
    out["per_rep_p50"] = [round(r["p50"], 4) for r in reps]
    out["per_rep_foreign_cpu_share"] = [r["foreign_cpu_share"] for r in reps]
    out["per_rep_attempts"] = [r["attempts"] for r in reps]
    return out


def worker_serve(spec: dict) -> dict:
    t0 = time.perf_counter()
    torch, ronghe = _worker_setup(spec["threads"])
    import numpy as np

    from ronghe import data

    dev = data.load(DATA / "dev.tsv")
    rss = {"after_imports_data": _rss_mb()}

    start = time.perf_counter()
    clf = ronghe.load(spec["bundle"])
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    clf.predict_proba([dev.texts[-1]])  # frozen loads its backbone lazily here
    first_s = time.perf_counter() - start
    rss["after_load"] = _rss_mb()

    _clear_embedding_cache()
    start = time.perf_counter()
    report = clf.evaluate(dev)
    bulk_s = time.perf_counter() - start

    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(dev))
    texts = [dev.texts[i] for i in order]
    n1, reps, warm = spec["calls_b1"], spec["reps"], spec["warmup"]
    predict = clf.predict_proba

    def clean_reps(run_once) -> list[dict]:
        """``reps`` repetitions of ``run_once() -> [seconds]``, each started when the CPUs are
        idle and repeated (up to 3 times) when other processes took > 10 % of them meanwhile."""
        import resource

        out = []
        for _ in range(reps):
            for attempt in range(1, 4):
                waited = wait_idle(spec["rep_wait"]) if spec["rep_wait"] > 0 else 0.0
                with Contention(resource.RUSAGE_SELF) as busy:
                    times = run_once()
                if busy.share <= 0.1:
                    break
            out.append({**_pcts(times), "foreign_cpu_share": busy.share, "attempts": attempt,
                        "waited_s": waited})
        return out

    def batch1_rep() -> list[float]:
        times = []
        for t in texts[warm:warm + n1]:
            _clear_embedding_cache()  # outside the timer: each call encodes its text
            s = time.perf_counter()
            predict([t])
            times.append(time.perf_counter() - s)
        return times

    bs = 32
    batches = [texts[i:i + bs] for i in range(0, len(texts) - bs + 1, bs)]

    def batch32_rep() -> list[float]:
        times = []
        for b in batches:
            _clear_embedding_cache()
            s = time.perf_counter()
            predict(b)
            times.append(time.perf_counter() - s)
        return times

    for t in texts[:warm]:  # warm-up (allocator, oneDNN kernels, caches)
        _clear_embedding_cache()
        predict([t])
    b1 = clean_reps(batch1_rep)
    for b in batches[:2]:
        _clear_embedding_cache()
        predict(b)
    b32 = clean_reps(batch32_rep)

    # the same text again with the cache left alone (what a repeated request costs)
    predict([texts[0]])
    cached = []
    for _ in range(50):
        s = time.perf_counter()
        predict([texts[0]])
        cached.append(time.perf_counter() - s)

    import statistics

    share = statistics.median([r["foreign_cpu_share"] for r in b1 + b32])
    lat_b1, lat_b32 = _median_of(b1), _median_of(b32)
    return {
        "dev_reloaded": {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]},
        "load_seconds": round(load_s, 3),
        "first_predict_seconds": round(first_s, 3),
        "dev_bulk_predict_seconds": round(bulk_s, 3),
        "dev_bulk_examples_per_second": round(len(dev) / bulk_s, 1),
        "latency_ms": {
            "batch1": lat_b1,
            "batch32": {**lat_b32, "per_example_p50": round(lat_b32["p50"] / bs, 4),
                        "per_example_p95": round(lat_b32["p95"] / bs, 4), "batch_size": bs,
                        "n_batches": len(batches)},
            "batch1_same_text_repeated_p50": round(_pcts(cached)["p50"], 4),
            "foreign_cpu_share": share,
        },
        "rss_mb": {k: round(v, 1) for k, v in rss.items()},
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "torch_threads": torch.get_num_threads(),
        "process_seconds": round(time.perf_counter() - t0, 2),
    }


def worker_main(mode: str, spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    result = worker_train(spec) if mode == "train" else worker_serve(spec)
    Path(out_path).write_text(json.dumps(result, indent=2))


# ============================================================================ orchestrator

def machine_info(threads: int) -> dict:
    cpu = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if ":" not in line:
                continue
            k, v = (s.strip() for s in line.split(":", 1))
            if k in ("model name", "cpu family", "model", "stepping", "flags") and k not in cpu:
                cpu[k] = v
    except OSError:
        pass
    flags = set(cpu.pop("flags", "").split())
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    versions = {}
    for pkg in ("ronghe", "torch", "transformers", "tokenizers", "scikit-learn", "numpy"):
        try:
            from importlib.metadata import version

            versions[pkg] = version(pkg)
        except Exception:  # noqa: BLE001
            versions[pkg] = None
    git = {}
    try:
        git["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                       text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT,
                               capture_output=True, text=True).stdout.splitlines()
        git["src_uncommitted_changes"] = dirty
    except OSError:
        pass
    return {
        "cpu_model": cpu.get("model name"),
        "cpu_family_model_stepping": [cpu.get("cpu family"), cpu.get("model"), cpu.get("stepping")],
        "cpu_flags": sorted(f for f in flags if f.startswith(("amx", "avx512_bf16", "avx512f",
                                                              "avx_vnni", "avx512_vnni"))),
        "hypervisor": "hypervisor" in flags,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": mem_gb,
        "gpu": None,
        "threads_pinned": threads,
        "thread_env": thread_env(threads),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "git": git,
    }


def run_worker(mode: str, spec: dict, log_dir: Path) -> dict:
    log_dir.mkdir(parents=True, exist_ok=True)
    spec_path = log_dir / f"{spec['name']}.{mode}.spec.json"
    out_path = log_dir / f"{spec['name']}.{mode}.result.json"
    log_path = log_dir / f"{spec['name']}.{mode}.log"
    spec_path.write_text(json.dumps(spec, indent=2))
    out_path.unlink(missing_ok=True)
    env = {**os.environ, **thread_env(spec["threads"])}
    if spec.get("src"):
        env["PYTHONPATH"] = spec["src"] + os.pathsep + env.get("PYTHONPATH", "")
    import resource

    start = time.perf_counter()
    with open(log_path, "w") as log, Contention(resource.RUSAGE_CHILDREN) as busy:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", mode,
                               str(spec_path), str(out_path)], env=env, stdout=log,
                              stderr=subprocess.STDOUT, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not out_path.exists():
        tail = log_path.read_text().splitlines()[-25:]
        raise RuntimeError(f"{spec['name']} {mode} failed (exit {proc.returncode}); log "
                           f"{log_path}:\n" + "\n".join(tail))
    result = json.loads(out_path.read_text())
    result["subprocess_wall_seconds"] = round(wall, 2)
    result["foreign_cpu_share"] = busy.share
    return result


def add_ratios(runs: list[dict], reference: str) -> None:
    ref = next((r for r in runs if r["name"] == reference and "serve" in r), None)
    for r in runs:
        if "serve" not in r:
            continue
        r["latency_reference"] = reference if ref else None
        if ref is None:
            r["latency_ratio_vs_classic"] = None
            continue
        a, b = r["serve"]["latency_ms"], ref["serve"]["latency_ms"]
        r["latency_ratio_vs_classic"] = {
            "batch1_p50": round(a["batch1"]["p50"] / b["batch1"]["p50"], 2),
            "batch32_p50": round(a["batch32"]["p50"] / b["batch32"]["p50"], 2),
            "train_seconds": round(r["train"]["train_seconds"] / ref["train"]["train_seconds"], 2),
        }


def _fmt(x, digits=1):
    if x is None:
        return "-"
    if isinstance(x, float) and abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def markdown_section(doc: dict, command: str) -> str:
    m = doc["machine"]
    runs = [r for r in doc["runs"] if "serve" in r]
    lines = [START, "## Text classification (SST-2)", "",
             f"_Generated by `benchmarks/{NAME}.py` on {doc['date']}; raw numbers in "
             f"`benchmarks/results/{Path(doc['results_file']).name}`._", "",
             "Binary sentiment, SST-2 (GLUE): training sets are seeded samples of `train.tsv` "
             f"({doc['n_train_file']:,} rows); ronghe holds out a seeded stratified 10 % of each "
             "for validation (model selection / early stopping); scores are on `dev.tsv` "
             f"({doc['n_dev']} rows), never used for selection. Default settings, seed 0.", "",
             "| run | strategy | train / valid | dev accuracy | dev macro-F1 | train s | "
             "peak RSS train MB | peak RSS serve MB | bundle MB | other procs' CPU share "
             "while training |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        t, s = r["train"], r["serve"]
        bundle = f"{t['bundle_mb']:.1f}"
        if r["strategy"] == "frozen":
            bundle += f" (+{t['backbone_mb']:.0f} backbone)"
        lines.append(
            f"| {r['name']} | {r['strategy']}{_extra(r)} | {t['n_fit']:,} / {t['n_valid']:,} | "
            f"{t['dev']['accuracy']:.4f} | {t['dev']['macro_f1']:.4f} | "
            f"{_fmt(t['train_seconds'])} | {_fmt(t['peak_rss_mb'], 0)} | "
            f"{_fmt(s['peak_rss_mb'], 0)} | {bundle} | {t['train_foreign_cpu_share']:.0%} |")
    ref = runs[0].get("latency_reference") if runs else None
    lines += ["", "Prediction latency of the reloaded bundle (`ronghe.load` then `predict_proba`, "
              "tokenisation included), ms; median over "
              f"{runs[0]['serve']['latency_ms']['batch1']['reps'] if runs else '-'} repetitions "
              "of the p50/p95 of "
              f"{runs[0]['serve']['latency_ms']['batch1']['n_calls_per_rep'] if runs else '-'} "
              "single-text calls and of "
              f"{runs[0]['serve']['latency_ms']['batch32']['n_batches'] if runs else '-'} "
              "batches of 32 different dev texts. The frozen strategy's embedding cache is emptied "
              "before every call, so each call really runs the encoder. "
              f"x classic = p50 relative to `{ref}` in the same run.", "",
             "| run | batch 1 p50 | batch 1 p95 | batch 32 p50 (per text) | batch 32 p95 | "
             "x classic (b1 / b32) | bulk dev texts/s | load s | other procs' CPU share "
             "while timing |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        s = r["serve"]
        lat = s["latency_ms"]
        ratio = r.get("latency_ratio_vs_classic")
        ratio_s = f"{ratio['batch1_p50']:g} / {ratio['batch32_p50']:g}" if ratio else "-"
        lines.append(
            f"| {r['name']} | {lat['batch1']['p50']:.2f} | {lat['batch1']['p95']:.2f} | "
            f"{lat['batch32']['p50']:.1f} ({lat['batch32']['per_example_p50']:.2f}) | "
            f"{lat['batch32']['p95']:.1f} | {ratio_s} | "
            f"{_fmt(s['dev_bulk_examples_per_second'], 0)} | {s['load_seconds']:.2f} | "
            f"{lat['foreign_cpu_share']:.0%} |")
    threads = sorted({r["train"]["torch_threads"] for r in runs} |
                     {r["serve"]["torch_threads"] for r in runs})
    flags = ", ".join(m["cpu_flags"]) or "none"
    amx = any(f.startswith("amx") for f in m["cpu_flags"])
    lines += ["", "**Reproduce:**", "", "```bash", command, "```", "",
              f"**Machine:** {doc['machine_label']}; /proc/cpuinfo: \"{m['cpu_model']}\" "
              f"(family/model/stepping {'/'.join(str(x) for x in m['cpu_family_model_stepping'])}"
              f"{', KVM guest' if m['hypervisor'] else ''}), {m['usable_cpus']} cores, "
              f"{m['memory_gb']} GB RAM, no GPU; relevant flags: {flags}"
              f"{'' if amx else ' (no AMX exposed, so ronghe precision `auto` runs fp32)'}. "
              f"Threads pinned: OMP/MKL/OpenBLAS/Rayon = {m['threads_pinned']}, "
              f"`torch.get_num_threads()` = {', '.join(map(str, threads))}. "
              f"torch {m['versions']['torch']}, transformers {m['versions']['transformers']}, "
              f"scikit-learn {m['versions']['scikit-learn']}, Python {m['python']}. "
              f"Total wall time of the run: {doc['total_wall_seconds'] / 60:.1f} min.", ""]
    if doc.get("notes"):
        lines += ["**Notes:**", ""] + [f"- {n}" for n in doc["notes"]] + [""]
    lines.append(END)
    return "\n".join(lines)


def _extra(r: dict) -> str:
    p = r.get("params") or {}
    return f" ({', '.join(f'{k}={v}' for k, v in p.items())})" if p else ""


INTRO = """# Benchmarks

Reproducible measurements of ronghe on public data, each a single script in this folder that runs
every configuration in a fresh subprocess (so memory numbers do not mix), pins the number of
threads, writes raw numbers to `benchmarks/results/<name>.json` and rewrites its own section of
this file between `<!-- <name>:start -->` and `<!-- <name>:end -->` markers.

| benchmark | measures | run |
|---|---|---|
| `text_classification.py` | the `classic`, `frozen` and `finetune` strategies on SST-2: dev accuracy and macro-F1, training time, prediction latency at batch 1 and 32 (and relative to `classic`), peak RSS while training and serving, bundle size | `python benchmarks/text_classification.py` (`--quick` for a smoke run, `--only frozen,finetune` for a subset) |

Run from the repository root with the project's virtual environment active
(`. .venv/bin/activate`). SST-2 is read from `/work/shared/data/sst2` (override with `SST2_DIR`).
Bundles and per-run logs go to `benchmarks/.work/` (git-ignored).

"""


def update_readme(section: str) -> None:
    text = README.read_text() if README.exists() else INTRO
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    tmp = README.with_name(f".{README.name}.{NAME}.tmp")
    tmp.write_text(text)
    os.replace(tmp, README)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, 1 epoch: a smoke run")
    p.add_argument("--only", default=None,
                   help="comma-separated strategies to run (classic, frozen, finetune)")
    p.add_argument("--threads", type=int, default=2, help="torch / BLAS threads (default 2)")
    p.add_argument("--reps", type=int, default=None, help="latency repetitions (default 5, quick 2)")
    p.add_argument("--calls", type=int, default=None,
                   help="batch-1 calls per repetition (default 200, quick 40)")
    p.add_argument("--out", type=Path, default=None, help="results JSON path")
    p.add_argument("--readme", action=argparse.BooleanOptionalAction, default=None,
                   help="rewrite this benchmark's README section (default: yes, except --quick)")
    p.add_argument("--git-ref", default=None,
                   help="benchmark the ronghe source of this git commit (exported with `git "
                        "archive` to benchmarks/.work and put first on PYTHONPATH) instead of "
                        "the working tree; use it while src/ is being edited")
    p.add_argument("--max-wait", type=float, default=300,
                   help="before each subprocess, wait up to this many seconds for other "
                        "processes to leave the CPUs idle (0: do not wait)")
    p.add_argument("--rep-wait", type=float, default=60,
                   help="before each latency repetition, wait up to this many seconds for idle "
                        "CPUs; a repetition during which others used > 10%% of the CPUs is "
                        "repeated up to 3 times (0: no waiting)")
    p.add_argument("--serve-attempts", type=int, default=2,
                   help="re-run the latency subprocess (after waiting for idle CPUs) while other "
                        "processes used more than 10%% of the CPUs during timing")
    p.add_argument("--serve-only", action="store_true",
                   help="keep the training results and bundles of the previous run (same results "
                        "file) and only re-measure serving: reload, dev score, latency, memory")
    p.add_argument("--machine-label", default="2 cores of a Sapphire Rapids-class Intel Xeon (KVM guest), no GPU",
                   help="human description of the machine for the README")
    p.add_argument("--part", choices=("strategies", "longdoc"), default="strategies",
                   help="strategies: the SST-2 comparison (default); longdoc: where classic's "
                        "training time goes on long, many-class documents (1 thread; pin it "
                        "with taskset), the old code vs today's defaults")
    p.add_argument("--per-class", type=int, default=80,
                   help="longdoc: training documents per BANKING77 intent (default 80)")
    p.add_argument("--words", type=int, default=300, help="longdoc: words per document")
    p.add_argument("--noise", type=float, default=0.7,
                   help="longdoc: share of a document's queries drawn from any intent")
    p.add_argument("--before-ref", default=None,
                   help="longdoc: the git commit timed as `before-code` (default: "
                        "classic_longdoc.BEFORE_REF, main before the change)")
    p.add_argument("--skip-check", action="store_true",
                   help="longdoc: skip the SST-2 / BANKING77 accuracy check")
    p.add_argument("--worker", nargs=3, metavar=("MODE", "SPEC", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker_main(*args.worker)
        return 0
    if args.part == "longdoc":
        import classic_longdoc

        return classic_longdoc.main(args)

    t_start = time.perf_counter()
    selected = STRATEGIES
    if args.only:
        selected = tuple(s.strip() for s in args.only.split(",") if s.strip())
        bad = [s for s in selected if s not in STRATEGIES]
        if bad:
            p.error(f"unknown strategies {bad}; choose from {', '.join(STRATEGIES)}")
    configs = configurations(args.quick)
    reference = configs[0]["name"]  # classic on the small sample
    runs = [dict(c) for c in configs if c["strategy"] in selected]
    if "classic" not in selected:
        runs.insert(0, {**configs[0], "reference_only": True})
    out = args.out or RESULTS / (f"{NAME}.quick.json" if args.quick else f"{NAME}.json")
    write_readme = (not args.quick) if args.readme is None else args.readme
    reps = args.reps or (2 if args.quick else 5)
    calls = args.calls or (40 if args.quick else 200)
    invocation = datetime.now(timezone.utc).isoformat(timespec="seconds")
    cmd = "python benchmarks/text_classification.py" + (" --quick" if args.quick else "") + \
          (f" --only {args.only}" if args.only else "") + \
          (f" --threads {args.threads}" if args.threads != 2 else "")

    machine = machine_info(args.threads)
    src = None
    if args.git_ref:
        commit = subprocess.run(["git", "rev-parse", args.git_ref], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout.strip()
        snap = WORK / f"src-{commit[:12]}"
        if not (snap / "src" / "ronghe" / "__init__.py").exists():
            snap.mkdir(parents=True, exist_ok=True)
            archive = subprocess.run(["git", "archive", commit, "src"], cwd=ROOT, check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(snap)], input=archive, check=True)
        src = str(snap / "src")
        machine["git"]["benchmarked_ref"] = {"ref": args.git_ref, "commit": commit, "path": src}
        cmd += f" --git-ref {commit[:7]}"
    print(f"[{NAME}] {len(runs)} runs: {', '.join(r['name'] for r in runs)}; results -> {out}",
          flush=True)
    log_dir = WORK / ("quick" if args.quick else "full")
    modes = ("train", "serve")
    previous = None
    if args.serve_only:
        if not out.exists():
            p.error(f"--serve-only needs the results of a previous run in {out}")
        previous = json.loads(out.read_text())
        done = {r["name"]: r for r in previous["runs"] + previous.get("reference_runs", [])}
        for r in runs:
            old = done.get(r["name"])
            if not old or not (log_dir / "bundles" / r["name"] / "ronghe.json").exists():
                p.error(f"--serve-only: no earlier training result or bundle for {r['name']}")
            r["train"] = old["train"]
            r["train_invocation"] = old.get("train_invocation", old.get("invocation"))
        modes = ("serve",)
        cmd = previous["command"]
        if previous["machine"]["git"].get("benchmarked_ref"):
            src = previous["machine"]["git"]["benchmarked_ref"]["path"]
            machine["git"]["benchmarked_ref"] = previous["machine"]["git"]["benchmarked_ref"]
    for r in runs:
        spec = {"name": r["name"], "strategy": r["strategy"], "n_train": r["n_train"],
                "params": r["params"], "threads": args.threads, "src": src,
                "bundle": str(log_dir / "bundles" / r["name"]), "calls_b1": calls, "reps": reps,
                "warmup": 10, "rep_wait": args.rep_wait}
        r["invocation"] = invocation
        r.setdefault("train_invocation", invocation)
        for mode in modes:
            attempts = []
            while True:
                waited = wait_idle(args.max_wait) if args.max_wait > 0 else 0.0
                t = time.perf_counter()
                print(f"[{NAME}] {r['name']}: {mode} (waited {waited:.0f}s for idle CPUs) ...",
                      flush=True)
                res = run_worker(mode, spec, log_dir)
                res["waited_for_idle_seconds"] = waited
                attempts.append(res)
                if mode == "train":
                    break
                share = res["latency_ms"]["foreign_cpu_share"]
                if share <= 0.1 or len(attempts) >= args.serve_attempts:
                    break
                print(f"[{NAME}] {r['name']}: other processes used {share:.0%} of the CPUs "
                      f"while timing; measuring again", flush=True)
            if mode == "serve":
                best = min(attempts, key=lambda a: a["latency_ms"]["foreign_cpu_share"])
                best["attempts_foreign_cpu_share"] = [a["latency_ms"]["foreign_cpu_share"]
                                                      for a in attempts]
                r[mode] = best
            else:
                r[mode] = attempts[0]
            print(f"[{NAME}] {r['name']}: {mode} done in {time.perf_counter() - t:.0f}s "
                  + (f"(dev acc {r['train']['dev']['accuracy']:.4f}, train "
                     f"{r['train']['train_seconds']:.0f}s)" if mode == "train" else
                     f"(b1 p50 {r['serve']['latency_ms']['batch1']['p50']:.2f} ms, b32 p50 "
                     f"{r['serve']['latency_ms']['batch32']['p50']:.1f} ms)"), flush=True)
        add_ratios(runs, reference)

    notes = []
    for r in runs:
        t, s = r["train"], r["serve"]
        if abs(t["dev"]["accuracy"] - s["dev_reloaded"]["accuracy"]) > 1e-9:
            notes.append(f"{r['name']}: dev accuracy differs after save/load "
                         f"({t['dev']['accuracy']:.4f} vs {s['dev_reloaded']['accuracy']:.4f})")
        if t["dev_texts_in_training_sample"]:
            notes.append(f"{r['name']}: {t['dev_texts_in_training_sample']} dev texts also occur "
                         f"in its training sample")
        if t["train_foreign_cpu_share"] > 0.1:
            notes.append(f"{r['name']}: other processes used {t['train_foreign_cpu_share']:.0%} "
                         f"of the CPUs during training, so its train seconds are inflated")
        if s["latency_ms"]["foreign_cpu_share"] > 0.1:
            notes.append(f"{r['name']}: other processes used "
                         f"{s['latency_ms']['foreign_cpu_share']:.0%} of the CPUs in its median "
                         f"latency repetition, so its latencies are inflated")
    if src:
        short = machine["git"]["benchmarked_ref"]["commit"][:7]
        notes.append(f"measured on the committed source of `{short}` (exported with "
                     f"`git archive`), not the working tree, which was being edited")
    elif machine["git"].get("src_uncommitted_changes"):
        notes.append("src/ had uncommitted changes when this ran (see `machine.git` in the JSON)")

    # merge with earlier results of other strategies (--only), keeping every run's invocation
    kept = []
    if out.exists() and args.only:
        try:
            old = json.loads(out.read_text())
            names = {r["name"] for r in runs}
            kept = [r for r in old.get("runs", []) if r["name"] not in names]
        except (json.JSONDecodeError, OSError):
            kept = []
    final_runs = [r for r in runs if not r.get("reference_only")]
    order = [c["name"] for c in configs]
    all_runs = sorted(kept + final_runs, key=lambda r: order.index(r["name"])
                      if r["name"] in order else len(order))
    if kept:
        notes.append("runs come from several invocations (see each run's `invocation`); "
                     "latency ratios compare runs of the same invocation")
    total = time.perf_counter() - t_start
    if previous is not None:
        notes.append(f"serving numbers re-measured on {invocation} with `--serve-only` "
                     f"(training results and bundles from {previous['date']}); total wall time "
                     f"= training run {previous['total_wall_seconds'] / 60:.1f} min + "
                     f"re-measurement {total / 60:.1f} min")
        total += previous["total_wall_seconds"]
    doc = {"benchmark": NAME, "date": invocation, "command": cmd, "quick": args.quick,
           "results_file": str(out), "machine_label": args.machine_label, "machine": machine,
           "data": str(DATA), "seed": SEED, "n_train_file": runs[0]["train"]["n_train_file"],
           "n_dev": runs[0]["train"]["n_dev"], "latency_reference": reference,
           "total_wall_seconds": round(total, 1), "notes": notes, "runs": all_runs,
           "reference_runs": [r for r in runs if r.get("reference_only")]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))
    section = markdown_section(doc, cmd)
    print(section)
    if write_readme:
        update_readme(section)
        print(f"[{NAME}] README section updated: {README}")
    print(f"[{NAME}] total wall time {total / 60:.1f} min; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
