"""NER through the shared machinery: ONNX export with its parity check, int8 behind the entity-F1
gate, the leaderboard and tuning over NER strategies, and clear refusals where an operation does
not apply. The tagger is the small fine-tuned BERT+CRF of tests/data/bundles/legacy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ronghe
from ronghe.cli import app

TESTS = Path(__file__).parents[1]
DATA = TESTS / "data" / "ner"
TAGGER = TESTS / "data" / "bundles" / "legacy" / "ner-finetune-crf"
CRF = TESTS / "data" / "bundles" / "legacy" / "ner-classic"
TEXTS = ["Angela Merkel flew to Vienna on Monday .", "John Smith works for Acme in New York .",
         "Nothing to see here", ""]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("x") / "onnx"
    r = invoke("export", TAGGER, "--format", "onnx", "--out", out, "--valid", DATA / "en_test.conll")
    assert r.exit_code == 0, r.output
    return out


def test_onnx_export_parity_and_identical_entities(exported):
    m = json.loads((exported / "ronghe.json").read_text())
    assert m["task"] == "token-classification" and m["strategy"] == "onnx"
    parity = m["compression"]["parity"]
    assert parity["inputs"] == 24 and parity["max_abs_emissions_diff"] < 1e-4
    assert parity["tag_agreement"] == 1.0
    original, onnx = ronghe.load(TAGGER), ronghe.load(exported)
    assert onnx.strategy_.crf is not None  # the CRF travels as arrays, decoded in numpy
    got, want = onnx.predict(TEXTS), original.predict(TEXTS)
    assert [[{k: v for k, v in e.items() if k != "score"} for e in s] for s in got] == \
        [[{k: v for k, v in e.items() if k != "score"} for e in s] for s in want]
    for a, b in zip(got, want):
        for x, y in zip(a, b):
            assert abs(x["score"] - y["score"]) < 1e-4
    assert onnx.evaluate(DATA / "en_test.conll")["f1"] == pytest.approx(
        original.evaluate(DATA / "en_test.conll")["f1"])


def test_onnx_tagger_runs_where_torch_cannot_be_imported(exported):
    from makers import run_without_torch

    out = run_without_torch(f"import ronghe\nprint(ronghe.load({str(exported)!r}).predict("
                            "['Angela Merkel flew to Vienna .'])[0][0]['text'])")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "Angela Merkel"


def test_int8_behind_the_entity_f1_gate(tmp_path):
    out = tmp_path / "int8"
    r = invoke("compress", TAGGER, "--quantize", "int8", "--valid", DATA / "en_test.conll",
               "--max-drop", "100", "--out", out, "-q")
    assert r.exit_code == 0, r.output
    m = json.loads((out / "ronghe.json").read_text())
    gate = m["compression"]
    assert gate["metric"] == "f1" and gate["steps"][0]["method"] == "int8-dynamic"
    assert {"f1_before", "f1_after", "precision_after", "recall_after"} <= set(gate)
    report = json.loads((tmp_path / "int8.report.json").read_text())
    assert report["compressed"]["size_mb"] < report["original"]["size_mb"]
    assert ronghe.load(out).evaluate(DATA / "en_test.conll")["f1"] == pytest.approx(gate["after"], abs=1e-5)
    # a gate that cannot be met writes nothing and exits 3
    strict = tmp_path / "strict"
    r = invoke("compress", TAGGER, "--quantize", "int8", "--valid", DATA / "en_test.conll",
               "--max-drop", "-1", "--out", strict, "-q")
    assert r.exit_code == 3 and "points of f1" in r.output and not strict.exists()


@pytest.mark.parametrize("args,words", [
    (("compress", CRF, "--quantize", "int8"), "runs without torch already"),
    (("compress", TAGGER, "--prune", "layers:1"), "int8 or int8-static"),
    (("export", TAGGER, "--merge"), "already holds merged weights"),
    (("distill", TAGGER, DATA / "en_train.conll"), "image-classification teacher"),
])
def test_operations_that_do_not_apply_are_refused_clearly(tmp_path, args, words):
    extra = ["--valid", DATA / "en_test.conll"] if args[0] == "compress" else []
    r = invoke(*args, *extra, "--out", tmp_path / "o")
    assert r.exit_code == 2, r.output
    assert words in " ".join(r.output.split())
    assert not (tmp_path / "o").exists()


def test_bench_over_ner_strategies(tmp_path):
    r = invoke("bench", DATA / "en_train.conll", "--task", "ner", "--valid", DATA / "en_test.conll",
               "--strategies", "classic", "--out", tmp_path / "lb", "-q")
    assert r.exit_code == 0, r.output
    lb = json.loads((tmp_path / "lb" / "leaderboard.json").read_text())
    assert lb["task"] == "token-classification" and lb["score"] == "f1"
    row = lb["rows"][0]
    assert row["status"] == "ok" and {"precision", "recall", "f1"} <= set(row)
    assert row["latency_b1_p50_ms"] > 0 and lb["chosen"] == "classic"
    assert ronghe.load(tmp_path / "lb" / "chosen").task == "token-classification"
    assert "entity F1" in (tmp_path / "lb" / "report.html").read_text()


def test_tune_a_ner_strategy_and_train_its_best_config(tmp_path):
    r = invoke("tune", DATA / "en_train.conll", "--task", "ner", "--strategy", "classic",
               "--trials", "2", "--study-dir", tmp_path / "s", "-q")
    assert r.exit_code == 0, r.output
    best = (tmp_path / "s" / "best.yaml").read_text()
    assert "task: ner" in best and "validation f1" in best
    r = invoke("train", "--config", tmp_path / "s" / "best.yaml", "--out", tmp_path / "m", "-q")
    assert r.exit_code == 0, r.output
    assert ronghe.load(tmp_path / "m").task == "token-classification"
