"""Fusion: weighted late fusion, feature concatenation with tabular columns, stacking, voting."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from ronghe import TextClassifier, load
from ronghe.errors import BundleError, ConfigError


def tabular_data(n=120, seed=0):
    """Text that is only weakly informative + a numeric and a categorical column that matter."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = ["low", "high"][i % 2]
        amount = rng.normal(100 if label == "high" else 20, 15)
        channel = rng.choice(["web", "shop"] if label == "high" else ["phone", "shop"])
        text = rng.choice(["order placed", "customer called", "new account", "payment made"])
        rows.append({"text": f"{text} ref {rng.integers(10_000)}", "amount": amount, "channel": channel, "label": label})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("learner", ["logreg", "lightgbm"])
def test_concat_uses_tabular_columns_and_round_trips(learner, tmp_path):
    train, test = tabular_data(160, 0), tabular_data(60, 1)
    clf = TextClassifier(strategy="concat", feature_cols=["amount", "channel"],
                         options={"learner": learner, "embeddings": False, "svd_components": 8})
    clf.fit(train)
    acc = (clf.predict(test) == test.label.to_numpy()).mean()
    assert acc >= 0.9, acc  # text alone is at chance here
    text_only = TextClassifier(strategy="classic").fit(train[["text", "label"]])
    assert (text_only.predict(test.text.tolist()) == test.label.to_numpy()).mean() < 0.75
    again = load(clf.save(tmp_path / learner))
    np.testing.assert_array_equal(again.predict_proba(test), clf.predict_proba(test))
    with pytest.raises(Exception, match="feature columns"):
        again.predict_proba(test.text.tolist())  # the columns are required at prediction


def test_feature_columns_need_a_fusion_strategy():
    with pytest.raises(ConfigError, match="text only"):
        TextClassifier(strategy="classic", feature_cols=["amount"]).fit(tabular_data(40))


def test_weighted_alpha_is_chosen_on_validation(sentiment_split, tmp_path):
    train, valid = sentiment_split
    clf = TextClassifier(strategy="weighted", options={"members": ["classic", "frozen"]}).fit(train, valid)
    inner = clf.strategy_
    best = max(inner.history, key=lambda h: h["valid_macro_f1"])["valid_macro_f1"]
    chosen = [h for h in inner.history if h["alpha"] == round(inner.alpha, 4)][0]
    assert chosen["valid_macro_f1"] == best
    p = inner.alpha * inner.members[0].predict_proba(["nice"]) + \
        (1 - inner.alpha) * inner.members[1].predict_proba(["nice"])
    np.testing.assert_allclose(clf.predict_proba(["nice"]), p)
    path = clf.save(tmp_path / "w")
    assert sorted(p.name for p in (path / "members").iterdir()) == ["0-classic", "1-frozen"]
    np.testing.assert_array_equal(load(path).predict_proba(["nice", "bad"]),
                                  clf.predict_proba(["nice", "bad"]))


def test_stack_uses_out_of_fold_predictions(sentiment_split, monkeypatch):
    from ronghe.fusion import members as M

    train, valid = sentiment_split
    seen = []
    real = M.predict

    def spy(member, texts, features=None):
        seen.append((id(member), set(texts)))
        return real(member, texts, features)

    monkeypatch.setattr(M, "predict", spy)
    fitted_on = {}
    built = []  # kept alive: an id() of a freed fold member can be reused by the next one
    real_build = M.build

    def build(name, cfg, classes, context=None, task="text-classification"):
        m = real_build(name, cfg, classes, context, task)
        built.append(m)
        orig = m.fit

        def fit(tr, va):
            fitted_on[id(m)] = set(tr.texts)
            return orig(tr, va)

        m.fit = fit
        return m

    monkeypatch.setattr(M, "build", build)
    clf = TextClassifier(strategy="stack", options={"folds": 3}).fit(train, valid)
    for member_id, texts in seen:  # no member predicted (for the meta-learner) a text it trained on
        if member_id in fitted_on and texts <= set(train.text):
            assert not (texts & fitted_on[member_id])
    assert clf.strategy_.report["folds"] == 3
    assert clf.metrics_["valid"]["accuracy"] >= 0.8


def test_vote_over_saved_bundles(sentiment_split, tmp_path):
    train, valid = sentiment_split
    paths = [TextClassifier(strategy=s).fit(train, valid).save(tmp_path / s)
             for s in ("classic", "frozen")]
    soft = TextClassifier(strategy="vote", options={"bundles": [str(p) for p in paths]}).fit(train, valid)
    a, b = load(paths[0]).predict_proba(["great"]), load(paths[1]).predict_proba(["great"])
    np.testing.assert_allclose(soft.predict_proba(["great"]), (a + b) / 2)
    hard = TextClassifier(strategy="vote", options={"bundles": [str(p) for p in paths],
                                                   "voting": "hard"}).fit(train, valid)
    assert set(hard.predict(valid.text.tolist())) <= {"neg", "pos"}
    saved = soft.save(tmp_path / "vote")
    np.testing.assert_array_equal(load(saved).predict_proba(["great"]), soft.predict_proba(["great"]))
    # a member tampered with inside the fused bundle is caught
    bad = shutil.copytree(saved, tmp_path / "vote-bad")
    target = bad / "members" / "0-classic" / "ronghe.json"
    m = json.loads(target.read_text())
    m["labels"] = ["neg", "pos", "x"]
    target.write_text(json.dumps(m))
    with pytest.raises(BundleError, match="sha256"):
        load(bad)


def test_vote_refuses_different_label_sets(sentiment_split, tmp_path):
    train, valid = sentiment_split
    three = pd.concat([train, pd.DataFrame({"text": ["meh", "so so", "fine I guess"] * 3,
                                            "label": ["mid"] * 9})])
    a = TextClassifier(strategy="classic").fit(train, valid).save(tmp_path / "a")
    b = TextClassifier(strategy="classic").fit(three).save(tmp_path / "b")
    with pytest.raises(ConfigError, match="same label set"):
        TextClassifier(strategy="vote", options={"bundles": [str(a), str(b)]}).fit(train, valid)


def test_weighted_fuses_three_members_with_weights_on_the_simplex(sentiment_split, tmp_path):
    from ronghe.fusion.weighted import simplex_grid

    grid = simplex_grid(3, 10, 5000)
    assert len(grid) == 66 and np.allclose(grid.sum(1), 1) and (grid >= 0).all()
    assert len(simplex_grid(4, 20, 100)) <= 100  # coarsened to fit

    train, valid = sentiment_split
    clf = TextClassifier(strategy="weighted", options={
        "members": ["classic", "frozen", "classic"], "grid_points": 6}).fit(train, valid)
    inner = clf.strategy_
    w = np.array(inner.weights)
    assert len(w) == 3 and abs(w.sum() - 1) < 1e-9 and (w >= 0).all()
    assert len(inner.history) == len(simplex_grid(3, 5, 5000))
    best = max(h["valid_macro_f1"] for h in inner.history)
    assert inner.report["valid_macro_f1"] == best
    texts = ["nice", "bad", "not good at all"]
    p = sum(wi * m.predict_proba(texts) for wi, m in zip(w, inner.members))
    np.testing.assert_allclose(clf.predict_proba(texts), p)
    again = load(clf.save(tmp_path / "w3"))
    assert again.strategy_.weights == inner.weights
    np.testing.assert_array_equal(again.predict_proba(texts), clf.predict_proba(texts))
