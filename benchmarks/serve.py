#!/usr/bin/env python
"""Serving benchmark: ``ronghe serve`` (micro-batching) vs a naive one-request-one-forward endpoint.

Question: what throughput and latency does the REST service give for single short texts, and how
much does micro-batching buy over the obvious FastAPI endpoint that runs the model once per
request?

Set-up (all on 127.0.0.1, bounded): a ``finetune`` MiniLM bundle trained on a seeded sample of
3,000 SST-2 training sentences (2 epochs, max_length 64; trained once and cached under
``benchmarks/.work/serve/``). Each server runs in its own process with one uvicorn worker:

* ``ronghe``: ``python -m ronghe.serving BUNDLE`` (what ``ronghe serve`` runs), default settings
  (max_batch_size 32, max_wait_ms 2, request log off so the disk is not measured);
* ``naive``: FastAPI + uvicorn, a plain ``def`` endpoint calling ``predict_proba([text])`` per
  request (FastAPI runs it in its thread pool, the way such endpoints are usually written);
* ``ronghe-onnx``: ``ronghe serve`` on an ONNX int8 bundle, when ``--onnx-bundle`` is given (ronghe
  serves whatever ``ronghe.load`` loads, so an exported bundle needs nothing else);
* with ``--int8``: ``ronghe-int8`` - the same bundle through ``ronghe compress --quantize int8``
  (dynamic int8 ONNX, 0.5-point gate on SST-2 dev), and ``ronghe-int8-student`` - a 3-layer
  student distilled from it (``ronghe distill --student layers:3`` on the same 3,000 sentences)
  through the same compression; both made here and cached;
* with ``--floor``, what the serving path costs without a transformer: ``ronghe-classic`` -
  ``ronghe serve`` on a ``classic`` (TF-IDF + logistic regression) bundle trained on the same
  3,000 sentences, a model that costs well under a millisecond, so the row is the service's own
  ceiling (HTTP, JSON, validation, auth/limits middleware, batcher, metrics); and ``http-floor`` -
  a bare ASGI app under the same uvicorn that reads the body, parses the JSON and returns a fixed
  answer: what Python HTTP alone allows with this load generator on this machine.

The load generator is a separate process: C concurrent clients (closed loop, one keep-alive
connection each, raw HTTP/1.1 so the client costs little CPU) send one SST-2 dev sentence per
request for a fixed duration (after a warm-up) or until a request cap, whichever comes first.
Reported: completed requests per second, p50/p99 latency, errors (non-200 or failed requests),
for ronghe the mean batch size (from its /metrics), and the CPU the server process (all its
threads) and the load generator spent per answered request, with the mean-latency floor it
implies (Little's law: clients x CPU per request / cores). Client and servers share the machine's
cores; the load average at the start of each run is recorded, since other work on the machine
changes the numbers.

Usage::

    python benchmarks/serve.py                # full run: levels 1, 8, 64; 10 s each (~3 min)
    python benchmarks/serve.py --quick        # 3 s per level
    python benchmarks/serve.py --onnx-bundle PATH

Writes ``benchmarks/results/serve.json`` (``serve.quick.json`` with ``--quick``) and the section
between ``<!-- serve:start -->`` and ``<!-- serve:end -->`` in ``benchmarks/README.md`` (not for
``--quick`` unless ``--readme``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import common  # benchmarks/common.py: this script's folder is first on sys.path
from ronghe.serving.config import default_inference_threads

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NAME = "serve"
RESULTS = HERE / "results"
WORK = HERE / ".work" / NAME
README = HERE / "README.md"
START, END = f"<!-- {NAME}:start -->", f"<!-- {NAME}:end -->"
DATA = Path(os.environ.get("SST2_DIR", "/work/shared/data/sst2"))
HOST = "127.0.0.1"
# The naive endpoint runs its requests' model calls at once in FastAPI's thread pool, so more
# torch threads per call would oversubscribe the cores; it keeps cores - 1 (ronghe serve's default
# until 2026-12-04), so ronghe's change of default leaves the baseline as it was.
NAIVE_THREADS = max(1, (os.cpu_count() or 2) - 1)
TRAIN = {"strategy": "finetune", "model": "minilm", "epochs": 2, "max_length": 64, "seed": 0,
         "n_train": 3000}


# -- the bundle ---------------------------------------------------------------------------------

def ensure_bundle() -> tuple[Path, dict]:
    path = WORK / "bundles" / "finetune-3k"
    meta_file = WORK / "bundles" / "finetune-3k.train.json"
    if (path / "ronghe.json").exists():
        if not meta_file.exists():  # trained by an earlier version of this script: use the manifest
            m = json.loads((path / "ronghe.json").read_text())
            meta_file.write_text(json.dumps({**TRAIN, "train_seconds": m["metrics"].get(
                "train_seconds"), "valid": m["metrics"]["valid"]}, indent=2))
        return path, json.loads(meta_file.read_text())
    from ronghe import TextClassifier

    df = train_sample()
    t = time.perf_counter()
    clf = TextClassifier(strategy=TRAIN["strategy"], model=TRAIN["model"], epochs=TRAIN["epochs"],
                         max_length=TRAIN["max_length"], seed=TRAIN["seed"]).fit(df)
    clf.save(path)
    meta = {**TRAIN, "train_seconds": round(time.perf_counter() - t, 1),
            "valid": clf.metrics_["valid"]}
    meta_file.write_text(json.dumps(meta, indent=2))
    return path, meta


def train_sample():
    """The seeded sample of SST-2 train every bundle here is trained on (a text,label frame)."""
    import pandas as pd

    df = pd.read_csv(DATA / "train.tsv", sep="\t", quoting=3)
    return df.sample(n=TRAIN["n_train"], random_state=0).rename(columns={"sentence": "text"})


def classic_bundle() -> Path:
    """A ``classic`` bundle on the same 3,000 sentences (the serving path's own cost)."""
    path = WORK / "bundles" / "classic-3k"
    if (path / "ronghe.json").exists():
        return path
    from ronghe import TextClassifier

    TextClassifier(strategy="classic", seed=TRAIN["seed"]).fit(train_sample()).save(path)
    return path


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "ronghe", *args, "-q"], check=True, cwd=ROOT,
                   env={**os.environ, "HF_HUB_OFFLINE": "1",
                        "PYTHONPATH": str(ROOT / "src")})


