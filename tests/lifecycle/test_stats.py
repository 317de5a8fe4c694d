"""The two-sample tests and the accuracy estimate on data whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from ronghe.errors import DataError
from ronghe.lifecycle import drift, stats
from ronghe.lifecycle.estimate import Calibration


def gauss(n, shift=0.0, seed=0, d=8):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x[:, 0] += shift
    return x


def test_mmd_and_c2st_separate_shifted_from_same():
    same_m = stats.mmd(gauss(150), gauss(150, seed=1), permutations=200)
    moved_m = stats.mmd(gauss(150), gauss(150, 1.0, seed=1), permutations=200)
    assert same_m["p_value"] > 0.05 and moved_m["p_value"] < 0.01
    assert moved_m["effect"] > 3 * same_m["effect"]
    same_c = stats.c2st(gauss(150), gauss(150, seed=1))
    moved_c = stats.c2st(gauss(150), gauss(150, 1.0, seed=1))
    assert 0.4 < same_c["auc"] < 0.6 and same_c["p_value"] > 0.05
    assert moved_c["auc"] > 0.7 and moved_c["p_value"] < 1e-6


def test_label_shift_and_confidence_drop():
    ref = ["a"] * 100 + ["b"] * 100
    assert stats.label_shift(ref, ["a"] * 100 + ["b"] * 100, ["a", "b"])["p_value"] > 0.5
    moved = stats.label_shift(ref, ["a"] * 170 + ["b"] * 30, ["a", "b", "c"])
    assert moved["p_value"] < 1e-6 and moved["tvd"] == pytest.approx(0.35)
    assert moved["cramers_v"] > 0.3
    rng = np.random.default_rng(0)
    drop = stats.confidence_drop(rng.uniform(0.7, 1, 300), rng.uniform(0.5, 0.9, 300))
    assert drop["p_value"] < 1e-6 and drop["drop"] == pytest.approx(0.15, abs=0.03)


def test_cbpe_estimates_accuracy_under_covariate_shift():
    """Calibrated on a reference, the estimate follows the accuracy of a shifted sample whose
    confidence-correctness relation is the same (and the raw mean confidence would not)."""
    rng = np.random.default_rng(0)
    conf_ref = rng.uniform(0.5, 1, 4000)
    truth = lambda c: 1.6 * c - 0.7  # noqa: E731 - over-confident model, known calibration
    right_ref = rng.uniform(size=4000) < truth(conf_ref)
    cal = Calibration.fit(conf_ref, right_ref)
    conf_cur = rng.uniform(0.5, 0.75, 2000)  # shifted towards low confidence
    right_cur = rng.uniform(size=2000) < truth(conf_cur)
    est = cal.estimate(conf_cur)
    assert abs(est["accuracy"] - right_cur.mean()) < 0.03
    assert abs(conf_cur.mean() - right_cur.mean()) > 0.2  # the raw confidence is far off
    assert Calibration.check(conf_ref, right_ref)["cross_fit_error"] < 0.05  # includes noise


def _sample(x, labels=None, seed=0):
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.6, 1, len(x))
    pred = list(rng.choice(["a", "b"], len(x)))
    return drift.Sample(x, pred, conf, labels)


def test_big_sample_small_effect_is_not_drift_and_small_samples_are_refused():
    """1,500 items: a shift too small to matter gets a tiny p-value but stays under the effect
    threshold - no alarm; a real shift does raise one; 50 items are refused."""
    cfg = drift.DriftConfig(permutations=20, max_reference=2000)
    ref, cur = _sample(gauss(1500, seed=0)), _sample(gauss(1500, 0.15, seed=1), seed=1)
    r = drift.check(ref, cur, ["a", "b"], cfg)
    assert r["checks"]["input"]["c2st"]["p_value"] < cfg.alpha
    assert r["checks"]["input"]["effect"] < cfg.min_auc and not r["checks"]["input"]["drift"]
    moved = drift.check(ref, _sample(gauss(1500, 1.0, seed=2), seed=1), ["a", "b"], cfg)
    assert moved["checks"]["input"]["drift"] and moved["verdict"] == "drift"
    with pytest.raises(DataError, match="at least 100"):
        drift.check(ref, _sample(gauss(50, seed=3)), ["a", "b"], cfg)
