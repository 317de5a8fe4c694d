"""Distillation: a fitted teacher's knowledge into a smaller or classic student.

* ``student="layers:K"`` - a smaller transformer built from the teacher's own encoder: the same
  embeddings and K of its layers (evenly spaced, the top one always kept), and the teacher's head;
  trained on temperature-softened teacher probabilities (KL, scaled by T^2) plus the hard labels
  where they exist. Unlabeled texts contribute through the teacher's probabilities only.
* ``student="classic"`` - the task's classic model (TF-IDF + logistic regression; for images HOG
  and colour histograms + logistic regression) trained on the teacher's labels over the labeled
  and unlabeled inputs.
* ``student="model:REF"`` (image teachers) - a smaller vision backbone fine-tuned on the
  teacher's softened probabilities plus the hard labels, like ``layers:K``.

The result is an ordinary ``finetune`` or ``classic`` model, saved and loaded like any other.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from .. import data
from ..errors import ConfigError
from ..log import info, warn
from ..modeling import TextModel, tokenize
from ..training import loop
from .surgery import shrink_encoder


class KDLoss(nn.Module):
    """Loss over example indices: KL to the teacher's softened distribution (x T^2) weighted by
    ``alpha`` plus cross-entropy to the hard label (ignored where there is none)."""

    def __init__(self, teacher_logits: np.ndarray, hard: np.ndarray, temperature: float, alpha: float):
        super().__init__()
        self.teacher = torch.as_tensor(teacher_logits, dtype=torch.float32)
        self.hard = torch.as_tensor(hard, dtype=torch.long)
        self.t, self.alpha = temperature, alpha

    def forward(self, logits, idx):
        idx = idx.cpu()
        t = self.t
        soft = torch.nn.functional.kl_div(
            torch.log_softmax(logits / t, dim=1),
            torch.softmax(self.teacher[idx].to(logits.device) / t, dim=1),
            reduction="batchmean") * t * t
        hard = self.hard[idx].to(logits.device)
        if (hard >= 0).any():
            ce = torch.nn.functional.cross_entropy(logits, hard, ignore_index=-100)
            return self.alpha * soft + (1 - self.alpha) * ce
        return soft


CLASSIFICATION = ("text-classification", "image-classification")


def _check_teacher(teacher) -> None:
    teacher._check_fitted()
    if teacher.task not in CLASSIFICATION:
        raise ConfigError(f"distillation takes a text- or image-classification teacher, not a "
                          f"'{teacher.task}' model: a token-level student would need the "
                          "teacher's per-token distributions over its sub-word windows, which "
                          "ronghe does not implement yet; compress an NER model with --quantize "
                          "int8 instead")


def _image_student(teacher, train, ref: str, unlabeled: list, valid, *, temperature: float,
                   alpha: float, epochs: int, learning_rate: float | None, batch_size: int,
                   seed: int):
    """A (smaller) vision backbone ``ref`` fine-tuned on the teacher's softened probabilities
    over the labeled and unlabeled images, plus the hard labels where they exist: image
    ``finetune``'s model, head initialisation, augmentation and batch-norm handling."""
    from sklearn.metrics import accuracy_score, f1_score

    from .. import backbones
    from ..backbones.vision import load_vision, preprocess_config
    from ..images.estimator import decode
    from ..images.finetune import Finetune, FinetuneConfig, ImageBatcher
    from ..images.preprocess import Preprocess
    from ..tasks.text_classification import metrics

    bb = backbones.resolve(ref)
    size = getattr(teacher.strategy_.config, "image_size", None)
    fields = {"model": ref, "epochs": epochs, "batch_size": batch_size, "seed": seed,
              "image_size": size}
    if learning_rate:
        fields["learning_rate"] = learning_rate
    ft = Finetune(FinetuneConfig(**fields), teacher.classes_.tolist(), bb)
    loop.set_seed(seed)
    ft._setup(load_vision(bb.path), Preprocess.from_config(preprocess_config(bb.path), size))
    ft.config_json = (bb.path / "config.json").read_text()
    images = decode(list(train.inputs) + list(unlabeled))
    proba = teacher.predict_proba(images)
    teacher_logits = np.log(np.clip(proba, 1e-7, 1.0))  # softmax of these = the teacher's
    hard = np.concatenate([ft.label_ids(train.labels), np.full(len(unlabeled), -100)])
    ft._probe_head(images[:len(train)], hard[:len(train)])
    ft.model.frozen_norm = ft.config.batch_norm == "frozen"
    valid_images = decode(valid.inputs)
    y_valid = ft.label_ids(valid.labels)

    def evaluate():
        pred = ft._logits(valid_images).argmax(1)
        return {"accuracy": float(accuracy_score(y_valid, pred)),
                "macro_f1": float(f1_score(y_valid, pred, average="macro"))}

    cfg = loop.LoopConfig.from_config(ft.config, monitor="macro_f1")
    result = loop.Loop(ft.model, [], np.arange(len(images)), 0, evaluate, cfg, ft.device,
                       ft.dtype, loss_fn=KDLoss(teacher_logits, hard, temperature, alpha),
                       batcher=ImageBatcher(images, ft._train_transform())).run()
    ft.history, ft.best_epoch = result.history, result.best_epoch
    ft.report = {**ft.report, "distilled_from": teacher.strategy, "student_model": ref,
                 "temperature": temperature, "alpha": alpha, "unlabeled": len(unlabeled)}
    clf = teacher.from_strategy(
        ft, {"strategy": "finetune", "model": ref, "seed": seed}, backbone=bb,
        train_seconds=result.elapsed(),
        data={"fingerprint": train.fingerprint(), "n_train": len(train), "n_valid": len(valid),
              "n_unlabeled": len(unlabeled), "source": train.source})
    clf.metrics_ = {"valid": metrics(valid.labels, clf.predict(valid), clf.classes_.tolist(),
                                     brief=True),
                    "train_seconds": round(clf.train_seconds_, 2), "history": ft.history,
                    **ft.report}
    return clf