def dev_csv() -> Path:
    """SST-2 dev as text,label CSV (what ``ronghe compress --valid`` and ``_accuracy`` read)."""
    import pandas as pd

    dev = WORK / "bundles" / "sst2-dev.csv"
    if not dev.exists():
        lines = (DATA / "dev.tsv").read_text(encoding="utf-8").splitlines()
        head = lines[0].split("\t")
        rows = [ln.split("\t") for ln in lines[1:] if ln.strip()]
        frame = pd.DataFrame(rows, columns=head)
        text = "sentence" if "sentence" in head else [c for c in head if c != "label"][0]
        dev.parent.mkdir(parents=True, exist_ok=True)
        frame.rename(columns={text: "text"})[["text", "label"]].to_csv(dev, index=False)
    return dev


def int8_bundles(teacher: Path) -> dict[str, Path]:
    """The teacher as dynamic int8 ONNX, and a 3-layer student of it as dynamic int8 ONNX (each
    behind ``compress``'s 0.5-point gate on SST-2 dev); made once and cached."""
    folder = WORK / "bundles"
    dev = dev_csv()
    train = folder / "sst2-train-3k.csv"
    if not train.exists():
        train_sample()[["text", "label"]].to_csv(train, index=False)
    out = {"ronghe-int8": folder / "finetune-3k-int8",
           "ronghe-int8-student": folder / "student-3l-int8"}
    student = folder / "student-3l"
    if not (out["ronghe-int8"] / "ronghe.json").exists():
        _cli("compress", str(teacher), "--quantize", "int8", "--valid", str(dev),
             "--out", str(out["ronghe-int8"]))
    if not (student / "ronghe.json").exists():
        _cli("distill", str(teacher), str(train), "--student", "layers:3", "--out", str(student))
    if not (out["ronghe-int8-student"] / "ronghe.json").exists():
        _cli("compress", str(student), "--quantize", "int8", "--valid", str(dev),
             "--out", str(out["ronghe-int8-student"]))
    return out


