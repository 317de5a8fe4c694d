#!/usr/bin/env python
"""Distillation on SST-2 and BANKING77: a 3-layer student and a classic student from a MiniLM teacher.

Teacher: ``finetune`` MiniLM (6 layers), trained exactly as in benchmarks/fusion.py (same seeded
sample and validation split, seed 0, ``--epochs``, ``--max-length``); the bundle fusion.py left
in benchmarks/.work/fusion/<dataset>/finetune is reused when its ``finetune.settings.json``
matches (data fingerprints and settings), otherwise the teacher is trained here. Students, with
``ronghe.compression.distill.distill``:

* ``layers:3`` - layers 1, 3, 5 of the teacher's encoder + its head, trained on the softened
  teacher probabilities (T=2, KL x T^2) and the gold labels (alpha 0.5), early stopping on the
  same validation split. SST-2 adds ``--unlabeled`` (default 8,000) further train.tsv
  sentences outside the sample, texts only (teacher probabilities only); BANKING77 none.
* ``classic`` - TF-IDF + LR on the teacher's labels over the labeled + unlabeled texts, compared
  with ``classic`` trained on the gold labels of the labeled texts only.
* ``student-int8`` - the 3-layer student through ``ronghe compress --quantize int8`` (ONNX,
  dynamic int8) behind the default accuracy gate (0.5 points on the validation split, with its
  search for parts to keep in fp32); the issue counts it when the gate passes.

Aims (computed): the 3-layer student keeps >= 97 % of the teacher's test accuracy and predicts
>= 1.8x faster (the student, or its int8 form if the gate passed it). Latency: all bundles loaded with ``ronghe.load`` in one fresh process, threads
pinned, interleaved (models take turns, order reversed every round), batch 1 over 100 distinct
test texts and batch 32 over 10 distinct batches, tokenisation included; median of 5 rounds.

Full run, estimated on 2 idle cores: ~15 min after fusion.py (teachers and gold classic models
reused), ~25 min without it.

    python benchmarks/distill.py                       # both data sets (full)
    python benchmarks/distill.py --only sst2 --unlabeled 4000
    python benchmarks/distill.py --quick --threads 1   # smoke run, results/distill.quick.json
    python benchmarks/distill.py --rewrite-readme
"""

from __future__ import annotations

import json
import statistics
import time
import traceback
from pathlib import Path

import common  # benchmarks/common.py: this script's folder is first on sys.path
import fusion as F  # data loading and the teacher recipe live in benchmarks/fusion.py

NAME = "distill"
DATASETS = ("sst2", "banking77")
ROWS = ("teacher", "student", "student-int8", "classic-distilled", "classic-gold")
AIM_ACCURACY, AIM_SPEEDUP = 0.97, 1.8


def worker_latency(spec: dict) -> dict:
    common.pin_threads(spec["threads"])  # fusion.py pinned the default at import
    common.torch_threads(spec["threads"])
    import ronghe

    models = {k: ronghe.load(p) for k, p in spec["bundles"].items()}
    texts, n1, nb = spec["texts"], spec["n_single"], spec["n_batches"]
    singles = texts[:n1]
    batches = [texts[n1 + 32 * i: n1 + 32 * (i + 1)] for i in range(nb)]
    for m in models.values():  # warm-up
        m.predict_proba(batches[0])
        for t in singles[:3]:
            m.predict_proba([t])
    per: dict = {k: {"b1": [], "b32": []} for k in models}
    for r in range(spec["rounds"]):
        for k in (list(models) if r % 2 == 0 else list(models)[::-1]):
            m = models[k]
            t0 = time.perf_counter()
            for t in singles:
                m.predict_proba([t])
            per[k]["b1"].append(1000 * (time.perf_counter() - t0) / len(singles))
            t0 = time.perf_counter()
            for b in batches:
                m.predict_proba(b)
            per[k]["b32"].append(1000 * (time.perf_counter() - t0) / len(batches))
    return {"median_ms": {k: {b: round(statistics.median(v), 3) for b, v in d.items()}
                          for k, d in per.items()},
            "rounds_ms": {k: {b: [round(x, 3) for x in v] for b, v in d.items()}
                          for k, d in per.items()},
            "n_single": len(singles), "n_batches": len(batches), "rounds": spec["rounds"],
            "threads": spec["threads"]}


