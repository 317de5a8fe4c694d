#!/usr/bin/env python
"""Few-shot SST-2: ronghe ``contrastive`` and ``frozen`` against SetFit 1.2.

For k in (8, 16, 64) examples per class and 5 seeds, the same seeded sample of SST-2 train goes
to three learners, each in a fresh subprocess with 2 pinned threads:

* ronghe ``contrastive`` (the SetFit recipe inside ronghe) with its defaults;
* ronghe ``frozen`` (mean-pooled MiniLM embeddings + logistic regression) with its defaults;
* SetFit 1.2 with its default settings (``TrainingArguments()``: batch 16, 1 epoch, pair
  oversampling, CosineSimilarityLoss, logistic-regression head), run by this same file in a
  separate virtual environment (``benchmarks/.work/setfit-venv``: ronghe's torch release first, then
  ``setfit==1.2.*``), offline, with the same MiniLM folder as its sentence-transformers model.

ronghe is called the way a user calls it, ``fit(texts, labels)``: it holds out a stratified 10 %
of the k-per-class sample (at least one per class) for validation; ``frozen`` chooses its head's
C by cross-validation over the whole sample (its ``selection=auto``: the held-out split is under
500 texts), and ``contrastive`` - whose held-out set is under its ``min_valid`` (20) at these
sizes - trains on those examples too with C 1.0 (runs from before that rule held them out). Train time = model loading + training
(+ embedding the training set for the head), dev evaluation (872 sentences) not included.

    python benchmarks/fewshot.py              # full: k = 8, 16, 64 x 5 seeds
    python benchmarks/fewshot.py --quick      # smoke: k = 8, 1 seed
    python benchmarks/fewshot.py --setup-setfit   # create the SetFit venv (needs the network)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path

import common  # benchmarks/common.py: this script's folder is first on sys.path

common.pin_threads()

NAME = "fewshot"
SETFIT_VENV = common.WORK / "setfit-venv"
SETFIT_PY = SETFIT_VENV / "bin" / "python"
LEARNERS = ("contrastive", "frozen", "setfit", "contrastive-it20")
DEFAULT_LEARNERS = ("contrastive", "frozen", "setfit")
# ronghe learners with options other than the defaults: name -> (strategy, options)
RONGHE = {"contrastive": ("contrastive", {}), "frozen": ("frozen", {}),
          "contrastive-it20": ("contrastive", {"num_iterations": 20})}


# ---------------------------------------------------------------------------------- workers

def worker_ronghe(spec: dict) -> dict:
    common.torch_threads()
    from ronghe import TextClassifier

    t0 = time.perf_counter()
    strategy, options = RONGHE[spec["learner"]]
    clf = TextClassifier(strategy=strategy, model="minilm", options=options or None).fit(
        spec["texts"], spec["labels"])
    wall = time.perf_counter() - t0
    rep = clf.evaluate(spec["dev_texts"], spec["dev_labels"])
    return {"train_seconds": round(clf.train_seconds_, 2), "fit_wall_seconds": round(wall, 2),
            "dev_accuracy": round(rep["accuracy"], 4), "history": clf.metrics_.get("history")}


def worker_setfit(spec: dict) -> dict:
    """Runs inside the SetFit venv: imports neither ronghe nor common's data helpers."""
    import torch

    torch.set_num_threads(common.THREADS)
    import numpy as np
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    t0 = time.perf_counter()
    model = SetFitModel.from_pretrained(spec["model_path"])
    # default hyper-parameters; only its checkpoint folder moves out of the repository
    trainer = Trainer(model=model, args=TrainingArguments(output_dir=spec["out_dir"]),
                      train_dataset=Dataset.from_dict({"text": spec["texts"],
                                                       "label": spec["labels"]}))
    trainer.train()
    train_s = time.perf_counter() - t0
    pred = np.asarray(model.predict(spec["dev_texts"]))
    acc = float((pred == np.asarray(spec["dev_labels"])).mean())
    import setfit

    return {"train_seconds": round(train_s, 2), "dev_accuracy": round(acc, 4),
            "setfit": setfit.__version__, "torch": torch.__version__,
            "steps": getattr(getattr(getattr(trainer, "st_trainer", None), "state", None),
                             "global_step", None)}