def distill(teacher, train, *, student: str = "layers:3", unlabeled: list | None = None,
            valid=None, temperature: float = 2.0, alpha: float = 0.5, epochs: int = 3,
            learning_rate: float | None = None, batch_size: int = 32, seed: int = 0):
    """Train a student from a fitted classifier teacher (text or images); returns a fitted
    estimator of the teacher's kind. ``learning_rate``: default 1e-4 for a transformer student,
    image finetune's default for an image one."""
    _check_teacher(teacher)
    data.check_trainable(train)
    images = teacher.task == "image-classification"
    unlabeled = [t for t in (unlabeled or []) if images or (isinstance(t, str) and t.strip())]
    if valid is None:
        train, valid = data.split(train, 0.1, seed)
    if images and student.startswith("model:"):
        return _image_student(teacher, train, student.split(":", 1)[1], unlabeled, valid,
                              temperature=temperature, alpha=alpha, epochs=epochs,
                              learning_rate=learning_rate, batch_size=batch_size, seed=seed)
    if images and student != "classic":
        raise ConfigError(f"unknown student {student!r} for an image teacher: use model:REF (a "
                          "smaller vision backbone: alias, local timm folder or hub id) or "
                          "classic")
    texts = list(train.inputs) + unlabeled
    if student == "classic":
        pseudo = list(teacher.predict(texts))
        missing = sorted(set(map(str, teacher.classes_)) - set(map(str, pseudo)), key=str)
        if missing:  # a classic student can only learn the labels the teacher actually gives
            warn("the teacher never predicted %d of %d classes on the %d distillation texts (%s); "
                 "the classic student cannot predict them. Add unlabeled texts of those classes "
                 "or train the classic model on gold labels.", len(missing),
                 len(teacher.classes_), len(texts), ", ".join(missing[:10]))
            keep = [i for i, y in enumerate(valid.labels) if str(y) not in missing]
            valid = valid.subset(keep)
        clf = type(teacher)(strategy="classic", seed=seed)
        clf.fit(texts, pseudo, valid=valid)
        clf.strategy_.report["distilled_from"] = teacher.strategy
        clf.metrics_["distillation"] = {"teacher": teacher.strategy, "texts": len(texts),
                                        "unlabeled": len(unlabeled), "classes_never_predicted": missing}
        return clf
    if not student.startswith("layers:"):
        raise ConfigError(f"unknown student {student!r}: use layers:K (e.g. layers:3) or classic")
    inner = teacher.strategy_
    if not isinstance(getattr(inner, "model", None), TextModel) or inner.model.head is None:
        raise ConfigError(f"a layers:K student needs a fine-tuned transformer teacher (finetune, "
                          f"lora, ...), not '{teacher.strategy}'; use --student classic")
    from ..strategies.finetune import Finetune, FinetuneConfig

    k = int(student.split(":", 1)[1])
    encoder, keep = shrink_encoder(inner.model.encoder, k)
    info("student: %d of %d layers (teacher layers %s)", len(keep),
         len(inner.model.encoder.encoder.layer), keep)
    fields = {f: v for f, v in inner.config.model_dump().items() if f in FinetuneConfig.model_fields}
    fields.update(epochs=epochs, learning_rate=learning_rate or 1e-4, batch_size=batch_size,
                  seed=seed)
    ft = Finetune(FinetuneConfig(**fields), teacher.classes_.tolist(), inner.backbone)
    ft._setup(encoder, inner.tokenizer)
    ft.model.head.load_state_dict(inner.model.head.state_dict())
    ids = tokenize(ft.tokenizer, texts, ft.config.max_length)
    teacher_logits = inner._logits(ids)
    hard = np.concatenate([ft.label_ids(train.labels), np.full(len(unlabeled), -100)])
    valid_ids = tokenize(ft.tokenizer, valid.texts, ft.config.max_length)
    y_valid = ft.label_ids(valid.labels)

    def evaluate():
        from sklearn.metrics import accuracy_score, f1_score

        pred = ft._logits(valid_ids).argmax(1)
        return {"accuracy": float(accuracy_score(y_valid, pred)),
                "macro_f1": float(f1_score(y_valid, pred, average="macro"))}

    c = ft.config
    cfg = loop.LoopConfig.from_config(c)  # the student's options: head lr, LLRD, ...
    result = loop.Loop(ft.model, ids, np.arange(len(ids)), ft.pad_id, evaluate, cfg, ft.device,
                       ft.dtype, loss_fn=KDLoss(teacher_logits, hard, temperature, alpha)).run()
    ft.history, ft.best_epoch = result.history, result.best_epoch
    ft.report = {"distilled_from": teacher.strategy, "student_layers": keep,
                 "temperature": temperature, "alpha": alpha, "unlabeled": len(unlabeled)}
    from ..tasks.text_classification import metrics

    clf = teacher.from_strategy(
        ft, {"strategy": "finetune", "model": teacher.model, "seed": seed},
        backbone=teacher.backbone_, train_seconds=result.elapsed(),
        data={"fingerprint": train.fingerprint(), "n_train": len(train), "n_valid": len(valid),
              "n_unlabeled": len(unlabeled), "source": train.source})
    clf.metrics_ = {"valid": metrics(valid.labels, clf.predict(valid), clf.classes_.tolist(), brief=True),
                    "train_seconds": round(clf.train_seconds_, 2), "history": ft.history, **ft.report}
    return clf


