"""Where the ``classic`` strategy spends its training time on long, many-class documents.

Run through ``python benchmarks/text_classification.py --part longdoc`` (this module holds the
part's code). Data: documents of ~300 words made from BANKING77 (77 intents): each document
joins short queries, each drawn from the document's intent with probability 1 - ``noise`` and from
any intent otherwise (so the task is not trivially separable); train documents come from
``train.csv`` only, test documents from ``test.csv`` only. Every configuration is fitted in a fresh
subprocess (peak RSS per run) with 1 thread; the stage seconds come from timers wrapped around
scikit-learn's ``TfidfVectorizer`` and ``LogisticRegression`` methods, so the same instrumentation
measures the current source and an older one (``--before-ref``).

Variants:

* ``before-code``: the source of git ``--before-ref`` (default ``BEFORE_REF``) with its
  defaults, i.e. the old code itself (it runs each vectoriser's ``fit`` and ``transform``
  separately);
* ``after``: today's source with its defaults (one ``fit_transform`` per vectoriser);
* ``warm-path``: today's source with ``C_path="warm"``, a measured candidate that is not a default;
* ``after-2-cores``: today's source with its defaults in a process allowed both cores: the C
  values are fitted two at a time (``n_jobs=0``: one per available core), in worker processes
  where the fit is large (``parallel="auto"``) - the logreg stage timers cannot see inside those
  processes, so there the C search's seconds are ronghe's own ``C_search`` stage;
* ``threads-2-cores``: the same with ``parallel="threads"`` (two fits in threads of one process,
  the default before worker processes).

An accuracy check on the shared sets as they are follows (SST-2 2k and 20k seeded samples ->
``dev.tsv``, BANKING77 ``train.csv`` -> ``test.csv``), every variant, in the same run.

Writes ``benchmarks/results/classic_longdoc.json`` and the ``classic_longdoc`` section of
``benchmarks/README.md``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import common  # benchmarks/common.py: this script's folder is first on sys.path
from common import RESULTS, ROOT

NAME = "classic_longdoc"
WORK = common.WORK / NAME
DATA = Path(os.environ.get("SHARED_DATA", "/work/shared/data"))
SEED = 0
OLD_SETTINGS = {"C_path": "cold", "char_max_chars": None}
BEFORE_REF = "8a3a0b6"  # main just before the one-pass vectorisers and the C_path option
CANDIDATES = {"warm-path": {"C_path": "warm"}}  # measured options that are not defaults
CORES = {"after-2-cores": 2, "threads-2-cores": 2}  # variants whose process may use both cores
CORE_OPTIONS = {"threads-2-cores": {"parallel": "threads"}}


# ============================================================================ data

def longdoc_sets(per_class: int, test_per_class: int, words: int, noise: float):
    """(train texts, train labels, test texts, test labels) of ~``words``-word documents."""
    import numpy as np
    import pandas as pd

    def make(df, n, seed):
        rng = np.random.default_rng(seed)
        by = {c: g["text"].tolist() for c, g in df.groupby("category")}
        every = df["text"].tolist()
        texts, labels = [], []
        for c in sorted(by):
            for _ in range(n):
                parts, count = [], 0
                while count < words:
                    pool = by[c] if rng.random() >= noise else every
                    t = pool[rng.integers(len(pool))]
                    parts.append(t)
                    count += len(t.split())
                texts.append(" ".join(parts))
                labels.append(c)
        return texts, labels

    train = pd.read_csv(DATA / "banking77" / "train.csv")
    test = pd.read_csv(DATA / "banking77" / "test.csv")
    return (*make(train, per_class, SEED), *make(test, test_per_class, SEED + 1))


def shared_sets(name: str):
    import numpy as np
    import pandas as pd

    if name.startswith("sst2"):
        train = pd.read_csv(DATA / "sst2" / "train.tsv", sep="\t")
        dev = pd.read_csv(DATA / "sst2" / "dev.tsv", sep="\t")
        n = int(name.split("-")[1].rstrip("k")) * 1000
        idx = np.sort(np.random.default_rng(SEED).choice(len(train), size=n, replace=False))
        train = train.iloc[idx]
        text = [c for c in ("sentence", "content", "text") if c in dev.columns][0]
        return (train["sentence"].tolist(), train["label"].tolist(), dev[text].tolist(),
                dev["label"].tolist())
    train = pd.read_csv(DATA / "banking77" / "train.csv")
    test = pd.read_csv(DATA / "banking77" / "test.csv")
    return (train["text"].tolist(), train["category"].tolist(), test["text"].tolist(),
            test["category"].tolist())


# ============================================================================ worker

class StageTimer:
    """Wraps scikit-learn methods to add up their seconds per stage (works for any ronghe)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.lr_fits: list[dict] = []

    def add(self, key, dt):
        self.seconds[key] = self.seconds.get(key, 0.0) + dt

    def install(self):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        timer = self
        for meth in ("fit", "fit_transform", "transform"):
            orig = getattr(TfidfVectorizer, meth)

            def wrapped(self, *a, _orig=orig, _meth=meth, **k):
                start = time.perf_counter()
                out = _orig(self, *a, **k)
                name = "char" if str(self.analyzer).startswith("char") else "word"
                timer.add(f"{name}_{_meth}", time.perf_counter() - start)
                return out

            setattr(TfidfVectorizer, meth, wrapped)
        orig_fit, orig_predict = LogisticRegression.fit, LogisticRegression.predict

        def fit(self, *a, **k):
            start = time.perf_counter()
            out = orig_fit(self, *a, **k)
            dt = time.perf_counter() - start
            timer.add("logreg_fit", dt)
            timer.lr_fits.append({"C": float(self.C), "seconds": round(dt, 2),
                                  "n_iter": int(max(self.n_iter_)),
                                  "warm_start": bool(self.warm_start)})
            return out

        def predict(self, *a, **k):
            start = time.perf_counter()
            out = orig_predict(self, *a, **k)
            timer.add("logreg_predict", time.perf_counter() - start)
            return out

        LogisticRegression.fit, LogisticRegression.predict = fit, predict