def _accuracy(bundle: Path) -> float:
    """SST-2 dev accuracy of a bundle (labels as the bundle names them: 0/1)."""
    import pandas as pd

    from ronghe import load

    dev = pd.read_csv(dev_csv())
    clf = load(bundle)
    return round(float((clf.predict(list(dev.text)).astype(str) == dev.label.astype(str)).mean()), 4)


def dev_texts() -> list[str]:
    lines = (DATA / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [_sentence(ln) if "\t" in ln else ln.strip() for ln in lines if ln.strip()]


def _sentence(line: str) -> str:
    # dev.tsv columns: sentence<TAB>label (GLUE) or label<TAB>sentence; take the non-label field
    a, b = line.split("\t", 1)
    return b.strip() if a.strip().isdigit() else a.strip()


# -- servers ------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def naive_server(bundle: str, port: int, threads: int) -> None:
    """The baseline: one forward pass per request, no batching."""
    import torch
    import uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel

    from ronghe import load
    from ronghe.tasks.text_classification import records

    torch.set_num_threads(threads)  # see NAIVE_THREADS
    clf = load(bundle)
    clf.predict_proba(["warm up"])

    global Body  # module level, so FastAPI resolves the (postponed) annotation below

    class Body(BaseModel):
        texts: list[str]

    app = FastAPI()

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.post("/predict")
    def predict(body: Body):
        return {"predictions": records(clf.classes_, clf.predict_proba(body.texts))}

    uvicorn.run(app, host=HOST, port=port, access_log=False, log_level="warning")


def floor_server(port: int) -> None:
    """The HTTP floor: a bare ASGI app that reads the body, parses the JSON and answers one fixed
    record per text - no framework, validation, batcher or model."""
    import uvicorn

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        if scope["method"] == "POST":
            texts = json.loads(body)["texts"]
            payload = {"predictions": [{"label": "1", "score": 0.5}] * len(texts)}
        else:
            payload = {"status": "ok"}
        out = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})

    uvicorn.run(app, host=HOST, port=port, access_log=False, log_level="warning", lifespan="off")


def start_server(kind: str, bundle: Path, port: int, log: Path, threads: int) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if kind == "http-floor":
        cmd = [sys.executable, __file__, "--floor-server", "--port", str(port)]
    elif kind == "naive":
        cmd = [sys.executable, __file__, "--naive-server", str(bundle), "--port", str(port),
               "--inference-threads", str(threads)]
    else:
        cmd = [sys.executable, "-m", "ronghe.serving", f"m={bundle}", "--port", str(port),
               "--request-log", "off", "--watch-interval-s", "0",
               "--inference-threads", str(threads)]
    return subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env,
                            cwd=ROOT)


