"""Conformance: every registered strategy meets the same contract, and each learns something."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from ronghe import TextClassifier, load
from ronghe.strategies import REGISTRY

NET = {"epochs": 2, "max_length": 32}
PEFT = {"epochs": 4, "batch_size": 8, "max_length": 32}  # adapters need more (small) steps
FAST = {"classic": {}, "frozen": {}, "finetune": {**NET, "learning_rate": 1e-4},
        "lora": PEFT, "adalora": PEFT, "ia3": PEFT, "prefix": PEFT,
        "contrastive": {"max_length": 32, "options": {"num_iterations": 5}},
        "weighted": {"options": {"member_options": {"finetune": NET}}},
        "concat": {}, "stack": {"options": {"folds": 3}}}
CONFORMING = [n for n in REGISTRY if n not in ("vote", "onnx")]  # built from bundles, not fit


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One fitted model per strategy on the same tiny data (shared across this module)."""
    from makers import make_sentiment

    train, valid = make_sentiment(24, 0), make_sentiment(8, 1)
    out = {}
    for name in CONFORMING:
        clf = TextClassifier(strategy=name, **FAST.get(name, {})).fit(train, valid)
        out[name] = clf
    return out


@pytest.mark.parametrize("name", CONFORMING)
def test_fit_predict_contract(fitted, name):
    clf = fitted[name]
    texts = ["a wonderful film, i loved it", "boring and awful, a waste of time", "", "ok"]
    proba = clf.predict_proba(texts)
    assert proba.shape == (4, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    assert list(clf.classes_) == ["neg", "pos"]
    assert set(clf.predict(texts)) <= {"neg", "pos"}
    assert clf.metrics_["valid"]["n"] == 16
    assert clf.train_seconds_ > 0


@pytest.mark.parametrize("name", CONFORMING)
def test_learns_the_task(fitted, name):
    from makers import make_sentiment

    test = make_sentiment(8, seed=7)
    acc = (fitted[name].predict(test.text.tolist()) == test.label.to_numpy()).mean()
    assert acc >= 0.8, f"{name} accuracy {acc} on an easy task"


@pytest.mark.parametrize("name", CONFORMING)
def test_save_load_round_trip_is_exact(fitted, name, tmp_path):
    clf = fitted[name]
    texts = ["great acting", "dull and slow", "a film", "the plot makes no sense at all " * 20]
    path = clf.save(tmp_path / name)
    again = load(path)
    assert again.strategy == name
    assert list(again.classes_) == list(clf.classes_)
    np.testing.assert_array_equal(again.predict_proba(texts), clf.predict_proba(texts))
    assert again.get_params() == clf.get_params()
    assert again.metrics_["valid"] == clf.metrics_["valid"]


@pytest.mark.parametrize("name", CONFORMING)
def test_sklearn_params_and_clone(name):
    clf = TextClassifier(strategy=name, epochs=4, seed=3)
    params = clf.get_params()
    assert params["strategy"] == name and params["epochs"] == 4 and params["seed"] == 3
    twin = clone(clf)
    assert twin.get_params() == params and not hasattr(twin, "strategy_")
    assert clf.set_params(seed=5) is clf and clf.seed == 5


def test_integer_labels_stay_integers(tmp_path):
    from makers import make_sentiment

    df = make_sentiment(16)
    df["label"] = (df.label == "pos").astype(int)
    clf = TextClassifier(strategy="classic").fit(df)
    assert list(clf.classes_) == [0, 1]
    pred = load(clf.save(tmp_path / "b")).predict(["a wonderful film"])
    assert isinstance(pred[0], (int, np.integer)) and pred[0] == 1


def test_fit_is_deterministic_for_a_seed():
    from makers import make_sentiment

    df = make_sentiment(16)
    a = TextClassifier(strategy="finetune", epochs=1, max_length=24, seed=1).fit(df)
    b = TextClassifier(strategy="finetune", epochs=1, max_length=24, seed=1).fit(df)
    np.testing.assert_allclose(a.predict_proba(["nice"]), b.predict_proba(["nice"]), atol=1e-6)


def test_finetune_keeps_best_epoch_and_stops_early():
    from makers import make_sentiment

    # A learning rate this large wrecks the model after the first epoch or two; early stopping
    # must stop and restore the best epoch's weights.
    clf = TextClassifier(strategy="finetune", epochs=8, max_length=24, learning_rate=0.05,
                         options={"patience": 1, "warmup_ratio": 0.0}).fit(make_sentiment(16))
    hist = clf.metrics_["history"]
    assert len(hist) < 8
    best = max(h["valid_macro_f1"] for h in hist)
    assert clf.metrics_["valid"]["macro_f1"] == pytest.approx(best, abs=1e-4)


def test_validation_selects_C_for_linear_strategies(fitted):
    hist = fitted["classic"].strategy_.history
    assert [h["C"] for h in hist] == fitted["classic"].config_.C_grid
    chosen = fitted["classic"].strategy_.model.C
    assert max(hist, key=lambda h: h["valid_macro_f1"])["C"] == chosen


def test_finetune_probabilities_and_embeddings_share_one_encoder_pass(fitted):
    """predict_proba is the head on embed()'s pooled output (what forward() computes in eval
    mode), and the same texts asked for both are encoded once - unless the weights changed."""
    import copy

    import torch

    inner = fitted["finetune"].strategy_
    texts = ["a wonderful film, i loved it", "boring and awful", "ok"]
    from ronghe.modeling import tokenize

    forward = inner._logits(tokenize(inner.tokenizer, texts, inner.config.max_length))
    proba = inner.predict_proba(texts)
    np.testing.assert_allclose(proba, torch.softmax(torch.from_numpy(forward).double(), 1).numpy(),
                               atol=1e-5)
    seen = []
    encode = inner.model.embed
    inner.model.embed = lambda ids, mask: (seen.append(len(ids)), encode(ids, mask))[1]
    try:
        inner._last_embed = None
        inner.predict_proba(texts)
        E = inner.embed(texts)
        assert sum(seen) == len(texts)  # one pass for both
        E[:] = 0  # the caller's copy: the kept embeddings are not touched
        assert np.abs(inner.embed(texts)).sum() > 0 and sum(seen) == len(texts)
        inner.embed(texts[:2])
        assert sum(seen) == len(texts) + 2  # other texts: encoded
    finally:
        del inner.model.embed
    # a changed copy (as pruning and bf16 make) does not read the original's kept embeddings
    other = copy.deepcopy(inner)
    with torch.no_grad():
        other.model.head.weight.zero_()
        for p in other.model.encoder.parameters():
            p.mul_(0.5)
    assert not np.allclose(other.embed(texts), inner.embed(texts), atol=1e-4)
