"""ronghe.serving: endpoints, every error code, auth, batching, reload, limits, log, fuzzing, and a
real uvicorn process on 127.0.0.1. Bundles are tiny ``classic`` models trained once per session;
slow or failing models are fakes plugged in through the per-task loader registry."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from ronghe import TextClassifier, load  # noqa: E402
from ronghe.errors import ConfigError  # noqa: E402
from ronghe.serving import auth, registry  # noqa: E402
from ronghe.serving.app import create_app  # noqa: E402
from ronghe.serving.batcher import Batcher, Closed, QueueFull  # noqa: E402
from ronghe.serving.config import ServeConfig, build  # noqa: E402
from ronghe.serving.logging import mask  # noqa: E402
from ronghe.serving.registry import Registry, candidates, parse_specs  # noqa: E402
from ronghe.serving.server import build_config, check_bind, is_loopback  # noqa: E402
from ronghe.tasks import text_classification  # noqa: E402
from ronghe.tasks.text_classification import records  # noqa: E402
from makers import free_port  # noqa: E402

KEY_ALL = "all-models-key-0123456789abcdef"
KEY_SENT = "sentiment-only-key-0123456789ab"
KEY_SLOW = "rate-limited-key-0123456789abcd"


# -- data, bundles and fakes --------------------------------------------------------------------

def _reviews(labels=("pos", "neg"), n=16, seed=0):
    import pandas as pd

    good = ["a wonderful moving film", "great acting and a clever script", "i loved every minute",
            "funny warm and beautifully shot", "brilliant and touching", "superb performances"]
    bad = ["a dull lifeless mess", "boring and far too long", "i hated the clumsy dialogue",
           "a tedious waste of time", "awful acting weak script", "painfully slow and predictable"]
    rng = random.Random(seed)
    rows = [{"text": f"{pool[i % len(pool)]} {rng.choice(['', 'really', 'overall'])} {i}",
             "label": lab} for lab, pool in zip(labels, (good, bad)) for i in range(n)]
    rng.shuffle(rows)
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def bundles(tmp_path_factory):
    """Two tiny classic bundles: 'sentiment' (pos/neg) and 'other' (good/bad)."""
    root = tmp_path_factory.mktemp("serving")
    a = TextClassifier(strategy="classic").fit(_reviews()).save(root / "sentiment")
    b = TextClassifier(strategy="classic").fit(_reviews(("good", "bad"), seed=1)).save(root / "other")
    return {"sentiment": a, "other": b, "root": root}


class FakeModel:
    """Answers after ``delay`` seconds; raises for the input 'boom'; records batch sizes."""

    accepts = ("texts",)

    def __init__(self, delay: float = 0.0, accepts=("texts",)):
        self.delay = delay
        self.accepts = accepts
        self.batches: list[int] = []
        self.seen: list[list] = []

    def warmup(self):
        pass

    def predict(self, inputs):
        self.batches.append(len(inputs))
        self.seen.append(list(inputs))
        if self.delay:
            time.sleep(self.delay)
        if any(x == "boom" for x in inputs):
            raise RuntimeError("boom")
        return [{"label": "a", "score": 1.0, "probabilities": {"a": 1.0}, "echo": x} for x in inputs]


def fake_bundle(path: Path, task: str = "test-fake", **config) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "ronghe.json").write_text(json.dumps({
        "format_version": 1, "ronghe_version": "0", "task": task, "strategy": "fake",
        "labels": ["a"], "config": config}))
    return path


@pytest.fixture
def fake_task(monkeypatch):
    """Registers the 'test-fake' task; returns the models it creates."""
    made: list[FakeModel] = []

    def loader(path: Path) -> FakeModel:
        cfg = json.loads((path / "ronghe.json").read_text())["config"]
        m = FakeModel(cfg.get("delay", 0.0), tuple(cfg.get("accepts", ["texts"])))
        made.append(m)
        return m

    monkeypatch.setitem(registry.LOADERS, "test-fake", loader)
    return made


def config(models, **kw) -> ServeConfig:
    kw.setdefault("watch_interval_s", 0)
    kw.setdefault("request_log", None)
    return ServeConfig(models=[str(m) for m in models], **kw)


def app_for(models, log_sink=None, **kw):
    cfg = config(models, **kw)
    reg = Registry.from_sources(cfg.models, version_order=cfg.version_order)
    reg.load_all()
    return create_app(cfg, reg, log_sink=log_sink)


@asynccontextmanager
async def aclient(app):
    """Concurrent requests in one event loop, lifespan included."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


