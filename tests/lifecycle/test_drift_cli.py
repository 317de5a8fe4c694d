"""``ronghe drift`` end to end on a small model: no alarm on data like the reference, an alarm
(exit 1) on another domain, a refusal (exit 2) on too few items; JSON and HTML written."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ronghe.cli import app


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_drift_cli_verdicts_and_reports(sentiment_bundle, files, tiny_bert, tmp_path):
    base = ["drift", sentiment_bundle, "--reference", files / "reference.csv",
            "--embed-model", tiny_bert, "-o", "permutations=50"]
    same = run(*base, "--current", files / "same.csv", "--out", tmp_path / "same", "-q")
    assert same.exit_code == 0, same.output
    report = json.loads((tmp_path / "same.json").read_text())
    assert report["verdict"] == "no drift" and report["n_current"] == 160
    assert report["checks"]["accuracy"]["estimated_current"] > 0.8  # the model is right there
    assert any("backbone" in n for n in report["notes"])  # classic: embeddings of --embed-model

    moved = run(*base, "--current", files / "banking.csv", "--out", tmp_path / "moved")
    assert moved.exit_code == 1, moved.output
    assert "DRIFT" in moved.output
    report = json.loads((tmp_path / "moved.json").read_text())
    assert "input" in report["drifted"] and report["checks"]["input"]["c2st"]["auc"] > 0.9
    page = (tmp_path / "moved.html").read_text()
    assert "DRIFT" in page and "data:image/png;base64," in page

    small = run(*base, "--current", files / "small.csv")
    assert small.exit_code == 2 and "at least 100" in small.output
