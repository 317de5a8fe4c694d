#!/usr/bin/env python
"""Compression and export of an SST-2 fine-tuned MiniLM: speed, size and accuracy in one run.

``--data banking77`` runs the same on a second data set (77 intents, train.csv -> test.csv,
written to ``results/compression_banking77.json`` and its own README section).

A ``finetune`` MiniLM (the default backbone) is trained once on a seeded sample of SST-2 train
(``--train-size``, 10 % of it held out as validation) with max_length 64, fp32, and saved under
``benchmarks/.work/compression/``; it is reused while the settings stored beside it match
(``--retrain`` forces a new one). Every variant is then made through ronghe's public path, each
in a fresh subprocess: ``export.as_onnx`` + ``export.parity`` (what ``ronghe export --format onnx``
does) or ``gate.compress`` (what ``ronghe compress`` does) with ``max_drop=100`` so the gate never
blocks - whether the default gate (0.5 points on the validation split) would have passed is
recorded. Pruning recovers for one epoch on the first ``--recovery-size`` training examples;
static int8 calibrates on the first 512 of them. Dev accuracy (SST-2 dev, 872) is measured on the
saved and re-loaded bundle and is never used for any choice.

Latency: each bundle is loaded with ``ronghe.load`` in a fresh subprocess with ``--threads``
pinned (torch threads, and the onnxruntime session re-created with that many intra-op threads
since ronghe's ONNX bundles otherwise use every core); ``predict_proba`` on raw dev sentences, so
tokenisation is included; after a warm-up, batch 1 over ``--b1-texts`` distinct sentences and
batch 32 over ``--b32-batches`` distinct batches. ``--reps`` rounds, variants taking turns within
each round; reported are the medians over rounds of the per-round p50, and of the per-round ratio
to PyTorch fp32. A roofline note compares achieved GFLOP/s at batch 32 with the machine's peak.

    python benchmarks/compression.py                    # full run (~25-35 min on 2 idle cores)
    python benchmarks/compression.py --only onnx-int8-dynamic,pruned-layers-4
    python benchmarks/compression.py --quick --threads 1  # smoke run, a few minutes
    python benchmarks/compression.py --rewrite-readme     # README section from the saved JSON
    python benchmarks/compression.py --data banking77 --epochs 3 --only onnx-fp32,onnx-int8-dynamic
"""

from __future__ import annotations

import hashlib
import json
import shutil
import statistics
import time
from pathlib import Path

import common  # benchmarks/common.py: this script's folder is first on sys.path

common.pin_threads()

NAME = "compression"
# what each --data reads: (label, training unit, test split's name)
DATASETS = {"sst2": ("SST-2", "sentences", "dev"), "banking77": ("BANKING77", "queries", "test.csv")}


def name_for(data: str, tag: str = "") -> str:
    """``compression``, ``compression_banking77``; ``--tag zen4`` adds ``_zen4`` so a run on another
    CPU gets its own JSON and README section beside the others."""
    return (NAME if data == "sst2" else f"{NAME}_{data}") + (f"_{tag}" if tag else "")


