"""The dashboard in a real browser (Debian's chromium driven by playwright): served by
`ronghe monitor run --serve` in its own process, the page asks for the API key, draws a chart
per key with data, and shows the alert (with its evidence) after a spike is replayed."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from monitor_material import stream
from makers import free_port

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
KEY = "page-test-key-0123456789"
T0 = 1_699_999_980  # a whole minute: 60 s buckets line up
SHOTS = Path(os.environ.get("RONGHE_SCREENSHOTS",
                           Path(tempfile.gettempdir()) / "ronghe-monitor-screenshots"))

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="needs Debian's chromium (.ci/run installs it)")


@pytest.fixture
def server(bundles, tmp_path):
    port = free_port()
    (tmp_path / "keys.yaml").write_text(f"analyst:\n  key: {KEY}\n")
    (tmp_path / "monitor.yaml").write_text(
        f"db: m.sqlite\nmodels:\n  sentiment: {bundles['sentiment']}\n"
        f"  topic: {bundles['topic']}\nrules:\n  - {{key: topic, min_count: 60, window: 60}}\n"
        "bucket_s: 60\nserve:\n  enabled: true\n  port: " + str(port) + "\n  api_keys: keys.yaml\n"
        "  options: {request_log: 'off'}\n")
    p = subprocess.Popen([sys.executable, "-c", "from ronghe.cli import main; main()", "monitor",
                          "run", str(tmp_path / "monitor.yaml")], cwd=tmp_path,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"},
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert p.poll() is None, p.stderr.read().decode()
        time.sleep(0.2)
    yield url
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()


def send(url, items):
    r = httpx.post(url + "/v1/monitor/items", json={"items": items},
                   headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert r.status_code == 200, r.text


def test_dashboard_draws_charts_and_shows_a_replayed_spike(server):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    send(server, stream(600, start=T0, step=6.0))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: errors.append("external: " + r.url)
                if not r.url.startswith(server) else None)
        page.goto(server + "/monitor")
        page.wait_for_selector("#keyform:not([hidden])")  # 401: the page asks for a key
        page.fill("#apikey", KEY)
        page.click("#keyform button")
        page.wait_for_selector("body[data-loaded='1']")
        charts = page.locator("#charts svg.chart")
        assert charts.count() == 3
        bars = page.locator("#charts svg[data-key='topic=cards'] rect.vol")
        assert bars.count() == 60  # 600 items x 6 s in 60 s buckets: 60 buckets
        heights = [float(bars.nth(i).get_attribute("height")) for i in range(bars.count())]
        assert max(heights) > 0 and page.locator("#charts polyline.share").count() == 3
        assert "no alerts" in page.inner_text("#alerts")
        assert page.locator("#items tbody tr").count() == 30
        page.screenshot(path=str(SHOTS / "monitor-calm.png"), full_page=True)

        send(server, stream(240, seed=8, neg={"app": 0.85}, start=T0 + 3600, step=6.0))
        page.wait_for_selector(".alert-card", timeout=15_000)  # the page refreshes by itself
        card = page.inner_text(".alert-card")
        assert "topic=app" in card and "negative share" in card and "app" in card.split("\n", 2)[2]
        page.wait_for_selector("#charts svg[data-key='topic=app'] line.alert", state="attached")
        page.screenshot(path=str(SHOTS / "monitor-alert.png"), full_page=True)
        page.click(".alert-card button:text('Acknowledge')")
        page.wait_for_selector(".alert-card.open", state="detached")  # the list shows open ones
        page.select_option("#f-key", label="topic=app (topic)")
        page.check("#f-neg")
        page.click("#filters button")
        rows = page.locator("#items tbody tr")
        deadline = time.time() + 10  # (the page's CSP forbids wait_for_function's eval)
        while time.time() < deadline and (rows.count() == 0 or page.locator(
                "#items tbody tr td:nth-child(4):not(.neg)").count()):
            time.sleep(0.1)
        assert page.locator("#items tbody tr td:nth-child(4):not(.neg)").count() == 0
        assert rows.count() > 0 and all("app" in rows.nth(i).inner_text() or
                                        "online banking" in rows.nth(i).inner_text()
                                        for i in range(rows.count()))
        browser.close()
    assert not errors, errors
