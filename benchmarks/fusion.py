#!/usr/bin/env python
"""Every single and fused strategy on SST-2, BANKING77 and CLINC150 (in scope + out of scope).

Per data set, in ONE process (so the per-text embedding cache of ``frozen``/``concat``/``stack``
is shared: embeddings of a text are computed once): singles ``classic``, ``frozen``, ``finetune``
(MiniLM, seed 0, early stopping), then fusions ``weighted`` (the fitted finetune + classic fused
with ``Weighted.from_members``, no retraining, alpha chosen on validation), ``concat``
(embeddings + TF-IDF SVD -> logistic regression), ``stack`` (out-of-fold probabilities of
classic + frozen, k folds -> logistic regression) and ``vote`` (soft vote over the saved
classic, frozen and finetune bundles). All transformer inputs are cut at ``--max-length`` tokens.

Data (``$RONGHE_DATA``, default /work/shared/data): SST-2 a seeded sample of train.tsv, scored on
dev.tsv (872); BANKING77 train.csv (sampled if ``--train-size`` is below 10,003), scored on
test.csv (3,080); validation for both is a seeded stratified 10 % of the training sample.
CLINC150: in-scope train (sampled per intent if smaller than 15,000), validation = the val split
(3,000) + oos_val (100), test = 4,500 in scope + oos_test 1,000; no oos example is trained on.
Every model selection (C, alpha, early stopping, the OOS threshold) uses validation only.
OOS rule: predict ``oos`` when the top probability is below t; t maximises the balanced accuracy
(in-scope accuracy with the threshold + OOS recall) / 2 on validation, so the 30:1 in-scope/oos
ratio of the validation set does not push t to zero.

Recorded: test accuracy and macro-F1, train seconds, a rough ms/text of one ``predict_proba``
over the whole test set (embedding cache emptied first), and whether each fusion beats the best
single strategy. The finetune bundle is kept in benchmarks/.work/fusion/<dataset>/finetune with
``finetune.settings.json`` (benchmarks/distill.py reuses it as its teacher).

Full run, estimated on 2 idle cores: SST-2 ~8 min, BANKING77 ~17 min, CLINC150 ~22 min (the
fine-tunings, the classic fits on 77/150 classes and the 5-fold stack dominate); other jobs on
the machine stretch this. ``--only`` runs one data set and merges it into the JSON.

    python benchmarks/fusion.py                               # all three data sets (full)
    python benchmarks/fusion.py --only clinc150 --train-size clinc150=9000
    python benchmarks/fusion.py --quick --threads 1           # smoke run, results/fusion.quick.json
    python benchmarks/fusion.py --rewrite-readme              # README section from the JSON
"""

from __future__ import annotations

import gc
import json
import os
import time
import traceback
import warnings
from pathlib import Path

import common  # benchmarks/common.py: this script's folder is first on sys.path

warnings.filterwarnings("ignore", message="The number of unique classes is greater")

NAME = "fusion"
DATA = Path(os.environ.get("RONGHE_DATA", "/work/shared/data"))
DATASETS = ("sst2", "banking77", "clinc150")
SINGLES = ("classic", "frozen", "finetune")
FUSIONS = ("weighted", "concat", "stack", "vote")
SIZES = {"sst2": 8000, "banking77": 10003, "clinc150": 15000}
QUICK = {"sst2": 300, "banking77": 77 * 3, "clinc150": 150 * 2}  # train sample in --quick
QUICK_TEST = 300


# ----------------------------------------------------------------------------------- data

def _sample(n_total: int, n: int, seed: int = 0) -> list[int]:
    return common.sample_indices(n_total, n, seed) if n < n_total else list(range(n_total))


def _per_class(labels: list, n: int, seed: int = 0) -> list[int]:
    k = n // len(set(labels))
    return common.per_class_sample(labels, k, seed) if n < len(labels) else list(range(len(labels)))