BASE = "torch-fp32"
AIM = {"b1": 3.5, "b32": 2.5, "max_drop": 0.5}
# name: how it is made (kind: teacher | export | compress), its precision and what it is
VARIANTS = {
    "torch-fp32": {"kind": "teacher", "precision": "fp32", "what": "the fine-tuned bundle, PyTorch fp32"},
    "torch-bf16": {"kind": "compress", "quantize": "bf16", "precision": "bf16",
                   "what": "`compress --quantize bf16`: bf16 weights + bf16 autocast"},
    "onnx-fp32": {"kind": "export", "precision": "fp32", "what": "`export --format onnx`, onnxruntime fp32"},
    "onnx-int8-dynamic": {"kind": "compress", "quantize": "int8", "precision": "int8",
                          "what": "`compress --quantize int8`: onnxruntime dynamic int8, per channel"},
    "onnx-int8-static": {"kind": "compress", "quantize": "int8-static", "precision": "int8",
                         "what": "`compress --quantize int8-static`: QDQ int8, calibrated"},
    "onnx-int8-gated": {"kind": "compress", "quantize": "int8", "precision": "int8", "max_drop": 0.5,
                        "what": "`compress --quantize int8` with the default gate (0.5 points): its "
                                "search keeps the most sensitive parts in fp32 until validation passes"},
    "onnx-int8-static-gated": {"kind": "compress", "quantize": "int8-static", "precision": "int8",
                               "max_drop": 0.5, "what": "`compress --quantize int8-static` with the "
                               "default gate and its fp32-parts search"},
    "pruned-unstructured-50": {"kind": "compress", "prune": "unstructured:0.5", "precision": "fp32",
                               "what": "`compress --prune unstructured:0.5` + 1 recovery epoch, PyTorch"},
    "pruned-layers-4": {"kind": "compress", "prune": "layers:4", "precision": "fp32",
                        "what": "`compress --prune layers:4` (4 of 6 layers) + 1 recovery epoch, PyTorch"},
    "pruned-layers-4+int8": {"kind": "compress", "prune": "layers:4", "quantize": "int8",
                             "precision": "int8",
                             "what": "`compress --prune layers:4 --quantize int8`: both, onnxruntime"},
}


# ---------------------------------------------------------------------------------- workers

def worker_teacher(spec: dict) -> dict:
    common.torch_threads(spec["threads"])
    import numpy as np

    import ronghe
    from ronghe import TextClassifier, data
    from ronghe.modeling import tokenize

    s = spec["settings"]
    clf = TextClassifier(strategy="finetune", model="minilm", epochs=s["epochs"],
                         max_length=s["max_length"], seed=s["seed"], precision="fp32")
    clf.fit(data.from_texts(*common.read_jsonl(spec["train"])), valid=data.from_texts(*common.read_jsonl(spec["valid"])))
    out = Path(spec["bundle"])
    shutil.rmtree(out, ignore_errors=True)
    clf.save(out)
    served = ronghe.load(out)
    dev, _ = common.read_jsonl(spec["dev"])
    np.save(spec["dev_proba"], served.predict_proba(dev))
    enc = served.strategy_.model.encoder.config
    info = {"settings": s, "train_seconds": round(clf.train_seconds_, 1),
            "valid": clf.metrics_["valid"], "history": clf.metrics_["history"],
            "dev_tokens": [len(x) for x in tokenize(served.strategy_.tokenizer, dev, s["max_length"])],
            "encoder": {k: getattr(enc, k) for k in ("num_hidden_layers", "hidden_size",
                                                     "intermediate_size", "num_attention_heads")}}
    Path(spec["info"]).write_text(json.dumps(info))
    return info


