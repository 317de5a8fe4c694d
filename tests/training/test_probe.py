"""LP-FT head initialisation: the folded logistic regression classifies raw, anisotropic features."""

from __future__ import annotations

import numpy as np

from ronghe.training.probe import fit_linear_head


def _anisotropic(n, dim, n_classes, seed=0):
    """Features like a contrastive encoder's: a big shared offset, small class signal."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    centres = rng.normal(0, 0.05, (n_classes, dim))
    x = 3.0 + centres[y] + rng.normal(0, 0.02, (n, dim))
    return x.astype(np.float32), y


def test_folded_head_classifies_raw_features():
    x, y = _anisotropic(3000, 32, 4)
    w, b = fit_linear_head(x, y, 5)  # class 4 never occurs
    assert w.shape == (5, 32) and b.shape == (5,)
    pred = (x @ w.T + b).argmax(1)
    assert (pred == y).mean() > 0.95
    assert (pred != 4).all()  # the absent class never wins


def test_binary_and_single_class():
    x, y = _anisotropic(500, 8, 2)
    w, b = fit_linear_head(x, y, 2)
    assert ((x @ w.T + b).argmax(1) == y).mean() > 0.95
    w, b = fit_linear_head(x, np.full(len(x), 1), 3)
    assert (np.abs(w) == 0).all() and b.argmax() == 1


def test_rows_are_subsampled_deterministically():
    x, y = _anisotropic(2000, 8, 3)
    a = fit_linear_head(x, y, 3, max_rows=500, seed=3)
    b = fit_linear_head(x, y, 3, max_rows=500, seed=3)
    np.testing.assert_array_equal(a[0], b[0])
