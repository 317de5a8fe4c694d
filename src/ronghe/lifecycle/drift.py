"""Is the data a model sees now still the data it was made for? ``check`` answers with four
checks, each a p-value *and* an effect size, and refuses to judge on too few items.

- input: a two-sample test on the model's own embeddings (``input_test``: ``c2st`` - a
  classifier's AUC - by default, or ``mmd``; the other is computed and reported too)
- prediction: the predicted-label mix (chi-square; Cramer's V)
- confidence: the top-class probability (Mann-Whitney; the drop in points)
- accuracy: estimated without labels (``estimate.py``, calibrated on a labelled reference),
  or measured when the current data has labels

A check says ``drift`` when ``p < alpha`` and its effect passes its threshold. The verdict is
drift when any check does (``ronghe drift`` exits 1 then).

Embeddings: a strategy that has its own (``frozen``, ``finetune``, ``contrastive``: the encoder
it predicts with) uses them; other strategies use their backbone's pooled embeddings, and
backbone-free ones (``classic``) the ``embed_model`` (MiniLM by default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import DataError
from ..log import info
from . import stats
from .estimate import Calibration


class DriftConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(0.01, gt=0, lt=0.5, description="p-value below which a check can fire")
    min_samples: int = Field(100, ge=10, description="fewer items in either sample: refuse to "
                                                     "judge (tests are noise on tiny samples)")
    max_reference: int = Field(2000, ge=50, description="reference items used (seeded sample); "
                                                        "the tests' cost grows with it")
    input_test: Literal["c2st", "mmd"] = Field("c2st", description="which test decides input "
                                                                   "drift (both are reported)")
    permutations: int = Field(300, ge=20, le=10000, description="MMD permutation count")
    min_auc: float = Field(0.6, gt=0.5, lt=1, description="c2st: AUC at which a classifier "
                                                          "telling current from reference counts")
    min_mmd: float = Field(0.05, ge=0, description="mmd: MMD (kernel units) that counts")
    min_cramers_v: float = Field(0.1, ge=0, le=1, description="prediction mix: Cramer's V that "
                                                              "counts (0.1 = small, Cohen)")
    min_confidence_drop: float = Field(0.03, ge=0, le=1, description="mean top-class probability "
                                                                    "drop that counts")
    min_accuracy_drop: float = Field(0.03, ge=0, le=1, description="estimated accuracy drop "
                                                                  "below the reference that counts")
    seed: int = 0


@dataclass
class Sample:
    """What the checks need of one side: embeddings, predictions and (maybe) true labels."""

    embeddings: np.ndarray
    predicted: list
    confidence: np.ndarray
    labels: list | None = None
    lengths: np.ndarray | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.predicted)

    def take(self, idx) -> "Sample":
        idx = np.asarray(idx)
        return Sample(None if self.embeddings is None else self.embeddings[idx], [self.predicted[i] for i in idx], self.confidence[idx],
                      None if self.labels is None else [self.labels[i] for i in idx],
                      None if self.lengths is None else self.lengths[idx], self.source, self.notes)


def embedder(estimator, embed_model: str = "minilm") -> tuple[Callable[[list[str]], np.ndarray], str]:
    """``(texts -> embeddings, what they are)`` for a fitted estimator (see the module doc)."""
    inner = estimator.strategy_
    if hasattr(inner, "embed"):
        return inner.embed, f"the {estimator.strategy} model's encoder"
    from .. import backbones
    from ..modeling import Embedder

    bb = estimator.backbone_ or backbones.resolve(embed_model)
    emb = Embedder(bb.path, bb.sha256)
    return emb, f"backbone {bb.ref} (pooled)"


def sample(estimator, ds, embed: Callable, *, project: Callable | None = None) -> Sample:
    """Predict and embed a data set (``project``: the prediction log's projection, to compare
    with logged embeddings)."""
    from ..tasks.text_classification import label_key

    proba = estimator.predict_proba(ds)
    pred = [label_key(c) for c in estimator.classes_[proba.argmax(1)]]
    emb = np.asarray(embed(ds.texts), dtype=np.float32)
    if project is not None:
        emb = project(emb)
    labels = None if ds.labels is None else [label_key(y) for y in ds.labels]
    return Sample(emb, pred, proba.max(1), labels, np.array([len(t) for t in ds.texts]),
                  ds.source)


def _verdict(p: float, effect: float, threshold: float, alpha: float) -> bool:
    return bool(p < alpha and effect >= threshold)


def check(reference: Sample, current: Sample, classes: list, config: DriftConfig | None = None,
          *, notes: list[str] | None = None) -> dict:
    """The drift report of ``current`` against ``reference`` (JSON-ready; plots in
    ``report.py`` read its ``_plot`` entry, which ``public`` drops)."""
    c = config or DriftConfig()
    for name, s in (("reference", reference), ("current", current)):
        if len(s) < c.min_samples:
            raise DataError(f"the {name} data ({s.source or 'given'}) has {len(s)} items; a "
                            f"drift verdict needs at least {c.min_samples} in each sample "
                            "(below that the tests are noise). Collect more, or lower "
                            "--min-samples knowing the verdict gets unreliable")
    notes = list(notes or [])
    rng = np.random.default_rng(c.seed)
    full_ref = reference
    if len(reference) > c.max_reference:
        reference = reference.take(np.sort(rng.choice(len(reference), c.max_reference,
                                                      replace=False)))
        notes.append(f"reference: a seeded sample of {c.max_reference} of {len(full_ref)} items")
    info("drift: %d reference vs %d current items", len(reference), len(current))

    checks: dict = {}
    scores = None
    if current.embeddings is None or reference.embeddings is None:
        checks["input"] = {"test": c.input_test, "effect": None, "drift": False,
                           "note": "no embeddings logged for the current data (a model "
                                   "without an encoder, e.g. classic): input not checked"}
    else:
        c2 = stats.c2st(reference.embeddings, current.embeddings, seed=c.seed)
        mm = stats.mmd(reference.embeddings, current.embeddings, permutations=c.permutations,
                       seed=c.seed)
        scores = c2.pop("scores")
        decide = c2 if c.input_test == "c2st" else mm
        threshold = c.min_auc if c.input_test == "c2st" else c.min_mmd
        checks["input"] = {"test": c.input_test, "p_value": decide["p_value"],
                           "effect": decide["effect"], "threshold": threshold,
                           "drift": _verdict(decide["p_value"], decide["effect"], threshold,
                                             c.alpha),
                           "c2st": c2, "mmd": mm, "dims": int(reference.embeddings.shape[1])}
    ls = stats.label_shift(reference.predicted, current.predicted, classes)
    ls.update(threshold=c.min_cramers_v,
              drift=_verdict(ls["p_value"], ls["effect"], c.min_cramers_v, c.alpha))
    checks["prediction"] = ls
    cd = stats.confidence_drop(reference.confidence, current.confidence)
    cd.update(threshold=c.min_confidence_drop,
              drift=_verdict(cd["p_value"], cd["effect"], c.min_confidence_drop, c.alpha))
    checks["confidence"] = cd
    checks["accuracy"] = _accuracy(full_ref, current, c)

    drifted = [k for k, v in checks.items() if v.get("drift")]
    if checks["input"]["drift"] and checks["accuracy"].get("estimated_current") is not None:
        notes.append("the inputs moved: the accuracy estimate assumes confidence means what it "
                     "meant on the reference, which out-of-domain inputs can break (a model may "
                     "be confidently wrong on them); label a sample of the current data")
    return {"verdict": "drift" if drifted else "no drift", "drifted": drifted,
            "n_reference": len(full_ref), "n_current": len(current),
            "config": c.model_dump(), "checks": checks, "notes": notes,
            "_plot": {"reference": reference, "current": current, "c2st_scores": scores}}


def _accuracy(reference: Sample, current: Sample, c: DriftConfig) -> dict:
    out: dict = {"method": "cbpe"}
    if current.labels is not None:
        out["true_current"] = float(np.mean([p == y for p, y in zip(current.predicted,
                                                                    current.labels)]))
    if reference.labels is None:
        out.update(drift=False, estimated_current=None,
                   note="the reference has no labels: accuracy cannot be estimated (give the "
                        "model's labelled validation data as --reference)")
        return out
    correct = np.array([p == y for p, y in zip(reference.predicted, reference.labels)], float)
    cal = Calibration.fit(reference.confidence, correct)
    est = cal.estimate(current.confidence)
    drop = cal.reference_accuracy - est["accuracy"]
    # the estimate's own noise: a drop must exceed 2 standard errors, whatever the threshold
    sig = drop > 2 * est["se"]
    out.update(reference_accuracy=cal.reference_accuracy, estimated_current=est["accuracy"],
               se=est["se"], drop=drop, effect=drop, threshold=c.min_accuracy_drop,
               calibration=Calibration.check(reference.confidence, correct, c.seed),
               drift=bool(sig and drop >= c.min_accuracy_drop),
               note="assumes confidence means the same as on the reference (covariate shift); "
                    "a change of what labels mean is not visible without labels")
    return out


def from_log(rows: list[dict], source: str = "prediction log") -> Sample:
    """The current sample from prediction-log rows (``serving/predlog.py``): logged labels,
    scores and projected embeddings (``None`` when the model logged none)."""
    import json

    embs = [r.get("embedding") for r in rows]
    emb = (np.array([json.loads(e) for e in embs], dtype=np.float32)
           if rows and all(embs) else None)
    return Sample(emb, [str(r["label"]) for r in rows],
                  np.array([float(r["score"] or 0.0) for r in rows]), None,
                  np.array([r.get("length") or 0 for r in rows]), source)


def public(report: dict) -> dict:
    """The report without its plotting data (what JSON output holds)."""
    return {k: v for k, v in report.items() if not k.startswith("_")}


def run(estimator, reference_ds, current_ds, config: DriftConfig | None = None, *,
        embed_model: str = "minilm", logged: Sample | None = None) -> dict:
    """Predict, embed and check two data sets (what ``ronghe drift`` does with two files), or
    the reference against ``logged`` predictions (``from_log``; the reference's embeddings are
    then projected as the log's are)."""
    embed, what = embedder(estimator, embed_model)
    notes = [f"embeddings: {what}"]
    if logged is not None:
        from ..serving.predlog import project

        notes.append(f"current: {len(logged)} logged predictions; embeddings projected to "
                     f"{logged.embeddings.shape[1] if logged.embeddings is not None else 0} "
                     "dimensions")
        ref = sample(estimator, reference_ds, embed, project=project)
        return check(ref, logged, [str(x) for x in estimator.classes_], config, notes=notes)
    fp = (estimator.data_ or {}) if hasattr(estimator, "data_") else {}
    if reference_ds.labels is not None and fp.get("fingerprint") == reference_ds.fingerprint():
        notes.append("the reference is the model's training data: its confidence there is "
                     "optimistic, so the estimated accuracy is too; give validation data")
    ref = sample(estimator, reference_ds, embed)
    cur = sample(estimator, current_ds, embed)
    return check(ref, cur, [str(x) for x in estimator.classes_], config, notes=notes)