def get_teacher(d: dict, a, work: Path):
    """(teacher, bundle path, source): fusion.py's bundle if its settings match, else ours,
    else a fresh training run saved under .work/distill."""
    import ronghe

    want = F.finetune_settings(d, a.epochs, a.max_length)
    fdir = F.work_dir(d["name"], a.quick)
    for bundle, settings, source in ((fdir / "finetune", fdir / "finetune.settings.json", "fusion.py"),
                                     (work / "teacher", work / "teacher.settings.json", "distill.py")):
        if bundle.exists() and settings.exists() and json.loads(settings.read_text()) == want:
            print(f"    teacher: reusing {bundle}", flush=True)
            return ronghe.load(bundle), bundle, f"reused ({source})"
    print("    teacher: training (no matching fusion.py bundle)", flush=True)
    teacher = F.make_finetune(a.epochs, a.max_length).fit(d["train"], valid=d["valid"])
    path = teacher.save(work / "teacher")
    (work / "teacher.settings.json").write_text(json.dumps(want, indent=2))
    return teacher, path, "trained here"


def reuse_classic(fresh, d: dict, bundle: Path):
    """fusion.py's gold-label classic bundle if it was fitted on exactly this data with the
    same config, else None."""
    import ronghe

    if not (bundle / "ronghe.json").exists():
        return None
    try:
        old = ronghe.load(bundle)
    except Exception:
        return None
    same = (old.data_.get("fingerprint") == d["train"].fingerprint()
            and old.data_.get("valid_fingerprint") == d["valid"].fingerprint()
            and old.config_.model_dump(mode="json") == fresh.resolved_config().model_dump(mode="json"))
    if same:
        print(f"    classic-gold: reusing {bundle}", flush=True)
    return old if same else None


def unlabeled_texts(d: dict, n: int, quick: bool) -> list[str]:
    if d["name"] != "sst2" or n <= 0:
        return []
    texts, _ = common.read_sst2("train")
    used = set(d["sample_idx"])
    pool = [i for i in range(len(texts)) if i not in used]
    pick = common.sample_indices(len(pool), min(n, len(pool)), seed=1)
    return [texts[pool[i]] for i in pick]


def evaluate(clf, d: dict) -> dict:
    from ronghe.tasks.text_classification import metrics

    rep = metrics(d["test_labels"], list(clf.predict(d["test_texts"])), list(clf.classes_),
                  brief=True)
    return {"test_accuracy": rep["accuracy"], "test_macro_f1": rep["macro_f1"],
            "valid": (clf.metrics_ or {}).get("valid")}


