"""Lifecycle (issue 18): drift detection, estimated accuracy, retraining with a gate.

* drift: a frozen MiniLM SST-2 model (trained on 2,000 SST-2 training sentences); reference =
  2,000 other SST-2 training sentences (labelled: the CBPE calibration). Current samples of 200
  and 1,000 texts drawn again and again from: SST-2 training sentences not in the reference (no
  drift: the false-alarm rate), SST-2 dev+test (the issue's "no drift expected" - but SST-2
  train holds phrases, dev/test whole sentences), and SST-2 dev+test mixed with 5 / 10 / 25 /
  50 / 100 % BANKING77 questions. Per setting: how often each check fires, with the C2ST and
  with the MMD deciding input drift, and with p-values alone (no effect threshold); the CBPE
  estimate vs the true accuracy of the SST-2 part; and label-prior / length shifts of SST-2
  dev+test, whose true accuracy is known.
* retrain: BANKING77 training questions as a stream in a seeded order; a frozen MiniLM champion
  trained on the first 10 %, then four batches of ~2,250 labelled questions; each batch runs
  ``lifecycle.retrain`` (challenger on all data so far, newest 20 % of the batch held out,
  McNemar + old-validation gate). Accuracy on the BANKING77 test set over time with and without
  retraining; at every step two injected worse challengers (labels shuffled; trained on only
  300 questions) go through the same gate and must never be promoted.

    flock /tmp/ronghe-bench.lock python benchmarks/lifecycle.py [--part drift,retrain]

Writes ``benchmarks/results/lifecycle.json`` (parts run earlier are kept) and the section
between ``<!-- lifecycle:start -->`` and ``<!-- lifecycle:end -->`` in benchmarks/README.md.
"""

from __future__ import annotations

import json
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

