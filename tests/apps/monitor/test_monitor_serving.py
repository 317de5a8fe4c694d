"""The monitor's routes on the existing serving app: API-key auth, rate limit (429) and the
bounded ingest queue (503) with Retry-After, idempotent ingest with per-item reasons, alerts
listed / acknowledged / resolved, series and SVG charts, filtered items, the open page."""

from __future__ import annotations

import hashlib

import pytest
from monitor_material import stream
from fastapi.testclient import TestClient

from ronghe.serving.app import create_app
from ronghe.serving.config import build as serve_config

KEY, SLOW = "k-monitor-secret", "k-slow-secret"


def make_app(make_config, bundles, db=None, prediction_log=None, **over):
    cfg = make_config(db=db, **over)
    keys = [{"name": "analyst", "sha256": hashlib.sha256(KEY.encode()).hexdigest()},
            {"name": "slow", "sha256": hashlib.sha256(SLOW.encode()).hexdigest(),
             "rate_per_minute": 2}]
    sc = serve_config({"models": [bundles["sentiment"]], "api_keys": keys, "request_log": None,
                       "prediction_log": prediction_log,
                       "apps": {"ronghe.apps.monitor.routes:install":
                                {"config": cfg.model_dump()}}})
    return create_app(sc)


@pytest.fixture
def client(make_config, bundles, db_url):  # SQLite, and PostgreSQL when RONGHE_TEST_PG_URL is set
    with TestClient(make_app(make_config, bundles, db=db_url)) as c:
        c.headers["Authorization"] = f"Bearer {KEY}"
        yield c


def post(c, items, **kw):
    return c.post("/v1/monitor/items", json={"items": items}, **kw)


def test_ingest_is_authenticated_idempotent_and_explains_rejects(client):
    items = stream(50)
    r = client.post("/v1/monitor/items", json={"items": items[:5]}, headers={"Authorization": ""})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = post(client, items + [{"text": ""}, {"text": "ok", "time": "soon"}, items[0]])
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["stored"], body["duplicates"]) == (50, 1)
    assert [x["index"] for x in body["rejected"]] == [50, 51]
    assert "empty" in body["rejected"][0]["reason"] and "ISO 8601" in body["rejected"][1]["reason"]
    again = post(client, items).json()
    assert (again["stored"], again["duplicates"]) == (0, 50)
    s = client.get("/v1/monitor/summary").json()
    assert (s["items"], s["rejected"], s["alerts_open"]) == (50, 2, 0)
    metrics = client.get("/metrics").text
    assert 'ronghe_monitor_items_total{outcome="stored"} 50.0' in metrics
    assert 'ronghe_monitor_items_total{outcome="duplicates"} 51.0' in metrics
    assert 'ronghe_requests_total{endpoint="monitor_items",model="",status="200"} 2.0' in metrics
    r = client.post("/v1/monitor/items", json={"items": []})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    r = client.post("/v1/monitor/items", json={"texts": ["x"]})
    assert r.status_code == 422


