"""Evaluation of an assistant on labelled queries (message, expected intent / FAQ id / ``oos``).

Reports: in-scope intent accuracy (the classifier's top intent) and the share answered with
the right intent by the policy; FAQ top-1 / top-5 hit rates of retrieval and the share
answered with the right entry; out-of-scope precision / recall / F1 of the hand-offs (and of the
detector alone); hand-off and clarification rates; the end-to-end reply accuracy; latency
p50/p95 of one reply at a time; and the coverage-vs-accuracy curve over the out-of-scope
threshold (PNG).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ...bundle import write_text_atomic
from ...errors import DataError
from .config import OOS_LABEL
from .data import Queries
from .policy import decide


def _prf(pred: np.ndarray, gold: np.ndarray) -> dict:
    tp = int((pred & gold).sum())
    p = tp / max(int(pred.sum()), 1)
    r = tp / max(int(gold.sum()), 1)
    return {"precision": round(p, 5), "recall": round(r, 5),
            "f1": round(2 * p * r / (p + r), 5) if p + r else 0.0, "n_oos": int(gold.sum())}


def evaluate(bot, queries: Queries, latency_sample: int = 200) -> dict:
    intents, faq_ids = set(bot.intents_), set(bot.faq_)
    unknown = sorted({e for e in queries.expected
                      if e not in intents and e not in faq_ids and e != OOS_LABEL})
    if unknown:
        raise DataError(f"{queries.source}: expected values that are neither intents of this "
                        f"assistant, nor its FAQ ids, nor '{OOS_LABEL}': "
                        f"{', '.join(unknown[:10])}; fix those rows")
    exp = np.array(queries.expected, dtype=object)
    is_intent = np.array([e in intents for e in exp])
    is_faq = np.array([e in faq_ids for e in exp])
    is_oos = exp == OOS_LABEL
    sigs, P, E = bot.signals(queries.texts)
    faq5 = bot.faq_search(E, 5)
    t = bot.thresholds()
    answers = {e.id: e.answer for e in bot.faq_.values()}
    replies = [decide(s, t, bot.config, bot.answers_, answers) for s in sigs]
    kind = np.array([r["kind"] for r in replies], dtype=object)
    top = np.array([s.intents[0][0] for s in sigs], dtype=object)
    scores = np.array([s.oos_score for s in sigs])
    correct_reply = np.array([
        (r["kind"] == "intent" and r["intent"] == e) or (r["kind"] == "faq" and r["faq_id"] == e)
        or (r["handoff"] and e == OOS_LABEL) for r, e in zip(replies, exp)])
    handoff = np.array([r["handoff"] for r in replies])
    report: dict = {"n": len(exp), "n_intent": int(is_intent.sum()), "n_faq": int(is_faq.sum()),
                    "n_oos": int(is_oos.sum()), "classifier": bot.strategy_,
                    "oos_method": t.oos_method, "oos_threshold": t.oos, "faq_threshold": t.faq}
    if is_intent.any():
        report["intent_accuracy"] = round(float((top[is_intent] == exp[is_intent]).mean()), 5)
        report["intent_answered_correctly"] = round(float(correct_reply[is_intent].mean()), 5)
    if is_faq.any():
        hits = [[h[0] for h in faq5[i]] for i in np.flatnonzero(is_faq)]
        gold = exp[is_faq]
        report["faq_top1"] = round(float(np.mean([h[:1] == [g] for h, g in zip(hits, gold)])), 5)
        report["faq_top5"] = round(float(np.mean([g in h[:5] for h, g in zip(hits, gold)])), 5)
        report["faq_answered_correctly"] = round(float(correct_reply[is_faq].mean()), 5)
    report["oos_handoff"] = _prf(handoff, is_oos)
    report["oos_detector"] = _prf(scores >= t.oos, is_oos)
    if is_oos.any() and (~is_oos).any():
        from sklearn.metrics import roc_auc_score

        report["oos_auroc"] = round(float(roc_auc_score(is_oos.astype(int), scores)), 5)
    report["handoff_rate"] = round(float(handoff.mean()), 5)
    report["clarify_rate"] = round(float((kind == "clarify").mean()), 5)
    report["reply_accuracy"] = round(float(correct_reply.mean()), 5)
    report["kinds"] = {k: int((kind == k).sum()) for k in ("intent", "faq", "clarify", "fallback")}
    report["curve"] = coverage_curve(scores, top, exp, is_intent | is_oos, t.oos)
    report["latency_ms"] = latency(bot, queries.texts, latency_sample)
    report["errors"] = [{"row": queries.rows[i], "message_chars": len(queries.texts[i]),
                         "expected": exp[i], "kind": replies[i]["kind"],
                         "intent": replies[i]["intent"], "faq_id": replies[i]["faq_id"]}
                        for i in np.flatnonzero(~correct_reply)[:50]]
    return report


def coverage_curve(scores, top, exp, mask, chosen: float, points: int = 101) -> dict:
    """Coverage (share of intent + OOS queries answered: score below the threshold) against
    accuracy among the answered (right intent; an answered out-of-scope query is wrong), over
    thresholds from the strictest to the most lenient."""
    s, ok = scores[mask], (top[mask] == exp[mask])
    qs = np.unique(np.quantile(s, np.linspace(0, 1, points)))
    thresholds = np.r_[qs, np.inf]
    cov, acc = [], []
    for thr in thresholds:
        ans = s < thr
        cov.append(float(ans.mean()))
        acc.append(float(ok[ans].mean()) if ans.any() else 1.0)
    ans = s < chosen
    return {"thresholds": [float(x) if np.isfinite(x) else None for x in thresholds],
            "coverage": cov, "accuracy": acc,
            "chosen": {"threshold": chosen, "coverage": float(ans.mean()),
                       "accuracy": float(ok[ans].mean()) if ans.any() else 1.0}}


def latency(bot, texts: list[str], n: int) -> dict:
    """One reply at a time on up to ``n`` messages (altered, so no embedding cache helps)."""
    sample = [f"{t} ({i})" for i, t in enumerate(texts[:n])]
    bot.reply("warm up")
    times = []
    for t in sample:
        start = time.perf_counter()
        bot.reply(t)
        times.append((time.perf_counter() - start) * 1000)
    return {"p50": round(float(np.percentile(times, 50)), 3),
            "p95": round(float(np.percentile(times, 95)), 3), "n": len(times)}


def plot(report: dict, path: Path, title: str = "Assistant") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = report["curve"]
    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=110)
    ax.plot(c["coverage"], c["accuracy"], color="#1f77b4", lw=2, label="over the threshold")
    ch = c["chosen"]
    ax.scatter([ch["coverage"]], [ch["accuracy"]], color="#d62728", zorder=3, s=50,
               label=f"chosen ({report['oos_method']} < {ch['threshold']:.3g}): coverage "
                     f"{ch['coverage']:.2f}, accuracy {ch['accuracy']:.2f}")
    ax.set_xlabel("coverage (share of intent + out-of-scope queries answered)")
    ax.set_ylabel("accuracy of the answered (right intent)")
    ax.set_xlim(0, 1.02)
    lo = min(c["accuracy"] + [ch["accuracy"]])
    ax.set_ylim(max(0.0, lo - 0.05), 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(f"{title}: coverage vs accuracy\n{report['n_intent']} intent, "
                 f"{report['n_oos']} out-of-scope queries; hand-off rate "
                 f"{report['handoff_rate']:.2f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def markdown(r: dict) -> str:
    lines = ["# Assistant evaluation", "", f"- queries: {r['n']} ({r['n_intent']} intent, "
             f"{r['n_faq']} FAQ, {r['n_oos']} out of scope)",
             f"- classifier: {r['classifier']}; out-of-scope: {r['oos_method']} (threshold "
             f"{r['oos_threshold']:.4g}); FAQ threshold {r['faq_threshold']:.4f}"]
    for k in ("intent_accuracy", "intent_answered_correctly", "faq_top1", "faq_top5",
              "faq_answered_correctly", "oos_auroc", "handoff_rate", "clarify_rate",
              "reply_accuracy"):
        if k in r:
            lines.append(f"- {k.replace('_', ' ')}: {r[k]:.4f}")
    o = r["oos_handoff"]
    lines.append(f"- out of scope (hand-offs): precision {o['precision']:.4f}, recall "
                 f"{o['recall']:.4f}, F1 {o['f1']:.4f}")
    lat = r["latency_ms"]
    lines.append(f"- latency per reply: p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms "
                 f"({lat['n']} replies)")
    return "\n".join(lines) + "\n"


def write(report: dict, out: Path) -> dict[str, Path]:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = {"json": out.with_suffix(".json"), "markdown": out.with_suffix(".md"),
             "png": out.with_suffix(".png")}
    write_text_atomic(paths["json"], json.dumps(report, indent=2, ensure_ascii=False))
    write_text_atomic(paths["markdown"], markdown(report))
    plot(report, paths["png"])
    return paths
