"""`ronghe train/predict/evaluate --task ner` end to end, and `ronghe.load` dispatch by task."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import ronghe
from ronghe.cli import app

DATA = Path(__file__).parents[1] / "data" / "ner"


def test_ner_cli_round_trip(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["train", str(DATA / "en_train.conll"), "--task", "ner", "--strategy",
                            "classic", "--out", str(tmp_path / "m"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "m" / "ronghe.json").read_text())["task"] == "token-classification"
    assert type(ronghe.load(tmp_path / "m")).__name__ == "TokenClassifier"
    r = runner.invoke(app, ["predict", str(tmp_path / "m"), "--text", "John Smith visited Berlin ."])
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout.strip().splitlines()[-1])
    for e in rec["entities"]:
        assert rec["text"][e["start"]:e["end"]] == e["text"]
    r = runner.invoke(app, ["evaluate", str(tmp_path / "m"), str(DATA / "en_test.conll"), "--out",
                            str(tmp_path / "rep.json"), "--quiet"])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "rep.json").read_text())
    assert {"precision", "recall", "f1", "per_type", "n_sentences"} <= set(rep)
    assert rep["n_sentences"] == 24 and rep["f1"] > 0.3
    r = runner.invoke(app, ["train", str(DATA / "en_train.conll"), "--task", "nope", "--out",
                            str(tmp_path / "x")])
    assert r.exit_code == 2 and "--task" in r.output


def test_collapsed_finetune_is_reported_not_shipped_silently(tmp_path, tiny_bert, monkeypatch):
    """A fit that predicts no entity on validation ends with a loud warning on the console and
    in the bundle's manifest. The collapse is made certain (every tag O, as a collapsed tagger
    answers) rather than left to a random head on a random tiny encoder, which scores anything
    from 0 to a few hundredths; the rule itself is tested on its own below."""
    from ronghe.ner.estimator import TokenClassifier

    real = TokenClassifier.predict_tags
    monkeypatch.setattr(TokenClassifier, "predict_tags",
                        lambda self, X: [["O"] * len(t) for t in real(self, X)])
    runner = CliRunner()
    r = runner.invoke(app, ["train", str(DATA / "en_train.conll"), "--task", "ner", "--strategy",
                            "finetune", "--model", tiny_bert, "--epochs", "1", "--learning-rate",
                            "1e-9", "--option", "head_learning_rate=1e-9", "--option",
                            "head_init=random", "--max-length", "32", "--no-crf",
                            "--out", str(tmp_path / "m"), "--quiet"])
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert "validation entity F1 is 0" in out and "--epochs" in out
    assert "WARNING: this model is probably not usable" in out
    manifest = json.loads((tmp_path / "m" / "ronghe.json").read_text())
    (problem,) = manifest["metrics"]["warnings"]
    assert "validation entity F1 is 0" in problem and "learning rate" in problem
    assert manifest["metrics"]["valid"]["f1"] < ronghe.ner.TokenClassifier.COLLAPSED_F1
    assert manifest["config"]["crf"] is False  # --no-crf: the softmax head, not the default CRF


def test_collapse_rule_names_what_the_tagger_does():
    clf = ronghe.ner.TokenClassifier(strategy="classic").fit(DATA / "en_train.conll")
    inner = clf.strategy_
    base = {"n_entities": 40, "n_sentences": 24}
    (none,) = clf._fit_warnings({**base, "f1": 0.0, "n_predicted": 0}, inner)
    assert "predicts no entity at all" in none and "F1 is 0." in none
    (wrong,) = clf._fit_warnings({**base, "f1": 0.0, "n_predicted": 7}, inner)
    assert "7 entities, none of them right" in wrong
    (poor,) = clf._fit_warnings({**base, "f1": 0.021, "n_predicted": 300}, inner)
    assert "almost none" in poor and "F1 is 0.021" in poor
    assert clf._fit_warnings({**base, "f1": 0.3, "n_predicted": 30}, inner) == []
    assert clf._fit_warnings({"n_entities": 0, "f1": 0.0}, inner) == []


def test_healthy_fit_has_no_warnings(tmp_path):
    clf = ronghe.ner.TokenClassifier(strategy="classic").fit(DATA / "en_train.conll")
    assert clf.metrics_["valid"]["f1"] > 0 and "warnings" not in clf.metrics_