# ------------------------------------------------------------------------------------ driver

def setfit_status() -> dict:
    if not SETFIT_PY.exists():
        return {"available": False, "why": f"{SETFIT_VENV} missing: run with --setup-setfit"}
    try:
        v = common.versions(str(SETFIT_PY))
    except subprocess.CalledProcessError as e:
        return {"available": False, "why": f"cannot query the venv: {e.stderr[-500:]}"}
    if "setfit" not in v:
        return {"available": False, "why": "setfit is not installed in the venv", "versions": v}
    if v.get("torch") != _torch_version():
        return {"available": False, "why": f"the venv has torch {v.get('torch')}, not ronghe's "
                f"{_torch_version()} (run --setup-setfit again)", "versions": v}
    return {"available": True, "versions": v}


def _torch_version() -> str:
    """The torch release ronghe runs on here (the same one goes into SetFit's venv)."""
    from importlib.metadata import version

    return version("torch")


def setup_setfit() -> None:
    subprocess.run(["python3.11", "-m", "venv", str(SETFIT_VENV)], check=True)
    pip = [str(SETFIT_PY), "-m", "pip", "install"]
    # ronghe's torch first (pinned: an unpinned torch pulls the newest CUDA build), so both
    # learners run the same kernels
    subprocess.run(pip + [f"torch=={_torch_version().split('+')[0]}"], check=True)
    subprocess.run(pip + ["setfit==1.2.*"], check=True)
    print(json.dumps(setfit_status(), indent=2))


def run(learner: str, spec: dict, tag: str, work: Path) -> dict:
    setfit = learner == "setfit"
    res = common.run_worker(__file__, "setfit" if setfit else "ronghe", spec, tag, work,
                            python=str(SETFIT_PY) if setfit else None, monitor_every=10)
    print(f"[{time.strftime('%H:%M:%S')}] {tag}: acc {res['dev_accuracy']}, train "
          f"{res['train_seconds']} s (load {res['load']['load1_mean']})", flush=True)
    return res


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for k in sorted({r["k"] for r in runs}):
        for learner in LEARNERS:
            rs = [r for r in runs if r["k"] == k and r["learner"] == learner]
            if not rs:
                continue
            acc = [r["dev_accuracy"] for r in rs]
            sec = [r["train_seconds"] for r in rs]
            rows.append({"k": k, "learner": learner, "n": len(rs),
                         "acc_mean": round(statistics.mean(acc), 4),
                         "acc_std": round(statistics.stdev(acc), 4) if len(acc) > 1 else 0.0,
                         "sec_mean": round(statistics.mean(sec), 1),
                         "sec_std": round(statistics.stdev(sec), 1) if len(sec) > 1 else 0.0})
    return rows


def versus_setfit(rows: list[dict], runs: list[dict] | None = None, dev_size: int = 0) -> list[str]:
    """The verdict on the issue's aim, then one line per k: ``contrastive`` against SetFit, with
    the per-seed difference in dev sentences right (the same sample for both learners)."""
    out, met = [], []
    for k in sorted({r["k"] for r in rows}):
        by = {r["learner"]: r for r in rows if r["k"] == k}
        c, sf = by.get("contrastive"), by.get("setfit")
        if not (c and sf):
            continue
        acc = {(r["learner"], r["seed"]): r["dev_accuracy"] for r in runs or () if r["k"] == k}
        seeds = sorted(s for (learner, s) in acc if learner == "contrastive" and ("setfit", s) in acc)
        right = ({s: round(dev_size * (acc[("contrastive", s)] - acc[("setfit", s)])) for s in seeds}
                 if dev_size else {})
        exact = ({n: statistics.mean(acc[(n, s)] for s in seeds) for n in ("contrastive", "setfit")}
                 if seeds else {"contrastive": c["acc_mean"], "setfit": sf["acc_mean"]})
        out.append(f"- k = {k}: `contrastive` {c['acc_mean']:.3f} vs SetFit {sf['acc_mean']:.3f} "
                   f"({100 * (exact['contrastive'] - exact['setfit']):+.1f} points"
                   + (f"; dev sentences right against SetFit per seed: "
                      f"{', '.join(f'{v:+d}' for v in right.values())}, in all {sum(right.values()):+d}"
                      if right else "")
                   + f") in {c['sec_mean'] / sf['sec_mean']:.2f}x SetFit's time")
        if exact["contrastive"] >= exact["setfit"] - 1e-9 and c["sec_mean"] < sf["sec_mean"]:
            met.append(k)
    if not out:
        return []
    verdict = (f"**Aim (at least SetFit's accuracy in less time): met at k = {met}.**" if met else
               "**Aim (at least SetFit's accuracy in less time): not met at any k.**")
    return [verdict, "", *out, ""]