def load_data(name: str, size: int, quick: bool) -> dict:
    """Train / valid Datasets, test texts and labels (in-scope first), OOS parts for CLINC."""
    from ronghe import data

    out: dict = {"name": name, "oos_val": [], "oos_test": []}
    if name == "sst2":
        texts, labels = common.read_sst2("train")
        idx = _sample(len(texts), size)
        out["sample_idx"] = idx
        train, valid = data.split(data.from_texts([texts[i] for i in idx],
                                                  [labels[i] for i in idx]), 0.1, 0)
        test_t, test_y = common.read_sst2("dev")
    elif name == "banking77":
        full = data.load(DATA / "banking77" / "train.csv")
        idx = _per_class(full.labels, size) if quick else _sample(len(full), size)
        train, valid = data.split(full.subset(idx), 0.1, 0)
        test = data.load(DATA / "banking77" / "test.csv")
        test_t, test_y = list(test.texts), list(test.labels)
    elif name == "clinc150":
        raw = json.loads((DATA / "clinc150" / "data_full.json").read_text())
        tr_t, tr_y = [t for t, _ in raw["train"]], [y for _, y in raw["train"]]
        idx = _per_class(tr_y, size)
        train = data.from_texts([tr_t[i] for i in idx], [tr_y[i] for i in idx])
        va = raw["val"]
        if quick:
            va = [va[i] for i in _per_class([y for _, y in va], 150)]
        valid = data.from_texts([t for t, _ in va], [y for _, y in va])
        test_t, test_y = [t for t, _ in raw["test"]], [y for _, y in raw["test"]]
        out["oos_val"] = [t for t, _ in raw["oos_val"]][: 50 if quick else None]
        out["oos_test"] = [t for t, _ in raw["oos_test"]][: 100 if quick else None]
    else:
        raise SystemExit(f"unknown data set {name}")
    if quick:
        keep = _sample(len(test_t), QUICK_TEST)
        test_t, test_y = [test_t[i] for i in keep], [test_y[i] for i in keep]
    out.update(train=train, valid=valid, test_texts=test_t, test_labels=test_y,
               sizes={"n_sample": len(train) + (0 if name == "clinc150" else len(valid)),
                      "n_train": len(train), "n_valid": len(valid), "n_test": len(test_t),
                      "n_classes": len(train.classes), "n_oos_valid": len(out["oos_val"]),
                      "n_oos_test": len(out["oos_test"])})
    return out


def work_dir(name: str, quick: bool) -> Path:
    return common.WORK / NAME / ("quick" if quick else "") / name


def finetune_settings(d: dict, epochs: int, max_length: int) -> dict:
    """What identifies a finetune teacher: the exact data and the training settings."""
    return {"dataset": d["name"], "strategy": "finetune", "model": "minilm", "seed": 0,
            "epochs": epochs, "max_length": max_length,
            "train_fingerprint": d["train"].fingerprint(),
            "valid_fingerprint": d["valid"].fingerprint()}


def make_finetune(epochs: int, max_length: int):
    from ronghe import TextClassifier

    return TextClassifier(strategy="finetune", model="minilm", epochs=epochs,
                          max_length=max_length, seed=0)


# ------------------------------------------------------------------------------ strategies

def clear_embedding_cache() -> None:
    from ronghe import modeling

    for cache in modeling._EMBED_CACHE.values():
        cache.clear()


