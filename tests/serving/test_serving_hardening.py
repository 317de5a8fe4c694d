"""The service against slow, hostile and careless clients: deadlines for request heads and bodies,
a bound on connections, the documented flags, masking, credentials, quiet readiness."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

pytest.importorskip("fastapi")

from ronghe.cli import app as cli  # noqa: E402
from ronghe.serving.server import make_server  # noqa: E402

from makers import free_port  # noqa: E402
from test_serving import (KEY_SENT, app_for, bundles, config, fake_bundle, fake_task,  # noqa: E402,F401
                          keys_file)

README = Path(__file__).parents[2] / "src" / "ronghe" / "serving" / "README.md"


@contextmanager
def real_server(cfg, app):
    """``make_server`` - the server ``ronghe serve`` runs - in a thread of this process."""
    server = make_server(cfg, app)
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    end = time.time() + 20
    while not server.started and time.time() < end:
        time.sleep(0.02)
    assert server.started
    try:
        yield cfg.port
    finally:
        server.should_exit = True
        t.join(15)


@pytest.fixture(params=["httptools", "h11"])
def slow_clients_server(request, tmp_path, fake_task, monkeypatch):
    """The same limits over both of uvicorn's HTTP parsers (httptools is the default when it
    imports; h11 the fallback)."""
    from ronghe.serving import protocol, server

    if request.param == "httptools":
        pytest.importorskip("httptools")
        assert protocol.protocol_class().endswith(":HeaderDeadlineFast")
    else:
        monkeypatch.setattr(server, "protocol_class", lambda: "ronghe.serving.protocol:HeaderDeadline")
    m = fake_bundle(tmp_path / "m")
    cfg = config([m], port=free_port(), header_timeout_s=1.0, body_timeout_s=1.0,
                 max_connections=4)
    with real_server(cfg, app_for([m], header_timeout_s=1.0, body_timeout_s=1.0,
                                  max_connections=4)) as port:
        yield port


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    sock.settimeout(seconds)
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return True, data
            data += chunk
    except (socket.timeout, TimeoutError):
        return False, data
    except ConnectionResetError:
        return True, data


def test_slow_request_heads_are_cut_off(slow_clients_server):
    s = socket.create_connection(("127.0.0.1", slow_clients_server))
    s.sendall(b"POST /v1/models/m/predict HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
    start = time.time()
    closed, _ = closed_within(s, 5)
    assert closed and time.time() - start < 4


def test_slow_bodies_get_408_and_the_connection_closes(slow_clients_server):
    s = socket.create_connection(("127.0.0.1", slow_clients_server))
    s.sendall(b"POST /v1/models/m/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
              b"\r\nContent-Length: 100\r\n\r\n{\"texts\":")  # 9 of 100 bytes
    start = time.time()
    closed, data = closed_within(s, 5)
    assert closed and time.time() - start < 4
    assert data.startswith(b"HTTP/1.1 408") and b"request_timeout" in data


def test_the_number_of_connections_is_bounded(slow_clients_server):
    idle = [socket.create_connection(("127.0.0.1", slow_clients_server)) for _ in range(4)]
    try:
        r = httpx.post(f"http://127.0.0.1:{slow_clients_server}/v1/models/m/predict",
                       json={"texts": ["x"]}, timeout=5)
        assert r.status_code == 503
    finally:
        for s in idle:
            s.close()
    time.sleep(0.2)
    r = httpx.post(f"http://127.0.0.1:{slow_clients_server}/v1/models/m/predict",
                   json={"texts": ["x"]}, timeout=5)
    assert r.status_code == 200


def test_every_flag_the_serving_readme_names_exists():
    lines = [ln for ln in README.read_text().splitlines() if "ronghe train" not in ln]
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", "\n".join(lines)))
    assert {"--request-log", "--inference-threads", "--api-keys"} <= flags
    cli_help = CliRunner().invoke(cli, ["serve", "--help"], env={"COLUMNS": "300"}).output
    module_help = subprocess.run([sys.executable, "-m", "ronghe.serving", "--help"],
                                 capture_output=True, text=True).stdout
    for flag in sorted(flags):
        assert flag in cli_help, f"ronghe serve has no {flag}"
        assert flag in module_help, f"python -m ronghe.serving has no {flag}"


def test_module_entry_point_takes_options_too(monkeypatch, bundles):
    from ronghe.serving import __main__ as entry
    from ronghe.serving import server

    seen = {}
    monkeypatch.setattr(server, "run", lambda models, **kw: seen.update(kw))
    assert entry.main([str(bundles["sentiment"]), "--option", "header_timeout_s=2.5",
                       "--max-connections", "7"]) == 0
    assert seen["header_timeout_s"] == 2.5 and seen["max_connections"] == 7


def test_request_log_off_is_accepted_everywhere(bundles):
    assert config([bundles["sentiment"]], request_log="off").request_log is None
    from ronghe.serving.server import build_config

    cfg = build_config([bundles["sentiment"]], env={}, request_log="off")
    assert cfg.request_log is None


# -- credentials, readiness, messages ------------------------------------------------------------

def test_conflicting_credentials_are_refused(bundles, keys_file):
    from fastapi.testclient import TestClient

    from test_serving import KEY_ALL

    app = app_for([bundles["sentiment"]], api_keys=_keys(keys_file))
    with TestClient(app) as c:
        body = {"texts": ["fine"]}
        assert c.post("/v1/models/sentiment/predict", json=body,
                      headers={"X-API-Key": KEY_ALL}).status_code == 200
        both_same = {"Authorization": f"Bearer {KEY_ALL}", "X-API-Key": KEY_ALL}
        assert c.post("/v1/models/sentiment/predict", json=body, headers=both_same).status_code == 200
        for wrong in ({"Authorization": f"Bearer {KEY_ALL}", "X-API-Key": "wrong-key"},
                      {"Authorization": "Bearer wrong-key", "X-API-Key": KEY_ALL}):
            r = c.post("/v1/models/sentiment/predict", json=body, headers=wrong)
            assert r.status_code == 401 and "conflicting credentials" in r.json()["error"]["message"]


def _keys(keys_file):
    from ronghe.serving.auth import load_keys

    return load_keys(keys_file, env={})


def test_readiness_without_a_key_says_only_ready_or_not(bundles, keys_file):
    from fastapi.testclient import TestClient

    from test_serving import KEY_ALL

    app = app_for([bundles["sentiment"]], api_keys=_keys(keys_file))
    with TestClient(app) as c:
        anon = c.get("/readyz")
        assert anon.status_code == 200 and anon.json() == {"status": "ready", "models": {},
                                                           "error": None}
        keyed = c.get("/readyz", headers={"X-API-Key": KEY_ALL}).json()
        assert list(keyed["models"]) == ["sentiment"]
    with TestClient(app_for([bundles["sentiment"]])) as c:  # no keys: an open service tells all
        assert list(c.get("/readyz").json()["models"]) == ["sentiment"]


def test_client_messages_hold_no_server_paths():
    from ronghe.serving.app import public

    msg = ("bundle /srv/models/sentiment/v3: arrays.safetensors does not match; see "
           "'/home/ml/.cache/x/model.onnx' and ./rel/path/file.json")
    out = public(msg)
    assert "/srv" not in out and "/home" not in out and "rel/path" not in out
    assert "v3" in out and "model.onnx" in out and "file.json" in out


def test_reload_failure_409_names_the_version_not_the_path(bundles, tmp_path):
    import shutil

    from fastapi.testclient import TestClient

    versions = tmp_path / "models" / "m"
    shutil.copytree(bundles["sentiment"], versions / "v1")
    app = app_for([versions])
    with TestClient(app) as c:
        broken = versions / "v2"
        shutil.copytree(bundles["sentiment"], broken)
        with open(broken / "arrays.safetensors", "ab") as fh:
            fh.write(b"tampered")
        r = c.post("/v1/models/m/reload")
        assert r.status_code == 409
        message = r.json()["error"]["message"]
        assert "v2" in message and str(tmp_path) not in message
        assert str(tmp_path) not in (c.get("/v1/models/m").json()["reload_error"] or "")


def test_json_sent_as_text_plain_says_what_to_send(bundles):
    from fastapi.testclient import TestClient

    with TestClient(app_for([bundles["sentiment"]])) as c:
        r = c.post("/v1/models/sentiment/predict", content=b'{"texts": ["fine"]}',
                   headers={"Content-Type": "text/plain"})
        assert r.status_code == 422
        assert "Content-Type: application/json" in r.json()["error"]["message"]


def test_schema_offers_tokens_only_where_a_model_takes_them(bundles, tmp_path):
    from fastapi.testclient import TestClient

    ner = Path(__file__).parents[1] / "data" / "bundles" / "legacy" / "ner-classic"

    def props(app):
        with TestClient(app) as c:
            schema = c.get("/openapi.json").json()
        return set(schema["components"]["schemas"]["PredictRequest"]["properties"])

    assert props(app_for([bundles["sentiment"]])) == {"texts"}
    assert props(app_for([bundles["sentiment"], ner])) == {"texts", "tokens"}


@pytest.mark.parametrize("text,hidden", [
    ("pay to DE89 3704 0044 0532 0130 00 today", "3704 0044"),
    ("IBAN GB29NWBK60161331926819 please", "NWBK60161331926819"),
    ("my passport number: X1234567, expires soon", "X1234567"),
    ("login with password=hunter2!! now", "hunter2"),
    ("the key sk-proj-abcdefghijklmnopqrstuv is leaked", "abcdefghijklmnop"),
    ("token: ghp_abcdefghijklmnopqrstuvwxyz012345", "ghp_abcdef"),
])
def test_request_log_masks_more_personal_data_and_secrets(text, hidden):
    from ronghe.serving.logging import mask

    out = mask(text)
    assert hidden not in out and "[" in out