def readme(result: dict, quick: bool) -> str:
    info, rows = result["machine"], result["summary"]
    names = {"contrastive": "ronghe `contrastive`", "frozen": "ronghe `frozen`",
             "setfit": "SetFit 1.2 (defaults)",
             "contrastive-it20": "ronghe `contrastive`, `num_iterations=20`"}
    table = common.md_table(
        ["examples per class", "learner", "runs", "dev accuracy (mean ± std)",
         "train s (mean ± std)"],
        [[r["k"], names[r["learner"]], r["n"], f"{r['acc_mean']:.3f} ± {r['acc_std']:.3f}",
          f"{r['sec_mean']:.0f} ± {r['sec_std']:.0f}"] for r in rows])
    sf = result["setfit"]
    sf_line = (f"SetFit {sf['versions'].get('setfit')} with torch {sf['versions'].get('torch')}, "
               f"sentence-transformers {sf['versions'].get('sentence-transformers')}, transformers "
               f"{sf['versions'].get('transformers')} in its own venv." if sf.get("available")
               else f"SetFit could not be run: {sf.get('why')}")
    loads = [r["load"]["load1_mean"] for r in result["runs"]]
    return "\n".join([
        "## Few-shot: ronghe `contrastive` and `frozen` vs SetFit" + (f" (`--name {NAME}`: k = {', '.join(map(str, result['ks']))})" if NAME != "fewshot" else ""),
        "",
        common.quick_note(quick, "python benchmarks/fewshot.py") +
        f"SST-2, k examples per class sampled from train (seeds {result['seeds']}; the same sample "
        "for every learner), accuracy on the dev set (872). Defaults everywhere. ronghe "
        "`fit(texts, labels)` holds out a stratified 10 % (at least one per class) of the sample "
        + ("for validation: `frozen` chooses its head's C by cross-validation over the whole "
           "sample (`selection=auto`: the held-out split is under 500 texts; rows from before "
           "2026-12-05 chose on the held-out split); `contrastive` trains on it too "
           f"(with head C 1.0), its held-out set being under its `min_valid` "
           f"({result['contrastive_min_valid']}) at these sizes. "
           if result.get("contrastive_min_valid") else
           "to choose its head's C, so it trains on fewer examples than SetFit. ")
        + "Train time = model loading + training (+ head), each run a fresh process with 2 "
        "pinned threads.",
        "",
        table,
        "",
        *versus_setfit(rows, result["runs"], result.get("dev_size", 0)),
        *[f"Note: {n}\n" for n in result.get("notes", [])],
        sf_line,
        "",
        f"Machine: {common.machine_line(info)}. 1-minute load average during the runs: "
        f"{min(loads):.1f}-{max(loads):.1f} (mean {statistics.mean(loads):.1f}); "
        f"{common.load_note(loads)}. The issue's aim: `contrastive` at least as accurate as "
        "SetFit in less time.",
        "",
        *common.reproduce(
            "python benchmarks/fewshot.py"
            f"{' --ks ' + ','.join(map(str, result['ks'])) if not quick and result['ks'] != [8, 16, 64] else ''}"
            f"{' --seeds ' + str(len(result['seeds'])) if not quick and len(result['seeds']) != 5 else ''}"
            f"{' --name ' + NAME if NAME != 'fewshot' else ''}",
            NAME, quick, setup=("python benchmarks/fewshot.py --setup-setfit   # once, needs the package index",)),
    ])


