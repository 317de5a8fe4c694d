"""Shared helpers for the benchmark scripts.

The command line every script shares (``parser``: --quick, --readme, --rewrite-readme and the
hidden --worker; ``handled``: the two modes that run no benchmark; ``finish``: write the JSON and
the README section), thread pinning (call ``pin_threads()`` before importing torch), machine information for the JSON
results, the seeded SST-2 samples every script uses, CPU-time bookkeeping and the writer that
replaces one ``<!-- NAME:start -->`` ... ``<!-- NAME:end -->`` section of ``benchmarks/README.md``
without touching the others.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
WORK = HERE / ".work"
README = HERE / "README.md"
DATA = Path(os.environ.get("SST2_DIR", "/work/shared/data/sst2"))
THREADS = 2


def thread_env(threads: int = THREADS) -> dict[str, str]:
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "OPENBLAS_NUM_THREADS": str(threads), "RAYON_NUM_THREADS": str(threads),
            "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error",
            "PYTHONHASHSEED": "0", "TQDM_DISABLE": "1"}


def pin_threads(threads: int = THREADS) -> None:
    """Set the thread variables (must run before torch is imported) and, if torch is already
    imported, its thread count."""
    os.environ.update(thread_env(threads))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def torch_threads(threads: int = THREADS) -> None:
    import torch

    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------- machine info

def _cpuinfo(key: str) -> str | None:
    """The first /proc/cpuinfo line's value for ``key`` (None where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> str:
    """Every flag /proc/cpuinfo lists for the first CPU (empty where it cannot be read)."""
    return _cpuinfo("flags") or ""


def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or "unknown"


def cpu_details() -> dict:
    """Family/model numbers and the ISA flags that matter for torch on CPU (family 6 model 143
    is Sapphire Rapids)."""
    out: dict = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            k, _, v = line.partition(":")
            k = k.strip()
            if k in ("cpu family", "model") and k not in out:
                out[k.replace(" ", "_")] = v.strip()
            if k == "flags":
                flags = set(v.split())
                out["isa"] = sorted(f for f in flags if f.startswith(("avx512", "amx"))
                                    or f in ("avx2", "fma"))
                break
    except OSError:
        pass
    return out


def flops_per_example(n: int, enc: dict, layers: int) -> float:
    """Encoder FLOPs (multiply-add = 2) for n tokens: Q, K, V and output projections (4 n h^2),
    the FFN (2 n h i), scores QK^T and context AV (2 n^2 h); embeddings, softmax, layer norms,
    pooling and the head are left out (< 1 %)."""
    h, i = enc["hidden_size"], enc["intermediate_size"]
    return layers * 2 * (n * (4 * h * h + 2 * h * i) + 2 * n * n * h)


