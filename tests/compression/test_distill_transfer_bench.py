"""Distillation into smaller/classic students, transfer from an earlier bundle, the leaderboard."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ronghe import TextClassifier, load
from ronghe.bench import pareto
from ronghe.cli import app
from ronghe.compression.surgery import keep_layers

NET = {"max_length": 32, "batch_size": 8}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    from makers import make_sentiment

    clf = TextClassifier(strategy="finetune", epochs=2, **NET).fit(make_sentiment(24))
    return clf, clf.save(tmp_path_factory.mktemp("t") / "teacher")


def test_keep_layers():
    assert keep_layers(6, 3) == [1, 3, 5]
    assert keep_layers(6, 6) == [0, 1, 2, 3, 4, 5]
    assert keep_layers(12, 1) == [11]
    with pytest.raises(Exception):
        keep_layers(6, 7)


def test_layer_student_is_initialised_from_teacher_and_saves(teacher, tmp_path):
    from makers import make_sentiment

    from ronghe.compression.distill import distill

    clf, _ = teacher
    student = distill(clf, __import__("ronghe").data.from_frame(make_sentiment(24)),
                      student="layers:3", unlabeled=["what a film", "so boring"], epochs=1,
                      batch_size=8)
    enc = student.strategy_.model.encoder
    assert len(enc.encoder.layer) == 3 and enc.config.num_hidden_layers == 3
    assert student.metrics_["student_layers"] == [1, 3, 5]
    # embeddings start from the teacher's and the student learned from its probabilities
    assert student.metrics_["valid"]["accuracy"] >= 0.7
    path = student.save(tmp_path / "s")
    again = load(path)
    assert len(again.strategy_.model.encoder.encoder.layer) == 3
    np.testing.assert_array_equal(again.predict_proba(["lovely"]), student.predict_proba(["lovely"]))


def test_distill_cli_classic_student_reports_comparison(teacher, tmp_path):
    from makers import make_sentiment

    _, path = teacher
    make_sentiment(24).to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "u.csv").write_text("text\nan amazing ride\na total bore\nsuperb\n")
    r = CliRunner().invoke(app, ["distill", str(path), str(tmp_path / "d.csv"), "--student",
                                 "classic", "--unlabeled", str(tmp_path / "u.csv"), "--out",
                                 str(tmp_path / "cs")], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "classic on gold labels" in r.output and "teacher" in r.output
    m = json.loads((tmp_path / "cs" / "ronghe.json").read_text())
    assert m["strategy"] == "classic" and m["metrics"]["distillation"]["unlabeled"] == 3


def test_transfer_from_an_earlier_bundle(teacher):
    from makers import make_sentiment

    clf, path = teacher
    df = make_sentiment(16, seed=3)
    same = TextClassifier(strategy="finetune", epochs=1, **NET,
                          options={"init_from": str(path)})
    # before any step the encoder equals the source's fine-tuned encoder, not the raw backbone
    inner_source = clf.strategy_.model.encoder.state_dict()
    same.fit(df)
    assert same.metrics_["transfer"]["head"] == "reused (same labels)"
    other = df.assign(label=np.where(df.label == "pos", "good", "bad"))
    new = TextClassifier(strategy="finetune", epochs=1, **NET, learning_rate=1e-12,
                         options={"init_from": str(path), "warmup_ratio": 0.0}).fit(other)
    assert new.metrics_["transfer"]["head"] == "new (labels differ)"
    moved = new.strategy_.model.encoder.state_dict()
    key = "encoder.layer.2.output.dense.weight"
    assert torch.allclose(moved[key], inner_source[key], atol=1e-6)


def test_pareto_front():
    rows = [{"name": "a", "latency_b1_p50_ms": 1, "macro_f1": 0.8},
            {"name": "b", "latency_b1_p50_ms": 10, "macro_f1": 0.9},
            {"name": "c", "latency_b1_p50_ms": 12, "macro_f1": 0.85},
            {"name": "d", "latency_b1_p50_ms": 1, "macro_f1": 0.7}]
    assert pareto(rows) == {"a", "b"}


def test_bench_cli_leaderboard_report_and_choice(tmp_path):
    from makers import make_sentiment

    make_sentiment(40).to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "lb"
    r = CliRunner().invoke(app, ["bench", str(tmp_path / "d.csv"), "--strategies",
                                 "classic,frozen,finetune", "--option", "finetune.epochs=1",
                                 "--option", "finetune.max_length=24", "--max-latency-ms", "100000",
                                 "--out", str(out)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    result = json.loads((out / "leaderboard.json").read_text())
    rows = {x["name"]: x for x in result["rows"]}
    assert set(rows) == {"classic", "frozen", "finetune"}
    for x in rows.values():
        assert x["status"] == "ok" and x["latency_b1_p50_ms"] > 0 and x["peak_rss_mb"] > 50
        assert x["latency_b32_p50_ms"] >= x["latency_b1_p50_ms"] * 0.5
    assert rows["classic"]["bundle_mb"] < rows["finetune"]["bundle_mb"]
    best = max(rows.values(), key=lambda x: x["macro_f1"])["macro_f1"]
    assert rows[result["chosen"]]["macro_f1"] == best
    assert (out / "chosen" / "ronghe.json").exists()
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "Pareto" in page
    # a latency limit nothing meets: no choice, said clearly
    r = CliRunner().invoke(app, ["bench", str(tmp_path / "d.csv"), "--strategies", "classic",
                                 "--max-latency-ms", "0.0001", "--out", str(tmp_path / "lb2")])
    assert r.exit_code == 0 and "no model meets" in r.output.replace("\n", " ")


def test_bench_time_budget_skips(tmp_path):
    from makers import make_sentiment

    from ronghe import bench, data

    result = bench.run(data.from_frame(make_sentiment(30)), out=tmp_path, time_budget=0.001,
                       strategies=["classic", "frozen"])
    status = {r["name"]: r["status"] for r in result["rows"]}
    assert status["classic"] == "ok" and status["frozen"] == "skipped: time budget"


def test_classic_student_when_the_teacher_never_predicts_a_class(caplog):
    """A weak teacher that never outputs one label must not crash the classic student (its
    validation keeps gold labels of every class); the gap is reported."""
    from ronghe import data
    from ronghe.compression.distill import distill

    texts = [f"{w} item {i}" for i in range(12) for w in ("good", "bad", "meh")]
    labels = [y for _ in range(12) for y in ("pos", "neg", "mid")]
    teacher = TextClassifier(strategy="classic").fit(texts, labels)
    teacher.predict = lambda xs: np.array(["pos" if "good" in x else "neg" for x in xs])
    valid = data.from_texts(["good thing", "bad thing", "meh thing"] * 2, ["pos", "neg", "mid"] * 2)
    with caplog.at_level("WARNING", logger="ronghe"):
        student = distill(teacher, data.from_texts(texts, labels), student="classic", valid=valid)
    assert sorted(student.classes_) == ["neg", "pos"]
    assert student.metrics_["distillation"]["classes_never_predicted"] == ["mid"]
    assert "never predicted 1 of 3 classes" in caplog.text
