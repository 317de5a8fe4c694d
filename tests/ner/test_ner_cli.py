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