def test_queue_bound_and_rate_limit_answer_with_retry_after(make_config, bundles):
    app = make_app(make_config, bundles, **{"serve.max_queue": 20})
    with TestClient(app) as c:
        r = post(c, stream(21), headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 503 and r.headers["Retry-After"] == "2"
        assert r.json()["error"]["code"] == "queue_full"
        assert post(c, stream(20), headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        codes = [post(c, stream(2, seed=i), headers={"X-API-Key": SLOW}).status_code
                 for i in range(3)]
        assert codes[:2] == [200, 200] and codes[2] == 429
        r = post(c, stream(2, seed=9), headers={"X-API-Key": SLOW})
        assert int(r.headers["Retry-After"]) >= 1


def test_alerts_listed_acknowledged_resolved_with_evidence(client):
    for i in range(0, 600, 100):
        assert post(client, stream(600)[i:i + 100]).status_code == 200
    assert client.get("/v1/monitor/alerts").json()["alerts"] == []
    spike = stream(240, seed=4, neg={"loans": 0.8}, start=1.7e9 + 700)
    post(client, spike)
    (a,) = client.get("/v1/monitor/alerts?status=open").json()["alerts"]
    assert a["key"] == "topic=loans" and a["observed"] > a["expected"]
    assert a["evidence"] and all("loan" in e["text"] or "mortgage" in e["text"]
                                 for e in a["evidence"])
    r = client.post(f"/v1/monitor/alerts/{a['id']}/ack", json={"note": "looking"})
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    assert r.json()["updated_by"] == "analyst" and r.json()["note"] == "looking"
    assert client.get("/v1/monitor/alerts?status=open").json()["alerts"] == []
    assert client.post(f"/v1/monitor/alerts/{a['id']}/resolve").json()["status"] == "resolved"
    r = client.post(f"/v1/monitor/alerts/{a['id']}/ack")
    assert r.status_code == 409 and "resolved" in r.json()["error"]["message"]
    assert client.post("/v1/monitor/alerts/999/ack").status_code == 404


def test_series_chart_items_and_page(client):
    post(client, stream(90))
    keys = {k["key"]: k for k in client.get("/v1/monitor/keys").json()["keys"]}
    assert set(keys) == {"topic=cards", "topic=loans", "topic=app"} and keys["topic=app"]["n"] == 30
    s = client.get("/v1/monitor/series", params={"key": "topic=app", "bucket_s": 50}).json()
    assert [p["n"] for p in s["points"]] == [16, 14]  # epoch-aligned 50 s buckets
    assert all(0 <= p["share"] <= 1 for p in s["points"])
    svg = client.get("/v1/monitor/chart.svg", params={"key": "topic=app", "bucket_s": 50})
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.count('class="vol"') == 2 and "<polyline" in svg.text
    assert client.get("/v1/monitor/series", params={"key": "x", "rule": "nope"}).status_code == 404
    got = client.get("/v1/monitor/items", params={"key": "topic=loans", "limit": 100}).json()
    assert len(got["items"]) == 30 and {i["topic"] for i in got["items"]} == {"loans"}
    neg = client.get("/v1/monitor/items", params={"label": "cards", "negative": True}).json()
    assert neg["items"] and all(i["negative"] and i["topic"] == "cards" for i in neg["items"])
    assert client.get("/v1/monitor/items", params={"source": "elsewhere"}).json()["items"] == []
    page = client.get("/monitor", headers={"Authorization": ""})  # open: it holds no data
    assert page.status_code == 200 and "/monitor/static/dashboard.js" in page.text
    assert client.get("/monitor/static/dashboard.js", headers={"Authorization": ""}).status_code == 200
    assert client.get("/monitor/static/secrets.txt").status_code == 404
    assert client.get("/v1/monitor/keys", headers={"Authorization": ""}).status_code == 401


def test_monitored_items_reach_the_prediction_log_for_drift_checks(make_config, bundles,
                                                                  tmp_path):
    """With the serving app's prediction log on, each newly stored item's sentiment prediction
    is a row of it (no text by default): ``ronghe drift --from-db`` watches the monitor."""
    from ronghe.serving.predlog import PredictionLog

    db = tmp_path / "preds.sqlite"
    with TestClient(make_app(make_config, bundles, prediction_log=str(db))) as c:
        c.headers["Authorization"] = f"Bearer {KEY}"
        items = stream(30)
        assert post(c, items).json()["stored"] == 30
        assert post(c, items[:10]).json()["duplicates"] == 10  # duplicates are not logged again
        stored = c.get("/v1/monitor/items?limit=100").json()["items"]
    rows = PredictionLog(str(db)).read(model="monitor-sentiment")
    assert len(rows) == 30 and all(r["text"] is None for r in rows)
    by_label = sorted(r["label"] for r in rows)
    assert by_label == sorted(x["sentiment"] for x in stored)
    assert all(0 < r["score"] <= 1 and r["length"] > 0 and r["oov_rate"] is None for r in rows)
    # a classic (TF-IDF) bundle has no encoder to embed with nor a sub-word vocabulary
    assert all(r["embedding"] is None for r in rows)


def test_analyst_corrections_become_labelled_rows_for_retraining(make_config, bundles, db_url,
                                                                 tmp_path):
    """POST /items/{id}/correction records the right label (by the key's name; the latest
    wins); ronghe monitor export-corrections writes them as text,label for ronghe retrain."""
    import pandas as pd
    from typer.testing import CliRunner

    from ronghe.cli import app as cli

    with TestClient(make_app(make_config, bundles, db=db_url)) as c:
        c.headers["Authorization"] = f"Bearer {KEY}"
        items = stream(20)
        assert post(c, items).json()["stored"] == 20
        stored = {x["id"]: x for x in c.get("/v1/monitor/items?limit=100").json()["items"]}
        first, second = sorted(stored)[:2]
        wrong = "positive" if stored[first]["sentiment"] == "negative" else "negative"
        r = c.post(f"/v1/monitor/items/{first}/correction", json={"sentiment": wrong})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["sentiment"], body["predicted"], body["by"]) == (
            wrong, stored[first]["sentiment"], "analyst")
        right = stored[second]["sentiment"]
        c.post(f"/v1/monitor/items/{second}/correction", json={"sentiment": wrong})
        c.post(f"/v1/monitor/items/{second}/correction", json={"sentiment": right})  # latest wins
        r = c.post(f"/v1/monitor/items/{first}/correction", json={"sentiment": "angry"})
        assert r.status_code == 422 and "not a label" in r.json()["error"]["message"]
        r = c.post("/v1/monitor/items/nope/correction", json={"sentiment": wrong})
        assert r.status_code == 404 and r.json()["error"]["code"] == "item_not_found"
        r = c.post(f"/v1/monitor/items/{first}/correction", json={"sentiment": wrong},
                   headers={"Authorization": ""})
        assert r.status_code == 401
    out = tmp_path / "corrections.csv"
    r = CliRunner().invoke(cli, ["monitor", "export-corrections", "--db", db_url, "--out",
                                 str(out)])
    assert r.exit_code == 0, r.output
    assert "2 corrected items (1 where the model was wrong)" in " ".join(r.output.split())
    rows = pd.read_csv(out)
    assert list(rows.columns) == ["text", "label"]
    assert dict(zip(rows["text"], rows["label"])) == {stored[first]["text"]: wrong,
                                                       stored[second]["text"]: right}
