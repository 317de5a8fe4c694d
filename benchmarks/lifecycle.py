"""Lifecycle (issue 18): drift detection, estimated accuracy, retraining with a gate.

* drift: a frozen MiniLM SST-2 model (trained on 2,000 SST-2 training sentences); reference =
  2,000 other SST-2 training sentences (labelled: the CBPE calibration). Current samples of 200
  and 1,000 texts drawn again and again (each without replacement) from: SST-2 training
  sentences in neither set (a pool of 4,000: no drift, the false-alarm rate) and that pool mixed
  with 5 / 10 / 25 / 50 % BANKING77 questions (detection credited to BANKING77); SST-2 dev+test
  (the issue's "no drift expected" - but SST-2 train holds phrases, dev/test whole sentences)
  and it mixed with the same shares; 100 % BANKING77. Per setting: how often each check fires,
  with the C2ST and with the MMD deciding input drift, and with p-values alone (no effect
  threshold); the CBPE estimate vs the true accuracy of the SST-2 part; and label-prior /
  length shifts of SST-2 dev+test, whose true accuracy is known.
* retrain: BANKING77 training questions as a stream in a seeded order; a frozen MiniLM champion
  trained on the first 10 %, then four batches of ~2,250 labelled questions; each batch runs
  ``lifecycle.retrain`` (challenger on all data so far, newest 20 % of the batch held out,
  McNemar + old-validation gate). Accuracy on the BANKING77 test set over time with and without
  retraining; at every step two injected worse challengers (labels shuffled; trained on only
  300 questions) go through the same gate and must never be promoted.
* selftrain: BANKING77 and CLINC150 (in-scope intents) with 5 / 10 labelled training texts per
  intent and the rest of the training texts as unlabelled ones; frozen MiniLM and classic with
  and without self-training (``lifecycle.selftrain``); accuracy on the test set.
* dapt: ``ronghe adapt-domain`` on the data set's training texts (labels dropped), then the same
  scarce-label frozen (and with --dapt-finetune fine-tuned) MiniLM classifiers on the adapted
  folder vs plain minilm; adapt time and peak memory.

Results are written after every part (self-training and DAPT also after every data set, marked
partial), so a run stopped at a time limit keeps what it measured.

Accuracy and detection rates do not depend on speed: on a shared machine the parts may run
niced without the lock (the README section then notes the load average for the times).

    flock /tmp/ronghe-bench.lock python benchmarks/lifecycle.py [--part drift,retrain,selftrain,dapt]
    nice -n 10 python benchmarks/lifecycle.py --part drift --n-ref 1000 --permutations 100
    nice -n 10 python benchmarks/lifecycle.py --part selftrain --datasets clinc150 --per-class 5

Writes ``benchmarks/results/lifecycle.json`` (parts run earlier are kept) and the section
between ``<!-- lifecycle:start -->`` and ``<!-- lifecycle:end -->`` in benchmarks/README.md.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.pin_threads()

NAME = "lifecycle"
DATA = Path(os.environ.get("RONGHE_DATA", "/work/shared/data"))
WORK = common.WORK / "lifecycle"


def _banking(split: str):
    import pandas as pd

    df = pd.read_csv(DATA / "banking77" / f"{split}.csv")
    return df["text"].tolist(), df["category"].tolist()


def _sst2(split: str):
    import pandas as pd

    df = pd.read_csv(DATA / "sst2" / f"{split}.tsv", sep="\t")
    text = "sentence" if "sentence" in df else "content"
    return df[text].astype(str).tolist(), df["label"].astype(str).tolist()


# -- drift ------------------------------------------------------------------------------------------

def part_drift(quick: bool, n_ref: int = 2000, repeats: tuple[int, int] = (10, 5),
               permutations: int = 150) -> dict:
    import numpy as np

    from ronghe import TextClassifier, data
    from ronghe.lifecycle import drift

    rng = np.random.default_rng(0)
    tr_t, tr_y = _sst2("train")
    order = rng.permutation(len(tr_t))
    # the no-drift pool: big enough that samples of 1,000 (and the 95 % base of a mixture) are
    # drawn without replacement from several times their size
    n_fit, n_ref, n_null = (200, 300, 300) if quick else (n_ref, n_ref, max(2 * n_ref, 4000))
    fit_i, ref_i = order[:n_fit], order[n_fit:n_fit + n_ref]
    null_i = order[n_fit + n_ref:n_fit + n_ref + n_null]
    t0 = time.perf_counter()
    clf = TextClassifier("frozen", "minilm").fit(
        data.from_texts([tr_t[i] for i in fit_i], [tr_y[i] for i in fit_i]))
    fit_s = time.perf_counter() - t0
    embed, what = drift.embedder(clf)

    def pool(texts, labels):
        ds = data.from_texts(texts, labels)
        return drift.sample(clf, ds, embed)

    t0 = time.perf_counter()
    ref = pool([tr_t[i] for i in ref_i], [tr_y[i] for i in ref_i])
    null = pool([tr_t[i] for i in null_i], [tr_y[i] for i in null_i])
    dv_t, dv_y = _sst2("dev")
    te_t, te_y = _sst2("test")
    if quick:
        dv_t, dv_y, te_t, te_y = dv_t[:200], dv_y[:200], te_t[:200], te_y[:200]
    elif n_ref < 2000:  # a smaller run: 1,500 of SST-2 dev+test (seeded)
        keep = np.random.default_rng(1).permutation(len(dv_t) + len(te_t))[:1500]
        both_t, both_y = dv_t + te_t, dv_y + te_y
        dv_t, dv_y = [both_t[i] for i in sorted(keep)], [both_y[i] for i in sorted(keep)]
        te_t, te_y = [], []
    sst = pool(dv_t + te_t, dv_y + te_y)
    bk_t, _ = _banking("test")
    bk_i = rng.permutation(len(bk_t))[: 300 if quick else 2000]
    bank = pool([bk_t[i] for i in bk_i], None)
    embed_s = time.perf_counter() - t0
    classes = [str(c) for c in clf.classes_]
    sizes = (200,) if quick else (200, 1000)
    repeats = {200: 2 if quick else repeats[0], 1000: repeats[1]}
    cfg = drift.DriftConfig(max_reference=n_ref, permutations=100 if quick else permutations)

    bases = {"sst": sst, "null": null}

    def mix(base, n, frac, seed):
        r = np.random.default_rng(seed)
        k = int(round(n * frac))
        a = base.take(r.choice(len(base), n - k, replace=False))
        if not k:
            return a, a
        b = bank.take(r.choice(len(bank), k, replace=False))
        both = drift.Sample(np.vstack([a.embeddings, b.embeddings]), a.predicted + b.predicted,
                            np.concatenate([a.confidence, b.confidence]), None)
        return both, a

    # base "null": SST-2 training sentences not in the reference (no drift, so a mixture's
    # detection is the BANKING77 share's); base "sst": SST-2 dev+test (already differs from the
    # reference: whole sentences vs phrases); 100 % BANKING77 is the same on either base
    settings = [("SST-2 train (other sentences)", "null", 0.0)]
    settings += [(f"SST-2 train (other) + {int(f * 100)}% BANKING77", "null", f)
                 for f in (0.05, 0.10, 0.25, 0.50)]
    settings += [("SST-2 dev+test", "sst", 0.0)]
    settings += [(f"SST-2 dev+test + {int(f * 100)}% BANKING77", "sst", f)
                 for f in (0.05, 0.10, 0.25, 0.50)]
    settings += [("100% BANKING77", "sst", 1.0)]
    rows, seconds = [], []
    for label, src, frac in settings:
        for n in sizes:
            fires = {k: 0 for k in ("verdict", "input_c2st", "input_mmd", "prediction",
                                    "confidence", "accuracy", "p_only_c2st", "p_only_mmd")}
            est, true, aucs, mmds = [], [], [], []
            R = repeats[n]
            for rep in range(R):
                seed = 1000 * n + rep
                cur, sst_part = mix(bases[src], n, frac, seed)
                t0 = time.perf_counter()
                r = drift.check(ref, cur, classes, cfg.model_copy(update={"seed": rep}))
                seconds.append(time.perf_counter() - t0)
                ch = r["checks"]
                c2, mm = ch["input"]["c2st"], ch["input"]["mmd"]
                fires["verdict"] += r["verdict"] == "drift"
                fires["input_c2st"] += c2["p_value"] < cfg.alpha and c2["auc"] >= cfg.min_auc
                fires["input_mmd"] += mm["p_value"] < cfg.alpha and mm["effect"] >= cfg.min_mmd
                fires["p_only_c2st"] += c2["p_value"] < cfg.alpha
                fires["p_only_mmd"] += mm["p_value"] < cfg.alpha
                for k in ("prediction", "confidence", "accuracy"):
                    fires[k] += bool(ch[k]["drift"])
                aucs.append(c2["auc"])
                mmds.append(mm["effect"])
                est.append(ch["accuracy"]["estimated_current"])
                if sst_part.labels is not None and len(sst_part):
                    true.append(float(np.mean([p == y for p, y in zip(sst_part.predicted,
                                                                      sst_part.labels)])))
            rows.append({"setting": label, "base": src, "n": n, "repeats": R,
                         "banking_share": frac,
                         "rates": {k: round(v / R, 3) for k, v in fires.items()},
                         "auc_median": round(float(np.median(aucs)), 3),
                         "mmd_median": round(float(np.median(mmds)), 3),
                         "estimated_accuracy_mean": round(float(np.mean(est)), 4),
                         "true_accuracy_sst_part_mean": round(float(np.mean(true)), 4)
                         if true else None})
            print(json.dumps(rows[-1]), flush=True)

    # known-truth shifts of SST-2 dev+test: label prior, length
    known = []
    y = np.array(sst.labels)
    neg, pos = np.where(y == "0")[0], np.where(y == "1")[0]
    lengths = sst.lengths
    kn = 100 if quick else (500 if len(y) >= 2400 else 300)
    shifts = {"80% negative": lambda r, n: np.concatenate([r.choice(neg, int(0.8 * n), False),
                                                           r.choice(pos, n - int(0.8 * n), False)]),
              "80% positive": lambda r, n: np.concatenate([r.choice(pos, int(0.8 * n), False),
                                                           r.choice(neg, n - int(0.8 * n), False)]),
              "shortest third": lambda r, n: r.choice(np.argsort(lengths)[: len(y) // 3], n, False),
              "longest third": lambda r, n: r.choice(np.argsort(lengths)[-(len(y) // 3):], n, False),
              "no shift": lambda r, n: r.choice(len(y), n, False)}
    for name, pick in shifts.items():
        errs, ests, trues = [], [], []
        for rep in range(2 if quick else 6):
            cur = sst.take(pick(np.random.default_rng(rep), kn))
            r = drift.check(ref, cur, classes, cfg.model_copy(update={"seed": rep}))
            a = r["checks"]["accuracy"]
            ests.append(a["estimated_current"])
            trues.append(a["true_current"])
            errs.append(abs(a["estimated_current"] - a["true_current"]))
        known.append({"shift": name, "n": kn, "repeats": len(errs),
                      "estimated_mean": round(float(np.mean(ests)), 4),
                      "true_mean": round(float(np.mean(trues)), 4),
                      "abs_error_mean": round(float(np.mean(errs)), 4),
                      "reference_accuracy": round(r["checks"]["accuracy"]["reference_accuracy"], 4)})
        print(json.dumps(known[-1]), flush=True)
    return {"model": f"frozen MiniLM on {n_fit} SST-2 training sentences", "embeddings": what,
            "reference": f"{n_ref} other SST-2 training sentences (labelled); SST-2 dev+test "
                         f"pool {len(sst)} sentences, BANKING77 pool {len(bank)} questions, "
                         f"other-SST-2-train pool {len(null)}",
            "config": cfg.model_dump(), "fit_seconds": round(fit_s, 1),
            "embed_seconds": round(embed_s, 1),
            "check_seconds_median": round(float(np.median(seconds)), 2),
            "rows": rows, "known_shifts": known}


# -- retraining ---------------------------------------------------------------------------------------

def part_retrain(quick: bool, stream: int = 0) -> dict:
    import numpy as np

    from ronghe import TextClassifier, data
    from ronghe.lifecycle import retrain as rt

    tr_t, tr_y = _banking("train")
    te_t, te_y = _banking("test")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(tr_t))
    if quick:
        order, te_t, te_y = order[:1500], te_t[:300], te_y[:300]
    elif stream:
        order = order[:stream]
    n0 = len(order) // 10
    first = data.from_texts([tr_t[i] for i in order[:n0]], [tr_y[i] for i in order[:n0]])
    train0, old_valid = data.split(first, 0.2, 0)
    test = data.from_texts(te_t, te_y)
    work = WORK / "retrain"
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    params = {"strategy": "frozen", "model": "minilm"}
    cfg = rt.RetrainConfig(min_holdout=20 if quick else 50)
    champion = TextClassifier(**params).fit(train0, old_valid)
    champion.save(work / "banking" / "v1")
    acc = lambda m: float(np.mean(m.predict(test) == np.array(te_y, dtype=object)))  # noqa: E731
    acc0 = acc(champion)
    timeline = [{"step": 0, "seen": n0, "without": round(acc0, 4), "with": round(acc0, 4),
                 "served": "v1"}]
    batches = np.array_split(order[n0:], 3 if quick else 4)
    seen = list(order[:n0])
    old_texts, old_labels = list(train0.texts), list(train0.labels)  # never the old validation
    injected = {"shuffled labels": 0, "300 questions only": 0}
    steps = []
    for k, b in enumerate(batches, 1):
        new = data.from_texts([tr_t[i] for i in b], [tr_y[i] for i in b])
        old = data.from_texts(old_texts, old_labels)
        t0 = time.perf_counter()
        d = rt.retrain(work / "banking", new, keep_old=old, old_valid=old_valid, config=cfg)
        secs = time.perf_counter() - t0
        # injected worse challengers through the same gate (never saved when kept)
        train_new, _ = rt.split_newest(new, cfg)
        shuffled = list(np.random.default_rng(k).permutation(old.labels + train_new.labels))
        worse = {"shuffled labels": TextClassifier(**params).fit(
                     data.from_texts(old.texts + train_new.texts, shuffled)),
                 "300 questions only": TextClassifier(**params).fit(
                     data.from_texts(old.texts[:300], old.labels[:300]))}
        bad = {}
        for name, w in worse.items():
            dw = rt.retrain(work / "banking", new, old_valid=old_valid, challenger=w, config=cfg)
            bad[name] = {"decision": dw["decision"], "gain": round(dw["gain"], 4),
                         "p": dw["mcnemar"]["p_value"]}
            injected[name] += dw["decision"] == "promoted"
            if dw["decision"] == "promoted":  # must not happen; undo so the stream goes on
                shutil.rmtree(dw["path"])
        served_v, served_p = rt.current_version(work / "banking")
        from ronghe import load

        now = load(served_p)
        seen += list(b)
        old_texts += new.texts
        old_labels += new.labels
        timeline.append({"step": k, "seen": len(seen), "without": round(acc0, 4),
                         "with": round(acc(now), 4), "served": served_v})
        steps.append({"step": k, "decision": d["decision"], "gain": round(d["gain"], 4),
                      "p": d["mcnemar"]["p_value"], "holdout_n": d["holdout_n"],
                      "champion_old": round(d["champion_old_accuracy"], 4),
                      "challenger_old": round(d["challenger_old_accuracy"], 4),
                      "seconds": round(secs, 1), "injected": bad})
        print(json.dumps({**timeline[-1], **steps[-1]}), flush=True)
    return {"stream": f"BANKING77 train ({len(order)} questions, seeded order)",
            "model": "frozen MiniLM", "timeline": timeline, "steps": steps,
            "injected_promotions": injected}


# -- scarce labels: self-training and DAPT ---------------------------------------------------

def _scarce(dataset: str, per_class: int, quick: bool) -> dict:
    """``per_class`` labelled training texts per intent (seeded), the rest of the training texts
    as unlabelled ones, the test texts. CLINC150: in-scope intents only (fusion.py's reader; the
    out-of-scope texts are not used)."""
    if dataset == "banking77":
        tr_t, tr_y = _banking("train")
        te_t, te_y = _banking("test")
    elif dataset == "clinc150":
        import fusion

        d = fusion.load_data("clinc150", fusion.SIZES["clinc150"], False)
        tr_t, tr_y = list(d["train"].texts), list(d["train"].labels)
        te_t, te_y = list(d["test_texts"]), list(d["test_labels"])
    else:
        raise SystemExit(f"unknown data set {dataset}: banking77 or clinc150")
    if quick:
        keep = common.sample_indices(len(te_t), 300, 0)
        te_t, te_y = [te_t[i] for i in keep], [te_y[i] for i in keep]
    lab = common.per_class_sample(tr_y, per_class, seed=0)
    rest = sorted(set(range(len(tr_t))) - set(lab))
    if quick:
        rest = rest[:500]
    return {"dataset": dataset, "per_class": per_class, "classes": len(set(tr_y)),
            "labelled": ([tr_t[i] for i in lab], [tr_y[i] for i in lab]),
            "unlabeled": [tr_t[i] for i in rest], "all_train_texts": tr_t,
            "test": (te_t, te_y)}


def _accuracy(clf, test) -> float:
    import numpy as np

    return float(np.mean(clf.predict(test[0]) == np.array(test[1], dtype=object)))


def part_selftrain(quick: bool, datasets=("banking77",), per_class=(10,),
                   strategies=("frozen", "classic"), save=None) -> dict:
    """Per data set and labelled examples per intent: ``strategies`` with and without
    self-training (``lifecycle.selftrain``, the code behind ``ronghe train --unlabeled``); the
    rest of the training texts are the unlabelled ones; accuracy on the test set."""
    from ronghe import TextClassifier, data
    from ronghe.lifecycle.selftrain import self_train

    runs, planned = [], len(datasets) * len(per_class)
    for ds in datasets:
        for k in per_class:
            s = _scarce(ds, 3 if quick else k, quick)
            labelled = data.from_texts(*s["labelled"])
            rows = []
            for strategy in strategies:
                params = {"strategy": strategy} | (
                    {"model": "minilm"} if strategy != "classic" else {})
                for with_st in (False, True):
                    cpu0, t0 = common.cpu_seconds(), time.perf_counter()
                    if with_st:
                        clf = self_train(TextClassifier(**params), labelled, None, s["unlabeled"])
                    else:
                        clf = TextClassifier(**params).fit(labelled)
                    secs, cpu = time.perf_counter() - t0, common.cpu_seconds() - cpu0
                    st = clf.metrics_.get("self_training", {})
                    rows.append({"strategy": strategy, "self_training": with_st,
                                 "test_accuracy": round(_accuracy(clf, s["test"]), 4),
                                 "valid_accuracy": round(clf.metrics_["valid"]["accuracy"], 4),
                                 "rounds": st.get("rounds"), "seconds": round(secs, 1),
                                 "cpu_seconds": round(cpu, 1),
                                 "peak_rss_mb_process": round(common.peak_rss_mb(), 1)})
                    print(json.dumps({"dataset": ds, "per_class": k, **rows[-1]}), flush=True)
            runs.append({"dataset": ds, "per_class": s["per_class"], "classes": s["classes"],
                         "labelled": len(labelled), "unlabeled": len(s["unlabeled"]),
                         "test": len(s["test"][0]), "rows": rows})
            if save and len(runs) < planned:
                save({"runs": runs, "note": f"Partial: {len(runs)} of {planned} data set / "
                                            "labelled-size settings run so far."})
    return {"runs": runs}


def part_dapt(quick: bool, datasets=("banking77",), per_class=(5, 10), epochs: int = 1,
              finetune: bool = False, save=None) -> dict:
    """``ronghe adapt-domain`` (a fresh process: its wall time and peak memory) on the data set's
    training texts without labels, then frozen (and, with ``finetune``, fine-tuned at 10 per
    intent) MiniLM classifiers on the scarce labels with the adapted folder vs plain minilm."""
    import resource
    import shutil

    from ronghe import TextClassifier, data

    out_runs = []
    for ds in datasets:
        base = _scarce(ds, 3, quick)
        texts = base["all_train_texts"][:400] if quick else base["all_train_texts"]
        work = WORK / "dapt"
        work.mkdir(parents=True, exist_ok=True)
        txt = work / f"{ds}.txt"
        txt.write_text("".join(" ".join(t.split()) + "\n" for t in texts))
        folder = work / f"minilm-{ds}"
        shutil.rmtree(folder, ignore_errors=True)
        cmd = [sys.executable, "-m", "ronghe", "adapt-domain", str(txt), "--model", "minilm",
               "--out", str(folder), "--epochs", str(epochs), "--quiet"]
        rss = work / f"{ds}.maxrss"
        rss.unlink(missing_ok=True)
        timer = ["/usr/bin/time", "-f", "%M", "-o", str(rss)] if Path("/usr/bin/time").exists() \
            else []  # the adapt process's own peak RSS (KiB); else the largest child's so far
        rep = common.run_json(timer + cmd, folder / "adapt.json", work / f"{ds}.log")
        rep["peak_rss_mb"] = round(int(rss.read_text().split()[-1]) / 1024, 1) if timer else \
            round(common.peak_rss_mb(resource.RUSAGE_CHILDREN), 1)
        print(json.dumps({"dataset": ds, "adapt": rep}), flush=True)
        rows = []
        for k in per_class:
            s = _scarce(ds, 3 if quick else k, quick)
            labelled = data.from_texts(*s["labelled"])
            kinds = ["frozen"] + (["finetune"] if finetune and (k == max(per_class)) else [])
            for strategy in kinds:
                for model in ("minilm", str(folder)):
                    cpu0, t0 = common.cpu_seconds(), time.perf_counter()
                    clf = TextClassifier(strategy=strategy, model=model, seed=0).fit(labelled)
                    secs, cpu = time.perf_counter() - t0, common.cpu_seconds() - cpu0
                    rows.append({"per_class": s["per_class"], "labelled": len(labelled),
                                 "strategy": strategy,
                                 "backbone": "adapted" if model != "minilm" else "minilm",
                                 "test_accuracy": round(_accuracy(clf, s["test"]), 4),
                                 "valid_accuracy": round(clf.metrics_["valid"]["accuracy"], 4),
                                 "seconds": round(secs, 1), "cpu_seconds": round(cpu, 1)})
                    print(json.dumps({"dataset": ds, **rows[-1]}), flush=True)
        out_runs.append({"dataset": ds, "texts": len(texts), "test": len(s["test"][0]),
                         "adapt": rep, "rows": rows})
        if save and len(out_runs) < len(datasets):
            save({"runs": out_runs, "epochs": epochs,
                  "note": f"Partial: {len(out_runs)} of {len(datasets)} data sets run so far."})
    return {"runs": out_runs, "epochs": epochs}


# -- README ---------------------------------------------------------------------------------------

def _note(part: dict) -> list[str]:
    """A part stopped before its end (rows assembled from its printed lines) says so."""
    return [f"**{part['note']}**", ""] if part.get("note") else []


def _load(part: dict) -> str:
    if "load_average" not in part:
        return ""
    start, end = part["load_average"]
    cmd = part.get("command", "")
    how = ("under the benchmark lock" if "ronghe-bench.lock" in cmd else
           "niced, without the benchmark lock" if cmd.startswith("nice") else
           "as the command below says")
    return (f"; run {how} (accuracy and rates do not depend on speed; times are on a shared "
            f"machine: 1-min load average {start[0]} at the start, {end[0]} at the end, 2 "
            f"cores)")


def readme(result: dict, quick: bool) -> str:
    lines = ["## Lifecycle: drift, estimated accuracy, retraining (issue 18)", "",
             common.quick_note(quick, "python benchmarks/lifecycle.py"),
             f"Machine: {common.machine_line(result['machine'])}.", ""]
    d = result.get("drift")
    if d:
        c = d["config"]
        lines += ["### Drift", "", *_note(d),
                  f"Model: {d['model']}; reference: {d['reference']}; embeddings: "
                  f"{d['embeddings']}. A check fires when p < {c['alpha']} and its effect "
                  f"reaches the threshold (C2ST AUC >= {c['min_auc']}, MMD >= {c['min_mmd']}, "
                  f"Cramer's V >= {c['min_cramers_v']}, confidence drop >= "
                  f"{c['min_confidence_drop']}, estimated accuracy drop >= "
                  f"{c['min_accuracy_drop']}); 'p only' columns: the same tests without the "
                  f"effect threshold. One check (200 or 1,000 current vs {c['max_reference']} "
                  "reference) takes "
                  f"{d['check_seconds_median']} s (median over all checks, embeddings computed "
                  f"once){_load(d)}.{_reduced(d)}", ""]
        rows = []
        for r in d["rows"]:
            x = r["rates"]
            rows.append([r["setting"], r["n"], r["repeats"], x["verdict"], x["input_c2st"],
                         x["input_mmd"], x["p_only_c2st"], x["p_only_mmd"], x["prediction"],
                         x["confidence"], x["accuracy"], r["auc_median"], r["mmd_median"],
                         r["estimated_accuracy_mean"], r["true_accuracy_sst_part_mean"]])
        lines += [common.md_table(["current", "n", "runs", "drift (any)", "input C2ST",
                                   "input MMD", "C2ST p only", "MMD p only", "prediction",
                                   "confidence", "accuracy", "AUC median", "MMD median",
                                   "est. acc.", "true acc. (SST-2 part)"], rows), ""]
        lines += ["Estimated (CBPE) vs true accuracy under shifts of SST-2 dev+test whose truth "
                  "is known:", "",
                  common.md_table(["shift", "n", "runs", "estimated", "true", "mean |error|"],
                                  [[k["shift"], k["n"], k["repeats"], k["estimated_mean"],
                                    k["true_mean"], k["abs_error_mean"]]
                                   for k in d["known_shifts"]]), ""]
    r = result.get("retrain")
    if r:
        lines += ["### Retraining with the gate", "", *_note(r),
                  f"Stream: {r['stream']}; model: {r['model']}; accuracy on the BANKING77 test "
                  f"set of the version served after each batch{_load(r)}.", "",
                  common.md_table(["step", "questions seen", "without retraining",
                                   "with retraining", "served", "decision", "gain on newest",
                                   "McNemar p", "old valid champion -> challenger", "s"],
                                  [[t["step"], t["seen"], t["without"], t["with"], t["served"],
                                    s.get("decision", "-"), s.get("gain", "-"),
                                    f"{s['p']:.2g}" if s else "-",
                                    f"{s['champion_old']} -> {s['challenger_old']}" if s else "-",
                                    s.get("seconds", "-")]
                                   for t, s in zip(r["timeline"], [{}] + r["steps"])]), "",
                  "Injected worse challengers promoted: " + ", ".join(
                      f"{k}: {v} of {len(r['steps'])}" for k, v in
                      r["injected_promotions"].items()) + ".", ""]
    st = result.get("selftrain")
    if st:
        lines += ["### Self-training (`ronghe train --unlabeled`)", "", *_note(st),
                  "Per data set and labelled size: that many labelled training texts per intent "
                  "(seeded), the rest of the training texts as unlabelled ones (CLINC150: "
                  "in-scope intents only), accuracy on the test set (CLINC150: its 4,500 "
                  "in-scope test questions). Rounds: threshold chosen on validation (a 10% "
                  "split of the labelled texts), pseudo-labelled count, validation accuracy, "
                  "kept or not. Frozen MiniLM embeds each text once per process (cached), so "
                  f"its seconds are mostly the classifier fits and pseudo-labelling{_load(st)}.",
                  ""]
        rows = []
        for run in st.get("runs", []):
            for r in run["rows"]:
                rows.append([run["dataset"], f"{run['per_class']} ({run['labelled']})",
                             run["unlabeled"], r["strategy"],
                             "yes" if r["self_training"] else "no", r["test_accuracy"],
                             r["valid_accuracy"], _rounds(r["rounds"]), r["seconds"],
                             r["cpu_seconds"]])
        lines += [common.md_table(["data set", "per intent (labelled)", "unlabelled",
                                   "strategy", "self-training", "test accuracy",
                                   "valid accuracy", "rounds", "s", "CPU s"], rows), ""]
    dp = result.get("dapt")
    if dp:
        lines += ["### Domain-adaptive pretraining (`ronghe adapt-domain`)", "", *_note(dp),
                  f"`ronghe adapt-domain` (masked-LM, {dp['epochs']} epoch(s), its defaults "
                  "otherwise: batch 16, lr 5e-5, 15% masking; MiniLM ships without an MLM head, "
                  "which starts fresh - "
                  + ("the head trains alone first (200 steps) and an anchor term (weight 10) "
                     "keeps the mean-pooled embeddings near the original's"
                     if "embedding_cosine_to_original" in dp["runs"][0]["adapt"] else
                     "plain MLM, before the head warm-up and the anchor existed")
                  + ") on the data set's training texts without their labels, "
                  "in its own process (wall time, peak RSS of that process); then the same "
                  "scarce-label classifiers as self-training (same seeded labelled texts, "
                  "validation a 10% split of them) with `--model <adapted folder>` vs plain "
                  f"`minilm`, accuracy on the test set{_load(dp)}. Fine-tuning runs with "
                  "ronghe's defaults (3 epochs), which on 10 examples per intent leaves it "
                  "under the frozen model: its row compares backbones, not strategies.", ""]
        lines += [common.md_table(
            ["data set", "texts", "steps", "MLM loss held out (before -> head warm-up -> after)",
             "embedding cosine to original", "adapt s", "adapt CPU s", "peak RSS MB"],
            [[r["dataset"], r["adapt"]["texts"], r["adapt"]["steps"],
              f"{r['adapt']['mlm_loss_before']} -> "
              f"{r['adapt'].get('mlm_loss_after_head_warmup') or '-'} -> "
              f"{r['adapt']['mlm_loss_after']}",
              r["adapt"].get("embedding_cosine_to_original", "-"),
              r["adapt"]["process"]["wall_seconds"], r["adapt"]["process"]["cpu_seconds"],
              r["adapt"]["peak_rss_mb"]] for r in dp["runs"]]), ""]
        old = result.get("dapt_plain_mlm")
        if old:
            lines += ["Before the head warm-up and the anchor (plain MLM, the same classifiers; "
                      "kept from the earlier run): " + "; ".join(
                          f"{run['dataset']} {r['strategy']} at {r['per_class']} per intent "
                          f"{r['test_accuracy']}" for run in old["runs"] for r in run["rows"]
                          if r["backbone"] == "adapted") + ".", ""]
        lines += [common.md_table(
            ["data set", "per intent (labelled)", "strategy", "backbone", "test accuracy",
             "valid accuracy", "s"],
            [[run["dataset"], f"{r['per_class']} ({r['labelled']})", r["strategy"],
              r["backbone"], r["test_accuracy"], r["valid_accuracy"], r["seconds"]]
             for run in dp["runs"] for r in run["rows"]]), ""]
    lines += ["### Aims", ""] + [f"- {a}" for a in aims(result)] + [""]
    # a part run before commands were recorded ran with its defaults
    cmds = [result[p].get("command") or "nice -n 10 .venv/bin/python benchmarks/lifecycle.py "
            f"--part {p}" for p in ("drift", "retrain", "selftrain", "dapt") if p in result]
    lines += ["Reproduce:", "", "```bash", *cmds[:-1],
              f"{cmds[-1] if cmds else 'python benchmarks/lifecycle.py'}   "
              f"# results: benchmarks/results/{NAME}{'.quick' if quick else ''}.json", "```"]
    return "\n".join(lines)


def _reduced(d: dict) -> str:
    """What a drift run reduced from the script's defaults (n_ref 2000, 150 permutations,
    10 / 5 samples)."""
    c = d["config"]
    cut = []
    if c["max_reference"] < 2000:
        cut.append(f"{c['max_reference']} training and {c['max_reference']} reference sentences "
                   "(default 2000 each; the SST-2 dev+test pool then a seeded 1,500)")
    if c["permutations"] < 150:
        cut.append(f"{c['permutations']} MMD permutations (default 150)")
    reps = {r["n"]: r["repeats"] for r in d["rows"]}
    if reps.get(200, 10) < 10 or reps.get(1000, 5) < 5:
        cut.append(f"{reps.get(200)} / {reps.get(1000)} samples of 200 / 1,000 (default 10 / 5)")
    return (" **Reduced to fit the time on the shared machine:** " + "; ".join(cut) + "."
            if cut else "")


def _rounds(rounds) -> str:
    return "; ".join(f"{x['round']}: t={x.get('threshold')} n={x.get('pseudo_labeled')} "
                     f"v={x.get('valid_accuracy', '-')} {'kept' if x['kept'] else 'dropped'}"
                     for x in (rounds or [])[1:]) or "-"


def _pct(x) -> str:
    return f"{round(100 * x)}%"


def _gain(without: float, with_: float, kept: bool = True) -> str:
    d = with_ - without
    if not kept or abs(d) < 0.005:
        return f"adds nothing ({without} -> {with_})"
    return f"{'adds' if d > 0 else 'costs'} {abs(d):.3f} ({without} -> {with_})"


def aims(result: dict) -> list[str]:
    """The aims bullets, computed from the measured parts (a part not run says so)."""
    out = []
    d = result.get("drift")
    if d:
        rows = {(r.get("base", "null" if r["setting"].startswith("SST-2 train") else "sst"),
                 r["banking_share"], r["n"]): r for r in d["rows"]}
        sizes = sorted({r["n"] for r in d["rows"]})
        ctl = [rows[("null", 0.0, n)] for n in sizes if ("null", 0.0, n) in rows]
        ok = all(r["rates"]["verdict"] == 0 for r in ctl)
        out.append("No false alarm without drift (other SST-2 training sentences vs the "
                   f"reference): **{'met' if ok else 'missed'}** - drift verdict in " + ", ".join(
                       f"{_pct(r['rates']['verdict'])} of {r['repeats']} samples of {r['n']}"
                       for r in ctl) + " (p-values alone, no effect threshold: C2ST " + ", ".join(
                       f"{_pct(r['rates']['p_only_c2st'])}" for r in ctl) + ", MMD " + ", ".join(
                       f"{_pct(r['rates']['p_only_mmd'])}" for r in ctl) + f" at {sizes}).")
        dv = [rows[("sst", 0.0, n)] for n in sizes if ("sst", 0.0, n) in rows]
        if dv:
            fired = any(r["rates"]["verdict"] > 0.1 for r in dv)
            out.append("SST-2 dev+test as 'no drift expected': " + (
                "**missed** - flagged in " if fired else "**met** - flagged in ") + ", ".join(
                    f"{_pct(r['rates']['verdict'])} of samples of {r['n']} (C2ST AUC "
                    f"{r['auc_median']})" for r in dv) + (
                    ". SST-2 train holds phrases of every length, dev/test whole sentences: a "
                    "real input difference, which the checks report; the reference must be "
                    "data like the served inputs." if fired else "."))
        shares = sorted({r["banking_share"] for r in d["rows"]
                         if r.get("base") == "null" and r["banking_share"] > 0})
        if shares:
            parts = []
            for f in shares:
                parts.append(f"{_pct(f)}: " + ", ".join(
                    f"{_pct(rows[('null', f, n)]['rates']['verdict'])} at {n} (input C2ST "
                    f"{_pct(rows[('null', f, n)]['rates']['input_c2st'])}, AUC "
                    f"{rows[('null', f, n)]['auc_median']})" for n in sizes
                    if ("null", f, n) in rows))
            first = {n: next((f for f in shares if ("null", f, n) in rows and
                              rows[("null", f, n)]["rates"]["verdict"] >= 0.8), None)
                     for n in sizes}
            out.append("Detection of BANKING77 mixed into the no-drift base (other SST-2 "
                       "training sentences): drift verdict rate " +
                       "; ".join(parts) + ". Detected in at least 80% of samples from " +
                       ", ".join(f"{_pct(first[n]) if first[n] is not None else 'no share'} "
                                 f"at {n} texts" for n in sizes) + ". With p-values alone (no "
                       f"effect threshold) the MMD flags, at {sizes[-1]} texts, " + ", ".join(
                           f"{_pct(f)} BANKING77 in "
                           f"{_pct(rows[('null', f, sizes[-1])]['rates']['p_only_mmd'])}"
                           for f in shares if ("null", f, sizes[-1]) in rows) +
                       " of samples (the control: "
                       f"{_pct(rows[('null', 0.0, sizes[-1])]['rates']['p_only_mmd'])}).")
        else:
            out.append("Detection of BANKING77 on the no-drift base: **not measured**.")
        mixed = [r for r in d["rows"] if r.get("base", "sst") == "sst" and
                 0 < r["banking_share"] < 1]
        if mixed:
            out.append("Mixtures on the SST-2 dev+test base: flagged in " + ", ".join(
                sorted({_pct(r["rates"]["verdict"]) for r in mixed})) + " of samples at every "
                "share, but the base alone is already flagged, so this is not credited to "
                "BANKING77; the share shows in the C2ST AUC (" + ", ".join(
                    f"{_pct(r['banking_share'])} {r['auc_median']}" for r in mixed
                    if r["n"] == sizes[0]) + f" at {sizes[0]} texts).")
        errs = [(r["setting"], r["n"], abs(r["estimated_accuracy_mean"] -
                                           r["true_accuracy_sst_part_mean"]))
                for r in d["rows"] if r["true_accuracy_sst_part_mean"] is not None]
        worst = max(errs, key=lambda e: e[2])
        known = d["known_shifts"]
        worst_k = max(k["abs_error_mean"] for k in known)
        ok = max(worst[2], worst_k) <= 0.05
        out.append(f"Estimated (CBPE) vs true accuracy (SST-2 part): **{'within' if ok else 'not within'} "
                   f"0.05** - largest gap of the mean estimate over the settings "
                   f"{worst[2]:.3f} ({worst[0]}, {worst[1]}), median "
                   f"{sorted(e[2] for e in errs)[len(errs) // 2]:.3f}; known shifts mean "
                   "|error| " + ", ".join(f"{k['shift']} {k['abs_error_mean']}" for k in known)
                   + ". The estimate runs under the truth on most settings.")
    else:
        out.append("Drift: **not measured**.")
    r = result.get("retrain")
    if r:
        tl, steps = r["timeline"], r["steps"]
        final = tl[-1]
        out.append(f"Retraining helps{' (partial run)' if r.get('note') else ''}: **"
                   f"{'met' if final['with'] > final['without'] else 'missed'}** - "
                   f"{len(steps)} batches; BANKING77 test accuracy without retraining "
                   f"{final['without']}, with retraining " + ", ".join(
                       str(t["with"]) for t in tl[1:]) + " (" + ", ".join(
                       f"step {s['step']} {s['decision']} gain {s['gain']} p {s['p']:.2g}"
                       for s in steps) + ").")
        n_bad = sum(r["injected_promotions"].values())
        out.append(f"No worse challenger promoted: **{'met' if n_bad == 0 else 'missed'}** - "
                   "injected " + ", ".join(f"{k}: {v} of {len(steps)} promoted"
                                           for k, v in r["injected_promotions"].items()) + ".")
    else:
        out.append("Retraining: **not measured**.")
    st = result.get("selftrain")
    if st and st.get("runs"):
        for run in st["runs"]:
            by = {(x["strategy"], x["self_training"]): x for x in run["rows"]}
            said = []
            for strat in dict.fromkeys(x["strategy"] for x in run["rows"]):
                if (strat, False) in by and (strat, True) in by:
                    w = by[(strat, True)]
                    kept = any(x.get("kept") for x in (w["rounds"] or [])[1:])
                    said.append(f"{strat} {_gain(by[(strat, False)]['test_accuracy'], w['test_accuracy'], kept)}"
                                + ("" if kept else ", no round kept"))
            out.append(f"Self-training, {run['dataset']}, {run['per_class']} labelled per intent: "
                       + "; ".join(said) + ".")
        ran = {(run["dataset"], run["per_class"], x["strategy"]) for run in st["runs"]
               for x in run["rows"]}
        missing = [f"{s} on {ds} at {k}" for ds in ("banking77", "clinc150") for k in (5, 10)
                   for s in ("frozen", "classic") if (ds, k, s) not in ran]
        if missing and not any(run["per_class"] < 5 for run in st["runs"]):
            out.append("Self-training **not measured** (not run: time): " + ", ".join(missing)
                       + ".")
    else:
        out.append("Self-training: **not measured**.")
    dp = result.get("dapt")
    if dp and dp.get("runs"):
        for run in dp["runs"]:
            by = {(x["per_class"], x["strategy"], x["backbone"]): x for x in run["rows"]}
            said = [f"{k[1]} at {k[0]} per intent {_gain(v['test_accuracy'], by[(k[0], k[1], 'adapted')]['test_accuracy'])}"
                    for k, v in by.items() if k[2] == "minilm" and (k[0], k[1], "adapted") in by]
            a = run["adapt"]
            deltas = [by[(k[0], k[1], "adapted")]["test_accuracy"] - v["test_accuracy"]
                      for k, v in by.items() if k[2] == "minilm" and (k[0], k[1], "adapted") in by]
            # a change counts when it is beyond 2 standard errors of an accuracy difference on
            # this test set (unpaired binomial; paired would be tighter)
            base = [v["test_accuracy"] for k, v in by.items() if k[2] == "minilm"]
            se = max(math.sqrt(2 * p * (1 - p) / run["test"]) for p in base) if base else 0
            up = bool(deltas) and max(deltas) > 2 * se
            down = bool(deltas) and min(deltas) < -2 * se
            verdict = ("**adds nothing - it costs accuracy in every setting**"
                       if down and max(deltas) < -2 * se else "**mixed**" if up and down else
                       "**costs accuracy in some settings**" if down else
                       "**helps in some settings**" if up else
                       f"**no change beyond noise** (2 standard errors: {2 * se:.3f})")
            out.append(f"DAPT on {run['dataset']} {verdict} ({a['texts']} texts, {a['steps']} steps, "
                       f"{a['process']['wall_seconds']} s, peak {a['peak_rss_mb']} MB; held-out "
                       f"MLM loss {a['mlm_loss_before']} -> {a['mlm_loss_after']}): "
                       + "; ".join(said) + ".")
        done = {run["dataset"] for run in dp["runs"]}
        left = [ds for ds in ("banking77", "clinc150") if ds not in done]
        if left:
            out.append(f"DAPT on {', '.join(left)}: **not measured** (not run: time).")
    else:
        out.append("DAPT gain (adapt-domain) on scarce labels: **not measured**.")
    loads = [x for p in ("drift", "retrain", "selftrain", "dapt") if p in result
             for x in (result[p].get("load_average") or [])]
    if loads:
        locked = [p for p in ("drift", "retrain", "selftrain", "dapt") if p in result
                  and "ronghe-bench.lock" in (result[p].get("command") or "")]
        out.append("Wall times come from a shared 2-core machine (1-min load average "
                   f"{min(x[0] for x in loads)}-{max(x[0] for x in loads)} at the parts' starts "
                   "and ends; " + (f"{', '.join(locked)} ran under the benchmark lock, the "
                                   "others niced beside other work" if locked else
                                   "niced runs, not under the benchmark lock")
                   + "): read them as upper bounds; accuracies and rates do not depend on the "
                   "load.")
    return out


def main() -> None:
    ap = common.parser(__doc__)
    ap.add_argument("--part", default="drift,retrain,selftrain,dapt")
    ap.add_argument("--n-ref", type=int, default=2000, help="drift: training and reference "
                    "sentences (a busy machine: 1000)")
    ap.add_argument("--repeats", default="10,5", help="drift: samples drawn per setting at "
                    "200 and at 1,000 texts")
    ap.add_argument("--permutations", type=int, default=150, help="drift: MMD permutations")
    ap.add_argument("--stream", type=int, default=0, help="retrain: use only this many "
                    "questions of the stream (0: all)")
    ap.add_argument("--datasets", default="banking77,clinc150", help="selftrain, dapt: "
                    "banking77 and/or clinc150 (in-scope intents)")
    ap.add_argument("--per-class", default="5,10", help="selftrain, dapt: labelled examples "
                    "per intent")
    ap.add_argument("--strategies", default="frozen,classic", help="selftrain: strategies")
    ap.add_argument("--dapt-epochs", type=int, default=1, help="dapt: adapt-domain epochs")
    ap.add_argument("--dapt-finetune", action="store_true", help="dapt: also fine-tune MiniLM "
                    "(plain vs adapted) at the largest --per-class")
    args = ap.parse_args()
    if common.handled(args, NAME, readme):
        return
    t0 = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    path = common.result_path(NAME, args.quick)
    machine = common.machine_info()
    reps = tuple(int(x) for x in args.repeats.split(","))
    sets = tuple(args.datasets.split(","))
    ks = tuple(int(x) for x in args.per_class.split(","))
    command = ".venv/bin/python benchmarks/lifecycle.py " + " ".join(sys.argv[1:])  # as run

    def store(p, part):
        # read again just before writing: parts may run as separate processes at the same time
        result = json.loads(path.read_text()) if path.exists() else {}
        result[p] = {**part, "load_average": [machine["load_average_start"],
                                              common.load_average()], "command": command}
        result["machine"] = machine
        result.pop("aims", None)  # written by hand once; now computed from the parts
        result.pop("command", None)
        common.write_json(NAME, result, args.quick)
        return result

    parts = {"drift": lambda q, save: part_drift(q, args.n_ref, reps, args.permutations),
             "retrain": lambda q, save: part_retrain(q, args.stream),
             "selftrain": lambda q, save: part_selftrain(q, sets, ks,
                                                         tuple(args.strategies.split(",")), save),
             "dapt": lambda q, save: part_dapt(q, sets, ks, args.dapt_epochs,
                                               args.dapt_finetune, save)}
    for p in args.part.split(","):
        result = store(p, parts[p](args.quick, lambda part, p=p: store(p, part)))
    common.finish(NAME, result, args, readme, t0)


if __name__ == "__main__":
    main()
