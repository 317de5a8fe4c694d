"""The classic strategy's speed changes keep its behaviour: the warm-started C path still picks C
on validation and reaches the cold fits' solutions, the char n-gram cap applies to long texts
only, one analysis pass gives the same features, and bundles without the cap still load as they
were."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import ronghe
from ronghe import TextClassifier, linear
from ronghe.strategies.classic import TfidfFeatures

LEGACY = Path(__file__).parents[1] / "data" / "bundles" / "legacy" / "text-classic"


def _problem(seed=0):
    X, y = make_classification(n_samples=300, n_features=20, n_informative=8, n_classes=3,
                               random_state=seed)
    return X[:200], y[:200], X[200:], y[200:]


def test_warm_path_matches_cold_fits_per_C():
    X, y, Xv, yv = _problem()
    grid = [0.01, 0.1, 1.0, 10.0]
    _, hist = linear.fit_logreg(X, y, Xv, yv, grid, path="warm", tol=1e-10, max_iter=5000)
    assert [h["C"] for h in hist] == grid
    warm = LogisticRegression(warm_start=True, tol=1e-10, max_iter=5000)
    for C in grid:
        warm.set_params(C=C).fit(X, y)
        cold = LogisticRegression(C=C, tol=1e-10, max_iter=5000).fit(X, y)
        np.testing.assert_allclose(warm.coef_, cold.coef_, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(warm.intercept_, cold.intercept_, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("path", ["warm", "cold"])
def test_C_is_chosen_on_validation(path):
    X, y, Xv, yv = _problem(1)
    grid = [32.0, 0.001, 1.0]  # unsorted on purpose
    model, hist = linear.fit_logreg(X, y, Xv, yv, grid, path=path)
    want = [0.001, 1.0, 32.0] if path == "warm" else grid
    assert [h["C"] for h in hist] == want
    best = max(h["valid_macro_f1"] for h in hist)
    assert model.C == min(h["C"] for h in hist if h["valid_macro_f1"] == best)
    assert all(h["n_iter"] >= 0 and h["fit_seconds"] >= 0 for h in hist)
    # the model kept is the one scored, not the last one fitted
    from sklearn.metrics import f1_score

    assert f1_score(yv, model.predict(Xv), average="macro") == pytest.approx(best, abs=1e-5)
    assert model.get_params()["warm_start"] is False


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_parallel_C_fits_choose_and_fit_as_one_after_another(backend):
    import scipy.sparse as sp

    X, y, Xv, yv = _problem(3)
    X, Xv = sp.csr_matrix(np.abs(X)), sp.csr_matrix(np.abs(Xv))
    grid = [8.0, 0.01, 0.5, 2.0]
    one, h1 = linear.fit_logreg(X, y, Xv, yv, grid, n_jobs=1)
    two, h2 = linear.fit_logreg(X, y, Xv, yv, grid, n_jobs=2, backend=backend)
    assert [h["C"] for h in h2] == grid == [h["C"] for h in h1]
    assert [h["valid_macro_f1"] for h in h2] == [h["valid_macro_f1"] for h in h1]
    assert two.C == one.C
    np.testing.assert_allclose(two.coef_, one.coef_, rtol=1e-6, atol=1e-8)


def test_auto_backend_uses_processes_only_for_large_fits():
    import scipy.sparse as sp

    small = sp.random(100, 50, density=0.1, format="csr", random_state=0)
    assert linear.choose_backend(small, 77) == "threads"
    big = sp.random(10_000, 5_000, density=0.01, format="csr", random_state=0)  # 500k non-zeros
    assert linear.choose_backend(big, 77) == "processes"  # x 77 coefficient vectors
    assert linear.choose_backend(big, 2) == "threads"  # binary: one vector
    assert linear.choose_backend(np.zeros((20_000, 1_000)), 2) == "processes"  # dense: every cell
    assert linear.choose_backend(big, 77, "threads") == "threads"
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        linear.choose_backend(small, 2, "gpu")


def test_processes_that_cannot_start_fall_back_to_threads(monkeypatch, caplog):
    import joblib

    X, y, Xv, yv = _problem(3)
    real = joblib.Parallel

    def no_processes(*args, **kwargs):
        if kwargs.get("backend") == "loky":
            raise OSError("cannot fork")
        return real(*args, **kwargs)

    monkeypatch.setattr(joblib, "Parallel", no_processes)
    model, hist = linear.fit_logreg(X, y, Xv, yv, [0.5, 2.0], n_jobs=2, backend="processes")
    assert len(hist) == 2 and model.C in (0.5, 2.0)
    assert "fitting in threads" in caplog.text and "cannot fork" in caplog.text


def test_auto_jobs_follows_cores_C_values_and_memory(monkeypatch):
    X = np.zeros((100, 10))
    monkeypatch.setattr(linear, "available_cores", lambda: 8)
    assert linear.auto_jobs(X, 3, n_fits=4) == 4  # one per C value
    assert linear.auto_jobs(X, 3, n_fits=16) == 8  # one per core
    # a fit's memory (2M features x 100 classes) past the share of free memory: one at a time
    big = type("Matrix", (), {"shape": (1000, 2_000_000)})()
    assert linear.auto_jobs(big, 100, n_fits=4, memory_share=1e-6) == 1


def test_warm_continuation_really_refits_each_C():
    """Each C after the first must move away from the previous solution (a loose stopping rule
    would keep the previous C's coefficients under a new name)."""
    X, y, Xv, yv = _problem(2)
    model, hist = linear.fit_logreg(X, y, Xv, yv, [0.01, 100.0], path="warm")
    assert hist[1]["n_iter"] > 0
    small = LogisticRegression(C=0.01).fit(X, y)
    big = LogisticRegression(C=100.0, max_iter=5000).fit(X, y)
    if model.C == 100.0:
        assert np.abs(model.coef_).sum() > 2 * np.abs(small.coef_).sum()
        np.testing.assert_allclose(model.predict_proba(Xv), big.predict_proba(Xv), atol=0.02)


def test_unknown_path_is_a_clear_error():
    X, y, Xv, yv = _problem()
    with pytest.raises(ValueError, match="unknown path 'hot'"):
        linear.fit_logreg(X, y, Xv, yv, [1.0, 2.0], path="hot")


def test_char_cap_applies_to_long_texts_only():
    long_text = "alpha beta " + "zzzz " * 500 + "omega"
    tf = TfidfFeatures(char_ngrams=(3, 3), char_max_chars=10).fit([long_text, "short one"])
    chars = set(tf.vectorisers["char"].vocabulary_)
    words = set(tf.vectorisers["word"].vocabulary_)
    assert "zzz" not in chars and "ome" not in chars  # beyond the first 10 characters
    assert {"alp", "bet", "sho", "one"} <= chars  # a short text is read whole
    assert "omega" in words and "zzzz" in words  # word n-grams read the whole text


def test_one_pass_fit_transform_equals_fit_then_transform():
    texts = ["a fine film", "a dull film, too long", "fine acting and a fine plot"] * 3
    a = TfidfFeatures(char_max_chars=12).fit_transform(texts)
    tf = TfidfFeatures(char_max_chars=12).fit(texts)
    b = tf.transform(texts)
    np.testing.assert_allclose(a.toarray(), b.toarray(), atol=1e-6)
    assert set(tf.stage_seconds) == {"word_fit_transform", "char_fit_transform"}


def test_classic_defaults_record_stages_and_round_trip(tmp_path):
    from makers import make_sentiment

    long = make_sentiment(12, 0)
    long["text"] = long["text"] + " " + "padding words here " * 300
    clf = TextClassifier(strategy="classic", options={"char_max_chars": 200}).fit(long)
    assert clf.config_.C_path == "cold" and clf.config_.char_max_chars == 200
    assert TextClassifier(strategy="classic").fit(make_sentiment(8, 0)).strategy_ \
        .tfidf.char_max_chars is None  # off by default
    st = clf.strategy_
    assert {"word_fit_transform", "char_fit_transform", "valid_transform",
            "C_search"} <= set(st.stage_seconds)
    again = ronghe.load(clf.save(tmp_path / "b"))
    assert again.strategy_.tfidf.char_max_chars == clf.config_.char_max_chars
    np.testing.assert_allclose(again.predict_proba(long), clf.predict_proba(long), atol=1e-6)


def test_old_settings_reproduce_by_config():
    from makers import make_sentiment

    clf = TextClassifier(strategy="classic",
                         options={"C_path": "cold", "char_max_chars": None}).fit(
        make_sentiment(16, 0))
    assert clf.strategy_.tfidf.char_max_chars is None
    assert [h["C"] for h in clf.strategy_.history] == clf.config_.C_grid


def test_bundle_from_before_the_cap_reads_whole_texts(tmp_path):
    meta = json.loads((LEGACY / "ronghe.json").read_text()) if (LEGACY / "ronghe.json").exists() \
        else None
    assert meta is None or "char_max_chars" not in json.dumps(meta)
    clf = ronghe.load(shutil.copytree(LEGACY, tmp_path / "b"))
    assert clf.strategy_.tfidf.char_max_chars is None
    assert clf.config_.char_max_chars is None


def test_coefficients_are_kept_column_major_after_fit_and_load(tmp_path):
    """Predictions multiply by coef_.T; kept column-major it is C-contiguous, so scipy's sparse
    product does not copy the whole matrix per call (the batch-1 path of many-class models).
    The saved arrays and the probabilities are unchanged."""
    from makers import make_sentiment

    clf = TextClassifier(strategy="classic").fit(make_sentiment(12, 0))
    model = clf.strategy_.model
    assert model.coef_.T.flags["C_CONTIGUOUS"]
    again = ronghe.load(clf.save(tmp_path / "b"))
    assert again.strategy_.model.coef_.T.flags["C_CONTIGUOUS"]
    texts = ["a wonderful film", "dull and slow"]
    np.testing.assert_allclose(again.predict_proba(texts), clf.predict_proba(texts), atol=1e-12)
    X, y, Xv, yv = _problem()
    for path in ("cold", "warm"):
        m, _ = linear.fit_logreg(X, y, Xv, yv, [0.1, 1.0], path=path)
        assert m.coef_.T.flags["C_CONTIGUOUS"]
    m, _ = linear.fit_logreg(X, y, None, None, [1.0])
    assert m.coef_.T.flags["C_CONTIGUOUS"]
    arrays, _ = linear.to_arrays(m)
    assert arrays["lr.coef"].flags["C_CONTIGUOUS"]
