"""Scaling out: batch inference (local streaming vs Ray Data with 1 and 2 actors; a classic and
an ONNX int8 bundle) and data-parallel training (1 process vs 2 torchrun processes).

Inference: SST-2 training sentences repeated to ``--rows-classic`` / ``--rows-int8`` rows with a
row id, as Parquet; each configuration runs ``python -m ronghe predict`` in a fresh process
(Ray: a fresh local Ray, started by the command - its start-up is part of the overhead measured),
rows/s over the whole command, peak memory as the largest summed RSS of the process tree
(driver + raylet + actors), sampled every 0.2 s. The rows/s measured on the counts run are
extrapolated linearly to 1M rows (said so in the table). Training: MiniLM fine-tuned on a seeded
SST-2 sample, 1 epoch, the same effective batch on 1 and 2 processes; wall time, validation
accuracy, and the expected scaling on N machines from the measured gradient volume per step.

``--part serve`` (kept apart from the rest, whose numbers it leaves as they are): the classic
bundle behind ``ronghe serve --engine ray`` (a local Ray with 2 CPUs, 1-2 replicas of 1 CPU,
2 ongoing requests per replica as the autoscaling target) under 1, then 8, then 1 closed-loop
clients; per second the replica count, per phase req/s and latency; and ``ronghe serve``
(uvicorn, one process) at 8 clients on the same bundle for comparison.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import common

NAME = "scale"
WORK = common.WORK / NAME
SRC = common.ROOT / "src"


def tree_rss(pid: int) -> float:
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def timed(cmd: list[str], log: Path, threads: int = 2) -> dict:
    """Run ``cmd``; wall seconds and the peak RSS of its process tree."""
    env = {**os.environ, **common.thread_env(threads), "PYTHONPATH": str(SRC)}
    peak = [0.0]
    with open(log, "w") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=WORK)
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], tree_rss(proc.pid))
                time.sleep(0.2)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        code = proc.wait()
        wall = time.perf_counter() - t0
        stop.set()
        th.join()
    if code:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{log.read_text()[-3000:]}")
    return {"wall_seconds": round(wall, 2), "peak_rss_mb": round(peak[0], 1)}


def make_input(rows: int, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts, _ = common.read_sst2("train")
    reps = -(-rows // len(texts))
    col = (texts * reps)[:rows]
    pq.write_table(pa.table({"id": list(range(rows)), "text": col}), path, row_group_size=50_000)


def classic_bundle(path: Path) -> Path:
    from ronghe import TextClassifier

    if (path / "ronghe.json").exists():
        return path
    texts, labels = common.read_sst2("train")
    idx = common.sample_indices(len(texts), 10_000, seed=0)
    clf = TextClassifier(strategy="classic").fit([texts[i] for i in idx], [labels[i] for i in idx])
    return clf.save(path)


def int8_bundle(path: Path) -> Path:
    """An SST-2 sentiment MiniLM (finetune, 1 epoch on 2,000 sentences, max_length 64) through
    ``ronghe compress --quantize int8`` (dynamic int8 ONNX, gated on SST-2 dev)."""
    import pandas as pd

    from ronghe import TextClassifier

    if (path / "ronghe.json").exists():
        return path
    texts, labels = common.read_sst2("train")
    idx = common.sample_indices(len(texts), 2000, seed=1)
    name = {0: "negative", 1: "positive"}
    df = pd.DataFrame({"text": [texts[i] for i in idx], "label": [name[labels[i]] for i in idx]})
    ft = path.parent / (path.name + "-torch")
    if not (ft / "ronghe.json").exists():
        TextClassifier(strategy="finetune", model="minilm", epochs=1, max_length=64,
                       batch_size=32, run_dir=str(path.parent / "int8-ft.run")).fit(df).save(ft)
    dev_t, dev_y = common.read_sst2("dev")
    dev = path.parent / "sst2-dev.csv"
    pd.DataFrame({"text": dev_t, "label": [name[y] for y in dev_y]}).to_csv(dev, index=False)
    subprocess.run([sys.executable, "-m", "ronghe", "compress", str(ft), "--quantize", "int8",
                    "--valid", str(dev), "--out", str(path), "-q"], check=True,
                   env={**os.environ, **common.thread_env(), "PYTHONPATH": str(SRC)})
    return path


def predict_runs(bundle: Path, rows: int, tag: str, repeats: int) -> list[dict]:
    inp = WORK / f"in-{rows}.parquet"
    if not inp.exists():
        make_input(rows, inp)
    out_rows = []
    for engine, workers in (("local", 1), ("ray", 1), ("ray", 2)):
        runs = []
        for r in range(repeats):
            out = WORK / f"out-{tag}-{engine}{workers}.parquet"
            shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
            cmd = [sys.executable, "-m", "ronghe", "predict", str(bundle), "--input", str(inp),
                   "--output", str(out), "-q"]
            if engine == "ray":
                cmd += ["--engine", "ray", "--workers", str(workers)]
            # one thread per worker: Ray's 2 actors use the 2 cores; local runs get both
            runs.append(timed(cmd, WORK / f"{tag}-{engine}{workers}-{r}.log",
                              threads=2 if engine == "local" else 1))
        walls = sorted(x["wall_seconds"] for x in runs)
        wall = walls[len(walls) // 2]
        out_rows.append({"bundle": tag, "engine": engine, "workers": workers, "rows": rows,
                         "wall_seconds": wall, "rows_per_s": round(rows / wall, 1),
                         "peak_rss_mb": max(x["peak_rss_mb"] for x in runs),
                         "runs": runs, "extrapolated_1m_seconds": round(wall * 1e6 / rows, 1)})
        print(out_rows[-1], flush=True)
    return out_rows


def train_runs(n: int) -> list[dict]:
    split = common.sst2_split(n, WORK)
    rows = []
    for procs in (1, 2):
        out = WORK / f"train-{procs}"
        for p in (out, Path(str(out) + ".run")):
            shutil.rmtree(p, ignore_errors=True)
        args = ["-m", "ronghe", "train", split["train"], "--valid", split["valid"], "--strategy",
                "finetune", "--model", "minilm", "--epochs", "1", "--batch-size", "16",
                "--max-length", "64", "--out", str(out), "-q"]
        cmd = ([sys.executable, *args] if procs == 1 else
               [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                "2", *args])
        res = timed(cmd, WORK / f"train-{procs}.log", threads=2 // procs)
        m = json.loads((out / "ronghe.json").read_text())
        steps = -(-split["n_train"] // 16)
        trainable = m["metrics"].get("parameters", {}).get("trainable")
        rows.append({"processes": procs, **res, "train_seconds": m["metrics"]["train_seconds"],
                     "n_train": split["n_train"], "n_valid": split["n_valid"],
                     "valid_accuracy": m["metrics"]["valid"]["accuracy"], "steps": steps,
                     "step_seconds": round(m["metrics"]["train_seconds"] / steps, 3),
                     "trainable_parameters": trainable,
                     "gradient_mb_per_step": round(trainable * 4 / 2**20, 1) if trainable else None})
        print(rows[-1], flush=True)
    return rows


def scaling(train: list[dict], gbit: float = 10.0) -> list[dict]:
    """Expected speed-up on N machines with a fixed global batch: compute per step t1/N, plus a
    ring all-reduce of the gradients (each machine sends and receives 2(N-1)/N of them) over a
    ``gbit`` Gbit/s link, not overlapped with compute (DDP overlaps part of it: this is the
    pessimistic bound)."""
    one = train[0]
    t1, grad = one["step_seconds"], one["gradient_mb_per_step"] * 2**20
    bw = gbit * 1e9 / 8
    out = []
    for n in (2, 4, 8, 16):
        comm = 2 * (n - 1) / n * grad / bw
        out.append({"machines": n, "compute_s": round(t1 / n, 3), "allreduce_s": round(comm, 3),
                    "speedup": round(t1 / (t1 / n + comm), 2), "link_gbit": gbit})
    return out


PHASES = ((1, 20), (8, 60), (1, 45))  # (clients, seconds)


def _drive(url: str, model: str, texts: list[str], phases, on_tick=None) -> tuple[list, list]:
    """Closed-loop clients (threads): phase by phase, the first ``clients`` of 8 threads send
    one text per request. Returns (requests as (phase, t, ms, ok), ticks of ``on_tick()``)."""
    import httpx

    level, stop, lock = [0], threading.Event(), threading.Lock()
    phase, reqs, ticks = [0], [], []

    def client(i: int) -> None:
        with httpx.Client(timeout=30) as c:
            k = i
            while not stop.is_set():
                if i >= level[0]:
                    time.sleep(0.01)
                    continue
                t = time.perf_counter()
                try:
                    ok = c.post(f"{url}/v1/models/{model}/predict",
                                json={"texts": [texts[k % len(texts)]]}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    reqs.append((phase[0], time.perf_counter() - t0, 1000 * (time.perf_counter() - t), ok))
                k += 8

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(max(c for c, _ in phases))]
    for th in threads:
        th.start()
    for n, (clients, seconds) in enumerate(phases):
        phase[0], level[0] = n, clients
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            if on_tick:
                ticks.append((n, round(time.perf_counter() - t0, 1), on_tick()))
            time.sleep(1)
    stop.set()
    for th in threads:
        th.join()
    return reqs, ticks


def _phase_stats(reqs, n: int, seconds: float) -> dict:
    import numpy as np

    lat = [ms for p, _, ms, ok in reqs if p == n and ok]
    return {"requests": len(lat), "errors": sum(1 for p, *_, ok in reqs if p == n and not ok),
            "req_per_s": round(len(lat) / seconds, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if lat else None,
            "p95_ms": round(float(np.percentile(lat, 95)), 2) if lat else None}


def serve_part(bundle: Path) -> dict:
    from ronghe.scale import serve as ray_serve
    from ronghe.serving.server import build_config

    texts = common.read_sst2("dev")[0]
    os.environ.update({"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})
    port = common.free_port()
    config = build_config([bundle], port=port, request_log="off")
    opts = ray_serve.options({"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 2,
                              "replica_cpus": 1, "upscale_delay_s": 0, "downscale_delay_s": 10})
    t = time.perf_counter()
    url = ray_serve.start(config, opts, num_cpus=2, object_store_memory=int(2e8))
    startup = time.perf_counter() - t
    reqs, ticks = _drive(url, bundle.name, texts, PHASES,
                         on_tick=lambda: ray_serve.replicas().get("RUNNING", 0))
    ray_serve.stop()
    import ray

    ray.shutdown()
    phases = []
    for n, (clients, seconds) in enumerate(PHASES):
        reps = [r for p, _, r in ticks if p == n]
        start = next(t for p, t, _ in ticks if p == n)
        two = next((t - start for p, t, r in ticks if p == n and r >= 2), None)
        phases.append({"clients": clients, "seconds": seconds, **_phase_stats(reqs, n, seconds),
                       "replicas_min": min(reps), "replicas_max": max(reps),
                       "replicas_end": reps[-1], "seconds_to_2_replicas": two})
    # the same bundle behind ronghe serve (uvicorn, one process), 8 clients
    port = common.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ronghe", "serve", str(bundle), "--port",
                             str(port), "--request-log", "off", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(SRC)})
    try:
        ray_serve._wait_ready(f"http://127.0.0.1:{port}", 120)
        local, _ = _drive(f"http://127.0.0.1:{port}", bundle.name, texts, ((8, 30),))
    finally:
        proc.terminate()
        proc.wait(30)
    if not any(ok for *_, ok in reqs) or not any(ok for *_, ok in local):
        raise SystemExit("every request failed: nothing recorded (check the model name and the "
                         "server logs)")
    return {"startup_seconds": round(startup, 1), "options": opts.model_dump(),
            "phases": phases, "timeline": ticks, "uvicorn_8_clients": _phase_stats(local, 0, 30),
            "machine": common.machine_info()}


def _serve_lines(sv: dict) -> list[str]:
    rows = [[p["clients"], p["seconds"], p["req_per_s"], p["p50_ms"], p["p95_ms"], p["errors"],
             f"{p['replicas_min']}-{p['replicas_max']} (end {p['replicas_end']})",
             "-" if p["seconds_to_2_replicas"] is None else f"{p['seconds_to_2_replicas']:.0f}"]
            for p in sv["phases"]]
    u = sv["uvicorn_8_clients"]
    o = sv["options"]
    return ["### Elastic serving: `ronghe serve --engine ray`", "",
            f"Machine for this part: {common.machine_line(sv['machine'])}.", "",
            f"The classic bundle as a Ray Serve deployment on a local Ray (2 CPUs): "
            f"{o['min_replicas']}-{o['max_replicas']} replicas of {o['replica_cpus']:g} CPU, "
            f"autoscaling target {o['target_ongoing_requests']:g} ongoing requests per replica, "
            f"upscale delay {o['upscale_delay_s']:g} s, downscale delay {o['downscale_delay_s']:g} s; "
            f"deployment ready in {sv['startup_seconds']} s (Ray started inside). Closed-loop "
            "clients on the same machine, one SST-2 dev sentence per request; the replica count "
            "is read from `serve.status()` every second.", "",
            common.md_table(["clients", "s", "req/s", "p50 ms", "p95 ms", "errors",
                             "running replicas", "s to 2 replicas"], rows), "",
            f"The same bundle behind `ronghe serve` (uvicorn, one process) at 8 clients: "
            f"{u['req_per_s']} req/s, p50 {u['p50_ms']} ms, p95 {u['p95_ms']} ms - "
            f"{u['req_per_s'] / max(sv['phases'][1]['req_per_s'], 1e-9):.1f}x Ray Serve's "
            "throughput at 8 clients. On one 2-core machine Ray's proxy, controller and replicas "
            "compete with each other and with the load generator, and each request crosses two "
            "processes (proxy, then replica), so the run shows the autoscaler at work - the "
            "second replica added under load and removed after it - not a speed-up: Ray Serve "
            "pays off across machines, and uvicorn workers are the better answer on one. Failed "
            "requests are counted as errors (not classified by status).", ""]


def _extrapolation_note(inf: list[dict]) -> str:
    small = sorted({r["bundle"] for r in inf if r["rows"] < 1_000_000})
    if not small:
        return "Every configuration ran on 1M rows or more."
    return (f"**{' and '.join(small)}: fewer than 1M rows measured; the 1M-row minutes of "
            "these rows are the measured whole-command rate extrapolated linearly, not measured** - for Ray the "
            "fixed start-up (tens of seconds: the Ray processes, one actor per worker importing "
            "ronghe and loading the bundle) is part of that rate, so its 1M-row figure is "
            "pessimistic; at 1M rows the per-row cost dominates.")


def readme(result: dict, quick: bool) -> str:
    inf = result["inference"]
    local = {r["bundle"]: r for r in inf if r["engine"] == "local"}
    rows = []
    for r in inf:
        base = local.get(r["bundle"])
        extra = (f"+{r['wall_seconds'] - base['wall_seconds']:,.0f}" if base and r is not base
                 else "-")
        rows.append([r["bundle"], r["engine"] + (f" ({r['workers']} actor{'s' * (r['workers'] > 1)})"
                                                 if r["engine"] == "ray" else ""),
                     f"{r['rows']:,}", f"{r['wall_seconds']:,.0f}", f"{r['rows_per_s']:,.0f}",
                     f"{r['peak_rss_mb']:,.0f}", extra,
                     (f"{r['wall_seconds'] / 60:,.1f} (measured)" if r["rows"] >= 1_000_000
                      else f"{r['extrapolated_1m_seconds'] / 60:,.0f} (extrapolated)")])
    train = result.get("training", [])
    trows = [[t["processes"], t["wall_seconds"], t["train_seconds"], t["step_seconds"],
              t["valid_accuracy"], t["gradient_mb_per_step"]] for t in train]
    srows = [[s["machines"], s["compute_s"], s["allreduce_s"], s["speedup"]]
             for s in result.get("scaling", [])]
    m = result["machine"]
    cmd = result.get("command", "python benchmarks/scale.py")
    lines = ["## Scaling out: batch inference and data-parallel training (`scale.py`)", "",
             common.quick_note(quick, "python benchmarks/scale.py"),
             common.machine_line(m) + f" (lscpu model name: {m['cpu']}). 1-minute load average "
             f"{m.get('load_average_start', ['?'])[0]} at the start, "
             f"{', '.join(str(x) for x in m.get('loads', []))} after each part, "
             f"{m.get('load_average_end', ['?'])[0]} at the end: " +
             common.load_note(m.get("loads", [])) + ".", "",
             "Batch inference of SST-2 sentences repeated with a row id (Parquet in, Parquet out), "
             "`ronghe predict` in a fresh process per run (Ray: a local Ray started by the "
             "command, its start-up included); rows/s over the whole command, peak = summed RSS "
             "of the process tree (Ray: driver, raylet, GCS, agents and actors; the object store "
             "is shared memory counted in each process that maps it, so Ray's peak is an upper "
             "bound). Ray overhead = the Ray run's seconds minus the local run's on the same rows. "
             + _extrapolation_note(inf), "",
             common.md_table(["bundle", "engine", "rows measured", "wall s", "rows/s", "peak MB",
                              "Ray overhead s", "1M rows (min)"], rows), "",
             "On one 2-core machine Ray cannot beat the local path: the local run already uses "
             "both cores (2 threads), Ray adds its own processes and a CPU kept free for Ray "
             "Data's read/write tasks (so 1 actor = 1 core predicting), and each block crosses "
             "the object store. What Ray buys is more machines: with N machines of actors the "
             "per-row work divides by N while the start-up stays fixed.", ""]
    if trows:
        lines += ["Data-parallel fine-tuning (MiniLM, 1 epoch, effective batch 16, both runs on "
                  "the same 2 cores: 1 process x 2 threads vs 2 torchrun processes x 1 thread):", "",
                  common.md_table(["processes", "wall s", "train s", "s / step", "valid accuracy",
                                   "gradient MB / step"], trows), "",
                  "Two processes on the same 2 cores cannot be faster than one process using both "
                  "cores: they split the same CPU and add the all-reduce of the gradients "
                  "(here through loopback gloo; the extra seconds per step of the 2-process run "
                  "are that all-reduce plus 2 processes' scheduling). What "
                  "the run shows is the same loop, the same schedule (the same steps) and an "
                  f"accuracy within the noise of {train[0].get('n_valid', 40)} validation "
                  "examples after one epoch. Speed-up "
                  "needs more machines. Expected speed-up on N machines with the global batch "
                  "fixed, from the measured 1-process step time t1 and gradient volume G "
                  "(fp32 gradients of every trainable parameter, all-reduced every step), a "
                  "10 Gbit/s link and a ring all-reduce not overlapped with compute "
                  "(t = t1/N + 2(N-1)/N x G / bandwidth; a pessimistic bound, DDP overlaps part "
                  "of it; on a faster machine t1 shrinks and the all-reduce share grows):", "",
                  common.md_table(["machines", "compute s/step", "all-reduce s/step", "speed-up"],
                                  srows), ""]
    if result.get("serve"):
        lines += _serve_lines(result["serve"])
    lines += common.reproduce(f"flock /tmp/ronghe-bench.lock {cmd}", NAME, quick)
    if result.get("serve"):
        lines += ["", "The elastic-serving part: `flock /tmp/ronghe-bench.lock python "
                  "benchmarks/scale.py --part serve`."]
    return "\n".join(lines)


def main() -> None:
    ap = common.parser(__doc__)
    ap.add_argument("--rows-classic", type=int, default=200_000)
    ap.add_argument("--rows-int8", type=int, default=5_000)
    ap.add_argument("--int8", type=Path, default=None,
                    help="an int8 ONNX text bundle (default: one made here, see int8_bundle)")
    ap.add_argument("--train-n", type=int, default=1_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--part", choices=["all", "serve"], default="all",
                    help="serve: only the Ray Serve part (the rest of the JSON is kept)")
    args = ap.parse_args()
    if common.handled(args, NAME, readme):
        return
    if args.part == "serve":
        t0 = time.perf_counter()
        path = common.result_path(NAME, args.quick)
        result = json.loads(path.read_text())
        result["serve"] = serve_part(classic_bundle(WORK / "classic"))
        common.write_json(NAME, result, args.quick)
        common.write_readme_section(NAME, readme(result, args.quick))
        print(json.dumps(result["serve"]["phases"], indent=1))
        print(f"done in {time.perf_counter() - t0:.0f} s")
        return
    if args.quick:
        args.rows_classic, args.rows_int8, args.train_n, args.repeats = 20_000, 500, 200, 1
    common.pin_threads()
    WORK.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    info = common.machine_info()
    loads = []
    inference = predict_runs(classic_bundle(WORK / "classic"), args.rows_classic, "classic",
                             args.repeats)
    loads.append(common.load_average()[0])
    int8 = args.int8 or int8_bundle(WORK / "sst2-int8")
    inference += predict_runs(int8, args.rows_int8, "onnx-int8", args.repeats)
    loads.append(common.load_average()[0])
    result = {"machine": {**info, "loads": loads}, "inference": inference,
              "command": "python " + " ".join(["benchmarks/scale.py", *sys.argv[1:]])}
    old = common.result_path(NAME, args.quick)
    if old.exists() and "serve" in (kept := json.loads(old.read_text())):
        result["serve"] = kept["serve"]  # --part serve's numbers, measured apart
    if not args.skip_training:
        result["training"] = train_runs(args.train_n)
        result["scaling"] = scaling(result["training"])
        loads.append(common.load_average()[0])
    common.finish(NAME, result, args, readme, t0)


if __name__ == "__main__":
    main()
