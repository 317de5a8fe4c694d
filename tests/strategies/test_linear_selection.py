"""Choosing C by cross-validation when the validation set is small (``linear.fit_logreg``
``selection``): the rule, the choice, and that the kept model never saw the validation data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from ronghe import TextClassifier, linear


def _problem(n=200, n_valid=60, seed=0):
    X, y = make_classification(n_samples=n + n_valid, n_features=30, n_informative=6,
                               n_classes=3, flip_y=0.1, random_state=seed)
    return X[:n], y[:n], X[n:], y[n:]


def test_auto_uses_cv_only_for_small_validation_sets_in_small_data():
    y = np.repeat([0, 1, 2], 40)
    assert linear.cv_folds(y, 12, "auto") == linear.CV_FOLDS
    assert linear.cv_folds(y, linear.CV_MAX_VALID, "auto") == 0  # validation large enough
    big = np.repeat([0, 1], linear.CV_MAX_EXAMPLES)
    assert linear.cv_folds(big, 100, "auto") == 0  # data too large for 5x the fits
    assert linear.cv_folds(big, 100, "cv") == linear.CV_FOLDS  # asked for
    assert linear.cv_folds(y, 12, "valid") == 0
    assert linear.cv_folds(np.array([0, 0, 0, 1, 1, 1, 2, 2, 2]), 3, "auto") == 3  # rarest class
    assert linear.cv_folds(np.array([0, 0, 0, 1]), 1, "cv") == 0  # a class with one example
    with pytest.raises(ValueError, match="unknown selection"):
        linear.cv_folds(y, 12, "best")


def test_cv_chooses_the_lowest_log_loss_and_keeps_the_training_fit():
    X, y, Xv, yv = _problem()
    grid = [0.001, 0.01, 0.1, 1.0, 10.0]
    model, hist = linear.fit_logreg(X, y, Xv, yv, grid, selection="cv", max_iter=2000)
    assert [h["C"] for h in hist] == grid and all(h["cv_folds"] == 5 for h in hist)
    losses = linear.cv_log_loss(np.vstack([X, Xv]), np.concatenate([y, yv]), grid, 5, 0, 2000)
    assert [h["cv_log_loss"] for h in hist] == pytest.approx(losses, abs=1e-5)
    assert model.C == grid[int(np.argmin(losses))]
    assert all(h["selection_score"] == pytest.approx(-h["cv_log_loss"]) for h in hist)
    # the kept model is the training-data fit at that C: the validation rows were only scored
    alone = LogisticRegression(C=model.C, max_iter=2000).fit(X, y)
    np.testing.assert_allclose(model.coef_, alone.coef_, atol=1e-6)
    # the extreme Cs are worse held out than the middle of the grid on this noisy problem
    assert losses[0] > min(losses) and losses[-1] > min(losses)
    # "valid" keeps choosing on validation macro-F1, as before
    m2, h2 = linear.fit_logreg(X, y, Xv, yv, grid, selection="valid", max_iter=2000)
    assert "cv_log_loss" not in h2[0]
    best = max(h["valid_macro_f1"] for h in h2)
    assert m2.C == min(h["C"] for h in h2 if h["valid_macro_f1"] == best)


def test_cv_works_on_sparse_features():
    import scipy.sparse as sp

    X, y, Xv, yv = _problem(seed=1)
    dense, _ = linear.fit_logreg(X, y, Xv, yv, [0.01, 1.0], selection="cv")
    sparse, hist = linear.fit_logreg(sp.csr_matrix(X), y, sp.csr_matrix(Xv), yv, [0.01, 1.0],
                                     selection="cv")
    assert sparse.C == dense.C and "cv_log_loss" in hist[0]


def test_frozen_chooses_by_cv_on_small_data_and_says_so():
    from makers import make_sentiment

    train, valid = make_sentiment(24, 0), make_sentiment(8, 1)
    auto = TextClassifier(strategy="frozen").fit(train, valid)
    hist = auto.strategy_.history
    assert all("cv_log_loss" in h for h in hist)
    assert auto.strategy_.model.C == min(hist, key=lambda h: (h["cv_log_loss"], h["C"]))["C"]
    plain = TextClassifier(strategy="frozen", options={"selection": "valid"}).fit(train, valid)
    assert all("cv_log_loss" not in h for h in plain.strategy_.history)