def part_drift(quick: bool) -> dict:
    import numpy as np

    from ronghe import TextClassifier, data
    from ronghe.lifecycle import drift

    rng = np.random.default_rng(0)
    tr_t, tr_y = _sst2("train")
    order = rng.permutation(len(tr_t))
    n_fit, n_ref, n_null = (200, 300, 300) if quick else (2000, 2000, 2000)
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
    sst = pool(dv_t + te_t, dv_y + te_y)
    bk_t, _ = _banking("test")
    bk_i = rng.permutation(len(bk_t))[: 300 if quick else 3000]
    bank = pool([bk_t[i] for i in bk_i], None)
    embed_s = time.perf_counter() - t0
    classes = [str(c) for c in clf.classes_]
    sizes = (200,) if quick else (200, 1000)
    repeats = {200: 2 if quick else 12, 1000: 6}
    cfg = drift.DriftConfig(max_reference=n_ref, permutations=100 if quick else 150)

    def mix(n, frac, seed):
        r = np.random.default_rng(seed)
        k = int(round(n * frac))
        a = sst.take(r.choice(len(sst), n - k, replace=False))
        if not k:
            return a, a
        b = bank.take(r.choice(len(bank), k, replace=False))
        both = drift.Sample(np.vstack([a.embeddings, b.embeddings]), a.predicted + b.predicted,
                            np.concatenate([a.confidence, b.confidence]), None)
        return both, a

    settings = [("SST-2 train (other sentences)", None, 0.0), ("SST-2 dev+test", "sst", 0.0)]
    settings += [(f"SST-2 dev+test + {int(f * 100)}% BANKING77", "sst", f)
                 for f in (0.05, 0.10, 0.25, 0.50, 1.0)]
    rows, seconds = [], []
    for label, src, frac in settings:
        for n in sizes:
            fires = {k: 0 for k in ("verdict", "input_c2st", "input_mmd", "prediction",
                                    "confidence", "accuracy", "p_only_c2st", "p_only_mmd")}
            est, true, aucs, mmds = [], [], [], []
            R = repeats[n]
            for rep in range(R):
                seed = 1000 * n + rep
                if src is None:
                    cur = null.take(np.random.default_rng(seed).choice(len(null), n, replace=False))
                    sst_part = cur
                else:
                    cur, sst_part = mix(n, frac, seed)
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
            rows.append({"setting": label, "n": n, "repeats": R, "banking_share": frac,
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
    shifts = {"80% negative": lambda r, n: np.concatenate([r.choice(neg, int(0.8 * n), False),
                                                           r.choice(pos, n - int(0.8 * n), False)]),
              "80% positive": lambda r, n: np.concatenate([r.choice(pos, int(0.8 * n), False),
                                                           r.choice(neg, n - int(0.8 * n), False)]),
              "shortest third": lambda r, n: r.choice(np.argsort(lengths)[: len(y) // 3], n, False),
              "longest third": lambda r, n: r.choice(np.argsort(lengths)[-(len(y) // 3):], n, False),
              "no shift": lambda r, n: r.choice(len(y), n, False)}
    for name, pick in shifts.items():
        errs, ests, trues = [], [], []
        for rep in range(2 if quick else 8):
            cur = sst.take(pick(np.random.default_rng(rep), 500 if not quick else 100))
            r = drift.check(ref, cur, classes, cfg.model_copy(update={"seed": rep}))
            a = r["checks"]["accuracy"]
            ests.append(a["estimated_current"])
            trues.append(a["true_current"])
            errs.append(abs(a["estimated_current"] - a["true_current"]))
        known.append({"shift": name, "n": 500 if not quick else 100, "repeats": len(errs),
                      "estimated_mean": round(float(np.mean(ests)), 4),
                      "true_mean": round(float(np.mean(trues)), 4),
                      "abs_error_mean": round(float(np.mean(errs)), 4),
                      "reference_accuracy": round(r["checks"]["accuracy"]["reference_accuracy"], 4)})
        print(json.dumps(known[-1]), flush=True)
    return {"model": f"frozen MiniLM on {n_fit} SST-2 training sentences", "embeddings": what,
            "reference": f"{n_ref} other SST-2 training sentences (labelled)",
            "config": cfg.model_dump(), "fit_seconds": round(fit_s, 1),
            "embed_seconds": round(embed_s, 1),
            "check_seconds_median": round(float(np.median(seconds)), 2),
            "rows": rows, "known_shifts": known}


# -- retraining ---------------------------------------------------------------------------------------

def part_retrain(quick: bool) -> dict:
    import numpy as np

    from ronghe import TextClassifier, data
    from ronghe.lifecycle import retrain as rt

    tr_t, tr_y = _banking("train")
    te_t, te_y = _banking("test")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(tr_t))
    if quick:
        order, te_t, te_y = order[:1500], te_t[:300], te_y[:300]
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
    injected = {"shuffled labels": 0, "300 questions only": 0}
    steps = []
    for k, b in enumerate(batches, 1):
        new = data.from_texts([tr_t[i] for i in b], [tr_y[i] for i in b])
        old = data.from_texts([tr_t[i] for i in seen], [tr_y[i] for i in seen])
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


# -- README ---------------------------------------------------------------------------------------

def readme(result: dict, quick: bool) -> str:
    lines = ["## Lifecycle: drift, estimated accuracy, retraining (issue 18)", "",
             common.quick_note(quick, "python benchmarks/lifecycle.py"),
             f"Machine: {common.machine_line(result['machine'])}.", ""]
    d = result.get("drift")
    if d:
        c = d["config"]
        lines += ["### Drift", "",
                  f"Model: {d['model']}; reference: {d['reference']}; embeddings: "
                  f"{d['embeddings']}. A check fires when p < {c['alpha']} and its effect "
                  f"reaches the threshold (C2ST AUC >= {c['min_auc']}, MMD >= {c['min_mmd']}, "
                  f"Cramer's V >= {c['min_cramers_v']}, confidence drop >= "
                  f"{c['min_confidence_drop']}, estimated accuracy drop >= "
                  f"{c['min_accuracy_drop']}); 'p only' columns: the same tests without the "
                  f"effect threshold. One check of 1,000 vs {c['max_reference']} items takes "
                  f"{d['check_seconds_median']} s (median, embeddings computed once).", ""]
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
        lines += ["### Retraining with the gate", "",
                  f"Stream: {r['stream']}; model: {r['model']}; accuracy on the BANKING77 test "
                  "set of the version served after each batch.", "",
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
    lines += common.reproduce("flock /tmp/ronghe-bench.lock .venv/bin/python "
                              "benchmarks/lifecycle.py", NAME, quick)
    return "\n".join(lines)


def main() -> None:
    ap = common.parser(__doc__)
    ap.add_argument("--part", default="drift,retrain")
    args = ap.parse_args()
    if common.handled(args, NAME, readme):
        return
    t0 = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    path = common.result_path(NAME, args.quick)
    result = json.loads(path.read_text()) if path.exists() else {}
    result["machine"] = common.machine_info()
    parts = {"drift": part_drift, "retrain": part_retrain}
    for p in args.part.split(","):
        result[p] = parts[p](args.quick)
        common.write_json(NAME, result, args.quick)
    common.finish(NAME, result, args, readme, t0)


if __name__ == "__main__":
    main()