@contextmanager
def uvicorn_thread(app):
    """A real uvicorn server on 127.0.0.1 in a thread of this process."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="on"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    end = time.time() + 20
    while not server.started and time.time() < end:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(15)


def err(r) -> str:
    body = r.json()
    assert set(body) == {"error"} and body["error"]["status"] == r.status_code, body
    return body["error"]["code"]


# -- endpoints ----------------------------------------------------------------------------------

def test_health_ready_and_model_listing(bundles):
    app = app_for([bundles["sentiment"], f"second={bundles['other']}"])
    with TestClient(app) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert set(ready.json()["models"]) == {"sentiment", "second"}
        models = {m["name"]: m for m in c.get("/v1/models").json()["models"]}
        assert set(models) == {"sentiment", "second"}
        m = models["sentiment"]
        assert m["task"] == "text-classification" and m["strategy"] == "classic"
        assert sorted(m["labels"]) == ["neg", "pos"] and sorted(models["second"]["labels"]) == ["bad", "good"]
        assert m["metrics"]["valid"]["accuracy"] >= 0.5 and m["version"] and m["accepts"] == ["texts"]
        assert c.get("/v1/models/second").json()["name"] == "second"
        assert c.get("/v1/models/nope").status_code == 404


def test_predict_returns_what_ronghe_predict_prints(bundles):
    texts = ["a wonderful moving film", "boring and far too long", "", "日本語のテキスト ✓"]
    clf = load(bundles["sentiment"])
    expected = records(clf.classes_, clf.predict_proba(texts))
    app = app_for([bundles["sentiment"]])
    with TestClient(app) as c:
        r = c.post("/v1/models/sentiment/predict", json={"texts": texts})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["predictions"] == expected
        assert body["model"] == "sentiment" and body["task"] == "text-classification"
        assert body["version"] == c.get("/v1/models/sentiment").json()["version"]
        assert len(r.headers["x-request-id"]) == 16


def test_predict_fast_path_answers_as_the_route_and_leaves_it_every_error(bundles, monkeypatch):
    """POST .../predict skips FastAPI's routing for a body the schema accepts; the answer is the
    route's byte for byte, and a body it does not accept still gets the route's error."""
    texts = ["a wonderful moving film", "boring and far too long"]
    app = app_for([bundles["sentiment"]])
    svc = app.state.service
    taken = []
    fast = svc.predict_fast

    async def counting(scope, name, raw):
        response = await fast(scope, name, raw)
        taken.append(response is not None)
        return response

    svc.predict_fast = counting
    with TestClient(app) as c:
        url = "/v1/models/sentiment/predict"
        a = c.post(url, json={"texts": texts})
        b = c.post(url, content=json.dumps({"texts": texts}),
                   headers={"content-type": "application/json; charset=utf-8"})
        assert taken == [True, True] and a.content == b.content
        svc.predict_fast = None  # the route alone
        route = c.post(url, json={"texts": texts})
        assert route.status_code == 200 and route.content == a.content
        svc.predict_fast = counting
        taken.clear()
        bad = c.post(url, json={"texts": "not a list"})
        wrong_type = c.post(url, content=b"texts", headers={"content-type": "text/plain"})
        missing = c.post("/v1/models/nope/predict", json={"texts": texts})
        assert taken == [False, False, True]  # declined: a refused body, text/plain; taken: 404
        assert bad.status_code == 422 and err(bad) == "invalid_request"
        assert wrong_type.status_code == 422 and "application/json" in wrong_type.json()["error"]["message"]
        assert missing.status_code == 404 and err(missing) == "model_not_found"


def test_readyz_is_503_until_models_are_loaded(bundles, fake_task, tmp_path):
    cfg = config([bundles["sentiment"]])
    app = create_app(cfg)  # not loaded: the lifespan loads in the background
    assert app.state.service.registry.loaded is False

    async def scenario():
        async with aclient(app) as c:
            first = await c.get("/readyz")
            for _ in range(200):
                r = await c.get("/readyz")
                if r.status_code == 200:
                    break
                await asyncio.sleep(0.02)
            return first, r

    first, last = asyncio.run(scenario())
    assert first.status_code in (200, 503) and first.json()["status"] in ("ready", "loading")
    assert last.status_code == 200


@pytest.mark.parametrize("body, status, code", [
    (b"{not json", 422, "invalid_request"),
    (b'\xff\xfe{"texts": []}', 422, "invalid_request"),  # not UTF-8
    (b"[]", 422, "invalid_request"),
    (b'{"texts": "one string"}', 422, "invalid_request"),
    (b'{"texts": [1, 2]}', 422, "invalid_request"),
    (b'{"texts": []}', 422, "invalid_request"),
    (b"{}", 422, "invalid_request"),
    (b'{"texts": ["a"], "tokens": [["a"]]}', 422, "invalid_request"),
    (b'{"texts": ["a"], "extra": 1}', 422, "invalid_request"),
    (b'{"texts": ["a", "b", "c", "d", "e"]}', 422, "invalid_request"),  # > 4 texts
    (b'{"texts": ["' + b"x" * 51 + b'"]}', 422, "invalid_request"),  # > 50 characters
    (b'{"texts": ["\\ud800"]}', 422, "invalid_request"),  # unpaired surrogate
    (b'{"tokens": [["a", "b"]]}', 422, "wrong_input_kind"),  # text model, token input
    (b'{"texts": ["' + b"y" * 2000 + b'", "' + b"y" * 2000 + b'"]}', 413, "body_too_large"),
])
def test_request_errors_are_clear_json(bundles, body, status, code):
    app = app_for([bundles["sentiment"]], max_texts_per_request=4, max_chars_per_text=50,
                  max_body_bytes=2048)
    with TestClient(app) as c:
        r = c.post("/v1/models/sentiment/predict", content=body,
                   headers={"content-type": "application/json"})
        assert r.status_code == status, r.text
        assert err(r) == code
        assert r.json()["error"]["message"]
        assert r.headers["content-type"].startswith("application/json")


def test_error_messages_name_the_limit(bundles):
    app = app_for([bundles["sentiment"]], max_texts_per_request=4, max_chars_per_text=50,
                  max_body_bytes=2048)
    with TestClient(app) as c:
        many = c.post("/v1/models/sentiment/predict", json={"texts": ["a"] * 5}).json()["error"]
        assert "at most 4" in many["message"] and many["details"][0]["loc"] == ["texts"]
        long = c.post("/v1/models/sentiment/predict", json={"texts": ["ok", "x" * 51]}).json()
        assert "texts[1]" in long["error"]["message"] and "50" in long["error"]["message"]

        def chunks():  # no Content-Length: the limit is enforced while reading
            for _ in range(10):
                yield b"z" * 512

        r = c.post("/v1/models/sentiment/predict", content=chunks(),
                   headers={"content-type": "application/json"})
        assert r.status_code == 413 and "2048" in r.json()["error"]["message"]
        r = c.post("/v1/models/unknown/predict", json={"texts": ["a"]})
        assert r.status_code == 404 and err(r) == "model_not_found"
        assert c.get("/no/such/path").status_code == 404
        assert err(c.get("/v1/models/sentiment/predict")) == "method_not_allowed"


def test_request_timeout_is_504(fake_task, tmp_path):
    slow = fake_bundle(tmp_path / "slow", delay=0.5)
    app = app_for([slow], request_timeout_s=0.1)
    with TestClient(app) as c:
        t = time.perf_counter()
        r = c.post("/v1/models/slow/predict", json={"texts": ["x"]})
        assert r.status_code == 504 and err(r) == "timeout"
        assert time.perf_counter() - t < 0.45


def test_full_queue_answers_503_with_retry_after(fake_task, tmp_path):
    slow = fake_bundle(tmp_path / "slow", delay=0.3)
    app = app_for([slow], max_batch_size=1, max_queue=2, max_texts_per_request=2)

    async def scenario():
        async with aclient(app) as c:
            return await asyncio.gather(*(c.post("/v1/models/slow/predict", json={"texts": [str(i)]})
                                          for i in range(6)))

    responses = asyncio.run(scenario())
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) >= 2 and codes.count(503) >= 1 and set(codes) <= {200, 503}
    for r in responses:
        if r.status_code == 503:
            assert err(r) == "queue_full" and r.headers["retry-after"] == "1"
    assert max(fake_task[0].batches) == 1


def test_failing_model_is_a_json_500_for_that_request_only(fake_task, tmp_path):
    app = app_for([fake_bundle(tmp_path / "f")], max_wait_ms=50)

    async def scenario():
        async with aclient(app) as c:
            return await asyncio.gather(*(c.post("/v1/models/f/predict", json={"texts": [t]})
                                          for t in ["ok1", "boom", "ok2", "ok3"]))

    responses = asyncio.run(scenario())
    by_text = {t: r for t, r in zip(["ok1", "boom", "ok2", "ok3"], responses)}
    assert by_text["boom"].status_code == 500 and err(by_text["boom"]) == "internal_error"
    assert all(by_text[t].status_code == 200 for t in ("ok1", "ok2", "ok3"))


def test_token_input_goes_to_models_that_take_it(fake_task, tmp_path):
    app = app_for([fake_bundle(tmp_path / "ner", accepts=["tokens"])])
    with TestClient(app) as c:
        r = c.post("/v1/models/ner/predict", json={"tokens": [["John", "lives"], ["in", "Paris"]]})
        assert r.status_code == 200 and [p["echo"] for p in r.json()["predictions"]] == [
            ["John", "lives"], ["in", "Paris"]]
        r = c.post("/v1/models/ner/predict", json={"texts": ["John lives in Paris"]})
        assert r.status_code == 422 and err(r) == "wrong_input_kind"
        assert c.get("/v1/models/ner").json()["accepts"] == ["tokens"]


def test_ner_bundle_takes_texts_and_tokens(tmp_path):
    ner = pytest.importorskip("ronghe.ner")
    X = [["John", "lives", "in", "Paris"], ["Mary", "works", "at", "Google"],
         ["Paris", "is", "nice"], ["Bob", "visited", "London"]] * 4
    y = [["B-PER", "O", "O", "B-LOC"], ["B-PER", "O", "O", "B-ORG"], ["B-LOC", "O", "O"],
         ["B-PER", "O", "B-LOC"]] * 4
    path = ner.TokenClassifier(strategy="classic").fit(X, y).save(tmp_path / "ner")
    expected = ner.load(path).predict_records(["John visited Paris"])
    app = app_for([path], max_wait_ms=50)

    async def scenario():
        async with aclient(app) as c:
            return await asyncio.gather(
                c.post("/v1/models/ner/predict", json={"texts": ["John visited Paris"]}),
                c.post("/v1/models/ner/predict", json={"tokens": [["Mary", "in", "London"]]}))

    by_text, by_tokens = asyncio.run(scenario())
    assert by_text.status_code == 200 and by_text.json()["predictions"] == expected
    assert by_text.json()["task"] == "token-classification"
    assert by_tokens.status_code == 200
    assert by_tokens.json()["predictions"][0]["text"] == "Mary in London"
    model = ner.TASK.serving_model(ner.load(path))  # a batch mixing both kinds
    mixed = model.predict(["John visited Paris", ["Mary", "in", "London"], "Bob lives in Paris"])
    assert mixed[0] == expected[0] and mixed[1] == by_tokens.json()["predictions"][0]
    assert mixed[2]["text"] == "Bob lives in Paris"


def test_unknown_task_is_refused_naming_the_served_tasks(tmp_path):
    reg = Registry.from_sources([fake_bundle(tmp_path / "odd", task="speech-recognition")])
    with pytest.raises(Exception, match="speech-recognition.*text-classification"):
        reg.load_all()


def test_a_micro_batch_reaches_the_model_whole_and_answers_keep_their_order():
    """The serving model passes the batch on in one call: grouping by length is the strategies'
    job (``batching.length_grouped_batches``, tested in tests/test_batching.py)."""
    import numpy as np

    class Estimator:  # what text classification's ServingModel needs from a TextClassifier
        classes_ = np.array(["neg", "pos"], dtype=object)
        calls: list[list[str]] = []

        def predict_proba(self, texts):
            self.calls.append(list(texts))
            p = np.array([min(len(t), 50) / 50 for t in texts])
            return np.stack([1 - p, p], axis=1)

    est = Estimator()
    model = text_classification.TASK.serving_model(est)
    texts = ["x" * n for n in (40, 3, 17, 50, 1, 9, 33, 2, 25, 12, 8, 44)]
    got = model.predict(texts)
    assert est.calls == [texts]
    assert [r["score"] for r in got] == [round(max(min(n, 50) / 50, 1 - min(n, 50) / 50), 6)
                                         for n in (40, 3, 17, 50, 1, 9, 33, 2, 25, 12, 8, 44)]


# -- micro-batching -----------------------------------------------------------------------------

def test_batches_never_exceed_max_batch_size():
    model = FakeModel(delay=0.004)

    async def scenario():
        b = Batcher("m", max_batch_size=8, max_wait_ms=20, max_queue=10_000)
        rng = random.Random(0)
        sizes = [rng.randint(1, 20) for _ in range(80)]  # some bigger than the bound
        reqs = [[f"{i}-{j}" for j in range(n)] for i, n in enumerate(sizes)]
        outs = await asyncio.gather(*(b.submit(model, r) for r in reqs))
        await b.close()
        return reqs, outs

    reqs, outs = asyncio.run(scenario())
    assert max(model.batches) <= 8
    assert sum(model.batches) == sum(len(r) for r in reqs)
    assert max(model.batches) == 8
    # batching did happen: batches that hold items of several requests
    assert sum(len({x.split("-")[0] for x in batch}) > 1 for batch in model.seen) >= 10
    for req, (results, batch_size) in zip(reqs, outs):
        assert [x["echo"] for x in results] == req  # each request gets its own results, in order
        assert 1 <= batch_size <= 8


def test_batcher_bounded_queue_and_drain_on_close():
    model = FakeModel(delay=0.05)

    async def scenario():
        b = Batcher("m", max_batch_size=2, max_wait_ms=0, max_queue=4)
        first = [asyncio.create_task(b.submit(model, [f"{i}"])) for i in range(3)]
        await asyncio.sleep(0.01)  # one batch runs, the rest waits in the queue
        with pytest.raises(QueueFull):
            await b.submit(model, ["a", "b", "c", "d"])
        closing = asyncio.create_task(b.close(timeout=5))
        await asyncio.sleep(0)
        with pytest.raises(Closed):
            await b.submit(model, ["late"])
        done = await asyncio.gather(*first)  # queued work is finished, not dropped
        await closing
        return done

    done = asyncio.run(scenario())
    assert [r[0][0]["echo"] for r in done] == ["0", "1", "2"]


def test_batch_holds_one_model_version_only():
    old, new = FakeModel(delay=0.01), FakeModel(delay=0.01)

    async def scenario():
        b = Batcher("m", max_batch_size=32, max_wait_ms=30, max_queue=100)
        models = [old, new, old, new, new, old]
        outs = await asyncio.gather(*(b.submit(m, [f"{i}"]) for i, m in enumerate(models)))
        await b.close()
        return outs

    asyncio.run(scenario())
    assert sum(old.batches) == 3 and sum(new.batches) == 3  # nobody answered by the other model


def test_arrival_gap_decides_whether_to_wait():
    model = FakeModel()

    async def scenario():
        b = Batcher("m", max_batch_size=8, max_wait_ms=200, max_queue=100)
        t = time.perf_counter()
        await b.submit(model, ["lone"])  # first request: no reason to wait
        lone = time.perf_counter() - t
        await asyncio.sleep(0.3)
        await b.submit(model, ["after a pause"])  # gap 0.3 s > 0.2 s: no wait either
        paused = time.perf_counter() - t - 0.3
        await b.close()
        return lone, paused

    lone, paused = asyncio.run(scenario())
    assert lone < 0.1 and paused < 0.15


# -- versions, reload and the watcher -----------------------------------------------------------

def _add_version(src: Path, versions: Path, name: str) -> Path:
    """Copy a bundle in as a new version the way a deploy should: hidden copy, then rename."""
    tmp = versions / f".{name}.incoming"
    shutil.copytree(src, tmp)
    os.replace(tmp, versions / name)
    return versions / name


def test_reload_under_concurrent_requests_has_zero_failures(bundles, tmp_path):
    versions = tmp_path / "m"
    versions.mkdir()
    _add_version(bundles["sentiment"], versions, "v1")
    app = app_for([versions])
    labels = {"v1": {"pos", "neg"}, "v2": {"good", "bad"}}

    async def scenario():
        results = []
        stop = asyncio.Event()
        async with aclient(app) as c:
            async def client(k):
                i = 0
                while not stop.is_set():
                    t0 = time.monotonic()
                    r = await c.post("/v1/models/m/predict",
                                     json={"texts": [f"a wonderful film {k} {i}", "dull mess"]})
                    results.append((t0, r))
                    i += 1

            tasks = [asyncio.create_task(client(k)) for k in range(12)]
            await asyncio.sleep(0.3)
            _add_version(bundles["other"], versions, "v2")
            reload = await c.post("/v1/models/m/reload")
            switched_at = time.monotonic()
            await asyncio.sleep(0.3)
            stop.set()
            await asyncio.gather(*tasks)
            listed = (await c.get("/v1/models/m")).json()
        return results, reload, switched_at, listed

    results, reload, switched_at, listed = asyncio.run(scenario())
    assert reload.status_code == 200 and reload.json()["version"] == "v2"
    assert reload.json()["previous_version"] == "v1" and reload.json()["changed"] is True
    assert len(results) > 50
    assert [r.status_code for _, r in results].count(200) == len(results)  # zero failures
    seen = {r.json()["version"] for _, r in results}
    assert seen == {"v1", "v2"}
    for t0, r in results:
        body = r.json()
        assert {p["label"] for p in body["predictions"]} <= labels[body["version"]]
        assert set(body["predictions"][0]["probabilities"]) == labels[body["version"]]
        if t0 > switched_at:
            assert body["version"] == "v2"
    assert listed["version"] == "v2" and listed["versions"] == ["v1", "v2"]


def test_watcher_switches_on_new_version_and_keeps_serving_on_a_broken_one(bundles, tmp_path):
    versions = tmp_path / "m"
    versions.mkdir()
    _add_version(bundles["sentiment"], versions, "v1")
    app = app_for([versions], watch_interval_s=0.05)

    def wait_for(c, pred, timeout=10.0):
        end = time.time() + timeout
        while time.time() < end:
            info = c.get("/v1/models/m").json()
            if pred(info):
                return info
            time.sleep(0.05)
        raise AssertionError(f"condition not reached: {info}")

    with TestClient(app) as c:
        _add_version(bundles["other"], versions, "v2")
        wait_for(c, lambda i: i["version"] == "v2")
        broken = tmp_path / "broken"
        shutil.copytree(bundles["sentiment"], broken)
        with open(broken / "arrays.safetensors", "ab") as fh:
            fh.write(b"tampered")
        _add_version(broken, versions, "v3")
        info = wait_for(c, lambda i: i["reload_error"] is not None)
        assert info["version"] == "v2" and "v3" in info["reload_error"]
        r = c.post("/v1/models/m/reload")
        assert r.status_code == 409 and err(r) == "reload_failed" and "v2" in r.json()["error"]["message"]
        ok = c.post("/v1/models/m/predict", json={"texts": ["fine"]})
        assert ok.status_code == 200 and ok.json()["version"] == "v2"
        metrics = c.get("/metrics").text
        assert 'ronghe_model_reloads_total{model="m",outcome="failed"}' in metrics


def test_newest_version_by_name_or_mtime(bundles, tmp_path):
    versions = tmp_path / "m"
    versions.mkdir()
    for name in ("v10", "v9", "v2"):
        _add_version(bundles["sentiment"], versions, name)
    (versions / ".v99.tmp-abc").mkdir()  # half-written: ignored
    spec = parse_specs([versions])[0]
    assert spec.versioned and [c.label for c in candidates(spec)] == ["v2", "v9", "v10"]
    now = time.time()
    for i, name in enumerate(("v10", "v2", "v9")):  # v9 written last
        os.utime(versions / name / "ronghe.json", (now + i, now + i))
    assert [c.label for c in candidates(spec, "mtime")][-1] == "v9"


def test_model_sources_are_checked(bundles, tmp_path):
    assert parse_specs([f"named={bundles['sentiment']}"])[0].name == "named"
    with pytest.raises(ConfigError, match="not found"):
        parse_specs([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="neither a bundle"):
        parse_specs([tmp_path / "empty"])
    with pytest.raises(ConfigError, match="served as 'sentiment'"):
        parse_specs([bundles["sentiment"], bundles["sentiment"]])
    with pytest.raises(ConfigError, match="max_texts_per_request"):
        build({"models": ["x"], "max_texts_per_request": 10, "max_queue": 5})
    with pytest.raises(ConfigError, match="no_such_option"):
        build({"models": ["x"], "no_such_option": 1})


# -- auth ---------------------------------------------------------------------------------------

@pytest.fixture
def keys_file(tmp_path):
    f = tmp_path / "keys.yaml"
    f.write_text(textwrap.dedent(f"""\
        ops:
          key: "{KEY_ALL}"
        sentiment-app:
          sha256: "{hashlib.sha256(KEY_SENT.encode()).hexdigest()}"
          models: [sentiment]
        slow-app:
          key: "{KEY_SLOW}"
          rate_per_minute: 2
        """))
    f.chmod(0o600)
    return f


def test_auth_closes_everything_but_health(bundles, keys_file):
    cfg = build_config([bundles["sentiment"], bundles["other"]], api_keys=keys_file,
                       env={}, watch_interval_s=0, request_log=None)
    assert KEY_ALL not in cfg.model_dump_json()  # only digests are kept
    reg = Registry.from_sources(cfg.models)
    reg.load_all()
    app = create_app(cfg, reg)
    all_ = {"Authorization": f"Bearer {KEY_ALL}"}
    sent = {"X-API-Key": KEY_SENT}
    body = {"texts": ["great"]}
    with TestClient(app) as c:
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
        for method, path in [("GET", "/v1/models"), ("GET", "/metrics"), ("GET", "/openapi.json"),
                             ("POST", "/v1/models/sentiment/predict"),
                             ("POST", "/v1/models/sentiment/reload")]:
            r = c.request(method, path, json=body if method == "POST" else None)
            assert r.status_code == 401 and err(r) == "unauthorized", path
            assert r.headers["www-authenticate"] == "Bearer"
        r = c.post("/v1/models/sentiment/predict", json=body, headers={"Authorization": "Bearer wrong-key-0123456789"})
        assert r.status_code == 401
        # unauthenticated requests are refused before the body is even parsed
        assert c.post("/v1/models/sentiment/predict", content=b"{bad").status_code == 401
        assert c.post("/v1/models/sentiment/predict", json=body, headers=all_).status_code == 200
        assert c.post("/v1/models/other/predict", json=body, headers=all_).status_code == 200
        assert c.post("/v1/models/sentiment/predict", json=body, headers=sent).status_code == 200
        r = c.post("/v1/models/other/predict", json=body, headers=sent)
        assert r.status_code == 403 and err(r) == "forbidden"
        r = c.post("/v1/models/unknown/predict", json=body, headers=sent)
        assert r.status_code == 403  # a restricted key learns nothing about other names
        assert [m["name"] for m in c.get("/v1/models", headers=sent).json()["models"]] == ["sentiment"]
        assert c.get("/metrics", headers=all_).status_code == 200
        schema = c.get("/openapi.json", headers=all_).json()
        assert {"HTTPBearer", "APIKeyHeader"} <= set(schema["components"]["securitySchemes"])
        assert c.get("/docs", headers=all_).status_code == 404  # no browser page with keys on


def test_rate_limit_answers_429_with_retry_after(bundles, keys_file):
    cfg = build_config([bundles["sentiment"]], api_keys=keys_file, env={}, watch_interval_s=0,
                       request_log=None)
    reg = Registry.from_sources(cfg.models)
    reg.load_all()
    app = create_app(cfg, reg)
    h = {"X-API-Key": KEY_SLOW}
    with TestClient(app) as c:
        codes = [c.post("/v1/models/sentiment/predict", json={"texts": ["x"]}, headers=h).status_code
                 for _ in range(3)]
        assert codes == [200, 200, 429]
        r = c.get("/v1/models", headers=h)
        assert r.status_code == 429 and err(r) == "rate_limited" and 1 <= int(r.headers["retry-after"]) <= 30
        other = c.get("/v1/models", headers={"X-API-Key": KEY_ALL})
        assert other.status_code == 200  # the limit is per key


def test_keys_are_hashed_and_compared_against_every_entry(monkeypatch, keys_file):
    keys = auth.load_keys(keys_file, env={})
    assert [k.name for k in keys] == ["ops", "sentiment-app", "slow-app"]
    ring = auth.Keyring(keys)
    assert KEY_ALL not in repr(ring.__dict__) and KEY_ALL not in repr(keys)
    calls = []
    real = auth.hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    assert ring.authenticate(KEY_ALL).name == "ops"  # the first entry matches...
    assert len(calls) == 3  # ...and still every stored digest is compared (no early exit)
    assert ring.authenticate("not a key at all") is None and ring.authenticate(None) is None


def test_keys_from_environment_and_bad_key_files(tmp_path):
    keys = auth.load_keys(None, env={auth.ENV_VAR: f"{KEY_ALL},{KEY_SENT}"})
    assert [k.name for k in keys] == ["key1", "key2"] and all(k.models == "*" for k in keys)
    keys = auth.load_keys(None, env={auth.ENV_VAR: json.dumps({"svc": {"key": KEY_ALL,
                                                                         "models": "sentiment"}})})
    assert keys[0].models == ["sentiment"] and keys[0].sha256 == hashlib.sha256(KEY_ALL.encode()).hexdigest()
    bad = tmp_path / "bad.json"
    for content, match in [({"a": {"key": "short"}}, "shorter than 16"),
                           ({"a": {"models": "*"}}, "exactly one of"),
                           ({"a": {"key": KEY_ALL, "admin": True}}, "unknown field"),
                           ({}, "non-empty mapping")]:
        bad.write_text(json.dumps(content))
        with pytest.raises(ConfigError, match=match):
            auth.load_keys(bad, env={})
    with pytest.raises(ConfigError, match="defined twice|two names"):
        auth.load_keys(None, env={auth.ENV_VAR: f"{KEY_ALL},{KEY_ALL}"})


def test_refuses_public_address_without_keys(bundles, keys_file):
    for host in ("127.0.0.1", "127.8.9.1", "localhost", "::1", "[::1]"):
        assert is_loopback(host), host
        check_bind(host, keys_configured=False, insecure=False)
    for host in ("0.0.0.0", "::", "10.1.2.3", "192.168.1.10"):
        assert not is_loopback(host)
        with pytest.raises(ConfigError, match="without API keys"):
            check_bind(host, keys_configured=False, insecure=False)
        check_bind(host, keys_configured=True, insecure=False)
        check_bind(host, keys_configured=False, insecure=True)
    with pytest.raises(ConfigError, match="--insecure"):
        build_config([bundles["sentiment"]], host="0.0.0.0", env={})
    assert build_config([bundles["sentiment"]], host="0.0.0.0", api_keys=keys_file, env={}).auth_enabled
    assert build_config([bundles["sentiment"]], host="0.0.0.0", insecure=True, env={}).insecure


# -- log, masking, metrics, drain, schema -------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("write to jane.doe+news@example.co.uk today", "write to [EMAIL] today"),
    ("call +1 (555) 123-4567 or 555-123-4567", "call [PHONE] or [PHONE]"),
    ("手机 13800138000", "手机 [PHONE]"),
    ("tel +44 20 7946 0958", "tel [PHONE]"),
    ("card 4111 1111 1111 1111 and 5500-0000-0000-0004", "card [CARD] and [CARD]"),
    ("ssn 123-45-6789", "ssn [ID]"),
    ("身份证 11010519491231002X", "身份证 [ID]"),
    ("on 2024-01-15 we paid 3.14159 for 12 items, version 1.2.3, years 1999-2005",
     "on 2024-01-15 we paid 3.14159 for 12 items, version 1.2.3, years 1999-2005"),
    ("a great film", "a great film"),
])
def test_pii_masking(text, expected):
    assert mask(text) == expected


def test_mask_is_linear_on_hostile_input():
    t = time.perf_counter()
    for s in ("1" * 10000, "a." * 5000 + "@", "+1" * 5000, "1-" * 5000):
        mask(s)
    assert time.perf_counter() - t < 1.0


def test_request_log_is_json_masked_and_never_holds_keys(bundles, keys_file):
    sink = io.StringIO()
    cfg = build_config([bundles["sentiment"]], api_keys=keys_file, env={}, watch_interval_s=0,
                       log_inputs=True)
    reg = Registry.from_sources(cfg.models)
    reg.load_all()
    app = create_app(cfg, reg, log_sink=sink)
    with TestClient(app) as c:
        ok = c.post("/v1/models/sentiment/predict", headers={"Authorization": f"Bearer {KEY_ALL}"},
                    json={"texts": ["mail me: a.b@example.com", "card 4111111111111111"]})
        assert ok.status_code == 200
        c.post("/v1/models/sentiment/predict", headers={"X-API-Key": "wrong-" + KEY_SENT},
               json={"texts": ["x"]})
        app.state.service.request_log.flush()
    text = sink.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert KEY_ALL not in text and KEY_SENT not in text and "a.b@example.com" not in text
    pred = next(x for x in lines if x["status"] == 200)
    assert pred["inputs"] == ["mail me: [EMAIL]", "card [CARD]"]
    assert pred["model"] == "sentiment" and pred["client"] == "ops" and pred["batch_size"] == 2
    assert pred["version"] and pred["latency_ms"] > 0 and pred["time"].endswith("+00:00")
    denied = next(x for x in lines if x["status"] == 401)
    assert denied["client"] is None and denied["error"] == "unauthorized"

    sink2 = io.StringIO()
    app2 = app_for([bundles["sentiment"]], log_sink=sink2)  # inputs not asked for
    with TestClient(app2) as c:
        c.post("/v1/models/sentiment/predict", json={"texts": ["secret text"]})
        app2.state.service.request_log.flush()
    assert "secret text" not in sink2.getvalue() and '"n_inputs": 1' in sink2.getvalue()


def test_metrics_are_per_app_and_count_what_happened(bundles):
    app, other = app_for([bundles["sentiment"]]), app_for([bundles["sentiment"]])
    with TestClient(app) as c, TestClient(other) as c2:
        for _ in range(3):
            c.post("/v1/models/sentiment/predict", json={"texts": ["a", "b"]})
        c.post("/v1/models/nope/predict", json={"texts": ["a"]})
        m = c.get("/metrics")
        assert m.headers["content-type"].startswith("text/plain")
        text = m.text
        m2 = c2.get("/metrics").text
    assert 'ronghe_requests_total{endpoint="predict",model="sentiment",status="200"} 3.0' in text
    assert 'ronghe_requests_total{endpoint="predict",model="unknown",status="404"} 1.0' in text
    assert 'ronghe_batch_size_sum{model="sentiment"} 6.0' in text
    assert 'ronghe_queue_depth{model="sentiment"} 0.0' in text
    assert 'ronghe_request_duration_seconds_count{endpoint="predict",model="sentiment"} 3.0' in text
    assert "ronghe_model_info{" in text and "ronghe_ready 1.0" in text
    assert 'status="200"} 3.0' not in m2  # another app's registry is separate


def test_drain_refuses_new_requests_but_health_stays_up(bundles):
    app = app_for([bundles["sentiment"]])
    with TestClient(app) as c:
        app.state.service.begin_drain()
        r = c.post("/v1/models/sentiment/predict", json={"texts": ["x"]})
        assert r.status_code == 503 and err(r) == "shutting_down" and r.headers["retry-after"]
        assert c.get("/readyz").status_code == 503 and c.get("/readyz").json()["status"] == "draining"
        assert c.get("/healthz").status_code == 200


def test_openapi_schema_states_limits_and_errors(bundles):
    app = app_for([bundles["sentiment"]], max_texts_per_request=7, max_chars_per_text=99)
    with TestClient(app) as c:
        schema = c.get("/openapi.json").json()
        assert c.get("/docs").status_code == 200
    paths = schema["paths"]
    assert {"/healthz", "/readyz", "/metrics", "/v1/models", "/v1/models/{name}",
            "/v1/models/{name}/predict", "/v1/models/{name}/reload"} <= set(paths)
    post = paths["/v1/models/{name}/predict"]["post"]
    assert {"200", "404", "413", "422", "503", "504"} <= set(post["responses"])
    assert "401" not in post["responses"]  # no keys configured: no 401 documented
    req = schema["components"]["schemas"][post["requestBody"]["content"]["application/json"]
                                          ["schema"]["$ref"].rsplit("/", 1)[1]]
    assert req["properties"]["texts"]["maxItems"] == 7
    assert req["properties"]["texts"]["items"]["maxLength"] == 99
    assert req["additionalProperties"] is False
    assert "Retry-After" in post["responses"]["503"]["headers"]


# -- schemathesis: the published schema, fuzzed against a real server ---------------------------

try:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import (content_type_conformance, not_a_server_error,
                                     response_headers_conformance, response_schema_conformance,
                                     status_code_conformance)
    from schemathesis.generation import GenerationMode
except ImportError:  # pragma: no cover - the dev extra installs it
    schemathesis = None
needs_schemathesis = pytest.mark.skipif(schemathesis is None, reason="schemathesis not installed")

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance] if schemathesis else []


def _fuzz(base_url: str, headers: dict | None = None, examples: int = 25) -> int:
    """Every operation, valid and invalid inputs, random and real model names; returns the
    number of operations. Derandomised, so a run is repeatable."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", headers=headers or {})
    ops = [r.ok() for r in schema.get_all_operations()]
    for op in ops:
        pinned = [None, {"name": "sentiment"}] if "{name}" in op.path else [None]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for path_parameters in pinned:
                strategy = op.as_strategy(generation_mode=mode, path_parameters=path_parameters,
                                          headers=headers)

                @given(case=strategy)
                @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                          suppress_health_check=list(HealthCheck))
                def run(case):
                    case.call_and_validate(checks=CHECKS, headers=headers)

                try:
                    run()
                except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
                    assert mode is GenerationMode.NEGATIVE, op.label
    return len(ops)


