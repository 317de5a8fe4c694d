"""The recommender on ``ronghe serve``'s app: keys, reasons, similar items, idempotent feedback
that changes the next recommendations, items added through the API recommendable at once and
known again after a restart (SQLite, and PostgreSQL when RONGHE_TEST_PG_URL is set)."""

from __future__ import annotations

import hashlib

from fastapi.testclient import TestClient
from rec_material import topic_of

from ronghe.serving.app import app_installers, create_app
from ronghe.serving.config import build as serve_config
from ronghe.serving.registry import Registry

KEY = "k-recommend-secret"


def make_app(saved, db):
    keys = [{"name": "shop", "sha256": hashlib.sha256(KEY.encode()).hexdigest()}]
    cfg = serve_config({
        "models": [str(saved)], "api_keys": keys, "request_log": None,
        "apps": {"ronghe.apps.recommend.routes:install": {"model": "shop", "db": db}}})
    app_installers(cfg)  # registers the recommender's loader, as `ronghe recommend serve` does
    reg = Registry.from_sources(cfg.models)
    reg.load_all()
    return create_app(cfg, reg)


def client(saved, db):
    c = TestClient(make_app(saved, db))
    c.headers["Authorization"] = f"Bearer {KEY}"
    return c


def test_the_recommender_service_end_to_end(saved, db_url):
    with client(saved, db_url) as c:
        r = c.get("/v1/recommend/u-space-2?k=5", headers={"Authorization": ""})
        assert r.status_code == 401
        r = c.get("/v1/recommend/u-space-2?k=5")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["known_user"] and len(body["items"]) == 5
        assert all(i["reasons"] for i in body["items"])
        first = body["items"][0]["item"]
        placed = c.get("/v1/recommend/u-space-2?k=5&new_places=2").json()["items"]
        assert sum(i["cold"] for i in placed) >= 2  # the new-arrivals policy, per request
        r = c.get("/v1/recommend/u-space-2?k=5&new_places=6")
        assert r.status_code == 422 and "new_places" in r.json()["error"]["message"]

        r = c.post("/v1/recommend/similar", json={"text": "a football match in the league"})
        assert r.status_code == 200 and topic_of(r.json()["items"][0]["item"]) == "football"
        r = c.post("/v1/recommend/similar", json={"item": "nope"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_item"
        assert c.post("/v1/recommend/similar", json={}).status_code == 422

        events = [{"event_id": "e1", "user": "u-space-2", "item": first, "kind": "impression"},
                  {"event_id": "e2", "user": "u-space-2", "item": first, "kind": "click"}]
        r = c.post("/v1/recommend/feedback", json={"events": events})
        assert r.json() == {"stored": 2, "duplicates": 0}
        assert c.post("/v1/recommend/feedback", json={"events": events}).json() == \
            {"stored": 0, "duplicates": 2}
        after = [i["item"] for i in c.get("/v1/recommend/u-space-2?k=5").json()["items"]]
        assert first not in after  # the click joined the history: seen items are excluded
        bad = [{"event_id": "e3", "user": "u", "item": "ghost", "kind": "click"}]
        r = c.post("/v1/recommend/feedback", json={"events": bad})
        assert r.status_code == 422 and "POST /v1/recommend/items" in r.json()["error"]["message"]

        new = {"id": "cook-fresh", "text": "a fresh cookbook of pasta and bread recipes",
               "features": {"price": 7}}
        r = c.post("/v1/recommend/items", json={"items": [new]})
        assert r.json() == {"added": ["cook-fresh"], "known": []}
        r = c.post("/v1/recommend/similar", json={"text": "pasta and bread recipes", "k": 3})
        assert "cook-fresh" in [i["item"] for i in r.json()["items"]]
        # a brand-new user who clicked cooking items is offered the new cookbook
        clicks = [{"event_id": f"n{j}", "user": "newbie", "item": f"cooking-{j}",
                   "kind": "click"} for j in range(3)]
        c.post("/v1/recommend/feedback", json={"events": clicks})
        top = [i["item"] for i in c.get("/v1/recommend/newbie?k=8").json()["items"]]
        assert "cook-fresh" in top and not {"cooking-0", "cooking-1", "cooking-2"} & set(top)
        r = c.get("/v1/recommend/u-romance-1?k=6&explore=true")
        assert r.status_code == 200, r.text
        listed = r.json()["items"]
        explored = [i["item"] for i in listed if i["explored"]]
        assert len(listed) == 6 and len(explored) == 2
        ev = [{"event_id": "x1", "user": "u-romance-1", "item": explored[0], "kind": "click"}]
        assert c.post("/v1/recommend/feedback", json={"events": ev}).json()["stored"] == 1
        metrics = c.get("/metrics").text
        assert 'endpoint="recommend_user",model="shop",status="200"' in metrics
        assert 'endpoint="recommend_feedback",model="shop",status="200"' in metrics

    with client(saved, db_url) as c:  # a restart: items and clicks come back from the database
        r = c.post("/v1/recommend/similar", json={"item": "cook-fresh", "k": 2})
        assert r.status_code == 200
        top = [i["item"] for i in c.get("/v1/recommend/newbie?k=8").json()["items"]]
        assert "cooking-0" not in top and "cook-fresh" in top