def main() -> None:
    global NAME
    ap = common.parser(__doc__, "k = 8, one seed")
    ap.add_argument("--ks", default="8,16,64")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--only", default=",".join(DEFAULT_LEARNERS), help=f"from {', '.join(LEARNERS)}")
    ap.add_argument("--merge", action="store_true",
                    help="keep the saved runs of the learners not run now (same ks and seeds)")
    ap.add_argument("--setup-setfit", action="store_true")
    ap.add_argument("--name", default=NAME, help="results/README name, e.g. fewshot_small for a "
                    "partial run (fewer ks) kept beside the full one instead of replacing it")
    a = ap.parse_args()
    NAME = a.name
    workers = {"setfit": worker_setfit, "ronghe": worker_ronghe}
    if common.handled(a, NAME, readme, workers):
        return
    if a.setup_setfit:
        setup_setfit()
        return
    from ronghe import backbones

    t0 = time.perf_counter()
    info = common.machine_info()
    ks = [8] if a.quick else [int(x) for x in a.ks.split(",")]
    seeds = list(range(1 if a.quick else a.seeds))
    learners = [x.strip() for x in a.only.split(",") if x.strip()]
    sf = setfit_status()
    if "setfit" in learners and not sf["available"]:
        print(f"SetFit skipped: {sf['why']}", flush=True)
        learners.remove("setfit")
    work = common.WORK / NAME / ("quick" if a.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    texts, labels = common.read_sst2("train")
    dev_t, dev_y = common.read_sst2("dev")
    model_path = str(backbones.resolve("minilm").path)
    runs, notes = [], []
    if a.merge:  # earlier runs of the other learners on the same samples
        saved_path = common.result_path(NAME, a.quick)
        if not saved_path.exists():
            raise SystemExit(f"--merge keeps the runs saved in {saved_path}, which does not exist: "
                             f"run without --merge first")
        saved = json.loads(saved_path.read_text())
        runs = [r for r in saved["runs"]
                if r["learner"] not in learners and r["k"] in ks and r["seed"] in seeds]
        notes = saved.get("notes", [])
        if "setfit" not in learners:
            sf = saved["setfit"]
        print(f"kept {len(runs)} saved runs of {sorted({r['learner'] for r in runs})}", flush=True)
    for k in ks:
        for seed in seeds:
            idx = common.per_class_sample(labels, k, seed=1000 + seed)
            spec = {"texts": [texts[i] for i in idx], "labels": [labels[i] for i in idx],
                    "dev_texts": dev_t, "dev_labels": dev_y, "model_path": model_path,
                    "out_dir": str(work / "setfit-out")}
            for learner in learners:
                res = run(learner, {**spec, "learner": learner}, f"k{k}-s{seed}-{learner}", work)
                runs.append({"k": k, "seed": seed, "learner": learner, **res})
            runs.sort(key=lambda r: (r["k"], r["seed"], LEARNERS.index(r["learner"])))
            partial = {"benchmark": NAME, "quick": a.quick, "machine": info, "ks": ks,
                       "seeds": seeds, "dev_size": len(dev_y), "setfit": sf, "runs": runs,
                       "summary": summarise(runs), "notes": notes,
                       "complete": False}
            common.write_json(NAME, partial, a.quick)
    from ronghe.strategies.contrastive import ContrastiveConfig

    result = {**partial, "complete": True,
              "contrastive_min_valid": ContrastiveConfig.model_fields["min_valid"].default}
    for r in result["summary"]:
        print(r)
    common.finish(NAME, result, a, readme, t0)


if __name__ == "__main__":
    main()