def fit_one(st: str, d: dict, fitted: dict, bundles: dict, a) -> object:
    from ronghe import TextClassifier
    from ronghe.bench import _weighted_from
    from ronghe.fusion.weighted import Weighted

    L = a.max_length
    if st == "weighted":
        for need in ("finetune", "classic"):
            if need not in fitted:
                raise RuntimeError(f"weighted needs the fitted {need} model, which failed")
        t0 = time.perf_counter()
        clf = _weighted_from(fitted["finetune"], fitted["classic"], d["valid"], Weighted)
        clf.train_seconds_ = time.perf_counter() - t0  # alpha search (member predictions)
        return clf
    if st == "finetune":
        clf = make_finetune(a.epochs, L)
    elif st == "frozen" or st == "concat":
        clf = TextClassifier(strategy=st, model="minilm", max_length=L, seed=0)
    elif st == "classic":
        clf = TextClassifier(strategy="classic", seed=0)
    elif st == "stack":
        members = a.stack_members.split(",")
        opts = {"frozen": {"max_length": L}, "finetune": {"max_length": L, "epochs": a.epochs}}
        if not a.stack_full_grid:  # the C each single model chose on validation: 1 fit, not 4-5
            for m in ("classic", "frozen"):
                if m in fitted:
                    opts.setdefault(m, {})["C_grid"] = [float(fitted[m].strategy_.model.C)]
        clf = TextClassifier(strategy="stack", seed=0, options={
            "members": members, "folds": a.folds,
            "member_options": {m: opts[m] for m in members if m in opts}})
    elif st == "vote":
        missing = [s for s in SINGLES if s not in bundles]
        if missing:
            raise RuntimeError(f"vote needs the saved bundles of {missing}, which failed")
        clf = TextClassifier(strategy="vote", options={
            "bundles": [str(bundles[s]) for s in SINGLES], "voting": "soft"})
    else:
        raise ValueError(st)
    return clf.fit(d["train"], valid=d["valid"])


def choose_threshold(maxp_in, correct_in, maxp_oos) -> dict:
    """Max-probability threshold t (oos if max prob < t) maximising (in-scope accuracy at t +
    OOS recall) / 2 on validation; candidates are midpoints between observed values."""
    import numpy as np

    u = np.unique(np.concatenate([maxp_in, maxp_oos]))
    cands = np.concatenate([[0.0], (u[:-1] + u[1:]) / 2, [u[-1] + 1e-9]])
    best = None
    for t in cands:
        acc = float(np.mean(correct_in & (maxp_in >= t)))
        rec = float(np.mean(maxp_oos < t)) if len(maxp_oos) else 0.0
        score = (acc + rec) / 2
        if best is None or score > best["valid_balanced"] + 1e-12:
            best = {"threshold": float(t), "valid_balanced": score,
                    "valid_in_scope_accuracy": acc, "valid_oos_recall": rec}
    return {k: round(v, 5) for k, v in best.items()}


def score(clf, d: dict) -> dict:
    import numpy as np
    from ronghe.tasks.text_classification import metrics

    texts = d["test_texts"] + d["oos_test"]
    clf.predict_proba(texts[:2])  # warm-up: lazily built embedders, kernels
    clear_embedding_cache()  # the timed call really encodes the test texts
    t0 = time.perf_counter()
    P = clf.predict_proba(texts)
    ms = 1000 * (time.perf_counter() - t0) / len(texts)
    classes = clf.classes_
    n_in = len(d["test_texts"])
    pred = classes[P.argmax(1)]
    rep = metrics(d["test_labels"], list(pred[:n_in]), list(classes), brief=True)
    row = {"test_accuracy": rep["accuracy"], "test_macro_f1": rep["macro_f1"],
           "ms_per_text": round(ms, 3), "valid": clf.metrics_.get("valid")}
    if d["oos_test"]:
        Pv = clf.predict_proba(list(d["valid"].texts) + d["oos_val"])
        nv = len(d["valid"])
        yv = np.asarray(d["valid"].labels, dtype=object)
        thr = choose_threshold(Pv[:nv].max(1), classes[Pv[:nv].argmax(1)] == yv, Pv[nv:].max(1))
        t = thr["threshold"]
        y_all = np.asarray(d["test_labels"] + ["oos"] * len(d["oos_test"]), dtype=object)
        pred_t = np.where(P.max(1) >= t, pred, "oos")
        is_oos, said_oos = y_all == "oos", pred_t == "oos"
        r5 = lambda x: round(float(x), 5)  # noqa: E731
        row["oos"] = {**thr,
                      "test_in_scope_accuracy_at_t": r5(np.mean(pred_t[~is_oos] == y_all[~is_oos])),
                      "test_oos_recall": r5(np.mean(said_oos[is_oos])),
                      "test_oos_precision": r5(np.sum(said_oos & is_oos) / max(1, said_oos.sum())),
                      "test_overall_accuracy_at_t": r5(np.mean(pred_t == y_all))}
    return row