@needs_schemathesis
def test_openapi_schema_fuzzed_gives_no_server_errors(bundles):
    """Schemathesis against uvicorn on 127.0.0.1: no 5xx, and every answer (status code, content
    type, body, documented headers) matches the published schema."""
    app = app_for([bundles["sentiment"]], max_texts_per_request=8, max_chars_per_text=200,
                  max_body_bytes=4096)
    with uvicorn_thread(app) as url:
        assert _fuzz(url) == 7
    sent: dict[tuple, float] = {}
    for metric in app.state.service.metrics.requests.collect():
        for s in metric.samples:
            if s.name == "ronghe_requests_total":
                key = (s.labels["endpoint"], s.labels["status"])
                sent[key] = sent.get(key, 0) + s.value
    # the fuzzer really talked to the server, with valid and invalid predictions
    assert sent.get(("predict", "200"), 0) >= 5 and sent.get(("predict", "422"), 0) >= 10


@needs_schemathesis
def test_openapi_schema_fuzzed_with_auth_on(bundles, keys_file):
    cfg = build_config([bundles["sentiment"], bundles["other"]], api_keys=keys_file, env={},
                       watch_interval_s=0, request_log=None, max_texts_per_request=8)
    reg = Registry.from_sources(cfg.models)
    reg.load_all()
    with uvicorn_thread(create_app(cfg, reg)) as url:
        assert _fuzz(url, headers={"X-API-Key": KEY_SENT}, examples=8) == 7


