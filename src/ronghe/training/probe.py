"""Linear-probe initialisation of a fresh head before fine-tuning ("LP-FT").

A head initialised at random (std 0.02) starts fine-tuning from logits near zero; on a backbone
whose features are small and anisotropic (every token vector shares a large common direction, as
in contrastively trained encoders such as multilingual-e5) the gradient steps of the first epoch
mostly fit the majority label, so a short run ends predicting ``O`` (issue 22). LP-FT (Kumar et
al., "Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution", ICLR
2022) fits a linear classifier on the frozen features first and starts fine-tuning from it: the
first encoder gradients already carry the task's signal and the head does not spend the run
catching up.

``fit_linear_head`` fits a multinomial logistic regression (scikit-learn, L-BFGS) on standardised
features - standardising makes the problem well conditioned whatever the backbone's scale; a
feature's std is floored at ``SD_FLOOR`` of the median so near-constant ones are not blown up - and
folds the standardisation into the returned weight and bias, so they drop straight into an
``nn.Linear`` that sees the raw features. Rows are subsampled (seeded) to ``max_rows`` to bound the
cost; classes absent from the sample keep a bias far below the others.
"""

from __future__ import annotations

import warnings

import numpy as np


SD_FLOOR = 0.05  # share of the median feature std below which a feature is not scaled up


def fit_linear_head(features: np.ndarray, labels: np.ndarray, n_classes: int, *,
                    max_rows: int = 20000, c: float = 1.0, max_iter: int = 200,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(weight (n_classes, dim), bias (n_classes,))`` of a linear layer on raw ``features``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if len(features) > max_rows:
        keep = np.random.default_rng(seed).choice(len(features), max_rows, replace=False)
        features, labels = features[keep], labels[keep]
    mu = features.mean(0)
    sd = features.std(0)
    # floor: a near-constant feature (a CNN channel that is almost always 0 after its ReLU)
    # standardised to unit variance gets a weight of hundreds once folded back, and any change
    # of it in fine-tuning - or its int8 rounding - swings the logits
    sd = np.maximum(sd, SD_FLOOR * float(np.median(sd)) + 1e-6)
    present = np.unique(labels)
    weight = np.zeros((n_classes, features.shape[1]))
    bias = np.full(n_classes, -10.0)
    if len(present) < 2:  # nothing to separate: favour the one class seen
        bias[present] = 0.0
        return weight.astype(np.float32), bias.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a warm start, not the final model
        lr = LogisticRegression(C=c, max_iter=max_iter).fit((features - mu) / sd, labels)
    coef = lr.coef_ if len(present) > 2 else np.vstack([-lr.coef_[0] / 2, lr.coef_[0] / 2])
    icpt = lr.intercept_ if len(present) > 2 else np.array([-lr.intercept_[0] / 2,
                                                             lr.intercept_[0] / 2])
    w = coef / sd
    weight[present] = w
    bias[present] = icpt - w @ mu
    return weight.astype(np.float32), bias.astype(np.float32)
