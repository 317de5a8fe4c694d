"""The Python API: inputs it accepts, errors it gives, evaluation and reports."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ronghe import TextClassifier
from ronghe.errors import ConfigError, DataError, NotFittedError
from ronghe.tasks.text_classification import TASK, metrics, records


def test_fit_accepts_frames_lists_and_files(sentiment_split, tmp_path):
    train, valid = sentiment_split
    a = TextClassifier(strategy="classic").fit(train, valid)  # DataFrame + DataFrame
    assert a.data_["n_valid"] == len(valid) and a.data_["n_train"] == len(train)
    b = TextClassifier(strategy="classic").fit(train.text.tolist(), train.label.tolist())
    assert b.data_["n_train"] + b.data_["n_valid"] == len(train)  # split held out validation
    train.to_csv(tmp_path / "t.csv", index=False)
    c = TextClassifier(strategy="classic").fit(tmp_path / "t.csv", valid=valid)
    np.testing.assert_array_equal(c.predict_proba(["nice"]), a.predict_proba(["nice"]))


def test_unfitted_and_bad_prediction_input(sentiment_df):
    with pytest.raises(NotFittedError):
        TextClassifier(strategy="classic").predict(["x"])
    clf = TextClassifier(strategy="classic").fit(sentiment_df)
    with pytest.raises(DataError, match="single string"):
        clf.predict("one text")
    with pytest.raises(DataError, match="must be strings"):
        clf.predict(["ok", 3])
    assert clf.predict_proba([]).shape == (0, 2)


def test_bad_hyper_parameters_are_named():
    df = pd.DataFrame({"text": ["a b", "c d", "e f", "g h"] * 4, "label": [0, 1] * 8})
    with pytest.raises(ConfigError, match="unknown strategy 'nope'"):
        TextClassifier(strategy="nope").fit(df)
    with pytest.raises(ConfigError, match="'epochs' does not apply to strategy 'classic'"):
        TextClassifier(strategy="classic", epochs=3).fit(df)
    with pytest.raises(ConfigError, match="learning_rate"):
        TextClassifier(strategy="finetune", learning_rate=-1).fit(df)
    with pytest.raises(ConfigError, match="valid_fraction"):
        TextClassifier(strategy="classic", valid_fraction=0.9).fit(df)


def test_one_class_and_unseen_validation_labels(sentiment_df):
    one = sentiment_df.assign(label="pos")
    with pytest.raises(DataError, match="two"):
        TextClassifier(strategy="classic").fit(one)
    valid = sentiment_df.head(6).assign(label=["pos", "neg", "meh", "pos", "neg", "meh"])
    with pytest.raises(DataError, match="meh"):
        TextClassifier(strategy="classic").fit(sentiment_df, valid)


def test_evaluate_counts_unseen_labels_as_errors(sentiment_df, caplog):
    clf = TextClassifier(strategy="classic").fit(sentiment_df)
    test = sentiment_df.head(10).copy()
    test.loc[test.index[:2], "label"] = "neutral"
    report = clf.evaluate(test)
    assert report["n"] == 10
    assert report["unseen_labels"] == ["neutral"]
    assert report["per_class"]["neutral"]["recall"] == 0.0
    assert report["accuracy"] <= 0.8


def test_metrics_are_correct():
    r = metrics(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b"])
    assert r["accuracy"] == 0.75 and r["n"] == 4
    assert r["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3),
                                   "support": 2}
    assert r["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert r["confusion_matrix"]["matrix"] == [[1, 1], [0, 2]]


def test_report_files(tmp_path):
    r = metrics([0, 1, 1, 2], [0, 1, 2, 2], [0, 1, 2])
    paths = TASK.write_report(r, tmp_path / "rep.json", "t")
    assert json.loads(paths["json"].read_text())["accuracy"] == 0.75
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 2 | 0.5000 | 1.0000 |" in paths["markdown"].read_text()


def test_prediction_records():
    recs = records(np.array(["x", "y"], dtype=object), np.array([[0.2, 0.8], [0.6, 0.4]]))
    assert recs[0]["label"] == "y" and recs[0]["score"] == 0.8
    assert recs[1]["probabilities"] == {"x": 0.6, "y": 0.4}
