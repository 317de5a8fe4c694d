"""The prediction log: ``ronghe serve`` with ``prediction_log`` writes one row per text (label,
probabilities, input summary, projected embedding; text only when asked, masked) to SQLite or
PostgreSQL, and ``ronghe drift --from-db`` judges what was logged."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from makers import banking_frame, make_sentiment  # noqa: E402
from ronghe.cli import app as cli  # noqa: E402
from ronghe.serving import Registry, ServeConfig, create_app  # noqa: E402
from ronghe.serving.predlog import DIMS, PredictionLog, outcome  # noqa: E402


@pytest.fixture(scope="module")
def frozen_bundle(tiny_bert, tmp_path_factory):
    from ronghe import TextClassifier

    clf = TextClassifier("frozen", tiny_bert).fit(make_sentiment(40, seed=0),
                                                  make_sentiment(10, seed=1))
    return clf.save(tmp_path_factory.mktemp("served") / "reviews")


def serve_and_post(bundle, db, texts, **options):
    cfg = ServeConfig(models=[str(bundle)], prediction_log=db, request_log=None,
                      watch_interval_s=0, **options)
    reg = Registry.from_sources(cfg.models)
    reg.load_all()
    with TestClient(create_app(cfg, reg)) as c:
        for start in range(0, len(texts), 100):
            r = c.post("/v1/models/reviews/predict", json={"texts": texts[start:start + 100]})
            assert r.status_code == 200, r.text
    return r.json()


def test_rows_with_masked_text(frozen_bundle, db_url):
    texts = ["a wonderful film, mail me at jane.doe@example.com", "dull and far too long"]
    answer = serve_and_post(frozen_bundle, db_url, texts, prediction_log_text=True)
    log = PredictionLog(db_url)
    rows = log.read("reviews")
    log.close()
    assert len(rows) == 2
    for row, text, pred in zip(rows, texts, answer["predictions"]):
        assert row["version"] == answer["version"] and row["label"] == str(pred["label"])
        assert sum(json.loads(row["probabilities"]).values()) == pytest.approx(1, abs=1e-3)
        assert len(json.loads(row["embedding"])) == DIMS
        assert row["length"] == len(text) and 0 <= row["oov_rate"] <= 1
    assert "jane.doe@example.com" not in rows[0]["text"] and "wonderful film" in rows[0]["text"]


def test_drift_from_the_log(frozen_bundle, files, tmp_path):
    """Text is not kept by default; the logged reviews do not drift from the reference, logged
    banking requests do (exit 1)."""
    same, moved = tmp_path / "same.sqlite", tmp_path / "moved.sqlite"
    serve_and_post(frozen_bundle, str(same), make_sentiment(60, seed=6)["text"].tolist())
    serve_and_post(frozen_bundle, str(moved), banking_frame(120, seed=1)["text"].tolist())
    log = PredictionLog(str(same))
    assert all(r["text"] is None for r in log.read())
    log.close()
    base = ["drift", str(frozen_bundle), "--reference", str(files / "reference.csv"),
            "-o", "permutations=50", "-q", "--since", "1h"]
    r = CliRunner().invoke(cli, base + ["--from-db", str(same)])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output.strip().splitlines()[-1])
    assert report["n_current"] == 120 and report["checks"]["input"]["dims"] == DIMS
    r = CliRunner().invoke(cli, base + ["--from-db", str(moved)])
    assert r.exit_code == 1, r.output
    assert "input" in json.loads(r.output.strip().splitlines()[-1])["drifted"]


def test_outcome_of_an_assistant_reply():
    reply = {"kind": "intent", "reply": "...", "why": {"intent": {"label": "lost_card",
                                                                  "score": 0.93}}}
    assert outcome(reply) == ("lost_card", 0.93, None)
    assert outcome({"label": 1, "score": 0.8, "probabilities": {"0": 0.2, "1": 0.8}})[0] == 1