def run_dataset(name: str, a) -> dict:
    from ronghe import TextClassifier
    from ronghe import load as ronghe_load
    from ronghe.compression.distill import distill

    size = F.QUICK[name] if a.quick else a.sizes[name]
    d = F.load_data(name, size, a.quick)
    work = common.WORK / NAME / ("quick" if a.quick else "") / name
    work.mkdir(parents=True, exist_ok=True)
    unl = unlabeled_texts(d, a.unlabeled if not a.quick else min(a.unlabeled, 300), a.quick)
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {d['sizes']}, {len(unl)} unlabeled "
          f"(load {common.load_average()})", flush=True)
    rows, bundles, teacher = {}, {}, None
    for key in ROWS:
        row: dict = {"load_start": common.load_average()[0]}
        t0 = time.perf_counter()
        try:
            if key == "teacher":
                clf, path, row["source"] = get_teacher(d, a, work)
                teacher = clf
            else:
                if teacher is None and key != "classic-gold":
                    raise RuntimeError("no teacher (its row failed)")
                if key == "student":
                    clf = distill(teacher, d["train"], student=f"layers:{a.layers}",
                                  unlabeled=unl, valid=d["valid"], epochs=a.epochs, seed=0)
                    row["kept_layers"] = clf.strategy_.report.get("student_layers")
                    row["history"] = clf.strategy_.history
                elif key == "student-int8":
                    from ronghe.compression import gate

                    student = ronghe_load(bundles["student"])
                    clf, desc = gate.compress(student, valid=d["valid"], quantize_to="int8",
                                              max_drop=0.5)
                    clf.train_seconds_ = time.perf_counter() - t0  # the compression's time
                    row["gate"] = desc
                elif key == "classic-distilled":
                    clf = distill(teacher, d["train"], student="classic",
                                  unlabeled=unl, valid=d["valid"], seed=0)
                else:
                    clf = TextClassifier(strategy="classic", seed=0)
                    reused = reuse_classic(clf, d, F.work_dir(name, a.quick) / "classic")
                    if reused is None:
                        clf.fit(d["train"], valid=d["valid"])
                    else:
                        clf, row["source"] = reused, "reused (fusion.py)"
                        clf.train_seconds_ = clf.metrics_["train_seconds"]
                path = clf.save(work / key)
            row["wall_seconds"] = round(time.perf_counter() - t0, 1)
            row["train_seconds"] = (clf.metrics_ or {}).get("train_seconds") \
                if key == "teacher" else round(clf.train_seconds_, 2)
            row.update(evaluate(clf, d))
            row["bundle_bytes"] = common.dir_size(path)
            row["status"] = "ok"
            bundles[key] = str(path)
        except Exception as e:  # one failing row must not lose the others
            row["status"] = f"failed: {type(e).__name__}: {e}"[:500]
            row["traceback"] = traceback.format_exc()[-3000:]
        print(f"    {key:17s} {row['status'][:80]:6s} acc {row.get('test_accuracy')} "
              f"train {row.get('train_seconds')} s", flush=True)
        rows[key] = row
    teacher = clf = None
    out = {"sizes": {**d["sizes"], "n_unlabeled": len(unl)}, "train_size_arg": size,
           "rows": rows, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if bundles:
        out["latency"] = latency(bundles, d, a, work)
    out["aims"] = aims(out)
    out["load_end"] = common.load_average()
    return out


def latency(bundles: dict, d: dict, a, work: Path) -> dict:
    n1, nb, rounds = (20, 2, 2) if a.quick else (100, 10, 5)
    texts = list(dict.fromkeys(d["test_texts"]))[: n1 + 32 * nb]  # distinct
    spec = {"bundles": bundles, "texts": texts, "n_single": n1, "n_batches": nb,
            "rounds": rounds, "threads": a.threads}
    try:
        return common.run_worker(__file__, "latency", spec, "latency", work,
                                 env=common.thread_env(a.threads), monitor_every=5)
    except Exception as e:
        return {"status": f"failed: {type(e).__name__}: {e}"[:1000]}


def aims(r: dict) -> dict:
    out = _aims(r, "student")
    if r["rows"].get("student-int8", {}).get("status") == "ok":
        out["int8"] = _aims(r, "student-int8")
        out["met_by"] = [k for k, x in (("student", out), ("student-int8", out["int8"]))
                         if x.get("accuracy_met") and x.get("speedup_met")]
    return out


def _aims(r: dict, key: str) -> dict:
    rows, lat = r["rows"], r.get("latency", {}).get("median_ms", {})
    t, s = rows.get("teacher", {}), rows.get(key, {})
    out: dict = {}
    if t.get("status") == "ok" and s.get("status") == "ok":
        ratio = s["test_accuracy"] / t["test_accuracy"]
        out["accuracy_ratio"] = round(ratio, 4)
        out["accuracy_met"] = ratio >= AIM_ACCURACY
    if "teacher" in lat and key in lat:
        for b in ("b1", "b32"):
            out[f"speedup_{b}"] = round(lat["teacher"][b] / lat[key][b], 3)
        out["speedup_met"] = min(out["speedup_b1"], out["speedup_b32"]) >= AIM_SPEEDUP
    if key != "student":
        return out
    cd, cg = rows.get("classic-distilled", {}), rows.get("classic-gold", {})
    if cd.get("status") == "ok" and cg.get("status") == "ok":
        out["classic_distilled_minus_gold"] = round(cd["test_accuracy"] - cg["test_accuracy"], 5)
    return out


# --------------------------------------------------------------------------------- README

WHAT = {"teacher": "finetune MiniLM, 6 layers", "student": "distilled, 3 layers",
        "student-int8": "the student, `compress --quantize int8` behind the 0.5-point gate",
        "classic-distilled": "TF-IDF + LR on teacher labels", "classic-gold": "TF-IDF + LR on gold labels"}


def readme(result: dict, quick: bool) -> str:
    cfg = result["config"]
    kept = next((r["rows"]["student"].get("kept_layers") for r in result["datasets"].values()
                 if r["rows"].get("student", {}).get("kept_layers")), None)
    parts = ["## Distillation: 3-layer and classic students (`benchmarks/distill.py`)", "",
             common.quick_note(quick, "python benchmarks/distill.py") +
             f"Teacher: `finetune` MiniLM (up to {cfg['epochs']} epochs, max_length "
             f"{cfg['max_length']}, seed 0) on the same sample and validation split as "
             "`benchmarks/fusion.py` (its bundle is reused when the settings match). Student "
             f"`layers:{cfg['layers']}`: teacher layers {kept} (0-based) + head, KD loss (T=2, "
             f"alpha 0.5), up to {cfg['epochs']} epochs, learning rate 1e-4, early stopping on "
             "validation. Classic students: TF-IDF + LR on the teacher's labels over labeled + "
             "unlabeled texts, vs the same model on gold labels only. Latency: `ronghe.load`ed "
             "bundles in one process, models interleaved, tokenisation included, median of the "
             "rounds; speed-up = teacher / model.", ""]
    for name in DATASETS:
        r = result["datasets"].get(name)
        if not r:
            continue
        s, lat = r["sizes"], r.get("latency", {})
        med, tacc = lat.get("median_ms", {}), r["rows"].get("teacher", {}).get("test_accuracy")
        rows = []
        for key in ROWS:
            x = r["rows"].get(key, {})
            if x.get("status") != "ok":
                rows.append([f"`{key}`", WHAT[key], x.get("status", "not run")[:120]] + [""] * 7)
                continue
            m = med.get(key, {})
            tm = med.get("teacher", {})
            sp = (f"{tm['b1'] / m['b1']:.2f}x / {tm['b32'] / m['b32']:.2f}x" if m and tm else "-")
            rows.append([f"`{key}`", WHAT[key], f"{x['test_accuracy']:.4f}", f"{x['test_macro_f1']:.4f}",
                         f"{x['test_accuracy'] / tacc:.3f}" if tacc else "-",
                         F._f(x.get("train_seconds"), ".0f"), F._f(m.get("b1"), ".2f"),
                         F._f(m.get("b32"), ".1f"), sp, f"{x['bundle_bytes'] / 1e6:.1f}"])
        ai = r["aims"]
        acc = (f"accuracy ratio {ai['accuracy_ratio']:.3f} (aim >= {AIM_ACCURACY}: "
               f"{'met' if ai['accuracy_met'] else 'not met'})" if "accuracy_ratio" in ai
               else "accuracy ratio not measured")
        spd = (f"speed-up {ai['speedup_b1']:.2f}x at batch 1, {ai['speedup_b32']:.2f}x at batch 32 "
               f"(aim >= {AIM_SPEEDUP}x at both: {'met' if ai['speedup_met'] else 'not met'})"
               if "speedup_met" in ai else f"speed-up not measured ({lat.get('status', '')[:200]})")
        cls = (f"classic on teacher labels minus classic on gold: "
               f"{ai['classic_distilled_minus_gold']:+.4f} accuracy"
               if "classic_distilled_minus_gold" in ai else "")
        i8 = ai.get("int8")
        if i8 and "speedup_met" in i8:
            g = r["rows"]["student-int8"].get("gate", {})
            spd += (f"; int8 student (gate: validation drop {g.get('drop_points', 0):+.2f} points, "
                    f"passed): accuracy ratio {i8['accuracy_ratio']:.3f}, speed-up "
                    f"{i8['speedup_b1']:.2f}x / {i8['speedup_b32']:.2f}x - aim "
                    f"{'met' if i8['accuracy_met'] and i8['speedup_met'] else 'not met'}")
        parts += [f"### {F.TITLES[name]}", "",
                  f"{s['n_train']:,} labeled training / {s['n_valid']:,} validation examples, "
                  f"{s['n_unlabeled']:,} unlabeled texts, {s['n_test']:,} test. Teacher "
                  f"{r['rows'].get('teacher', {}).get('source', '-')}" +
                  (f", gold classic {r['rows']['classic-gold']['source']}"
                   if r["rows"].get("classic-gold", {}).get("source") else "") + ". Latency: batch 1 over "
                  f"{lat.get('n_single', '-')} texts, batch 32 over {lat.get('n_batches', '-')} "
                  f"batches, median of {lat.get('rounds', '-')} rounds, {lat.get('threads', '-')} "
                  f"threads, mean 1-min load while timing {lat.get('load', {}).get('load1_mean', '-')}."
                  + f" Machine: {common.machine_line(r.get('machine') or result['machine'])}.",
                  "", common.md_table(["model", "what", "test acc", "test macro-F1", "acc / teacher",
                                       "train s", "ms @1", "ms @32", "speed-up @1 / @32", "bundle MB"],
                                      rows), "",
                  f"**Student `layers:{cfg['layers']}`: {acc}; {spd}.**" + (f" {cls}." if cls else ""), ""]
    cmd = "python benchmarks/distill.py" + (" --quick" if quick else "")
    parts += ["Each data set's machine is named under its table. Train s of a reused teacher is "
              "from its own run in fusion.py; the student's excludes computing the teacher "
              "logits.", "", "Reproduce (after `python benchmarks/fusion.py`, whose finetune "
              "bundles serve as teachers):", "", "```bash",
              f"{cmd}   # results: benchmarks/results/{NAME}{'.quick' if quick else ''}.json", "```"]
    return "\n".join(parts)


def main() -> None:
    ap = common.parser(__doc__, "tiny samples, 1 epoch")
    ap.add_argument("--only", default=",".join(DATASETS))
    ap.add_argument("--train-size", default="", help="as in fusion.py, e.g. sst2=8000")
    ap.add_argument("--unlabeled", type=int, default=8000, help="extra SST-2 texts (0: none)")
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3, help="teacher and student epochs")
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--threads", type=int, default=common.THREADS)
    a = ap.parse_args()
    if common.handled(a, NAME, readme, {"latency": worker_latency}):
        return
    path = common.result_path(NAME, a.quick)
    common.THREADS = a.threads
    common.pin_threads(a.threads)
    common.torch_threads(a.threads)
    a.sizes = F.parse_sizes(a.train_size)
    if a.quick:
        a.epochs = 1
    t0 = time.perf_counter()
    result = json.loads(path.read_text()) if path.exists() else {"datasets": {}}
    for r in result["datasets"].values():  # rows kept from an earlier run keep that run's machine
        r.setdefault("machine", result.get("machine"))
    result.update(benchmark=NAME, quick=a.quick, machine=common.machine_info(),
                  config={"epochs": a.epochs, "max_length": a.max_length, "layers": a.layers,
                          "unlabeled": a.unlabeled, "threads": a.threads})
    for name in [s.strip() for s in a.only.split(",") if s.strip()]:
        result["datasets"][name] = {**run_dataset(name, a), "config": dict(result["config"]),
                                    "machine": result["machine"]}
        common.write_json(NAME, result, a.quick)
    common.finish(NAME, result, a, readme, t0)


if __name__ == "__main__":
    main()