def worker(spec: dict) -> dict:
    import resource

    if spec.get("cores"):  # widen the affinity the orchestrator's taskset gave this process
        os.sched_setaffinity(0, set(range(min(spec["cores"], os.cpu_count() or 1))))

    timer = StageTimer()
    timer.install()
    import numpy as np

    import ronghe

    if spec["data"] == "longdoc":
        a = spec["longdoc"]
        Xtr, ytr, Xte, yte = longdoc_sets(a["per_class"], a["test_per_class"], a["words"],
                                          a["noise"])
    else:
        Xtr, ytr, Xte, yte = shared_sets(spec["data"])
    clf = ronghe.TextClassifier(strategy="classic", seed=SEED, options=spec["options"] or None)
    start = time.perf_counter()
    clf.fit(Xtr, ytr)
    fit_s = time.perf_counter() - start
    peak_fit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)  # so worker processes' peaks are counted below
    peak_workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    fit_stages = dict(timer.seconds)
    st = clf.strategy_
    if "C_search" in getattr(st, "stage_seconds", {}):  # wall seconds, also of fits in processes
        fit_stages["C_search"] = st.stage_seconds["C_search"]
    start = time.perf_counter()
    pred = clf.predict(Xte)
    predict_s = time.perf_counter() - start
    from sklearn.metrics import accuracy_score, f1_score

    n_feat = {k: len(v.vocabulary_) for k, v in st.tfidf.vectorisers.items()}
    return {
        "n_train": len(Xtr), "n_test": len(Xte), "n_classes": len(set(ytr)),
        "mean_words_train": round(float(np.mean([len(t.split()) for t in Xtr])), 1),
        "n_features": n_feat, "config": clf.config_.model_dump(mode="json"),
        "train_seconds": round(fit_s, 2),
        "stages": {k: round(v, 2) for k, v in fit_stages.items()},
        "logreg_fits": timer.lr_fits, "history": clf.metrics_["history"],
        "chosen_C": float(st.model.C),
        "test_accuracy": round(float(accuracy_score(yte, pred)), 4),
        "test_macro_f1": round(float(f1_score(yte, pred, average="macro")), 4),
        "test_predict_seconds": round(predict_s, 2),
        "peak_rss_fit_mb": round(peak_fit, 1),
        "peak_rss_worker_process_mb": round(peak_workers, 1),  # the largest; 0 without any
        "ronghe_file": ronghe.__file__,
    }


# ============================================================================ orchestrator