def worker_build(spec: dict) -> dict:
    common.torch_threads(spec["threads"])
    import numpy as np
    from sklearn.metrics import f1_score

    import ronghe
    from ronghe import data
    from ronghe.compression import export, gate

    v = VARIANTS[spec["variant"]]
    teacher = ronghe.load(spec["teacher"])
    out, res = Path(spec["bundle"]), {}
    t0 = time.perf_counter()
    if v["kind"] == "teacher":
        out = Path(spec["teacher"])
    else:
        valid = data.from_texts(*common.read_jsonl(spec["valid"]))
        if v["kind"] == "export":  # what `ronghe export --format onnx` does
            clf = export.as_onnx(teacher)
            res["parity"] = export.parity(teacher, clf, valid.texts)
            clf.compression_ = {"steps": [{"step": "export", "format": "onnx", "opset": 17}],
                                "parity": res["parity"]}
        else:  # what `ronghe compress` does; the gate never blocks unless the variant sets max_drop
            clf, desc = gate.compress(teacher, valid=valid, train=data.from_texts(*common.read_jsonl(spec["recovery"])),
                                      quantize_to=v.get("quantize"), prune=v.get("prune"),
                                      max_drop=v.get("max_drop", 100.0), recovery_epochs=1)
            res["gate"] = {**desc, "default_gate_passes": desc["drop_points"] <= 0.5}
        shutil.rmtree(out, ignore_errors=True)
        clf.save(out)
    res["build_seconds"] = round(time.perf_counter() - t0, 1)
    served = ronghe.load(out)  # accuracy of what a user would load, not of the in-memory object
    dev, ydev = common.read_jsonl(spec["dev"])
    proba, ref = served.predict_proba(dev), np.load(spec["dev_proba"])
    pred = np.asarray(served.classes_)[proba.argmax(1)]
    weights = [p for p in ("model.safetensors", "model.onnx") if (out / p).exists()]
    return {**res, "bundle": str(out), "strategy": served.strategy,
            "dev_accuracy": round(float((pred == np.asarray(ydev)).mean()), 5),
            "dev_macro_f1": round(float(f1_score(ydev, pred, average="macro")), 5),
            "agreement_with_fp32": round(float((proba.argmax(1) == ref.argmax(1)).mean()), 5),
            "max_abs_prob_diff": float(np.abs(proba - ref).max()),
            "size_mb": round(common.dir_size(out) / 1e6, 2),
            "weights_mb": round(sum((out / w).stat().st_size for w in weights) / 1e6, 2)}


def worker_latency(spec: dict) -> dict:
    threads = spec["threads"]  # torch is set here only for torch bundles: ONNX ones never import it
    import numpy as np

    load0 = common.load_average()
    t0 = time.perf_counter()
    import ronghe

    clf = ronghe.load(spec["bundle"])
    res = {"load_seconds": round(time.perf_counter() - t0, 2), "strategy": clf.strategy}
    inner = clf.strategy_
    if clf.strategy == "onnx":  # OnnxConfig.threads=0 means os.cpu_count(): pin like torch
        from ronghe.runtime.onnx import session

        inner.session = session(str(Path(spec["bundle"]) / "model.onnx"), threads)
        res["onnx_intra_op_threads"] = threads
    else:
        res["param_dtype"] = str(next(inner.model.parameters()).dtype).replace("torch.", "")
        res["autocast_dtype"] = str(inner.dtype).replace("torch.", "")
        common.torch_threads(threads)
        res["torch_threads"] = threads
    dev, _ = common.read_jsonl(spec["dev"])
    warm = [dev[i] for i in spec["warm"]]
    for t in warm[:10]:
        clf.predict_proba([t])
    clf.predict_proba(warm[:32])
    t1, t32 = [], []
    for i in spec["b1"]:
        t = time.perf_counter()
        clf.predict_proba([dev[i]])
        t1.append(1000 * (time.perf_counter() - t))
    for b in spec["b32"]:
        texts = [dev[i] for i in b]
        t = time.perf_counter()
        clf.predict_proba(texts)
        t32.append(1000 * (time.perf_counter() - t))
    pct = lambda xs, q: round(float(np.percentile(xs, q)), 3)  # noqa: E731
    return {**res, "b1_p50_ms": pct(t1, 50), "b1_p95_ms": pct(t1, 95), "b32_p50_ms": pct(t32, 50),
            "b32_p95_ms": pct(t32, 95), "b32_mean_ms": round(float(np.mean(t32)), 3),
            "load_average_before": load0, "load_average_after": common.load_average()}


# ------------------------------------------------------------------------------- orchestration

def run(kind: str, spec: dict, tag: str, timeout: float, strict: bool = False) -> dict:
    """A worker in a fresh subprocess; unless ``strict``, a failure is returned as ``{"error": ...}``
    so that one broken variant stops nothing."""
    print(f"[{time.strftime('%H:%M:%S')}] {tag} (load {common.load_average()})", flush=True)
    try:
        return common.run_worker(__file__, kind, spec, tag, spec["work"],
                                 env=common.thread_env(spec["threads"]), timeout=timeout)
    except Exception as e:  # noqa: BLE001 - any failure goes into the row
        if strict:
            raise
        print(f"    FAILED: {str(e)[-600:]}", flush=True)
        return {"error": str(e)[-2000:]}