# -- a real process: serve, predict over TCP, graceful shutdown ----------------------------------

SERVER_SCRIPT = """
import json, sys, time
from pathlib import Path
from ronghe.serving import registry, server

class Slow:
    accepts = ("texts",)
    def warmup(self):
        pass
    def predict(self, xs):
        time.sleep(2.5)
        return [{"label": "a", "score": 1.0, "probabilities": {"a": 1.0}} for _ in xs]

registry.register_loader("test-fake", lambda path: Slow())
server.run(sys.argv[3:], port=int(sys.argv[1]), request_log=sys.argv[2], watch_interval_s=0,
           shutdown_timeout_s=10)
"""


def test_real_uvicorn_process_serves_and_shuts_down_gracefully(bundles, tmp_path):
    script = tmp_path / "serve_it.py"
    script.write_text(SERVER_SCRIPT)
    port = free_port()
    log = tmp_path / "requests.jsonl"
    slow = fake_bundle(tmp_path / "slow")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop(auth.ENV_VAR, None)
    proc = subprocess.Popen([sys.executable, str(script), str(port), str(log),
                             str(bundles["sentiment"]), str(slow)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.time() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < end, "server did not become ready"
            time.sleep(0.1)
        r = httpx.post(f"{base}/v1/models/sentiment/predict", json={"texts": ["a wonderful film"]})
        clf = load(bundles["sentiment"])
        assert r.status_code == 200
        assert r.json()["predictions"] == records(clf.classes_, clf.predict_proba(["a wonderful film"]))

        inflight = {}

        def slow_request():
            inflight["r"] = httpx.post(f"{base}/v1/models/slow/predict", json={"texts": ["x"]},
                                       timeout=20)

        t = threading.Thread(target=slow_request)
        t.start()
        time.sleep(0.5)  # the slow request is now being served
        proc.send_signal(signal.SIGTERM)
        refused_while_draining = False
        end = time.time() + 10
        while t.is_alive() and time.time() < end:  # new connections are refused...
            try:
                httpx.get(f"{base}/healthz", timeout=0.5)
            except httpx.ConnectError:
                refused_while_draining = t.is_alive()  # ...while the old request is still served
                break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        assert refused_while_draining
        t.join(20)
        assert inflight["r"].status_code == 200  # the in-flight request finished
        assert proc.wait(20) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert any(x["model"] == "slow" and x["status"] == 200 for x in lines)
    assert any(x["model"] == "sentiment" and x["status"] == 200 and x["batch_size"] == 1 for x in lines)


def test_worker_processes_build_the_app_from_the_environment(bundles, monkeypatch, keys_file):
    from ronghe.serving.server import CONFIG_ENV, app_from_env

    cfg = build_config([bundles["sentiment"]], api_keys=keys_file, env={}, workers=2,
                       watch_interval_s=0, request_log=None)
    monkeypatch.setenv(CONFIG_ENV, cfg.model_dump_json())
    assert KEY_ALL not in os.environ[CONFIG_ENV]
    app = app_from_env()
    threads = app.state.service.config.inference_threads
    assert threads == max(1, len(os.sched_getaffinity(0)) // 2)  # the 2 workers share the cores
    import torch

    monkeypatch.setattr(app.state.service.config, "inference_threads", torch.get_num_threads())
    with TestClient(app) as c:  # (this test process keeps its torch threads)
        for _ in range(200):  # a worker loads its models in the background
            if c.get("/readyz").status_code == 200:
                break
            time.sleep(0.02)
        r = c.post("/v1/models/sentiment/predict", json={"texts": ["x"]},
                   headers={"X-API-Key": KEY_ALL})
        assert r.status_code == 200


def test_module_entry_point_passes_every_option_to_run(monkeypatch, bundles):
    from ronghe.serving import __main__ as entry
    from ronghe.serving import server

    seen = {}
    real_run = server.run
    monkeypatch.setattr(server, "run", lambda models, **kw: seen.update(models=models, **kw))
    assert entry.main([str(bundles["sentiment"]), "--port", "9", "--max-wait-ms", "0",
                       "--watch-interval-s", "0", "--request-log", "off", "--log-inputs"]) == 0
    assert seen["models"] == [str(bundles["sentiment"])] and seen["port"] == 9
    assert seen["max_wait_ms"] == 0 and seen["watch_interval_s"] == 0  # zero is a value, not unset
    assert seen["request_log"] is None and seen["log_inputs"] is True
    monkeypatch.setattr(server, "run", real_run)
    assert entry.main(["/no/such/bundle"]) == 2  # user errors: exit code 2, as in the CLI
