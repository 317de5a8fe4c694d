#!/usr/bin/env python
"""Peak memory of ``contrastive`` training on 50k vs 5k SST-2 texts.

The question: does memory grow with the square of the data size (all pairs materialised) or
stay roughly flat (pairs drawn on the fly from per-class index lists, capped by ``max_pairs``)?
Each size runs ``TextClassifier("contrastive").fit`` in a fresh subprocess with 2 pinned threads
and reports ``getrusage(RUSAGE_SELF).ru_maxrss`` (peak RSS), the RSS before ``fit`` (Python,
torch, the data), the number of pairs actually trained on (from ronghe's own log line) and, with
``tracemalloc``, the peak Python memory of drawing those pairs with ``sample_pairs`` alone.

``max_pairs`` stays at its default (20,000). ``num_iterations`` (pairs drawn per example) is set
to 1 so that the pair count is min(max_pairs, 2 * n): 20,000 for both sizes here, i.e. the same
training work, which isolates the memory that depends on n. After training, ronghe embeds all
training and validation texts for the logistic-regression head; that part is linear in n.

    python benchmarks/contrastive_memory.py            # 5k and 50k texts
    python benchmarks/contrastive_memory.py --quick    # 500 and 2,000 texts, max_pairs 200
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path

import common  # benchmarks/common.py: this script's folder is first on sys.path

common.pin_threads()

NAME = "contrastive_memory"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(spec: dict) -> dict:
    common.torch_threads()
    import tracemalloc

    import numpy as np

    from ronghe import TextClassifier
    from ronghe.strategies.contrastive import sample_pairs

    texts, labels = common.read_sst2("train")
    idx = common.sample_indices(len(texts), spec["n"], seed=0)
    texts, labels = [texts[i] for i in idx], [labels[i] for i in idx]

    messages: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    log = logging.getLogger("ronghe")
    log.setLevel(logging.INFO)
    log.addHandler(Grab())
    log.addHandler(logging.StreamHandler(sys.stderr))

    options = {"num_iterations": spec["num_iterations"]}
    if spec.get("max_pairs"):
        options["max_pairs"] = spec["max_pairs"]
    clf = TextClassifier(strategy="contrastive", model="minilm", options=options)
    cfg = clf.resolved_config()

    # the sampler alone: Python memory while drawing the pairs fit will draw
    y = np.asarray(labels)
    n_train_est = len(y) - max(1, round(0.1 * len(y)))
    n_pairs_est = min(cfg.max_pairs, 2 * cfg.num_iterations * n_train_est)
    tracemalloc.start()
    drawn = sum(1 for _ in sample_pairs(y, n_pairs_est, np.random.default_rng(0)))
    sampler_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    samples: list[float] = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(rss_mb())
            stop.wait(0.5)

    before = rss_mb()
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    clf.fit(texts, labels)
    stop.set()
    th.join()
    pairs_line = next((m for m in messages if m.startswith("contrastive:")), "")
    n_pairs = int(pairs_line.split()[1]) if pairs_line else None
    dev, ydev = common.read_sst2("dev")
    acc = clf.evaluate(dev, ydev)["accuracy"]
    return {"n_texts": spec["n"], "n_train": clf.data_["n_train"], "n_valid": clf.data_["n_valid"],
            "max_pairs": cfg.max_pairs, "num_iterations": cfg.num_iterations,
            "batch_size": cfg.batch_size, "pairs_used": n_pairs, "pairs_log": pairs_line,
            "sampler_pairs_drawn": drawn, "sampler_peak_python_kb": round(sampler_peak / 1024, 1),
            "rss_before_fit_mb": round(before, 1),
            "rss_max_sampled_during_fit_mb": round(max(samples), 1) if samples else None,
            "peak_rss_mb": round(common.peak_rss_mb(), 1),
            "train_seconds": round(clf.train_seconds_, 1), "dev_accuracy": round(acc, 4)}


def readme(result: dict, quick: bool) -> str:
    info = result["machine"]
    rows = [[f"{r['n_texts']:,}", f"{r['n_train']:,} / {r['n_valid']:,}", f"{r['max_pairs']:,}",
             f"{r['pairs_used']:,}" if r["pairs_used"] else "?", f"{r['rss_before_fit_mb']:.0f}",
             f"{r['peak_rss_mb']:.0f}", f"{r['peak_rss_mb'] - r['rss_before_fit_mb']:.0f}",
             f"{r['sampler_peak_python_kb']:.0f}", f"{r['train_seconds']:.0f}",
             f"{r['dev_accuracy']:.3f}"] for r in result["runs"]]
    small, big = result["runs"][0], result["runs"][-1]
    f = big["n_texts"] / small["n_texts"]
    g = (big["peak_rss_mb"] - big["rss_before_fit_mb"]) / max(
        1e-9, small["peak_rss_mb"] - small["rss_before_fit_mb"])
    return "\n".join([
        "## Contrastive training memory: 5k vs 50k texts",
        "",
        common.quick_note(quick, "python benchmarks/contrastive_memory.py") +
        "Peak RSS (`getrusage` `ru_maxrss`) of a subprocess that runs `TextClassifier(\"contrastive\")"
        ".fit` on n SST-2 training texts (ronghe holds out 10 % for validation), `max_pairs` at its "
        f"default, `num_iterations={small['num_iterations']}` to keep the run short (the pair count "
        "is min(max_pairs, 2 x num_iterations x n_train): "
        + (f"{small['pairs_used']:,} for both sizes)" if small["pairs_used"] == big["pairs_used"]
           else f"{small['pairs_used']:,} and {big['pairs_used']:,} here)")
        + ". The sampler column is the peak Python memory (tracemalloc) of drawing those "
        "pairs with `sample_pairs` alone.",
        "",
        common.md_table(["texts", "train / valid", "max_pairs", "pairs used", "RSS before fit MB",
                         "peak RSS MB", "peak - before MB", "sampler peak kB", "train s",
                         "dev acc"], rows),
        "",
        f"{f:.0f}x the texts -> {g:.2f}x the memory added by fit (a quadratic pair list would be "
        f"{f * f:.0f}x: {big['n_train']:,}^2/2 = {big['n_train'] ** 2 / 2:.2e} pairs). What grows "
        "with n is linear: token ids, and the embeddings of all texts for the head.",
        "",
        f"Machine: {common.machine_line(info)}. Load average during the runs: "
        f"{', '.join(str(r['load']['load1_mean']) for r in result['runs'])} "
        f"({common.load_note([r['load']['load1_mean'] for r in result['runs']])}; memory, the "
        "question here, does not depend on it).",
        "",
        *common.reproduce("python benchmarks/contrastive_memory.py", NAME, quick),
    ])


def main() -> None:
    ap = common.parser(__doc__, "500 and 2,000 texts, max_pairs 200")
    ap.add_argument("--sizes", default=None, help="comma-separated text counts (default 5000,50000)")
    ap.add_argument("--num-iterations", type=int, default=1)
    a = ap.parse_args()
    if common.handled(a, NAME, readme, {"fit": worker}):
        return
    t0 = time.perf_counter()
    info = common.machine_info()
    sizes = [int(x) for x in (a.sizes or ("500,2000" if a.quick else "5000,50000")).split(",")]
    work = common.WORK / NAME / ("quick" if a.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    runs = []
    for n in sizes:
        spec = {"n": n, "num_iterations": a.num_iterations, "max_pairs": 200 if a.quick else None}
        print(f"[{time.strftime('%H:%M:%S')}] n={n} (load {common.load_average()})", flush=True)
        res = common.run_worker(__file__, "fit", spec, f"n{n}", work)
        print("    " + json.dumps(res), flush=True)
        runs.append(res)
    result = {"benchmark": NAME, "quick": a.quick, "machine": info, "runs": runs}
    common.finish(NAME, result, a, readme, t0)


if __name__ == "__main__":
    main()
