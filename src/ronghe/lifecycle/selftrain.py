"""Self-training: a text classifier learns from unlabelled texts through its own confident
predictions (``ronghe train DATA --unlabeled FILE``).

``self_train(estimator, train, valid, unlabeled)``:

1. Fit on the labelled data (round 0, the baseline).
2. Each round: the current model predicts the unlabelled texts; the confidence threshold is the
   lowest at which the model's predictions on the *validation* data are right at least
   ``min_precision`` of the time (with at least ``min_support`` validation items above it), so
   the pseudo-labels are about as accurate as that - chosen on validation, not guessed.
3. A fresh model (same hyper-parameters) is fitted on the labelled data plus the texts above
   the threshold with their predicted labels. It is kept only if its validation accuracy beats
   the best so far by more than ``min_gain``; otherwise the previous model stays and the loop
   stops. Pseudo-labels are drawn afresh by the latest kept model each round (not accumulated).

Every round's numbers go to ``metrics_["self_training"]`` (kept in the bundle's manifest).
Validation data is split off the labelled data first when none is given, so every round is
judged on the same items.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError, DataError
from ..log import info


class SelfTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rounds: int = Field(3, ge=1, le=20, description="most pseudo-labelling rounds")
    min_precision: float = Field(0.9, gt=0, le=1, description="validation accuracy required "
                                                              "above the confidence threshold")
    min_support: int = Field(10, ge=1, description="fewest validation items above the threshold")
    min_gain: float = Field(0.0, ge=0, lt=1, description="validation accuracy a round must add "
                                                         "to be kept")


def read_unlabeled(path: Path) -> list[str]:
    """A .txt file: one text per line; a table (csv, jsonl ...): its text column."""
    from .. import data

    path = Path(path)
    if path.suffix.lower() in (".txt", ".text"):
        if not path.is_file():
            raise ConfigError(f"{path}: file not found")
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    return data.load(str(path), require_labels=False).texts


def choose_threshold(confidence: np.ndarray, correct: np.ndarray, min_precision: float,
                     min_support: int) -> float | None:
    """The lowest confidence ``t`` such that the items with confidence >= ``t`` are right at least
    ``min_precision`` of the time and number at least ``min_support``; None if there is none."""
    order = np.argsort(-confidence, kind="stable")
    conf, ok = confidence[order], correct[order].astype(float)
    precision = np.cumsum(ok) / np.arange(1, len(ok) + 1)
    best = None
    for k in range(len(conf)):
        # only cut between distinct confidences (ties go in together)
        if k + 1 < len(conf) and conf[k + 1] == conf[k]:
            continue
        if k + 1 >= min_support and precision[k] >= min_precision:
            best = float(conf[k])
    return best


def _labels_of(classes, idx) -> list:
    return [classes[i].item() if hasattr(classes[i], "item") else classes[i] for i in idx]


def self_train(estimator, train, valid, unlabeled: list[str],
               config: SelfTrainConfig | None = None, *, resume: bool = False):
    """Fit ``estimator`` (a ``TextClassifier``) with self-training; returns the kept model."""
    from sklearn.base import clone

    from .. import data

    cfg = config or SelfTrainConfig()
    if estimator.task != "text-classification":
        raise ConfigError(f"--unlabeled (self-training) is for text classification, not "
                          f"{estimator.task}")
    if getattr(estimator, "feature_cols", None):
        raise ConfigError("--unlabeled (self-training) takes texts only; this model also uses "
                          "--feature-cols, which unlabelled texts do not have")
    unlabeled = [t for t in dict.fromkeys(unlabeled) if t.strip()]
    if not unlabeled:
        raise DataError("the unlabelled file has no texts: give one text per line (.txt) or a "
                        "table with a text column")
    if valid is None:
        params = estimator.resolved_config()
        train, valid = estimator.task_spec().split(train, params.valid_fraction, params.seed)
    known = set(train.texts) | set(valid.texts)
    pool = [t for t in unlabeled if t not in known]
    run_dir = estimator.run_dir

    def fit(est, ds, r):
        if run_dir:
            est.set_params(run_dir=str(Path(run_dir) / f"self-training-{r}") if r else run_dir)
        return est.fit(ds, valid=valid, resume=resume and r == 0)

    best = fit(estimator, train, 0)
    best_acc = best.metrics_["valid"]["accuracy"]
    rounds = [{"round": 0, "pseudo_labeled": 0, "threshold": None,
               "valid_accuracy": round(best_acc, 5), "kept": True}]
    info("self-training: %d unlabelled texts (%d duplicates or already labelled left out); "
         "round 0 validation accuracy %.4f", len(pool), len(unlabeled) - len(pool), best_acc)
    for r in range(1, cfg.rounds + 1):
        pv = best.predict_proba(valid)
        correct = np.array([str(best.classes_[i]) == str(y) for i, y in
                            zip(pv.argmax(1), valid.labels)])
        t = choose_threshold(pv.max(1), correct, cfg.min_precision, cfg.min_support)
        row = {"round": r, "threshold": None if t is None else round(t, 5)}
        if t is None or not pool:
            rounds.append({**row, "pseudo_labeled": 0, "kept": False,
                           "stopped": f"no confidence threshold reaches {cfg.min_precision} "
                                      f"precision on {cfg.min_support}+ validation items"
                           if pool else "no unlabelled texts left"})
            break
        pu = best.predict_proba(pool)
        take = np.flatnonzero(pu.max(1) >= t)
        row["pseudo_labeled"] = int(len(take))
        row["pseudo_share"] = round(len(take) / len(pool), 4)
        if not len(take):
            rounds.append({**row, "kept": False, "stopped": "no unlabelled text above the "
                                                           "threshold"})
            break
        mixed = data.from_texts(train.texts + [pool[i] for i in take],
                                list(train.labels) + _labels_of(best.classes_,
                                                                pu[take].argmax(1)))
        cand = fit(clone(estimator), mixed, r)
        acc = cand.metrics_["valid"]["accuracy"]
        row["valid_accuracy"] = round(acc, 5)
        kept = acc > best_acc + cfg.min_gain
        rounds.append({**row, "kept": kept})
        info("self-training round %d: threshold %.3f, %d pseudo-labelled, validation accuracy "
             "%.4f (%s)", r, t, len(take), acc, "kept" if kept else "not better: stop")
        if not kept:
            break
        best, best_acc = cand, acc
    best.metrics_["self_training"] = {
        "config": cfg.model_dump(), "unlabeled": len(pool), "rounds": rounds,
        "baseline_valid_accuracy": rounds[0]["valid_accuracy"],
        "final_valid_accuracy": round(best_acc, 5)}
    return best
