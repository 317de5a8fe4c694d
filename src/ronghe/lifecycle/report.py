"""The drift report as one static HTML page: the verdict, a table of the checks (p-value,
effect, threshold) and four plots as inline PNG (nothing fetched)."""

from __future__ import annotations

import base64
import io
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import numpy as np

_NAMES = {"input": "input (embeddings)", "prediction": "predicted-label mix",
          "confidence": "confidence", "accuracy": "accuracy (estimated)"}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def plots(report: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    ref, cur = report["_plot"]["reference"], report["_plot"]["current"]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), dpi=100)
    ax = axes[0, 0]
    inp = report["checks"]["input"]
    if ref.embeddings is not None and cur.embeddings is not None:
        pca = PCA(2, random_state=0).fit(ref.embeddings)
        a, b = pca.transform(ref.embeddings), pca.transform(cur.embeddings)
        ax.scatter(a[:, 0], a[:, 1], s=6, alpha=0.35, label=f"reference ({len(ref)})",
                   color="#1f77b4")
        ax.scatter(b[:, 0], b[:, 1], s=6, alpha=0.35, label=f"current ({len(cur)})",
                   color="#d62728")
        ax.set_title(f"embeddings, PCA of the reference\nC2ST AUC {inp['c2st']['auc']:.3f}, "
                     f"MMD {inp['mmd']['effect']:.3f}", fontsize=10)
        ax.legend(fontsize=8, markerscale=2)
    else:
        ax.text(0.5, 0.5, "no embeddings:\ninput not checked", ha="center", va="center")
        ax.set_axis_off()

    ax = axes[0, 1]
    pr = report["checks"]["prediction"]
    keys = sorted(pr["reference"], key=lambda k: -(pr["reference"][k] + pr["current"][k]))[:15]
    x = np.arange(len(keys))
    ax.bar(x - 0.2, [pr["reference"][k] for k in keys], 0.4, label="reference", color="#1f77b4")
    ax.bar(x + 0.2, [pr["current"][k] for k in keys], 0.4, label="current", color="#d62728")
    ax.set_xticks(x, [k[:14] for k in keys], rotation=45 if len(keys) > 4 else 0, ha="right"
                  if len(keys) > 4 else "center", fontsize=8)
    ax.set_ylabel("share of predictions")
    ax.set_title(f"predicted labels{' (15 most frequent)' if len(pr['reference']) > 15 else ''}"
                 f"\nCramer's V {pr['cramers_v']:.3f}, p={pr['p_value']:.2g}", fontsize=10)
    ax.legend(fontsize=8)

    ax = axes[1, 0]
    bins = np.linspace(min(ref.confidence.min(), cur.confidence.min()), 1, 21)
    ax.hist(ref.confidence, bins, alpha=0.5, density=True, label="reference", color="#1f77b4")
    ax.hist(cur.confidence, bins, alpha=0.5, density=True, label="current", color="#d62728")
    cd = report["checks"]["confidence"]
    ax.set_xlabel("top-class probability")
    ax.set_title(f"confidence: mean {cd['reference_mean']:.3f} -> {cd['current_mean']:.3f}",
                 fontsize=10)
    ax.legend(fontsize=8)

    ax = axes[1, 1]
    acc = report["checks"]["accuracy"]
    if acc.get("estimated_current") is not None:
        vals = [acc["reference_accuracy"], acc["estimated_current"]]
        names = ["reference\n(measured)", "current\n(estimated)"]
        errs = [0, 2 * acc["se"]]
        if acc.get("true_current") is not None:
            vals.append(acc["true_current"])
            names.append("current\n(measured)")
            errs.append(0)
        ax.bar(names, vals, yerr=errs, capsize=6, color=["#1f77b4", "#d62728", "#2ca02c"][:len(vals)])
        for i, v in enumerate(vals):
            ax.text(i, v / 2, f"{v:.3f}", ha="center", color="white", fontsize=10)
        ax.set_ylim(0, 1)
        ax.set_title("accuracy (CBPE estimate, error bar: 2 standard errors)", fontsize=10)
    else:
        ax.text(0.5, 0.5, "no labelled reference:\naccuracy not estimated", ha="center",
                va="center")
        ax.set_axis_off()
    fig.tight_layout()
    img = _png(fig)
    plt.close(fig)
    return img


def html(report: dict, title: str = "ronghe drift report") -> str:
    rows = []
    for name, ch in report["checks"].items():
        if ch.get("effect") is None:
            rows.append(f"<tr><td>{_NAMES[name]}</td><td colspan=4>{escape(ch.get('note', ''))}"
                        "</td><td>-</td></tr>")
            continue
        p = ch.get("p_value")
        rows.append(f"<tr class={'drift' if ch['drift'] else 'ok'}><td>{_NAMES[name]}</td>"
                    f"<td>{escape(str(ch.get('test', ch.get('method', ''))))}</td>"
                    f"<td>{'' if p is None else f'{p:.3g}'}</td><td>{ch['effect']:.4f}</td>"
                    f"<td>{ch['threshold']:.4f}</td><td>{'DRIFT' if ch['drift'] else 'ok'}</td></tr>")
    acc = report["checks"]["accuracy"]
    acc_line = ""
    if acc.get("estimated_current") is not None:
        acc_line = (f"<p>Accuracy on the reference {acc['reference_accuracy']:.3f}; estimated on "
                    f"the current data {acc['estimated_current']:.3f} &plusmn; "
                    f"{2 * acc['se']:.3f} (2 s.e.)"
                    + (f"; measured {acc['true_current']:.3f}" if acc.get("true_current")
                       is not None else "")
                    + f". Calibration error on the reference (cross-fitted): "
                      f"{acc['calibration']['cross_fit_error']:.3f}. {escape(acc['note'])}.</p>")
    notes = "".join(f"<li>{escape(n)}</li>" for n in report["notes"])
    made = datetime.now(timezone.utc).isoformat(timespec="seconds")
    verdict = report["verdict"]
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>body{{font:14px system-ui,sans-serif;margin:1.5em;color:#222;max-width:1150px}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}th{{background:#f4f4f4}}tr.drift td{{background:#fde8e8;
font-weight:600}}.v{{font-size:1.3em;padding:.3em .6em;display:inline-block;border-radius:4px;
background:{'#fde8e8' if verdict == 'drift' else '#e8f6e8'}}}</style></head><body>
<h1>{escape(title)}</h1>
<p class="v"><b>{escape(verdict.upper())}</b>{' in: ' + escape(', '.join(report['drifted'])) if report['drifted'] else ''}</p>
<p>{report['n_reference']} reference vs {report['n_current']} current items; made {made}. A
check fires when its p-value is below {report['config']['alpha']} <i>and</i> its effect reaches
the threshold (a large sample makes every p-value small; the effect says whether it matters).</p>
<table><tr><th>check</th><th>test</th><th>p-value</th><th>effect</th><th>threshold</th>
<th>verdict</th></tr>{''.join(rows)}</table>
{acc_line}
<p><img alt="drift plots" src="data:image/png;base64,{plots(report)}"></p>
<h2>Notes</h2><ul>{notes}</ul>
</body></html>"""


def write(report: dict, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name("." + out.name + ".tmp")
    tmp.write_text(html(report), encoding="utf-8")
    tmp.replace(out)
    return out