def details(st: str, clf) -> dict:
    inner = clf.strategy_
    out: dict = {}
    if st in ("classic", "frozen", "concat") and getattr(inner, "model", None) is not None \
            and hasattr(inner.model, "C"):
        out["C"] = float(inner.model.C)
    if st == "finetune":
        out["best_epoch"] = getattr(inner, "best_epoch", None)
        out["history"] = inner.history
    if st == "weighted":
        out["alpha"] = inner.alpha
    if st == "stack":
        out["folds"] = inner.report.get("folds")
        out["members"] = list(inner.config.members)
        out["member_options"] = inner.config.member_options
        out["meta_C"] = float(inner.meta.C)
    return out


def run_dataset(name: str, a) -> dict:
    from ronghe import TextClassifier  # noqa: F401  (import cost outside the timings)

    size = QUICK[name] if a.quick else a.sizes[name]
    d = load_data(name, size, a.quick)
    work = work_dir(name, a.quick)
    work.mkdir(parents=True, exist_ok=True)
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {d['sizes']} (load {common.load_average()})",
          flush=True)
    fitted, bundles, rows = {}, {}, []
    for st in [s for s in SINGLES + FUSIONS if s in a.strategies]:
        t0 = time.perf_counter()
        row = {"strategy": st, "kind": "single" if st in SINGLES else "fusion",
               "load_start": common.load_average()[0]}
        try:
            if st == "finetune":  # never leave old settings next to a new (or half-made) bundle
                (work / "finetune.settings.json").unlink(missing_ok=True)
            clf = fit_one(st, d, fitted, bundles, a)
            row["train_seconds"] = round(clf.train_seconds_, 2)
            if st in SINGLES:
                fitted[st] = clf
                bundles[st] = clf.save(work / st)
                row["bundle_bytes"] = common.dir_size(bundles[st])
                if st == "finetune":
                    (work / "finetune.settings.json").write_text(json.dumps(
                        finetune_settings(d, a.epochs, a.max_length), indent=2))
            row.update(score(clf, d))
            row.update(details(st, clf))
            row["status"] = "ok"
        except Exception as e:  # one failing strategy must not lose the others
            row["status"] = f"failed: {type(e).__name__}: {e}"[:500]
            row["traceback"] = traceback.format_exc()[-3000:]
        row["wall_seconds"] = round(time.perf_counter() - t0, 1)
        print(f"    {st:9s} {row['status'][:80]:10s} acc {row.get('test_accuracy')} "
              f"f1 {row.get('test_macro_f1')} train {row.get('train_seconds')} s "
              f"wall {row['wall_seconds']} s", flush=True)
        rows.append(row)
    fitted.clear()
    clear_embedding_cache()
    gc.collect()
    return {"sizes": d["sizes"], "train_size_arg": size, "rows": rows, "aim": aim(rows),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "load_end": common.load_average()}


def aim(rows: list[dict]) -> dict:
    """Best fusion vs best single by test accuracy (CLINC: in-scope, no threshold)."""
    ok = [r for r in rows if r["status"] == "ok"]
    singles = [r for r in ok if r["kind"] == "single"]
    fusions = [r for r in ok if r["kind"] == "fusion"]
    if not singles or not fusions:
        return {"evaluated": False}
    bs = max(singles, key=lambda r: r["test_accuracy"])
    bf = max(fusions, key=lambda r: r["test_accuracy"])
    for r in fusions:
        r["beats_best_single"] = r["test_accuracy"] > bs["test_accuracy"]
    return {"evaluated": True, "best_single": bs["strategy"], "best_single_accuracy": bs["test_accuracy"],
            "best_fusion": bf["strategy"], "best_fusion_accuracy": bf["test_accuracy"],
            "margin": round(bf["test_accuracy"] - bs["test_accuracy"], 5),
            "met": bf["test_accuracy"] > bs["test_accuracy"]}