def wait_ready(proc: subprocess.Popen, url: str, timeout: float = 180) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server not ready after {timeout}s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def scrape_batches(port: int) -> tuple[float, float]:
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("ronghe_batch_size_sum"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("ronghe_batch_size_count"):
            count += float(line.rsplit(" ", 1)[1])
    return total, count


# -- the load generator (runs in its own process) -------------------------------------------------

async def _one_client(port, path, texts, offset, t_start, t_end, cap, out, counter):
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        out["errors"] += 1
        return
    i = offset
    try:
        while True:
            now = time.perf_counter()
            if now >= t_end or counter[0] >= cap:
                break
            body = json.dumps({"texts": [texts[i % len(texts)]]}).encode()
            i += 13
            req = (f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            t0 = time.perf_counter()
            writer.write(req)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await asyncio.wait_for(reader.readexactly(length), 30)
            t1 = time.perf_counter()
            out["answered"] += 1  # warm-up included: the CPU counters cover it too
            if t0 >= t_start:  # after warm-up
                counter[0] += 1
                if status == 200:
                    out["latencies"].append(t1 - t0)
                else:
                    out["errors"] += 1
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
        out["errors"] += 1
    finally:
        writer.close()


async def _load(port, path, concurrency, duration, warmup, cap) -> dict:
    texts = dev_texts()
    out = {"latencies": [], "errors": 0, "answered": 0}
    counter = [0]
    cpu0 = time.process_time()
    t_start = time.perf_counter() + warmup
    t_end = t_start + duration
    await asyncio.gather(*(_one_client(port, path, texts, k * 97, t_start, t_end, cap, out, counter)
                           for k in range(concurrency)))
    elapsed = min(time.perf_counter(), t_end) - t_start
    client_cpu = time.process_time() - cpu0
    lat = sorted(out["latencies"])
    n = len(lat)

    def q(p):
        return round(lat[min(n - 1, int(p * n))] * 1000, 2) if n else None

    return {"concurrency": concurrency, "ok": n, "errors": out["errors"],
            "seconds": round(elapsed, 2), "throughput": round(n / elapsed, 1) if elapsed > 0 else 0,
            "p50_ms": q(0.50), "p90_ms": q(0.90), "p99_ms": q(0.99),
            "mean_ms": round(sum(lat) / n * 1000, 2) if n else None,
            "answered_all": out["answered"], "client_cpu_seconds": round(client_cpu, 3)}


def run_client(port, path, concurrency, duration, warmup, cap) -> dict:
    cmd = [sys.executable, __file__, "--client", "--port", str(port), "--path", path,
           "--concurrency", str(concurrency), "--duration", str(duration), "--warmup", str(warmup),
           "--max-requests", str(cap)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + warmup + 120)
    if res.returncode != 0:
        raise RuntimeError(f"load client failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# -- the run ------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (all threads)."""
    import psutil

    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def cpu_budget(r: dict, server_cpu: float, cores: int) -> None:
    """Add the CPU per answered request (server, load generator) and the latency floor it
    implies: with C closed-loop clients, throughput X and mean latency R obey C = X * R
    (Little's law), and X <= cores / CPU per request, so R >= C * CPU per request / cores -
    on these cores, however the work is scheduled."""
    n = r.get("answered_all") or 0
    if not n:
        return
    s_ms, c_ms = server_cpu / n * 1000, r["client_cpu_seconds"] / n * 1000
    r["cpu_ms_per_request"] = {"server": round(s_ms, 3), "client": round(c_ms, 3)}
    r["latency_floor_ms"] = round(r["concurrency"] * (s_ms + c_ms) / cores, 2)


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def bench(args) -> dict:
    load_before = load_average()
    bundle, train_meta = ensure_bundle()
    servers = [("ronghe", bundle), ("naive", bundle)]
    onnx_note = None
    accuracy = {}
    if args.int8:
        for kind, path in int8_bundles(bundle).items():
            servers.append((kind, path))
            accuracy[kind] = _accuracy(path)
        accuracy["ronghe"] = _accuracy(bundle)
    if args.floor:
        classic = classic_bundle()
        servers += [("ronghe-classic", classic), ("http-floor", None)]
        accuracy["ronghe-classic"] = _accuracy(classic)
    if args.onnx_bundle:
        servers.append(("ronghe-onnx", Path(args.onnx_bundle)))
    elif not args.int8:
        import importlib.util

        has_ort = importlib.util.find_spec("onnxruntime") is not None
        onnx_note = ("ONNX int8: not measured - no --onnx-bundle given"
                     + ("" if has_ort else " and onnxruntime is not installed"))
    threads = args.inference_threads or default_inference_threads()  # ronghe serve's default
    naive_threads = args.inference_threads or NAIVE_THREADS
    WORK.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind, path in servers:
        port = free_port()
        proc = start_server(kind, path, port, WORK / f"{kind}.server.log",
                            naive_threads if kind == "naive" else threads)
        try:
            bare = kind in ("naive", "http-floor")
            wait_ready(proc, f"http://{HOST}:{port}/" + ("healthz" if bare else "readyz"))
            url = "/predict" if bare else "/v1/models/m/predict"
            for c in args.levels:
                before = scrape_batches(port) if not bare else None
                load = load_average()
                cpu0 = cpu_seconds(proc.pid)
                r = run_client(port, url, c, args.duration, args.warmup, args.max_requests)
                r.update({"server": kind, "load_avg_1m": load})
                cpu_budget(r, cpu_seconds(proc.pid) - cpu0, os.cpu_count() or 1)
                if before is not None:
                    after = scrape_batches(port)
                    n = after[1] - before[1]
                    r["mean_batch"] = round((after[0] - before[0]) / n, 2) if n else None
                rows.append(r)
                print(f"{kind:12s} c={c:3d}  {r['throughput']:8.1f} req/s  p50 {r['p50_ms']} ms  "
                      f"p99 {r['p99_ms']} ms  errors {r['errors']}  batch {r.get('mean_batch')}  "
                      f"cpu/req {r.get('cpu_ms_per_request')}  floor {r.get('latency_floor_ms')} "
                      f"ms  load {load}", flush=True)
        finally:
            stop_server(proc)
    ratios = {}
    for c in args.levels:
        a = next((r for r in rows if r["server"] == "ronghe" and r["concurrency"] == c), None)
        b = next((r for r in rows if r["server"] == "naive" and r["concurrency"] == c), None)
        if a and b and b["throughput"]:
            ratios[str(c)] = round(a["throughput"] / b["throughput"], 2)
    import torch

    return {"benchmark": NAME, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "cpu": common.cpu_model(),
                        "cpu_details": common.cpu_details(), "platform": platform.platform(),
                        "python": platform.python_version(), "torch": torch.__version__,
                        "torch_threads_default": torch.get_num_threads(),
                        "load_avg_before": load_before, "load_avg_after": load_average()},
            "bundle": {"path": str(bundle.relative_to(ROOT)) if bundle.is_relative_to(ROOT)
                       else str(bundle), **train_meta},
            "settings": {"levels": args.levels, "duration_s": args.duration,
                         "warmup_s": args.warmup, "max_requests": args.max_requests,
                         "inference_threads": threads, "naive_threads": naive_threads,
                         "threads_source": "--inference-threads" if args.inference_threads
                         else "ronghe serve's default, the usable cores",
                         "ronghe": "defaults - max_batch_size 32, max_wait_ms 2 (skipped while "
                                   "arrivals are sparse), length-sorted groups of 8 per model "
                                   "call - and the request log off"},
            "rows": rows, "throughput_ratio_ronghe_over_naive": ratios, "onnx": onnx_note,
            "dev_accuracy": accuracy}


def markdown(res: dict) -> str:
    m, b = res["machine"], res["bundle"]
    threads_note = res["settings"].get("threads_source", "ronghe serve's default at the time, "
                                                         "cores - 1")
    lines = [
        "## Serving: `ronghe serve` vs a naive endpoint",
        "",
        f"Single SST-2 dev sentences per request, closed-loop clients on 127.0.0.1, "
        f"{res['settings']['duration_s']} s per level after {res['settings']['warmup_s']} s warm-up "
        f"(cap {res['settings']['max_requests']} requests). Bundle: `{b['strategy']}` "
        f"{b['model']} trained on {b['n_train']} SST-2 sentences ({b['epochs']} epochs, "
        f"max_length {b['max_length']}; valid accuracy {b['valid']['accuracy']:.3f}). ronghe: "
        f"{res['settings']['ronghe']}. naive: FastAPI `def` endpoint, one `predict_proba([text])` "
        "per request. One uvicorn worker each; the load generator runs on the same machine.",
        "",
        "| server | clients | req/s | p50 ms | p99 ms | errors | mean batch | CPU ms/req "
        "server + client | floor ms | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        cpu = r.get("cpu_ms_per_request")
        cpu_cell = f"{cpu['server']:.2f} + {cpu['client']:.2f}" if cpu else "-"
        lines.append(f"| {r['server']} | {r['concurrency']} | {r['throughput']:.1f} | "
                     f"{r['p50_ms']} | {r['p99_ms']} | {r['errors']} | "
                     f"{r.get('mean_batch') if r.get('mean_batch') is not None else '-'} | "
                     f"{cpu_cell} | {r.get('latency_floor_ms', '-')} | {r['load_avg_1m']} |")
    ratio = ", ".join(f"{c} clients: {v}x" for c, v in res["throughput_ratio_ronghe_over_naive"].items())
    lines += ["", f"Throughput ratio ronghe / naive: {ratio}."]
    naive64 = next((r["throughput"] for r in res["rows"] if r["server"] == "naive"
                    and r["concurrency"] == 64), None)
    for server in dict.fromkeys(r["server"] for r in res["rows"]
                                if r["server"] not in ("naive", "http-floor")):
        at8 = next((r for r in res["rows"] if r["server"] == server and r["concurrency"] == 8), None)
        at64 = next((r for r in res["rows"] if r["server"] == server and r["concurrency"] == 64),
                    None)
        if at8 is None:
            continue
        x64 = round(at64["throughput"] / naive64, 2) if at64 and naive64 else None
        ok8 = at8["p50_ms"] is not None and at8["p50_ms"] < 10 and at8["p99_ms"] < 50
        acc = res.get("dev_accuracy", {}).get(server)
        lines += ["", f"Targets for `{server}`"
                      + (f" (SST-2 dev accuracy {acc:.4f})" if acc is not None else "")
                      + f": p50 < 10 ms and p99 < 50 ms at 8 clients - "
                      f"{'met' if ok8 else 'not met'} ({at8['p50_ms']} / {at8['p99_ms']} ms); "
                      f">= 3x the naive throughput at 64 clients - "
                      f"{'met' if x64 and x64 >= 3 else 'not met'} ({x64}x)."]
    floor = {r["server"]: r for r in res["rows"] if r["concurrency"] == 8
             and r["server"] in ("ronghe-classic", "http-floor", "ronghe-int8", "ronghe-int8-student")}
    if "http-floor" in floor and "ronghe-classic" in floor:
        f, c = floor["http-floor"], floor["ronghe-classic"]
        lines += ["", "Where the 8-client latency goes (`--floor`): a bare ASGI app under the same "
                  f"uvicorn, parsing the JSON and answering a fixed record, gives p50 {f['p50_ms']} ms "
                  f"at {f['throughput']:.0f} req/s with this load generator on the same cores - the "
                  "floor for any Python server here; `ronghe serve` on a `classic` bundle (model "
                  f"well under 1 ms) gives p50 {c['p50_ms']} ms at {c['throughput']:.0f} req/s - the "
                  "service's own path (FastAPI, validation, auth/limits middleware, batcher, "
                  "metrics) with a cheap model"
                  + "".join(f"; `{k}` p50 {floor[k]['p50_ms']} ms at {floor[k]['throughput']:.0f} req/s"
                            for k in ("ronghe-int8-student", "ronghe-int8") if k in floor)
                  + ". By Little's law, p50 at 8 closed-loop clients is about 8 / throughput: "
                  f"the service with the `classic` model takes {1000 / c['throughput']:.2f} ms of "
                  "wall time per request at 8 clients; what a transformer row takes beyond that "
                  "is its model."]
    budget = [r for r in res["rows"] if r["concurrency"] == 8 and r.get("latency_floor_ms")
              and r["server"] != "http-floor"]
    if budget:
        cores = res["machine"]["cpus"]
        lines += ["", "The CPU budget (columns 'CPU ms/req' and 'floor'): CPU seconds the server "
                  "process (all threads) and the load generator spent per answered request, "
                  "warm-up included. With C closed-loop clients, throughput X and mean latency R "
                  "obey C = X * R (Little's law), and X cannot exceed cores / CPU per request, so "
                  f"R >= C * CPU per request / cores ({cores} cores here), however the work is "
                  "scheduled or batched. At 8 clients: "
                  + "; ".join(f"`{r['server']}` {r['cpu_ms_per_request']['server']:.2f} + "
                              f"{r['cpu_ms_per_request']['client']:.2f} ms -> floor "
                              f"{r['latency_floor_ms']} ms (p50 {r['p50_ms']} ms)" for r in budget)
                  + ". A row whose floor is above 10 ms cannot meet the aim on these cores at its "
                  "batch sizes; the gap between a floor and its p50 is waiting, not work."]
    if res.get("onnx"):
        lines += ["", res["onnx"] + "."]
    lines += ["", f"Machine: {m['cpus']} CPUs{' of ' + m['cpu'] if m.get('cpu') else ''}"
                  f"{' (' + ', '.join(m['cpu_details'].get('isa', [])) + ')' if m.get('cpu_details') else ''}, {m['platform']}, Python {m['python']}, torch "
                  f"{m['torch']}; ronghe serve uses {res['settings']['inference_threads']} "
                  f"inference thread(s) per model call ({threads_note}), the naive endpoint "
                  f"{res['settings'].get('naive_threads', res['settings']['inference_threads'])} "
                  "torch thread(s); 1-minute load average "
                  + (f"{m['load_avg_before']} before and " if m.get("load_avg_before") is not None
                     else "")
                  + f"{m['load_avg_after']} after the run (other jobs were using the CPU when it is "
                  "above ~1; the 'load avg' column is taken at the start of each level). Date: "
                  f"{res['date']}.",
              "", "Reproduce: `python benchmarks/serve.py"
              + (" --int8" if any(k.startswith("ronghe-int8") for k in res.get("dev_accuracy", {}))
                 else "")
              + (" --floor" if "ronghe-classic" in res.get("dev_accuracy", {}) else "")
              + "` (JSON: `benchmarks/results/serve.json`)."]
    return "\n".join(lines) + "\n"


def write_readme(section: str) -> None:
    block = f"{START}\n{section}{END}"
    text = README.read_text(encoding="utf-8") if README.exists() else "# Benchmarks\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = README.with_name(f".{README.name}.serve.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, README)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--readme", action="store_true", help="update README.md even with --quick")
    ap.add_argument("--levels", default="1,8,64")
    ap.add_argument("--duration", type=float, default=None, help="seconds per level")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--max-requests", type=int, default=50_000, help="cap per level")
    ap.add_argument("--onnx-bundle", default=None)
    ap.add_argument("--int8", action="store_true",
                    help="also serve the bundle's int8 ONNX form and a 3-layer int8 student")
    ap.add_argument("--floor", action="store_true",
                    help="also serve a classic bundle and a bare ASGI app: the serving path's "
                         "and Python HTTP's own ceilings")
    ap.add_argument("--inference-threads", type=int, default=None)
    ap.add_argument("--render", action="store_true", help="rewrite the README section from the "
                                                          "saved JSON, without running")
    # internal modes
    ap.add_argument("--naive-server", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--floor-server", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--path", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--concurrency", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.naive_server:
        naive_server(args.naive_server, args.port, args.inference_threads or 1)
        return 0
    if args.floor_server:
        floor_server(args.port)
        return 0
    if args.client:
        res = asyncio.run(_load(args.port, args.path, args.concurrency, args.duration,
                                args.warmup, args.max_requests))
        print(json.dumps(res))
        return 0
    if args.render:
        write_readme(markdown(json.loads((RESULTS / f"{NAME}.json").read_text())))
        print(f"updated {README}")
        return 0
    args.levels = [int(x) for x in args.levels.split(",")]
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    res = bench(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / (f"{NAME}.quick.json" if args.quick else f"{NAME}.json")
    out.write_text(json.dumps(res, indent=2))
    print(f"wrote {out}")
    section = markdown(res)
    print(section)
    if not args.quick or args.readme:
        write_readme(section)
        print(f"updated {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