def run(spec: dict, src: str, log_dir: Path) -> dict:
    from text_classification import Contention, thread_env
    import resource

    log_dir.mkdir(parents=True, exist_ok=True)
    tag = f"{spec['variant']}.{spec['data']}.{spec['rep']}"
    spec_path, out_path = log_dir / f"{tag}.spec.json", log_dir / f"{tag}.result.json"
    spec_path.write_text(json.dumps(spec))
    out_path.unlink(missing_ok=True)
    env = {**os.environ, **thread_env(1), "PYTHONPATH": src}
    with open(log_dir / f"{tag}.log", "w") as log, Contention(resource.RUSAGE_CHILDREN) as busy:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(spec_path),
                               str(out_path)], env=env, stdout=log, stderr=subprocess.STDOUT,
                              cwd=ROOT)
    if proc.returncode != 0 or not out_path.exists():
        tail = (log_dir / f"{tag}.log").read_text().splitlines()[-25:]
        raise RuntimeError(f"{tag} failed (exit {proc.returncode}):\n" + "\n".join(tail))
    out = json.loads(out_path.read_text())
    out["foreign_cpu_share"] = busy.share
    return out


def _median_run(reps: list[dict]) -> dict:
    """The repetition with the median train seconds, plus the medians of every stage."""
    ordered = sorted(reps, key=lambda r: r["train_seconds"])
    mid = dict(ordered[len(ordered) // 2])
    keys = sorted({k for r in reps for k in r["stages"]})
    mid["stages_median"] = {k: round(statistics.median(r["stages"].get(k, 0.0) for r in reps), 2)
                            for k in keys}
    mid["train_seconds_median"] = round(statistics.median(r["train_seconds"] for r in reps), 2)
    mid["train_seconds_all"] = [r["train_seconds"] for r in reps]
    mid["peak_rss_fit_mb_max"] = max(r["peak_rss_fit_mb"] for r in reps)
    mid["peak_rss_worker_mb_max"] = max(r.get("peak_rss_worker_process_mb", 0) for r in reps)
    mid["foreign_cpu_share_all"] = [r["foreign_cpu_share"] for r in reps]
    return mid


def main(args) -> int:
    from text_classification import machine_info

    t0 = time.perf_counter()
    invocation = datetime.now(timezone.utc).isoformat(timespec="seconds")
    log_dir = WORK
    srcs = {"after": str(ROOT / "src"), **{k: str(ROOT / "src") for k in [*CANDIDATES, *CORES]}}
    options = {"after": {}, **CANDIDATES, **{k: CORE_OPTIONS.get(k, {}) for k in CORES}}
    variants = ["before-code", "after", *CANDIDATES, *CORES]
    if variants[0] == "before-code":
        before_commit = subprocess.run(["git", "rev-parse", args.before_ref or BEFORE_REF], cwd=ROOT,
                                       check=True, capture_output=True, text=True).stdout.strip()
        snap = WORK / f"src-{before_commit[:12]}"
        if not (snap / "src" / "ronghe" / "__init__.py").exists():
            snap.mkdir(parents=True, exist_ok=True)
            archive = subprocess.run(["git", "archive", before_commit, "src"], cwd=ROOT,
                                     check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(snap)], input=archive, check=True)
        srcs["before-code"], options["before-code"] = str(snap / "src"), {}
    longdoc = {"per_class": args.per_class, "test_per_class": max(10, args.per_class // 4),
               "words": args.words, "noise": args.noise}
    reps = max(1, args.reps or 3)
    raw: dict[str, list] = {v: [] for v in variants}
    for rep in range(reps):  # interleaved, so slow phases of the machine hit every variant
        for v in variants:
            spec = {"variant": v, "data": "longdoc", "rep": rep, "options": options[v],
                    "longdoc": longdoc, "cores": CORES.get(v)}
            r = run(spec, srcs[v], log_dir)
            raw[v].append(r)
            print(f"[{NAME}] longdoc {v} rep {rep}: train {r['train_seconds']:.1f}s "
                  f"acc {r['test_accuracy']:.4f} peak {r['peak_rss_fit_mb']:.0f} MB "
                  f"stages {r['stages']}", flush=True)
    check = {}
    if not args.skip_check:
        for data in ("sst2-2k", "sst2-20k", "banking77"):
            for v in variants:
                spec = {"variant": v, "data": data, "rep": 0, "options": options[v],
                        "cores": CORES.get(v)}
                r = run(spec, srcs[v], log_dir)
                check.setdefault(data, {})[v] = r
                print(f"[{NAME}] {data} {v}: train {r['train_seconds']:.1f}s "
                      f"acc {r['test_accuracy']:.4f}", flush=True)
    machine = machine_info(1)
    machine["cpu_flags_all"] = common.cpu_flags()
    machine["taskset"] = sorted(os.sched_getaffinity(0))
    doc = {"benchmark": NAME, "date": invocation,
           "command": "taskset -c 1 python benchmarks/text_classification.py --part longdoc"
                      + (f" --reps {reps}" if reps != 3 else "")
                      + (f" --before-ref {args.before_ref}" if args.before_ref else ""),
           "machine": machine, "longdoc": longdoc, "reps": reps, "old_settings": OLD_SETTINGS,
           "before_commit": before_commit,
           "longdoc_runs": {v: {"median": _median_run(rs), "reps": rs} for v, rs in raw.items()},
           "accuracy_check": check, "total_wall_seconds": round(time.perf_counter() - t0, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = args.out or RESULTS / f"{NAME}.json"
    out.write_text(json.dumps(doc, indent=2))
    section = markdown(doc)
    print(section)
    if args.readme is not False:
        common.write_readme_section(NAME, section)
    return 0


STAGES = [("word_fit", "word fit"), ("word_fit_transform", "word fit_transform"),
          ("word_transform", "word transform (train + valid)"), ("char_fit", "char fit"),
          ("char_fit_transform", "char fit_transform"),
          ("char_transform", "char transform (train + valid)"),
          ("logreg_fit", "logreg fits (all C, in this process)"), ("logreg_predict", "validation predict"),
          ("C_search", "C search, wall (fits + validation)")]


def markdown(doc: dict) -> str:
    runs = {v: d["median"] for v, d in doc["longdoc_runs"].items()}
    names = list(runs)
    ld = doc["longdoc"]
    any_run = next(iter(runs.values()))
    lines = ["## classic on long, many-class documents", "",
             f"_Generated by `benchmarks/text_classification.py --part longdoc` "
             f"(`benchmarks/{NAME}.py`) on {doc['date']}; raw numbers in "
             f"`benchmarks/results/{NAME}.json`._", "",
             f"Documents of ~{ld['words']} words (mean {any_run['mean_words_train']}) joined from "
             f"BANKING77 queries: {ld['per_class']} training documents per intent "
             f"({any_run['n_train']:,} in all, {any_run['n_classes']} classes; ronghe holds out "
             f"10 % for choosing C) from `train.csv`, {ld['test_per_class']} test documents per "
             f"intent ({any_run['n_test']:,}) from `test.csv`; each query is from the document's "
             f"intent with probability {1 - ld['noise']:.2f}, from any intent otherwise. "
             f"`before-code` = the source of `{doc['before_commit'][:7]}` (the old code, "
             "`fit` then `transform` per vectoriser); `after` = today's defaults (one "
             "`fit_transform` per vectoriser); `warm-path` = today's code with "
             "`C_path=\"warm\"` (a candidate measured, not a default)"
             + ("; `after-2-cores` = today's defaults in a process allowed both cores, so the "
                "C values are fitted two at a time - in worker processes where the fit is large "
                "(`parallel=\"auto\"`), whose fits the 'logreg fits' stage cannot see: read "
                "'C search, wall'" if "after-2-cores" in names else "")
             + ("; `threads-2-cores` = the same with `parallel=\"threads\"`, two fits in threads "
                "of one process (the default before; its 'logreg fits' stage adds up fits that "
                "ran at once, so it is CPU time, not wall time)"
                if "threads-2-cores" in names else "")
             + ". 1 thread per fit, pinned with taskset (one core; two for the `-2-cores` "
             "variants); "
             "each run a fresh process; "
             + (f"seconds are medians of {doc['reps']} interleaved runs." if doc["reps"] > 1 else
                "one run of each (time allowed no more).") + "", "",
             "| stage (s) | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key, label in STAGES:
        vals = [runs[v]["stages_median"].get(key) for v in names]
        if any(vals):
            lines.append(f"| {label} | " + " | ".join("-" if x is None else f"{x:.1f}"
                                                     for x in vals) + " |")
    rows = [("**train total**", lambda r: f"**{r['train_seconds_median']:.1f}**"),
            ("train runs", lambda r: ", ".join(f"{x:.0f}" for x in r["train_seconds_all"])),
            ("C fits: C (iterations, s)", lambda r: "; ".join(
                f"{f['C']:g} ({f['n_iter']}, {f['seconds']:.0f})" for f in r["logreg_fits"])),
            ("chosen C", lambda r: f"{r['chosen_C']:g}"),
            ("features word / char", lambda r: " / ".join(f"{n:,}" for n in
                                                         r["n_features"].values())),
            ("peak RSS while fitting, MB (max of runs)", lambda r: f"{r['peak_rss_fit_mb_max']:,.0f}"
             + (f" + {r['peak_rss_worker_mb_max']:,.0f} per worker process"
                if r.get("peak_rss_worker_mb_max") else "")),
            ("test accuracy", lambda r: f"{r['test_accuracy']:.4f}"),
            ("test macro-F1", lambda r: f"{r['test_macro_f1']:.4f}"),
            ("other processes' CPU share", lambda r: ", ".join(
                f"{x:.0%}" for x in r["foreign_cpu_share_all"]))]
    for label, f in rows:
        lines.append(f"| {label} | " + " | ".join(f(runs[v]) for v in names) + " |")
    if doc["accuracy_check"]:
        lines += ["", "Accuracy kept on the shared sets as they are (one run each, same "
                  "invocation; SST-2 samples are seeded, scored on `dev.tsv`; BANKING77 "
                  "`train.csv` -> `test.csv`): accuracy / train seconds / chosen C.", "",
                  "| set | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for data, d in doc["accuracy_check"].items():
            n = next(iter(d.values()))["n_train"]
            lines.append(f"| {data} ({n:,} train) | " + " | ".join(
                f"{d[v]['test_accuracy']:.4f} / {d[v]['train_seconds']:.1f} s / "
                f"C={d[v]['chosen_C']:g}" for v in names if v in d) + " |")
    m = doc["machine"]
    lines += ["", "**Notes:** the stage seconds of one run are noisy (the same settings' fits "
              "differ by up to ~10 s between runs), so compare iterations as well as seconds. "
              "'Other processes' CPU share' counts the whole 2-core machine: ~50 % means the "
              "other core was busy (another benchmark) while this run had its pinned core. "
              "The logistic-regression fits are ~85 % of the time: each lbfgs iteration costs "
              "about (non-zeros of the matrix) x (classes), and the char n-grams hold most of "
              "the non-zeros; the options that shrink them were measured to cost accuracy "
              "(char n-grams on the first 1,000 characters: -2 points; char (3, 5): -0.5 point), "
              "so they are not defaults."]
    bank = doc["accuracy_check"].get("banking77", {})

    def speedup(slow: str, fast: str) -> str:  # "1.48x on the long documents, 1.47x on BANKING77"
        return (f"{runs[slow]['train_seconds_median'] / runs[fast]['train_seconds_median']:.2f}x "
                "on the long documents"
                + (f", {bank[slow]['train_seconds'] / bank[fast]['train_seconds']:.2f}x on BANKING77"
                   if {slow, fast} <= set(bank) else ""))

    if "after-2-cores" in runs and "after" in runs:
        lines[-1] += (f" `after-2-cores` (the default `n_jobs=0` given both cores) against "
                      f"`after`: {speedup('after', 'after-2-cores')}, same C and accuracy.")
    if "threads-2-cores" in runs and "after-2-cores" in runs:
        lines[-1] += (
            " Worker processes against threads (both with two cores): "
            + speedup("threads-2-cores", "after-2-cores")
            + ": in threads the solver's Python steps queue for one GIL, in processes they do "
            "not - that matters most where iterations are many and cheap (BANKING77's short "
            "queries); on the long documents each iteration is one large sparse product that "
            "releases the GIL anyway, and the wall time is bounded by how the four C fits of "
            "unequal length pair up on two workers. The data reaches the workers memory-mapped "
            "(joblib), not pickled per task; the memory row gives the parent's peak and the "
            "largest worker's, whose RSS counts the shared mapped pages it touched, so the sum "
            "overstates the total. Short texts with two classes (SST-2) stay in threads "
            "(`auto`: under `PROCESS_MIN_WORK`), where a worker's start-up would cost more than "
            "it saves.")
    lines += ["", "**Reproduce:**", "", "```bash", doc["command"], "```", "",
              f"**Machine:** /proc/cpuinfo \"{m['cpu_model']}\" (family/model/stepping "
              f"{'/'.join(str(x) for x in m['cpu_family_model_stepping'])}"
              f"{', KVM guest' if m['hypervisor'] else ''}), {m['logical_cpus']} cores, "
              f"{m['memory_gb']} GB RAM; runs pinned to CPU {m['taskset']} with 1 thread "
              f"(OMP/MKL/OpenBLAS = 1); scikit-learn {m['versions']['scikit-learn']}, numpy "
              f"{m['versions']['numpy']}, Python {m['python']}. CPU flags: `{m['cpu_flags_all']}`. "
              f"Total wall time {doc['total_wall_seconds'] / 60:.1f} min."]
    return "\n".join(lines)


if __name__ == "__main__":  # worker: spec path, output path
    spec_file, out_file = sys.argv[1:3]
    Path(out_file).write_text(json.dumps(worker(json.loads(Path(spec_file).read_text())),
                                         indent=2))