# --------------------------------------------------------------------------------- README

TITLES = {"sst2": "SST-2 (dev.tsv, 872)", "banking77": "BANKING77 (test.csv, 3,080)",
          "clinc150": "CLINC150 (test: 4,500 in scope + 1,000 out of scope)"}


def _f(x, fmt=".4f"):
    return "-" if x is None else format(x, fmt)


def readme(result: dict, quick: bool) -> str:
    cfg = result["config"]
    cmd = "python benchmarks/fusion.py" + (" --quick" if quick else "")
    parts = ["## Fusion: every single and fused strategy (`benchmarks/fusion.py`)", "",
             common.quick_note(quick, "python benchmarks/fusion.py") +
             f"Singles `classic` (TF-IDF + LR), `frozen` (MiniLM embeddings + LR), `finetune` "
             f"(MiniLM, up to {cfg['epochs']} epochs, early stopping on validation macro-F1, "
             f"seed 0); fusions `weighted` (the fitted finetune + classic, alpha on validation, no "
             f"retraining), `concat` (embeddings + TF-IDF SVD 256 -> LR), `stack` "
             f"({' + '.join(cfg['stack_members'].split(','))}, {cfg['folds']} folds -> LR; "
             + ("" if cfg.get("stack_full_grid") else "each base reuses the C its single model "
                "chose on validation instead of searching the grid in every fold; ") +
             "finetune bases would cost folds + 1 fine-tunings, so the affordable bases are "
             f"used) and `vote` (soft vote of the saved classic, frozen, finetune bundles). "
             f"max_length {cfg['max_length']}. Validation (every choice of C, alpha, epoch, "
             "threshold) is a seeded stratified 10 % of the training sample (CLINC150: its val "
             "split); the test sets are never used for selection. train s: `fit` wall time "
             "(concat and stack reuse the embeddings frozen already computed, via ronghe's "
             "per-text cache; weighted: the alpha search only). ms/text: one `predict_proba` "
             "over the whole test set, embedding cache emptied first - a rough cost, not a "
             "latency measurement.", ""]
    for name in DATASETS:
        r = result["datasets"].get(name)
        if not r:
            continue
        s, clinc = r["sizes"], name == "clinc150"
        head = ["strategy", "valid acc", "test acc", "test macro-F1", "train s", "ms/text",
                "beats best single"]
        if clinc:
            head += ["OOS threshold", "in-scope acc @t", "OOS recall", "OOS precision"]
        rows = []
        for x in r["rows"]:
            if x["status"] != "ok":
                rows.append([f"`{x['strategy']}`", x["status"][:120]] + [""] * (len(head) - 2))
                continue
            row = [f"`{x['strategy']}`", _f((x.get("valid") or {}).get("accuracy")),
                   _f(x["test_accuracy"]), _f(x["test_macro_f1"]), _f(x["train_seconds"], ".0f"),
                   _f(x["ms_per_text"], ".2f"),
                   {True: "yes", False: "no"}.get(x.get("beats_best_single"), "(single)")]
            if clinc:
                o = x.get("oos", {})
                row += [_f(o.get("threshold"), ".3f"), _f(o.get("test_in_scope_accuracy_at_t")),
                        _f(o.get("test_oos_recall")), _f(o.get("test_oos_precision"))]
            rows.append(row)
        ai = r["aim"]
        verdict = (f"**Aim (best fusion beats best single): {'met' if ai['met'] else 'not met'}** - "
                   f"best fusion `{ai['best_fusion']}` {ai['best_fusion_accuracy']:.4f} vs best single "
                   f"`{ai['best_single']}` {ai['best_single_accuracy']:.4f} ({ai['margin']:+.4f})."
                   if ai.get("evaluated") else "Aim not evaluated (a strategy group failed).")
        parts += [f"### {TITLES[name]}", "",
                  f"{s['n_train']:,} training / {s['n_valid']:,} validation examples, "
                  f"{s['n_classes']} classes, {s['n_test']:,} test" +
                  (f" + {s['n_oos_test']:,} out-of-scope test ({s['n_oos_valid']} out-of-scope "
                   "validation for the threshold only; out-of-scope texts are never trained on)"
                   if clinc else "") + f". Run {r['date'][:16]}, 1-min load at the end "
                  f"{r['load_end'][0]}.", "", common.md_table(head, rows), "", verdict, ""]
        if clinc:
            parts += ["Accuracy columns are in-scope accuracy without a threshold (the aim uses "
                      "it). OOS: predict `oos` when the top probability is below t; t maximises "
                      "(in-scope accuracy at t + OOS recall) / 2 on val + oos_val (balanced, so "
                      "the 30:1 validation ratio does not favour t = 0); in-scope acc @t counts "
                      "in-scope test texts rejected as oos as errors.", ""]
    sizes = ",".join(f"{k}={v}" for k, v in cfg["sizes"].items())
    parts += [f"Machine: {common.machine_line(result['machine'])}.", "", "Reproduce:", "", "```bash",
              f"{cmd}" + ("" if quick else f" --train-size {sizes} --epochs {cfg['epochs']}")
              + f"   # results: benchmarks/results/{NAME}{'.quick' if quick else ''}.json",
              "python benchmarks/fusion.py --only clinc150   # one data set; merges into the JSON",
              "```"]
    return "\n".join(parts)


