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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def slow_clients_server(tmp_path, fake_task):
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


def test_request_log_off_is_accepted_everywhere(bundles):
    assert config([bundles["sentiment"]], request_log="off").request_log is None
    from ronghe.serving.server import build_config

    cfg = build_config([bundles["sentiment"]], env={}, request_log="off")
    assert cfg.request_log is None
