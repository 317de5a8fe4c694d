#!/usr/bin/env python
"""Inference threads for ``ronghe serve``: 1 (the old default, cores - 1 on 2 cores) against every
core (the default since 2026-12-04), interleaved rounds on one machine.

Question: with one model call at a time, does the call's thread count matter once the event loop
and a load generator share the cores? A single back-to-back comparison is not enough on machines
whose speed drifts between runs, so the settings alternate round by round and the medians are
compared.

Uses ``serve.py``'s bundles (``benchmarks/.work/serve/bundles``, made by ``serve.py --int8``), its
server start-up and its load generator; 8 closed-loop clients per run.

    python benchmarks/serve_threads.py [--rounds 4] [--duration 8]

Writes ``benchmarks/results/serve_threads.json`` and its README section.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from datetime import datetime, timezone
from pathlib import Path

import common
import serve

NAME = "serve_threads"
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BUNDLES = {"ronghe (torch fp32)": "finetune-3k", "ronghe-int8": "finetune-3k-int8",
           "ronghe-int8-student": "student-3l-int8"}


def run(args) -> dict:
    cores = os.cpu_count() or 1
    settings = sorted({1, cores})
    rows = []
    for r in range(args.rounds):
        order = settings if r % 2 == 0 else settings[::-1]
        for kind, folder in BUNDLES.items():
            path = serve.WORK / "bundles" / folder
            if not path.exists():
                raise SystemExit(f"{path} is missing: run benchmarks/serve.py --int8 first")
            for threads in order:
                port = serve.free_port()
                proc = serve.start_server("ronghe", path, port, serve.WORK / "threads.server.log",
                                          threads)
                try:
                    serve.wait_ready(proc, f"http://{serve.HOST}:{port}/readyz")
                    cpu0 = serve.cpu_seconds(proc.pid)
                    res = serve.run_client(port, "/v1/models/m/predict", args.clients,
                                           args.duration, 1.0, 100_000)
                    serve.cpu_budget(res, serve.cpu_seconds(proc.pid) - cpu0, cores)
                finally:
                    serve.stop_server(proc)
                res.update({"server": kind, "threads": threads, "round": r})
                rows.append(res)
                print(f"round {r} {kind:22s} threads {threads}: {res['throughput']:7.1f} req/s "
                      f"p50 {res['p50_ms']} ms", flush=True)
    summary = summarise(rows, settings)
    return {"benchmark": NAME, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpus": cores, "cpu": common.cpu_model(),
                        "cpu_details": common.cpu_details()},
            "settings": {"rounds": args.rounds, "duration_s": args.duration,
                         "clients": args.clients, "threads": settings},
            "rows": rows, "summary": summary}


def summarise(rows: list[dict], settings: list[int]) -> list[dict]:
    summary = []
    for kind in BUNDLES:
        by = {t: [x for x in rows if x["server"] == kind and x["threads"] == t] for t in settings}
        summary.append({"server": kind, **{
            f"threads_{t}": {"p50_ms_median": round(statistics.median(x["p50_ms"] for x in v), 2),
                             "req_s_median": round(statistics.median(x["throughput"] for x in v), 1),
                             "cpu_ms_per_request_median": round(statistics.median(
                                 sum(x["cpu_ms_per_request"].values()) for x in v), 2),
                             "p50_ms_each": [x["p50_ms"] for x in v]} for t, v in by.items()}})
    return summary


def markdown(res: dict) -> str:
    s, m = res["settings"], res["machine"]
    lo, hi = s["threads"][0], s["threads"][-1]
    lines = ["## Serving: inference threads per model call (`serve_threads.py`)", "",
             f"`ronghe serve` on the bundles of `serve.py`, {s['clients']} closed-loop clients, "
             f"{s['duration_s']} s per run, {s['rounds']} rounds alternating the order of the "
             f"settings; medians over rounds. {lo} thread = the default before 2026-12-04 "
             f"(cores - 1), {hi} = the default since (the usable cores).", "",
             f"| server | p50 ms, {lo} thread | p50 ms, {hi} threads | req/s, {lo} | req/s, {hi} | "
             f"CPU ms/req, {lo} | CPU ms/req, {hi} | p50 ratio |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for x in res["summary"]:
        a, b = x[f"threads_{lo}"], x[f"threads_{hi}"]
        lines.append(f"| {x['server']} | {a['p50_ms_median']} ({', '.join(map(str, a['p50_ms_each']))}) "
                     f"| {b['p50_ms_median']} ({', '.join(map(str, b['p50_ms_each']))}) | "
                     f"{a['req_s_median']} | {b['req_s_median']} | "
                     f"{a['cpu_ms_per_request_median']} | {b['cpu_ms_per_request_median']} | "
                     f"{a['p50_ms_median'] / b['p50_ms_median']:.2f}x |")
    lines += ["", f"Machine: {m['cpus']} CPUs of {m['cpu']} "
                  f"({', '.join(m['cpu_details'].get('isa', []))}); {res['date']}.", "",
              "Reproduce: `python benchmarks/serve_threads.py` (after `python benchmarks/serve.py "
              "--int8`; JSON: `benchmarks/results/serve_threads.json`)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--render", action="store_true")
    args = ap.parse_args()
    out = RESULTS / f"{NAME}.json"
    res = json.loads(out.read_text()) if args.render else run(args)
    if args.render:  # the summary is recomputed from the rows
        res["summary"] = summarise(res["rows"], res["settings"]["threads"])
    out.write_text(json.dumps(res, indent=2))
    common.write_readme_section(NAME, markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
