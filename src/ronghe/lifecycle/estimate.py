"""Accuracy without labels: confidence-based performance estimation (the NannyML CBPE idea).

On labelled reference data the model's top-class probability is calibrated against whether the
prediction was right (isotonic regression: monotone, no shape assumed). On current data the
expected accuracy is the mean calibrated confidence, with its standard error from the
per-item Bernoulli variances. This holds while the relation between confidence and correctness
stays as on the reference (covariate shift); a change of what labels *mean* (concept shift)
is invisible to it - the report says so.

The calibration must come from data the model was not trained on (its validation set): on
training data a model is over-confident and the estimate is optimistic. ``Calibration.check``
measures the calibration on the reference by cross-fitting (fit on half, estimate the other).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Calibration:
    model: object  # fitted IsotonicRegression: confidence -> P(correct)
    reference_accuracy: float
    n: int

    @classmethod
    def fit(cls, confidence: np.ndarray, correct: np.ndarray) -> "Calibration":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(np.asarray(confidence, float), np.asarray(correct, float))
        return cls(iso, float(np.mean(correct)), len(correct))

    def estimate(self, confidence: np.ndarray) -> dict:
        """Expected accuracy on items with these confidences, and its standard error."""
        p = self.model.predict(np.asarray(confidence, float))
        n = max(len(p), 1)
        return {"accuracy": float(p.mean()), "se": float(np.sqrt((p * (1 - p)).sum()) / n)}

    @staticmethod
    def check(confidence: np.ndarray, correct: np.ndarray, seed: int = 0) -> dict:
        """Cross-fitted check on the reference: estimated vs true accuracy of each half."""
        rng = np.random.default_rng(seed)
        idx = rng.permutation(len(correct))
        a, b = idx[: len(idx) // 2], idx[len(idx) // 2:]
        errs = []
        for fit_on, test_on in ((a, b), (b, a)):
            cal = Calibration.fit(confidence[fit_on], correct[fit_on])
            errs.append(cal.estimate(confidence[test_on])["accuracy"] - correct[test_on].mean())
        return {"cross_fit_error": float(np.mean(np.abs(errs)))}