def peak_gflops(threads: int) -> dict:
    """Estimated peak: threads x 2 FMA units x fp32 lanes x 2 flops x nominal clock - 16 lanes
    with AVX-512 on 512-bit datapaths, 8 with AVX2 or on AMD Zen 4 (family 25), which runs AVX-512
    on 256-bit halves; bf16 (VDPBF16PS) and int8 (VPDPBUSD, VNNI) do 2x and 4x the fp32 rate per
    instruction, int8 without VNNI 2x."""
    mhz = [float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
           if line.startswith("cpu MHz")]
    cpu = cpu_details()
    isa = cpu.get("isa", [])
    zen4 = _cpuinfo("vendor_id") == "AuthenticAMD" and cpu.get("cpu_family") == "25"
    lanes, units = (16, "AVX-512") if "avx512f" in isa and not zen4 else (
        8, "AVX-512 on 256-bit datapaths (Zen 4)" if zen4 else "AVX2")
    ghz = max(mhz) / 1000 if mhz else float("nan")
    fp32 = threads * 2 * lanes * 2 * ghz
    out = {"clock_ghz": round(ghz, 3), "fp32": round(fp32, 1),
           "bf16": round(fp32 * (2 if "avx512_bf16" in isa else 1), 1),
           "int8": round(fp32 * (4 if "avx512_vnni" in isa else 2), 1), "units": units}
    if "amx_bf16" in isa and "amx_int8" in isa:  # AMX tiles: 1,024 bf16 / 2,048 int8 ops per cycle
        out.update({"bf16": round(threads * 1024 * ghz, 1), "int8": round(threads * 2048 * ghz, 1),
                    "units": "AMX for bf16/int8, AVX-512 for fp32"})
    return out


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def versions(python: str | None = None) -> dict:
    """Library versions, of this interpreter or of another one (``python``)."""
    code = ("import json, importlib.metadata as m\n"
            "out = {}\n"
            "for p in ('torch', 'transformers', 'peft', 'sentence-transformers', 'setfit', "
            "'scikit-learn', 'ronghe'):\n"
            "    try: out[p] = m.version(p)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(out))")
    if python is None:
        ns: dict = {}
        import contextlib
        import io

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(code, ns)
        return json.loads(buf.getvalue())
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def machine_info() -> dict:
    return {"cpu": cpu_model(), "cpu_details": cpu_details(), "cores": os.cpu_count(),
            "threads_used": THREADS,
            "python": platform.python_version(), "platform": platform.platform(),
            "versions": versions(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "load_average_start": load_average()}


class LoadMonitor:
    """Samples the 1-minute load average every ``every`` seconds in a thread; the summary goes
    into the JSON so noisy timings can be recognised."""

    def __init__(self, every: float = 15.0):
        import threading

        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every):
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        s = self.samples or [os.getloadavg()[0]]
        return {"load1_min": round(min(s), 2), "load1_mean": round(sum(s) / len(s), 2),
                "load1_max": round(max(s), 2), "samples": len(s)}


# -------------------------------------------------------------------------------------- data

def read_sst2(split: str):
    """(texts, labels) of an SST-2 split from the TSV files (train: ``sentence``, dev:
    ``content``), read through ronghe's own reader."""
    from ronghe import data

    ds = data.load(DATA / f"{split}.tsv")
    return list(ds.texts), [int(y) for y in ds.labels]


def read_data(data: str, split: str) -> tuple[list[str], list[int]]:
    """(texts, integer labels) of a split: SST-2 ``train`` / ``dev``; BANKING77 ``train`` /
    ``test`` (its intents numbered in sorted order)."""
    if data == "sst2":
        return read_sst2("train" if split == "train" else "dev")
    import pandas as pd

    folder = DATA.parent / "banking77"
    classes = sorted(pd.read_csv(folder / "train.csv").category.unique())
    df = pd.read_csv(folder / ("train.csv" if split == "train" else "test.csv"))
    ids = {c: i for i, c in enumerate(classes)}
    return list(df.text), [ids[c] for c in df.category]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (for a server a benchmark starts)."""
    import socket

    with socket.socket() as s_:
        s_.bind((host, 0))
        return s_.getsockname()[1]


def sample_indices(n_total: int, n: int, seed: int) -> list[int]:
    import numpy as np

    rng = np.random.default_rng(seed)
    return sorted(rng.choice(n_total, size=min(n, n_total), replace=False).tolist())


def per_class_sample(labels: list[int], k: int, seed: int) -> list[int]:
    """``k`` examples of each class, seeded."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y = np.asarray(labels)
    out = []
    for c in sorted(set(labels)):
        out += rng.choice(np.flatnonzero(y == c), size=k, replace=False).tolist()
    return sorted(out)


# ------------------------------------------------------------------------------ measurements

