"""Text classification: metrics, the evaluation report, and the prediction record format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def _key(label) -> str:
    return str(label)


def metrics(y_true, y_pred, classes: list, brief: bool = False) -> dict:
    """accuracy, macro/weighted F1 and (unless ``brief``) per-class scores and the confusion
    matrix over ``classes`` (labels outside ``classes`` in ``y_true`` count as errors)."""
    y_true = [_key(y) for y in y_true]
    y_pred = [_key(y) for y in y_pred]
    names = [_key(c) for c in classes]
    extra = sorted(set(y_true) - set(names))
    labels = names + extra
    out = {"accuracy": float(accuracy_score(y_true, y_pred)),
           "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
           "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted",
                                         zero_division=0)),
           "n": len(y_true)}
    if brief:
        return {k: round(v, 5) if isinstance(v, float) else v for k, v in out.items()}
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    out["per_class"] = {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                            "support": int(s[i])} for i, c in enumerate(labels)}
    out["confusion_matrix"] = {"labels": labels,
                               "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist()}
    if extra:
        out["unseen_labels"] = extra
    return out


def markdown(report: dict, title: str = "Evaluation") -> str:
    lines = [f"# {title}", "",
             f"- examples: {report['n']}",
             f"- accuracy: {report['accuracy']:.4f}",
             f"- macro-F1: {report['macro_f1']:.4f}",
             f"- weighted-F1: {report['weighted_f1']:.4f}", "",
             "| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for c, m in report["per_class"].items():
        lines.append(f"| {c} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | "
                     f"{m['support']} |")
    if report.get("unseen_labels"):
        lines += ["", f"Labels not known to the model (counted as errors): "
                      f"{', '.join(report['unseen_labels'])}"]
    return "\n".join(lines) + "\n"


def plot_confusion(report: dict, path: Path, title: str = "Confusion matrix") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = report["confusion_matrix"]["labels"]
    cm = np.array(report["confusion_matrix"]["matrix"])
    n = len(labels)
    size = min(4 + 0.35 * n, 30)
    fig, ax = plt.subplots(figsize=(size, size * 0.85), dpi=110)
    row = cm.sum(1, keepdims=True)
    norm = np.divide(cm, row, out=np.zeros_like(cm, dtype=float), where=row > 0)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center",
                  fontsize=max(5, 10 - n // 10))
    ax.set_yticks(range(n), labels, fontsize=max(5, 10 - n // 10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\naccuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}, "
                 f"n={report['n']}")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=9,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(report: dict, out: Path, title: str) -> dict[str, Path]:
    """Write the report as ``.json``, ``.md`` and ``.png`` (``out`` with those suffixes)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = {"json": out.with_suffix(".json"), "markdown": out.with_suffix(".md"),
             "png": out.with_suffix(".png")}
    paths["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False))
    paths["markdown"].write_text(markdown(report, title))
    plot_confusion(report, paths["png"], title)
    return paths


def records(classes, proba: np.ndarray) -> list[dict]:
    """One prediction record per row: label, its probability and all class probabilities."""
    out = []
    keys = [c.item() if hasattr(c, "item") else c for c in classes]
    for row in proba:
        i = int(row.argmax())
        out.append({"label": keys[i], "score": round(float(row[i]), 6),
                    "probabilities": {str(k): round(float(p), 6) for k, p in zip(keys, row)}})
    return out
