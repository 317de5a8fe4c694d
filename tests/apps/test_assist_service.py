"""The assistant on the shared service: reply / feedback / conversations, storage (SQLite and
PostgreSQL), masking, idempotency, keys, metrics, export of feedback."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ronghe.serving.app import create_app
from ronghe.serving.config import ServeConfig
from ronghe.serving.registry import Registry
from ronghe.serving.app import app_installers

INSTALL = "ronghe.apps.assist.routes:install"


def make_app(saved, db, log=None, **kw):
    cfg = ServeConfig(models=[str(saved)], watch_interval_s=0, request_log=None,
                      apps={INSTALL: {"model": "helpdesk", "db": db}}, **kw)
    app_installers(cfg)  # registers the assistant's loader, as `ronghe assist serve` does
    reg = Registry.from_sources(cfg.models)
    reg.load_all()
    return create_app(cfg, reg, log_sink=log)


def rows(db: str, table: str) -> list[dict]:
    from ronghe.store import as_url

    eng = sa.create_engine(as_url(db))
    with eng.connect() as c:
        out = [dict(r._mapping) for r in c.execute(sa.text(f"SELECT * FROM {table}"))]
    eng.dispose()
    return out


def test_reply_store_mask_and_conversation(saved, db_url):
    log = io.StringIO()
    app = make_app(saved, db_url, log=log, log_inputs=True)
    with TestClient(app) as c:
        r = c.post("/v1/assist/reply", json={"conversation_id": "c-1", "message":
                   "i lost my card, mail me at jo.doe@example.com or call +44 7700 900123"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["kind"] == "intent" and body["intent"] == "lost_card"
        assert body["handoff"] is False and body["why"]["oos"]["out_of_scope"] is False
        r2 = c.post("/v1/assist/reply", json={"conversation_id": "c-1",
                                              "message": "who won the tennis match yesterday"})
        assert r2.json()["handoff"] is True and r2.json()["kind"] == "fallback"
        stored = rows(db_url, "assist_turns")
        assert len(stored) == 2
        assert "jo.doe" not in stored[0]["message"] and "7700" not in stored[0]["message"]
        assert "[EMAIL]" in stored[0]["message"] and "[PHONE]" in stored[0]["message"]
        conv = c.get("/v1/assist/conversations/c-1").json()
        assert [t["kind"] for t in conv["turns"]] == ["intent", "fallback"]
        assert "[EMAIL]" in conv["turns"][0]["message"]
        assert c.get("/v1/assist/conversations/nope").status_code == 404
        assert c.get("/v1/models").json()["models"][0]["task"] == "assistant"
        metrics = c.get("/metrics").text
        assert 'endpoint="assist_reply",model="helpdesk",status="200"' in metrics
    app.state.service.request_log.flush()
    text = log.getvalue()
    assert "assist_reply" in text and "jo.doe" not in text and "[EMAIL]" in text


def test_idempotent_reply_and_feedback(saved, db_url):
    app = make_app(saved, db_url)
    with TestClient(app) as c:
        msg = {"conversation_id": "c-2", "message": "what is my balance", "message_id": "m-1"}
        a = c.post("/v1/assist/reply", json=msg).json()
        b = c.post("/v1/assist/reply", json=msg).json()
        assert a["turn_id"] == b["turn_id"] and b["replayed"] is True and a["replayed"] is False
        assert len(rows(db_url, "assist_turns")) == 1
        fb = {"conversation_id": "c-2", "turn_id": a["turn_id"], "helpful": False,
              "correct_intent": "transfer"}
        assert c.post("/v1/assist/feedback", json=fb).status_code == 200
        assert c.post("/v1/assist/feedback", json={**fb, "correct_intent": "nope"}).status_code == 422
        r = c.post("/v1/assist/feedback", json={**fb, "turn_id": "0" * 32})
        assert r.status_code == 404 and r.json()["error"]["code"] == "turn_not_found"
        r = c.post("/v1/assist/feedback", json={**fb, "conversation_id": "other"})
        assert r.status_code == 404
        again = c.post("/v1/assist/feedback", json={**fb, "helpful": True, "correct_intent": None,
                                                    "comment": "card 4111 1111 1111 1111"})
        assert again.status_code == 200
        stored = rows(db_url, "assist_feedback")
        assert len(stored) == 1 and stored[0]["helpful"] in (True, 1)
        assert stored[0]["comment"] == "card [CARD]"
        r = c.post("/v1/assist/reply", json={"conversation_id": "bad id!", "message": "x"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
        r = c.post("/v1/assist/reply", json={"conversation_id": "c", "message": "x" * 10_001})
        assert r.status_code == 422


def test_keys_guard_the_api_but_not_the_page(saved, tmp_path, monkeypatch):
    monkeypatch.setenv("RONGHE_API_KEYS", "secret-key-0123456789abcdef")
    from ronghe.serving.auth import load_keys

    keys = load_keys(None)
    app = make_app(saved, str(tmp_path / "k.sqlite"), api_keys=keys)
    with TestClient(app) as c:
        page = c.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "<script src=\"/assist/static/app.js\">" in page.text
        assert c.get("/assist/static/app.js").status_code == 200
        assert c.get("/assist/static/secret.txt").status_code == 404
        body = {"conversation_id": "c", "message": "balance please"}
        r = c.post("/v1/assist/reply", json=body)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert c.get("/v1/assist/conversations/c").status_code == 401
        ok = c.post("/v1/assist/reply", json=body,
                    headers={"X-API-Key": "secret-key-0123456789abcdef"})
        assert ok.status_code == 200


def test_export_feedback(saved, tmp_path):
    db = str(tmp_path / "fb.sqlite")
    app = make_app(saved, db)
    with TestClient(app) as c:
        turns = [c.post("/v1/assist/reply", json={"conversation_id": "e", "message": m}).json()
                 for m in ("what is my balance", "tell me a joke about cats", "hm, transfer?")]
        for t, fb in zip(turns, [{"helpful": True}, {"helpful": True},
                                 {"helpful": False}]):
            assert c.post("/v1/assist/feedback", json={"conversation_id": "e",
                                                       "turn_id": t["turn_id"], **fb}).status_code == 200
    from ronghe.cli import app as cli

    out = tmp_path / "rows.csv"
    res = CliRunner().invoke(cli, ["assist", "export-feedback", "--db", db, "--out", str(out)])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    assert len(df) == 2 and "1 'not helpful' without a correction" in res.output
    assert df.iloc[0]["label"] == turns[0]["intent"] == "balance"
    assert df.iloc[1]["kind"] == ("oos" if turns[1]["handoff"] else df.iloc[1]["kind"])
    res = CliRunner().invoke(cli, ["assist", "export-feedback", "--db", str(tmp_path / "no.db"),
                                   "--out", str(out)])
    assert res.exit_code == 2 and "not found" in res.output


def test_the_service_keeps_no_message_embeddings(saved, tmp_path):
    from ronghe import modeling

    app = make_app(saved, str(tmp_path / "m.sqlite"))
    with TestClient(app) as c:
        msg = "a message seen once, 1234 unique words"
        assert c.post("/v1/assist/reply", json={"conversation_id": "m", "message": msg}).status_code == 200
    key = modeling.text_key(msg)
    assert all(key not in cache for cache in modeling._EMBED_CACHE.values())


def test_hot_reload_switches_the_assistant_version(saved, tmp_path):
    import shutil

    versions = tmp_path / "helpdesk"
    shutil.copytree(saved, versions / "v1")
    cfg = ServeConfig(models=[str(versions)], watch_interval_s=0, request_log=None,
                      apps={INSTALL: {"model": "helpdesk", "db": str(tmp_path / "r.sqlite")}})
    app_installers(cfg)
    reg = Registry.from_sources(cfg.models)
    reg.load_all()
    with TestClient(create_app(cfg, reg)) as c:
        body = {"conversation_id": "r", "message": "what is my balance"}
        assert c.post("/v1/assist/reply", json=body).json()["version"] == "v1"
        shutil.copytree(saved, versions / "v2")
        assert c.post("/v1/models/helpdesk/reload").json()["version"] == "v2"
        assert c.post("/v1/assist/reply", json=body).json()["version"] == "v2"
        assert c.get("/v1/assist/info").json()["version"] == "v2"


def test_an_unreachable_database_is_a_503_not_a_stored_answer(saved, tmp_path, monkeypatch):
    from ronghe.apps.assist import storage

    app = make_app(saved, str(tmp_path / "down.sqlite"))

    def down(*_a, **_k):
        raise sa.exc.OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(storage, "save_turn", down)
    with TestClient(app) as c:
        r = c.post("/v1/assist/reply", json={"conversation_id": "d", "message": "balance"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "storage_unavailable"
        assert r.headers["retry-after"] == "5"