def prepare(a, work: Path) -> dict:
    import numpy as np

    from ronghe import data

    texts, labels = common.read_data(a.data, "train")
    idx = common.sample_indices(len(texts), a.train_size, seed=a.seed)
    train, valid = data.split(data.from_texts([texts[i] for i in idx], [labels[i] for i in idx]),
                              0.1, a.seed)
    dev_t, dev_y = common.read_data(a.data, "test")
    order = np.random.default_rng(a.seed).permutation(len(dev_t)).tolist()
    n1, n32 = a.b1_texts, 32 * a.b32_batches
    if n1 + n32 + 32 > len(dev_t):
        raise SystemExit(f"--b1-texts + 32 * --b32-batches must leave 32 of {len(dev_t)} dev texts for warm-up")
    spec = {"work": str(work), "threads": a.threads,
            "train": common.write_jsonl(work / "train.jsonl", train.texts, train.labels),
            "valid": common.write_jsonl(work / "valid.jsonl", valid.texts, valid.labels),
            "recovery": common.write_jsonl(work / "recovery.jsonl", train.texts[:a.recovery_size],
                              train.labels[:a.recovery_size]),
            "dev": common.write_jsonl(work / "dev.jsonl", dev_t, dev_y),
            "b1": order[:n1], "b32": [order[n1 + 32 * k: n1 + 32 * (k + 1)] for k in range(a.b32_batches)],
            "warm": order[n1 + n32:]}
    spec["settings"] = {**({"data": a.data} if a.data != "sst2" else {}), "train_size": a.train_size, "epochs": a.epochs, "max_length": a.max_length,
                        "seed": a.seed, "model": "minilm", "train_sha256": hashlib.sha256(
                            Path(spec["train"]).read_bytes() + Path(spec["valid"]).read_bytes()).hexdigest()}
    spec["sizes"] = {"train": len(train), "valid": len(valid),
                     "recovery": min(a.recovery_size, len(train)), "dev": len(dev_t)}
    return spec


def teacher(spec: dict, retrain: bool) -> dict:
    work = Path(spec["work"]) / "teacher"
    work.mkdir(exist_ok=True)
    t = {**spec, "bundle": str(work / "bundle"), "info": str(work / "teacher.json"),
         "dev_proba": str(work / "dev_proba.npy")}
    if not retrain and Path(t["info"]).exists() and Path(t["dev_proba"]).exists() \
            and (work / "bundle" / "ronghe.json").exists():
        info = json.loads(Path(t["info"]).read_text())
        if info["settings"] == spec["settings"]:
            print(f"reusing the teacher in {work} (same settings; --retrain to train again)")
            return {**t, "result": {**info, "reused": True}}
    Path(t["info"]).unlink(missing_ok=True)
    return {**t, "result": {**run("teacher", t, "teacher", 4 * 3600, strict=True), "reused": False}}


def med(xs):
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 3) if xs else None