# ----------------------------------------------------------------------------------- main

def parse_sizes(text: str) -> dict:
    sizes = dict(SIZES)
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        k, _, v = part.partition("=")
        if k not in SIZES:
            raise SystemExit(f"--train-size: unknown data set {k!r}")
        sizes[k] = int(v)
    return sizes


def main() -> None:
    ap = common.parser(__doc__, "tiny samples, 1 epoch")
    ap.add_argument("--only", default=",".join(DATASETS), help="comma-separated data sets")
    ap.add_argument("--strategies", default=",".join(SINGLES + FUSIONS))
    ap.add_argument("--train-size", default="", help="per data set, e.g. sst2=8000,clinc150=9000")
    ap.add_argument("--epochs", type=int, default=3, help="finetune epochs (early stopping)")
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--stack-members", default="classic,frozen")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--stack-full-grid", action="store_true",
                    help="stack members search their whole C grid again (default: reuse the C "
                         "the single classic/frozen model chose on validation)")
    ap.add_argument("--threads", type=int, default=common.THREADS)
    a = ap.parse_args()
    if common.handled(a, NAME, readme):
        return
    path = common.result_path(NAME, a.quick)
    common.THREADS = a.threads
    common.pin_threads(a.threads)
    common.torch_threads(a.threads)
    a.sizes = parse_sizes(a.train_size)
    a.strategies = [s.strip() for s in a.strategies.split(",") if s.strip()]
    if a.quick:
        a.epochs, a.folds = 1, min(a.folds, 2)
    t0 = time.perf_counter()
    result = json.loads(path.read_text()) if path.exists() else {"datasets": {}}
    result.update(benchmark=NAME, quick=a.quick, machine=common.machine_info(),
                  config={"epochs": a.epochs, "max_length": a.max_length, "folds": a.folds,
                          "stack_members": a.stack_members, "threads": a.threads,
                          "stack_full_grid": a.stack_full_grid,
                          "sizes": {k: QUICK[k] if a.quick else a.sizes[k] for k in DATASETS}})
    for name in [s.strip() for s in a.only.split(",") if s.strip()]:
        result["datasets"][name] = {**run_dataset(name, a), "config": dict(result["config"])}
        result["machine"]["load_average_end"] = common.load_average()
        common.write_json(NAME, result, a.quick)  # after every data set: partial runs survive
    common.finish(NAME, result, a, readme, t0)


if __name__ == "__main__":
    main()