def run(teacher, train: data.Dataset, *, valid: data.Dataset | None = None, seed: int = 0,
        student: str = "layers:3", **options):
    """``ronghe distill``: hold out validation data if none is given, distill, and compare the
    teacher, the student and - for a classic student - a classic model trained on the gold
    labels alone, on that validation data (accuracy, macro-F1, time per text, speed-up over the
    teacher). Returns ``(student, rows)``."""
    _check_teacher(teacher)
    data.check_trainable(train)
    if valid is None:
        train, valid = data.split(train, 0.1, seed)
    out = distill(teacher, train, student=student, valid=valid, seed=seed, **options)
    models = [("teacher", teacher), ("student", out)]
    if student == "classic":
        models.append(("classic on gold labels",
                       type(teacher)(strategy="classic", seed=seed).fit(train, valid=valid)))
    rows = []
    for name, clf in models:
        clf.predict_proba(valid.inputs[:32])  # warm-up
        start = time.perf_counter()
        rep = clf.evaluate(valid)
        ms = (time.perf_counter() - start) * 1000 / len(valid)
        rows.append({"model": name, "accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"],
                     "ms_per_text": ms})
    for r in rows:
        r["speedup"] = rows[0]["ms_per_text"] / r["ms_per_text"]
    return out, rows