def summarise(spec: dict, tinfo: dict, builds: dict, rounds: list[dict], threads: int) -> tuple[list, dict]:
    tok, enc = tinfo["dev_tokens"], tinfo["encoder"]
    peak = common.peak_gflops(threads)
    base_acc = builds.get(BASE, {}).get("dev_accuracy")
    rows = []
    for name, b in builds.items():
        v = VARIANTS[name]
        ok = lambda r, n=name: "error" not in r.get(n, {"error": 1})  # noqa: E731
        lat = [r[name] for r in rounds if ok(r)]
        row = {"variant": name, "what": v["what"], "precision": v["precision"], **b,
               "build_peak_rss_mb": b.get("peak_rss_mb"), "latency_rounds": [r.get(name) for r in rounds]}
        errs = [r[name]["error"] for r in rounds if "error" in r.get(name, {})]
        if errs:
            row["latency_errors"] = errs
        for k in ("b1_p50_ms", "b1_p95_ms", "b32_p50_ms", "b32_p95_ms", "b32_mean_ms", "load_seconds"):
            row[k] = med([x[k] for x in lat])
        row["peak_rss_mb"] = max((x["peak_rss_mb"] for x in lat), default=None)
        for b_ in ("b1", "b32"):
            row[f"speedup_{b_}"] = med([r[BASE][f"{b_}_p50_ms"] / r[name][f"{b_}_p50_ms"]
                                        for r in rounds if ok(r) and ok(r, BASE)])
        if "dev_accuracy" in b and base_acc is not None:
            row["dev_drop_points"] = round(100 * (base_acc - b["dev_accuracy"]), 2)
        kept = next((s["kept_layers"] for s in b.get("gate", {}).get("steps", []) if "kept_layers" in s), None)
        layers = len(kept) if kept else enc["num_hidden_layers"]
        useful = sum(common.flops_per_example(tok[i], enc, layers) for bt in spec["b32"] for i in bt) / len(spec["b32"])
        padded = sum(32 * common.flops_per_example(max(tok[i] for i in bt), enc, layers) for bt in spec["b32"]) / len(spec["b32"])
        row["roofline"] = {"layers": layers, "gflop_per_batch32_useful": round(useful / 1e9, 2),
                           "gflop_per_batch32_padded": round(padded / 1e9, 2),
                           "peak_gflops": peak[v["precision"]]}
        if row["b32_mean_ms"]:
            g = useful / 1e9 / (row["b32_mean_ms"] / 1000)
            row["roofline"].update({"achieved_gflops": round(g, 1),
                                    "percent_of_peak": round(100 * g / peak[v["precision"]], 1),
                                    "compute_bound_ms": round(1000 * padded / 1e9 / peak[v["precision"]], 2)})
        row["aims"] = {"b1": (row["speedup_b1"] or 0) >= AIM["b1"], "b32": (row["speedup_b32"] or 0) >= AIM["b32"],
                       "accuracy": row.get("dev_drop_points", 99) <= AIM["max_drop"]}
        row["aims"]["all"] = all(row["aims"].values())
        rows.append(row)
    n_avg = statistics.mean(tok[i] for bt in spec["b32"] for i in bt)
    roof = {"assumptions": "FLOPs = L*2*(n*(4h^2+2hi) + 2n^2h), multiply-add = 2 FLOPs; embeddings, "
            "softmax, layer norm and head left out; peak = threads x 2 FMA units x fp32 lanes (16 "
            "with AVX-512, 8 with AVX2 or on Zen 4's 256-bit datapaths) x 2 x nominal clock (an estimate: the VM reports no turbo), bf16 2x, int8 VNNI 4x; "
            "with AMX (amx_bf16 + amx_int8 flags) 1,024 bf16 and 2,048 int8 ops per cycle per core",
            "encoder": enc, "peak_gflops": peak, "mean_tokens_b32_texts": round(n_avg, 1),
            "gflop_per_example_mean_tokens": round(common.flops_per_example(round(n_avg), enc, enc["num_hidden_layers"]) / 1e9, 3),
            "gflop_per_example_max_length": round(common.flops_per_example(
                spec["settings"]["max_length"], enc, enc["num_hidden_layers"]) / 1e9, 3)}
    return rows, roof


# ------------------------------------------------------------------------------------- README

def _f(x, fmt="{:.2f}", none="-"):
    return none if x is None else fmt.format(x)


