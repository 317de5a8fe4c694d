"""The leaderboard: train a portfolio of one task's strategies on the user's data and measure each
the same way.

``run(...)`` trains the portfolio cheapest first within a time budget (the cheapest always; a
network strategy that runs past the budget stops at its next epoch boundary and keeps its best
epoch; strategies not started in time are listed as skipped), scores every model on the same
held-out evaluation data (the task's scores: accuracy and macro-F1, or entity precision, recall
and F1; the task's score ranks), and measures each saved bundle in a fresh subprocess - so memory and latency
are not distorted by what else this process holds: load, warm up, latency p50/p95 at batch 1 and
batch 32 (tokenisation included), peak RSS. It writes ``leaderboard.json``, ``report.html`` with
an accuracy-vs-latency scatter marking the Pareto front, and copies the best model within
``max_latency_ms`` to ``OUT/chosen``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import tasks
from .errors import ConfigError
from .log import info, warn


def _order(names: list[str], cost: tuple[str, ...]) -> list[str]:
    """Cheapest first by the task's rough cost order (unknown names last)."""
    return sorted(names, key=lambda n: cost.index(n) if n in cost else len(cost))


def probe(bundle: Path, texts: list[str], repeats: int = 50) -> dict:
    """Load a bundle and time predictions; run in a fresh process by ``measure``."""
    import resource

    t0 = time.perf_counter()
    from .estimator import load

    clf = load(bundle)
    load_s = time.perf_counter() - t0
    n32 = max(3, repeats // 10)
    # every measured input is distinct and unseen, so no per-input cache can flatter a model
    pool = clf.task_spec().probe_pool(texts, 32 + repeats + 32 * n32)
    clf.predict(pool[:32])  # warm-up
    pool = pool[32:]
    b1 = []
    for i in range(repeats):
        t = time.perf_counter()
        clf.predict([pool[i]])
        b1.append((time.perf_counter() - t) * 1000)
    b32 = []
    for i in range(n32):
        batch = pool[repeats + 32 * i: repeats + 32 * (i + 1)]
        t = time.perf_counter()
        clf.predict(batch)
        b32.append((time.perf_counter() - t) * 1000)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    return {"load_seconds": round(load_s, 3),
            "latency_b1_p50_ms": round(float(np.percentile(b1, 50)), 3),
            "latency_b1_p95_ms": round(float(np.percentile(b1, 95)), 3),
            "latency_b32_p50_ms": round(float(np.percentile(b32, 50)), 3),
            "latency_b32_p95_ms": round(float(np.percentile(b32, 95)), 3),
            "peak_rss_mb": round(rss, 1)}


def measure(bundle: Path, texts: list[str], threads: int | None = None) -> dict:
    """``probe`` in a subprocess with pinned threads; returns its JSON."""
    sample = bundle.parent / f".{bundle.name}.probe-texts.json"
    sample.write_text(json.dumps(texts[:256]))
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    try:
        out = subprocess.run([sys.executable, "-m", "ronghe.bench", str(bundle), str(sample)],
                             env=env, capture_output=True, text=True, timeout=900)
    finally:
        sample.unlink(missing_ok=True)
    if out.returncode != 0:
        raise RuntimeError(f"measuring {bundle} failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def pareto(rows: list[dict], x: str = "latency_b1_p50_ms", y: str = "macro_f1") -> set[str]:
    """Names of rows no other row beats on both lower ``x`` and higher ``y``."""
    front = set()
    for r in rows:
        dominated = any(o is not r and o[x] <= r[x] and o[y] >= r[y] and (o[x] < r[x] or o[y] > r[y])
                        for o in rows)
        if not dominated:
            front.add(r["name"])
    return front


def run(train, *, out: Path, task: str = "text-classification", evaluation=None,
        strategies: list[str] | None = None, time_budget: float | None = None,
        max_latency_ms: float | None = None, seed: int = 0, model: str | None = None,
        options: dict[str, dict] | None = None, eval_fraction: float = 0.2) -> dict:
    """Train, score and measure a portfolio of one task's strategies; write the leaderboard."""
    from . import strategies as registry
    from .training.deadline import Deadline

    spec = tasks.get(task)
    est_cls = spec.estimator_class()
    score = spec.score
    names = strategies or list(spec.portfolio)
    for n in names:
        registry.get(n, spec.name)
        if n in ("vote", "onnx"):
            raise ConfigError(f"{n} models are built from saved bundles; they are not part of a "
                              "leaderboard run")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    probe_est = est_cls(strategy=names[0])
    train = probe_est._as_data(train, role="training data")
    probe_est._check_train(train, probe_est.strategy_class())
    if evaluation is None:
        train, evaluation = spec.split(train, eval_fraction, seed)
        info("leaderboard evaluation set: %d examples held out of the training data", len(evaluation))
    else:
        evaluation = probe_est._as_data(evaluation, role="evaluation data")
        probe_est._check_valid(train, evaluation, strict=False)
    fit_train, fit_valid = spec.split(train, 0.1, seed)  # model selection never sees `evaluation`
    start = time.monotonic()
    deadline = start + time_budget if time_budget else None
    rows, fitted = [], {}
    for name in _order(names, spec.cost_order):
        if deadline and time.monotonic() > deadline and fitted:  # the cheapest always runs
            rows.append({"name": name, "status": "skipped: time budget"})
            warn("skipping %s: the time budget of %ss is used up", name, time_budget)
            continue
        info("leaderboard: training %s", name)
        t0 = time.perf_counter()
        opts = dict((options or {}).get(name, {}))
        if model and "model" in registry.get(name, spec.name).Config.model_fields:
            opts.setdefault("model", model)
        if name == "weighted" and {"finetune", "classic"} <= set(fitted):
            from .fusion.weighted import Weighted

            clf = _weighted_from(fitted["finetune"], fitted["classic"], fit_valid, Weighted)
        else:
            clf = est_cls(strategy=name, seed=seed, options=opts or None)
            callbacks = [Deadline(deadline)] if deadline else []
            try:
                clf.fit(fit_train, valid=fit_valid, callbacks=callbacks)
            except ConfigError as e:
                rows.append({"name": name, "status": f"failed: {e}"})
                continue
        train_s = time.perf_counter() - t0
        fitted[name] = clf
        report = clf.evaluate(evaluation)
        path = clf.save(out / "models" / name)
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        row = {"name": name, "status": "ok",
               **{k: round(report[k], 5) for k in dict.fromkeys((*spec.summary, score))},
               "train_seconds": round(train_s, 2), "bundle_mb": round(size / 1e6, 3),
               "bundle": str(path)}
        row.update(measure(path, spec.inputs(evaluation), threads=os.cpu_count()))
        rows.append(row)
        info("%s: %s, %.1f ms/input at batch 1", name, spec.summary_line(row),
             row["latency_b1_p50_ms"])
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        raise ConfigError("no model finished; raise --time-budget")
    front = pareto(ok, y=score)
    for r in ok:
        r["pareto"] = r["name"] in front
    eligible = [r for r in ok if max_latency_ms is None or r["latency_b1_p50_ms"] <= max_latency_ms]
    chosen = max(eligible, key=lambda r: (r[score], -r["latency_b1_p50_ms"])) if eligible else None
    if chosen:
        target = out / "chosen"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(chosen["bundle"], target)
    result = {"task": spec.name, "score": score, "metrics": list(spec.summary), "rows": rows,
              "chosen": chosen["name"] if chosen else None,
              "max_latency_ms": max_latency_ms, "time_budget": time_budget,
              "seconds": round(time.monotonic() - start, 1), "n_train": len(train),
              "n_evaluation": len(evaluation), "data": train.source,
              "machine": _machine()}
    (out / "leaderboard.json").write_text(json.dumps(result, indent=2))
    (out / "report.html").write_text(html_report(result))
    return result


def _weighted_from(neural, classic, valid, Weighted):
    """Late fusion of the leaderboard's own fitted finetune and classic models (no retraining)."""
    from .tasks.text_classification import metrics

    inner = Weighted.from_members([neural.strategy_, classic.strategy_], valid)
    clf = neural.from_strategy(inner, {"strategy": "weighted", "seed": neural.seed},
                               data=neural.data_, train_seconds=0.0)
    clf.metrics_ = {"valid": metrics(valid.labels, clf.predict(valid), list(clf.classes_), brief=True),
                    "alpha": inner.alpha}
    return clf


def _machine() -> dict:
    import platform

    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def _scatter_png(rows: list[dict], chosen: str | None, max_latency: float | None,
                 score: str = "macro_f1") -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    for r in ok:
        color = "#d62728" if r["name"] == chosen else ("#1f77b4" if r["pareto"] else "#999999")
        ax.scatter(r["latency_b1_p50_ms"], r[score], s=70, color=color, zorder=3)
        ax.annotate(r["name"], (r["latency_b1_p50_ms"], r[score]), textcoords="offset points",
                    xytext=(6, 4), fontsize=9)
    front = sorted((r for r in ok if r["pareto"]), key=lambda r: r["latency_b1_p50_ms"])
    if len(front) > 1:
        ax.step([r["latency_b1_p50_ms"] for r in front], [r[score] for r in front],
                where="post", color="#1f77b4", lw=1.2, alpha=0.7, label="Pareto front")
    if max_latency:
        ax.axvline(max_latency, color="#d62728", ls="--", lw=1, label=f"max latency {max_latency} ms")
    ax.set_xscale("log")
    ax.set_xlabel("latency p50 at batch 1 (ms, log scale)")
    ax.set_ylabel(f"{_LABELS.get(score, score)} on the evaluation set")
    ax.grid(alpha=0.3)
    ax.set_title("accuracy vs latency (blue: Pareto front, red: chosen)")
    if len(front) > 1 or max_latency:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


_LABELS = {"macro_f1": "macro-F1", "f1": "entity F1", "accuracy": "accuracy",
           "precision": "precision", "recall": "recall"}


def html_report(result: dict) -> str:
    rows = result["rows"]
    score = result.get("score", "macro_f1")
    metrics = result.get("metrics", ["accuracy", "macro_f1"])
    cols = [("name", "model"), *[(m, _LABELS.get(m, m)) for m in metrics],
            ("train_seconds", "train s"), ("latency_b1_p50_ms", "b1 p50 ms"),
            ("latency_b1_p95_ms", "b1 p95 ms"), ("latency_b32_p50_ms", "b32 p50 ms"),
            ("bundle_mb", "bundle MB"), ("peak_rss_mb", "peak RSS MB")]
    head = "".join(f"<th>{html.escape(t)}</th>" for _, t in cols) + "<th>status</th>"
    body = []
    for r in sorted(rows, key=lambda r: -r.get(score, -1)):
        cls = ' class="chosen"' if r["name"] == result["chosen"] else ""
        cells = "".join(f"<td>{html.escape(str(r.get(k, '')))}</td>" for k, _ in cols)
        status = r["status"] + (" &middot; Pareto" if r.get("pareto") else "")
        body.append(f"<tr{cls}>{cells}<td>{status}</td></tr>")
    img = _scatter_png(rows, result["chosen"], result["max_latency_ms"], score) if any(
        r["status"] == "ok" for r in rows) else ""
    chosen = (f"<p><b>Chosen:</b> {html.escape(result['chosen'])} - the best "
              f"{_LABELS.get(score, score)}"
              + (f" within {result['max_latency_ms']} ms at batch 1" if result["max_latency_ms"] else "")
              + ", copied to <code>chosen/</code>.</p>") if result["chosen"] else \
        "<p><b>No model meets the latency limit.</b></p>"
    m = result["machine"]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>ronghe leaderboard</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child,th:first-child{{text-align:left}}
tr.chosen{{background:#fde8e8;font-weight:600}}th{{background:#f4f4f4}}</style></head><body>
<h1>ronghe leaderboard</h1>
<p>Data: {html.escape(str(result['data']))} - {result['n_train']} training examples, {result['n_evaluation']}
evaluation examples. Run time {result['seconds']} s on {html.escape(m['cpu'])} ({m['cores']} cores).
Latency and memory measured per bundle in a fresh process, tokenisation included. Bundle size
excludes a backbone the bundle only references by sha256 (frozen, concat, stack members, PEFT
adapters); peak RSS includes it.</p>
{chosen}<table><tr>{head}</tr>{''.join(body)}</table>
{f'<p><img alt="accuracy vs latency" src="data:image/png;base64,{img}"></p>' if img else ''}
</body></html>"""


if __name__ == "__main__":  # python -m ronghe.bench BUNDLE TEXTS.json -> probe JSON on stdout
    import logging

    logging.disable(logging.WARNING)
    print(json.dumps(probe(Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text()))))
