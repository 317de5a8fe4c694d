"""Text classification: the task's declaration, its metrics, the evaluation report, the
prediction record format and what the server calls.

The estimator is ``ronghe.TextClassifier`` (``classifier.py``); data is read by ``data.py``; the
strategies live in ``strategies/`` and ``fusion/`` (plus ``onnx`` in ``runtime/``), each one line
in ``TextClassification.strategies`` below.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from .base import Task


def label_key(label) -> str:
    return str(label)


def metrics(y_true, y_pred, classes: list, brief: bool = False) -> dict:
    """accuracy, macro/weighted F1 and (unless ``brief``) per-class scores and the confusion
    matrix over ``classes`` (labels outside ``classes`` in ``y_true`` count as errors)."""
    y_true = [label_key(y) for y in y_true]
    y_pred = [label_key(y) for y in y_pred]
    names = [label_key(c) for c in classes]
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


def records(classes, proba: np.ndarray) -> list[dict]:
    """One prediction record per row: label, its probability and all class probabilities."""
    out = []
    keys = [c.item() if hasattr(c, "item") else c for c in classes]
    for row in proba:
        i = int(row.argmax())
        out.append({"label": keys[i], "score": round(float(row[i]), 6),
                    "probabilities": {str(k): round(float(p), 6) for k, p in zip(keys, row)}})
    return out


class ServingModel:
    """``predict(texts)`` -> the records ``ronghe predict`` prints (label, score, probabilities).

    A micro-batch of random requests is passed whole: the strategies cut it into length-sorted
    groups padded to their own longest text (``batching.length_grouped_batches``)."""

    accepts = ("texts",)

    def __init__(self, estimator):
        self.estimator = estimator
        self.classes = estimator.classes_

    def predict(self, texts: list[str]) -> list[dict]:
        return records(self.classes, self.estimator.predict_proba(texts))


class ClassificationTask(Task):
    """What every one-label-per-input task shares (text, images): its scores, the evaluation
    report with the confusion-matrix plot, and the split."""

    score = "macro_f1"
    summary = ("accuracy", "macro_f1")
    gate_metric = "accuracy"

    def split(self, data_set, fraction: float, seed: int):
        from .. import data

        return data.split(data_set, fraction, seed)

    def markdown(self, report: dict, title: str) -> str:
        return markdown(report, title)

    def write_report(self, report: dict, out: Path, title: str) -> dict[str, Path]:
        """``.json``, ``.md`` and the confusion matrix as ``.png``."""
        paths = super().write_report(report, out, title)
        paths["png"] = plot_confusion(report, Path(out).with_suffix(".png"), title)
        return paths


class TextClassification(ClassificationTask):
    name = "text-classification"
    cli_name = "text"
    description = "one label per text (sentiment, intent, topic ...), optionally with tabular columns"
    estimator = "ronghe.classifier:TextClassifier"
    # name -> "module:Class", one line per strategy
    strategies = {
        "classic": "ronghe.strategies.classic:Classic",
        "frozen": "ronghe.strategies.frozen:Frozen",
        "finetune": "ronghe.strategies.finetune:Finetune",
        "lora": "ronghe.strategies.lora:Lora",
        "adalora": "ronghe.strategies.adalora:AdaLora",
        "ia3": "ronghe.strategies.ia3:IA3",
        "prefix": "ronghe.strategies.prefix:Prefix",
        "contrastive": "ronghe.strategies.contrastive:Contrastive",
        "weighted": "ronghe.fusion.weighted:Weighted",
        "concat": "ronghe.fusion.concat:Concat",
        "stack": "ronghe.fusion.stack:Stack",
        "vote": "ronghe.fusion.vote:Vote",
        "onnx": "ronghe.runtime.onnx:OnnxStrategy",
    }
    default_strategy = "finetune"
    portfolio = ("classic", "frozen", "concat", "stack", "finetune", "weighted")
    cost_order = ("classic", "frozen", "concat", "stack", "contrastive", "ia3", "lora", "adalora",
                  "prefix", "finetune", "weighted")
    data_options = ("text_col", "label_col", "feature_cols")
    compressions = ("int8", "int8-static", "bf16", "prune")
    exporter = "ronghe.compression.export"

    def read(self, path, *, labeled: bool = True, text_col=None, label_col=None,
             feature_cols=None, **_):
        from .. import data

        return data.load(path, text_col=text_col, label_col=label_col, feature_cols=feature_cols,
                         require_labels=labeled, on_empty="drop" if labeled else "keep")

    def serving_model(self, estimator) -> ServingModel:
        return ServingModel(estimator)


TASK = TextClassification()