def readme(result: dict, quick: bool) -> str:
    s, info, roof, rows = result["setup"], result["machine"], result["roofline"], result["rows"]
    t = result["teacher"]
    table = []
    for r in rows:
        g = r.get("gate")
        gate = "-" if not g else f"{g['drop_points']:+.2f} ({'pass' if g['default_gate_passes'] else 'fail'})"
        table.append([f"`{r['variant']}`", r["what"], _f(r.get("size_mb"), "{:.1f}"),
                      _f(r.get("dev_accuracy"), "{:.4f}", "error"), _f(r.get("dev_drop_points"), "{:+.2f}"),
                      _f(r.get("agreement_with_fp32"), "{:.3f}"), gate, _f(r["b1_p50_ms"]),
                      _f(r["speedup_b1"], "{:.2f}x"), _f(r["b32_p50_ms"], "{:.1f}"),
                      _f(r["speedup_b32"], "{:.2f}x"), _f(r["peak_rss_mb"], "{:.0f}"),
                      "yes" if r["aims"]["all"] else "no"])
    met = [r["variant"] for r in rows if r["aims"]["all"]]
    acc_ok = [r for r in rows if r["aims"]["accuracy"] and r["variant"] != BASE]
    closest = [f"batch {k[1:]} `{x['variant']}` {x[f'speedup_{k}']:.2f}x" for k in ("b1", "b32")
               for x in [max(acc_ok, key=lambda r: r[f"speedup_{k}"] or 0, default=None)]
               if x and x[f"speedup_{k}"]]
    fast = [r for r in rows if r.get("b32_mean_ms") and r["variant"] != BASE]
    best = min(fast, key=lambda r: r["b32_mean_ms"]) if fast else None
    aim = (f"**Aim met** (>= {AIM['b1']}x at batch 1, >= {AIM['b32']}x at batch 32, <= "
           f"{AIM['max_drop']} dev points lost) by: {', '.join(f'`{m}`' for m in met)}." if met else
           f"**Aim not met**: no variant is >= {AIM['b1']}x faster at batch 1 and >= {AIM['b32']}x at "
           f"batch 32 with <= {AIM['max_drop']} dev points lost" + (
               f"; the fastest within the accuracy aim: {', '.join(closest)}." if closest else "."))
    roof_rows = [[f"`{r['variant']}`", r["precision"], r["roofline"]["layers"],
                  _f(r["roofline"].get("achieved_gflops"), "{:.1f}"), _f(r["roofline"]["peak_gflops"], "{:.0f}"),
                  _f(r["roofline"].get("percent_of_peak"), "{:.1f} %"),
                  _f(r["roofline"].get("compute_bound_ms"), "{:.1f}"), _f(r["b32_mean_ms"], "{:.1f}")]
                 for r in rows]
    p = roof["peak_gflops"]
    best_line = (f"The fastest variant at batch 32, `{best['variant']}`, reaches "
                 f"{best['roofline'].get('achieved_gflops')} GFLOP/s, {best['roofline'].get('percent_of_peak')} % "
                 f"of its {best['precision']} peak: {best['b32_mean_ms'] / best['roofline']['compute_bound_ms']:.1f}x "
                 "slower than the compute limit (padded FLOPs at peak). " if best and best["roofline"].get(
                     "compute_bound_ms") else "")
    loads = ", ".join(str(x) for x in result.get("round_load_averages", []))
    bf = next((r for r in rows if r["variant"] == "torch-bf16"), None)
    dtypes = {x.get("param_dtype") for x in (bf or {}).get("latency_rounds", []) if x}
    bf_note = (" Note: the re-loaded `torch-bf16` bundle holds its weights in float32 and runs them "
               "under bf16 autocast (the bundle is bf16 on disk only)." if "float32" in dtypes else "")
    data = s["settings"].get("data", "sst2")
    label, unit, test = DATASETS[data]
    tag = result["benchmark"][len(name_for(data)):].lstrip("_")
    cmd = "python benchmarks/compression.py" + (" --quick" if quick else "") + (
        "" if data == "sst2" else f" --data {data} --epochs {s['settings']['epochs']} --only "
        + ",".join(r["variant"] for r in rows if r["variant"] != BASE)) + (
        f" --tag {tag}" if tag else "")
    orientation = (" For orientation: sentence-transformers reports 3.08x for ONNX int8 over fp32 "
                   "on CPU; Intel reports 2.39x for int8 MiniLM-L6 on SST-2 at 0.8 points lost."
                   if data == "sst2" else "")
    return "\n".join([
        f"## Compression and export: MiniLM fine-tuned on {label}"
        + (f" ({tag}: {info.get('cpu')})" if tag else ""), "",
        common.quick_note(quick, "python benchmarks/compression.py") +
        f"Teacher: `finetune` MiniLM-L6 (`minilm`), {s['settings']['epochs']} epoch(s), max_length "
        f"{s['settings']['max_length']}, fp32, on a seeded sample of {s['sizes']['train']:,} {label} train "
        f"{unit} ({s['sizes']['valid']:,} more held out as validation: early stopping, the "
        f"compression gate and nothing else){' - reused from an earlier run' if t.get('reused') else ''}. "
        f"Pruning recovers for 1 epoch on {s['sizes']['recovery']:,} of the training {unit}; static "
        f"int8 calibrates on {min(512, s['sizes']['recovery'])} of them. Every variant is made by `ronghe.compression` "
        "(`export.as_onnx`, `gate.compress` with the gate opened; the *gate* column is the validation "
        "drop in points and whether the default `--max-drop 0.5` would have let it through), saved, "
        f"re-loaded, and scored on {label} {test} ({s['sizes']['dev']:,}; the *dev* columns); *Δ* is dev points lost against "
        "PyTorch fp32 (negative: gained), *agree* the share of dev labels equal to fp32's." + bf_note, "",
        f"Latency: `ronghe.load` in a fresh process per variant and round, {s['threads']} thread(s) "
        f"pinned (torch and onnxruntime), `predict_proba` on raw {label} {test} texts (tokenisation included), "
        f"warm-up, then batch 1 on {len(s['b1'])} distinct sentences and batch 32 on {len(s['b32'])} "
        f"distinct batches; {s['reps']} round(s) with the variants taking turns; median over rounds of "
        "the per-round p50, speed-up = median of the per-round ratios to `torch-fp32`. Peak RSS of the "
        "serving process.", "",
        common.md_table(["variant", "what", "MB", "dev acc", "Δ pts lost", "agree", "gate: valid Δ",
                         "b1 p50 ms", "b1 speed-up", "b32 p50 ms", "b32 speed-up", "RSS MB", "aim"], table),
        "", aim + orientation, "",
        f"Roofline: the {roof['encoder']['num_hidden_layers']}-layer encoder (h {roof['encoder']['hidden_size']}, FFN "
        f"{roof['encoder']['intermediate_size']}) costs {roof['gflop_per_example_mean_tokens']} GFLOP per "
        f"example at the mean length of the timed sentences ({roof['mean_tokens_b32_texts']} tokens) "
        f"and {roof['gflop_per_example_max_length']} GFLOP at max_length {s['settings']['max_length']} "
        f"({roof['assumptions']}). Estimated peak on {s['threads']} core(s) at {p['clock_ghz']} GHz: "
        f"fp32 {p['fp32']:.0f}, bf16 {p['bf16']:.0f}, int8 {p['int8']:.0f} GFLOP/s. Achieved = useful "
        "FLOPs of a batch of 32 / mean batch time (tokenisation included, so a lower bound on the "
        "kernels' rate); compute-bound ms = padded FLOPs of the batch at peak. " + best_line, "",
        common.md_table(["variant", "precision", "layers", "achieved GFLOP/s @32", "peak GFLOP/s",
                         "of peak", "compute-bound ms", "measured ms"], roof_rows), "",
        f"Machine: {common.machine_line(info)}. Load average (1 min) at the start of each latency "
        f"round: {loads or '-'}. Total run time {result['total_wall_seconds'] / 60:.1f} min.", "",
        "Reproduce:", "", "```bash",
        f"{cmd}   # results: benchmarks/results/{result['benchmark']}{'.quick' if quick else ''}.json",
        "```"])


