"""Entity-level NER metrics with seqeval's strict semantics, and the evaluation report.

An entity counts as correct only if its type and both boundaries match exactly (seqeval
``mode="strict"``, scheme IOB2 - the CoNLL shared-task rule). Micro-averaged precision, recall and
F1 over all entities, plus the same per entity type and their macro average.
"""

from __future__ import annotations

import warnings


def entity_metrics(y_true: list[list[str]], y_pred: list[list[str]]) -> dict:
    """``precision``, ``recall``, ``f1`` (micro), ``macro_f1``, ``per_type`` (precision, recall,
    f1, support), ``n_sentences``, ``n_entities`` (gold) and ``n_predicted``, from BIO tags."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2, Entities

    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} gold sentences but {len(y_pred)} predicted")
    for i, (t, p) in enumerate(zip(y_true, y_pred)):
        if len(t) != len(p):
            raise ValueError(f"sentence {i}: {len(t)} gold tags but {len(p)} predicted")
    n_true = sum(len(s) for s in Entities(y_true, IOB2).entities)
    n_pred = sum(len(s) for s in Entities(y_pred, IOB2).entities)
    out = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "macro_f1": 0.0, "per_type": {},
           "n_sentences": len(y_true), "n_entities": n_true, "n_predicted": n_pred}
    if n_true == 0 and n_pred == 0:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no predicted/true samples" for types with none
        rep = classification_report(y_true, y_pred, mode="strict", scheme=IOB2, output_dict=True,
                                    zero_division=0)
    micro, macro = rep.pop("micro avg"), rep.pop("macro avg")
    rep.pop("weighted avg", None)
    out.update(precision=float(micro["precision"]), recall=float(micro["recall"]),
               f1=float(micro["f1-score"]), macro_f1=float(macro["f1-score"]))
    out["per_type"] = {typ: {"precision": float(v["precision"]), "recall": float(v["recall"]),
                             "f1": float(v["f1-score"]), "support": int(v["support"])}
                       for typ, v in sorted(rep.items())}
    return out


def markdown(report: dict, title: str = "NER evaluation") -> str:
    """The report as a Markdown page (``ronghe evaluate --out`` writes it beside the JSON)."""
    lines = [f"# {title}", "",
             f"- sentences: {report['n_sentences']}",
             f"- gold entities: {report.get('n_entities', '?')}, predicted: "
             f"{report.get('n_predicted', '?')}",
             f"- precision: {report['precision']:.4f}",
             f"- recall: {report['recall']:.4f}",
             f"- F1 (micro, strict): {report['f1']:.4f}",
             f"- F1 (macro over types): {report.get('macro_f1', 0):.4f}", "",
             "| type | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for typ, m in report["per_type"].items():
        lines.append(f"| {typ} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | "
                     f"{m['support']} |")
    for note in report.get("notes", []):
        lines.append("")
        lines.append(f"> {note.splitlines()[0]}")
    return "\n".join(lines) + "\n"