def cpu_seconds(who=resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def peak_rss_mb(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def dir_size(path: Path, exclude_under: tuple[str, ...] = ()) -> int:
    total = 0
    for p in Path(path).rglob("*"):
        if p.is_file():
            rel = p.relative_to(path).as_posix()
            if any(rel == e or rel.startswith(e.rstrip("/") + "/") for e in exclude_under):
                continue
            total += p.stat().st_size
    return total


def run_json(cmd: list[str], out_json: Path, log: Path, env: dict | None = None,
             timeout: float | None = None) -> dict:
    """Run a worker subprocess that writes ``out_json``; returns its content plus the wall
    and CPU seconds of the child as seen from here."""
    full_env = {**os.environ, **thread_env(), **(env or {})}
    before = cpu_seconds(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=full_env,
                              timeout=timeout, cwd=ROOT)
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - before
    if proc.returncode != 0:
        tail = Path(log).read_text()[-3000:]
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{tail}")
    result = json.loads(Path(out_json).read_text())
    result.setdefault("process", {}).update({"wall_seconds": round(wall, 2),
                                             "cpu_seconds": round(cpu, 2)})
    return result


# ---------------------------------------------------------------------------------- command line

def parser(doc: str, quick_help: str = "smoke run: tiny sizes, numbers not meaningful"
           ) -> argparse.ArgumentParser:
    """The flags every benchmark has; the script adds its own. ``--worker KIND SPEC OUT`` is how
    a script runs one measurement in a fresh subprocess of itself (see ``handled``)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--readme", action="store_true", help="also write the README section for --quick")
    ap.add_argument("--rewrite-readme", action="store_true",
                    help="rewrite the README section from the saved JSON, run nothing")
    ap.add_argument("--worker", nargs=3, metavar=("KIND", "SPEC", "OUT"), help=argparse.SUPPRESS)
    return ap


def result_path(name: str, quick: bool) -> Path:
    return RESULTS / f"{name}{'.quick' if quick else ''}.json"


def handled(args: argparse.Namespace, name: str, readme, workers: dict | None = None) -> bool:
    """Serve the modes that run no benchmark; True if one ran (the caller then returns).

    ``--rewrite-readme``: the README section from the saved JSON (``readme(result, quick)``).
    ``--worker KIND SPEC OUT``: ``workers[KIND](spec)`` on the JSON spec, its result (plus the
    process's peak RSS) written to OUT for the parent's ``run_json``."""
    if args.rewrite_readme:
        write_readme_section(name, readme(json.loads(result_path(name, args.quick).read_text()),
                                          args.quick))
        return True
    if args.worker:
        kind, spec, out = args.worker
        res = workers[kind](json.loads(Path(spec).read_text()))
        res["peak_rss_mb"] = round(peak_rss_mb(), 1)
        Path(out).write_text(json.dumps(res, default=str))
        return True
    return False


def finish(name: str, result: dict, args: argparse.Namespace, readme, t0: float) -> Path:
    """Stamp the end load and total time, write the JSON, and (full runs, or --quick --readme)
    the README section."""
    result["machine"]["load_average_end"] = load_average()
    result["total_wall_seconds"] = round(time.perf_counter() - t0, 1)
    path = write_json(name, result, args.quick)
    print(f"wrote {path} in {result['total_wall_seconds']} s")
    if not args.quick or args.readme:
        write_readme_section(name, readme(result, args.quick))
        print(f"updated {README} section {name}")
    return path


def run_worker(script: str, kind: str, spec: dict, tag: str, work: Path, *, python: str | None = None,
               env: dict | None = None, timeout: float | None = None,
               monitor_every: float = 15.0) -> dict:
    """Run ``script --worker KIND SPEC OUT`` in a fresh process (``python``: another interpreter,
    e.g. a separate venv): the spec and the log go to ``work/TAG.*``; returns the worker's result
    with the child's wall/CPU seconds (``process``) and the machine load while it ran (``load``)."""
    work = Path(work)
    sp, out = work / f"{tag}.spec.json", work / f"{tag}.result.json"
    sp.write_text(json.dumps(spec))
    out.unlink(missing_ok=True)
    with LoadMonitor(monitor_every) as mon:
        res = run_json([python or sys.executable, script, "--worker", kind, str(sp), str(out)], out,
                       work / f"{tag}.log", env=env, timeout=timeout)
    res["load"] = mon.summary()
    return res


def write_jsonl(path: Path, texts, labels) -> str:
    """Texts with integer labels as JSON lines - how a benchmark hands data to its worker
    processes (``read_jsonl`` reads it back); returns the path as a string for a spec."""
    Path(path).write_text("".join(json.dumps({"text": t, "label": int(y)}) + "\n"
                                  for t, y in zip(texts, labels)))
    return str(path)


def read_jsonl(path) -> tuple[list[str], list[int]]:
    """(texts, labels) of a file written by ``write_jsonl``."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def sst2_split(n: int, work: Path) -> dict:
    """A seeded sample of ``n`` SST-2 training sentences split 90/10 into train/valid (ronghe's
    own stratified split, seed 0) and the dev set, written as JSONL under ``work``."""
    from ronghe import data

    texts, labels = read_sst2("train")
    idx = sample_indices(len(texts), n, seed=0)
    train, valid = data.split(data.from_texts([texts[i] for i in idx], [labels[i] for i in idx]),
                              0.1, 0)
    dev_t, dev_y = read_sst2("dev")

    def dump(name, t, y):
        return write_jsonl(Path(work) / f"{name}.jsonl", t, y)

    return {"train": dump("train", train.texts, train.labels),
            "valid": dump("valid", valid.texts, valid.labels), "dev": dump("dev", dev_t, dev_y),
            "n_sample": n, "n_train": len(train), "n_valid": len(valid), "n_dev": len(dev_t)}


# ---------------------------------------------------------------------------------- writing

def write_json(name: str, payload: dict, quick: bool) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = result_path(name, quick)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def write_readme_section(name: str, body: str) -> None:
    """Replace (or append) the section between this name's markers; other sections are kept
    byte for byte."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    if start in text and end in text:
        a = text.index(start)
        b = text.index(end) + len(end)
        text = text[:a] + block + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    README.write_text(text)


def md_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def machine_line(info: dict) -> str:
    v = info.get("versions", {})
    isa = info.get("cpu_details", {}).get("isa", [])
    amx = ("AMX" if any(f.startswith("amx") for f in isa) else
           "AVX-512, no AMX exposed" if any(f.startswith("avx512") for f in isa) else
           "AVX2, no AVX-512" if "avx2" in isa else "no AVX2")
    return (f"{info['cpu']} ({amx}), {info['cores']} cores ({info['threads_used']} threads pinned), "
            f"torch {v.get('torch')}, transformers {v.get('transformers')}, {info['date'][:10]}")


def load_note(loads: list[float]) -> str:
    """What the 1-minute load averages sampled during timed runs say about their seconds."""
    if loads and max(loads) <= THREADS + 0.6:
        return (f"nothing else ran: the load is the benchmark's own {THREADS} threads, so the "
                "seconds are clean")
    return ("other jobs shared the cores, so absolute seconds are noisy; the ratios measured side "
            "by side are the numbers to read")


def reproduce(command: str, name: str, quick: bool, setup: tuple[str, ...] = ()) -> list[str]:
    """The README lines that end a section: any one-off ``setup`` commands, then the command
    that reproduces it (``--quick`` added for a smoke run) and the JSON it writes."""
    q = ".quick" if quick else ""
    return ["Reproduce:", "", "```bash", *setup, f"{command}{' --quick' if quick else ''}   "
            f"# results: benchmarks/results/{name}{q}.json", "```"]


def quick_note(quick: bool, full_cmd: str) -> str:
    """The warning that heads a README section written from a ``--quick`` smoke run."""
    if not quick:
        return ""
    return (f"**Smoke run only (`--quick`): tiny sizes, numbers not meaningful.** The full run "
            f"(`{full_cmd}`) did not fit in the time available on the shared 2-core machine.\n\n")