# ----------------------------------------------------------------------------------------- main

def main() -> None:
    ap = common.parser(__doc__, "smoke run: 300 examples, 1 epoch, 1 round")
    ap.add_argument("--train-size", type=int, default=8000, help="training sample (before the split)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--recovery-size", type=int, default=2000, help="examples for recovery after pruning")
    ap.add_argument("--threads", type=int, default=common.THREADS)
    ap.add_argument("--reps", type=int, default=5, help="latency rounds")
    ap.add_argument("--b1-texts", type=int, default=100)
    ap.add_argument("--b32-batches", type=int, default=20)
    ap.add_argument("--only", default=",".join(VARIANTS), help=f"variants ({BASE} is always included)")
    ap.add_argument("--retrain", action="store_true", help="train the teacher even if one is saved")
    ap.add_argument("--data", choices=sorted(DATASETS), default="sst2",
                    help="sst2 (train sample -> dev.tsv) or banking77 (train.csv -> test.csv)")
    ap.add_argument("--tag", default="", help="suffix for the result's name (e.g. the CPU: zen4), so "
                    "runs on different machines are kept side by side")
    a = ap.parse_args()
    workers = {"teacher": worker_teacher, "build": worker_build, "latency": worker_latency}
    name = name_for(a.data, a.tag)
    if common.handled(a, name, readme, workers):
        return
    if a.quick:
        a.train_size, a.epochs, a.reps, a.recovery_size, a.b1_texts, a.b32_batches = 300, 1, 1, 100, 10, 2
    unknown = set(a.only.split(",")) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    names = [BASE] + [v for v in VARIANTS if v in a.only.split(",") and v != BASE]
    t0 = time.perf_counter()
    common.THREADS = a.threads  # machine_info and thread_env report / use this
    info = common.machine_info()
    work = common.WORK / name / ("quick" if a.quick else "full")
    (work / "bundles").mkdir(parents=True, exist_ok=True)
    spec = prepare(a, work)
    spec["reps"] = a.reps
    t = teacher(spec, a.retrain)
    tinfo = t.pop("result")
    builds = {}
    for n in names:
        builds[n] = run("build", {**t, "teacher": t["bundle"], "variant": n,
                                  "bundle": str(work / "bundles" / n)}, f"build-{n}", 3 * 3600)
        print("    " + json.dumps({k: builds[n].get(k) for k in ("dev_accuracy", "size_mb",
                                                                 "agreement_with_fp32", "build_seconds")}))
    rounds, loads = [], []
    ok = [n for n in names if "error" not in builds[n]]
    for r in range(a.reps):
        loads.append(common.load_average()[0])
        order = ok if r % 2 == 0 else ok[::-1]
        rounds.append({n: run("latency", {**spec, "bundle": builds[n]["bundle"]}, f"latency-{n}-r{r}", 1800)
                       for n in order})
        print("    b1/b32 p50 ms: " + ", ".join(f"{n} {x.get('b1_p50_ms')}/{x.get('b32_p50_ms')}"
                                                 for n, x in rounds[-1].items()), flush=True)
    rows, roof = summarise(spec, tinfo, builds, rounds, a.threads)
    setup = {k: v for k, v in spec.items() if k not in ("work", "warm")}
    result = {"benchmark": name, "quick": a.quick, "machine": info, "setup": setup,
              "aim": AIM, "teacher": tinfo | {"dev_tokens": None}, "rows": rows, "roofline": roof,
              "round_load_averages": loads}
    for r in rows:
        print(f"{r['variant']:24s} acc {_f(r.get('dev_accuracy'), '{:.4f}', 'error')}  "
              f"size {_f(r.get('size_mb'), '{:.1f}')} MB  b1 {_f(r['b1_p50_ms'])} ms "
              f"({_f(r['speedup_b1'])}x)  b32 {_f(r['b32_p50_ms'])} ms ({_f(r['speedup_b32'])}x)  "
              f"{_f(r['roofline'].get('percent_of_peak'), '{:.1f}')} % of peak")
    common.finish(name, result, a, readme, t0)


if __name__ == "__main__":
    main()
