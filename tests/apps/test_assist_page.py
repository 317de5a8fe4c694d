"""The chat page in a real browser (Debian's chromium driven by playwright), against a real
`ronghe assist serve` process: type a question, see the answer, open its why, click feedback,
find the row in the database - and find it still there after the server is killed with -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from makers import free_port

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture
def server(saved, tmp_path):
    port = free_port()
    db = tmp_path / "chat.sqlite"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ronghe.cli", "assist", "serve", str(saved),
                             "--db", str(db), "--port", str(port), "--request-log", "off"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    import httpx

    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail("ronghe assist serve exited: " + proc.stdout.read().decode()[-2000:])
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the service did not become ready in 120 s")
    yield base, db, proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(30)


def test_chat_page_answers_explains_and_stores_feedback(server, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import expect, sync_playwright

    base, db, proc = server
    shot = Path(os.environ.get("RONGHE_SCREENSHOT_DIR", tmp_path)) / "assist-chat.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 900, "height": 700})
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(base + "/")
        expect(page.locator("body[data-ready='1']")).to_have_count(1, timeout=15000)
        expect(page.locator("#title")).to_have_text("Assistant: helpdesk")
        page.fill("#message", "I lost my card, please block it")
        page.click("#send")
        bot = page.locator(".turn.bot").first
        expect(bot.locator(".text")).to_have_text(
            "I have frozen your card. A new one is on its way.", timeout=20000)
        expect(bot.locator(".correct")).to_be_hidden()  # the correction row waits for a "not helpful"
        expect(bot.locator(".why")).to_be_hidden()
        bot.locator(".why-toggle").click()
        expect(bot.locator(".why")).to_be_visible()
        expect(bot.locator(".why")).to_contain_text("Intent: lost_card")
        bot.locator(".fb.up").click()
        expect(bot.locator(".fb-state")).to_have_text("Thanks!")
        page.fill("#message", "who won the tennis match yesterday")
        page.press("#message", "Enter")
        second = page.locator(".turn.bot").nth(1)
        expect(second.locator(".handoff-banner")).to_be_visible(timeout=20000)
        expect(second).to_have_class("turn bot fallback handoff")
        second.locator(".fb.down").click()
        second.locator(".correct-select").select_option("intent:oos")
        second.locator(".correct-send").click()
        expect(second.locator(".fb-state")).to_have_text("Thanks, noted.")
        page.screenshot(path=str(shot), full_page=True)
        conversation = page.evaluate("window.ronghe.conversationId")
        browser.close()
    assert all(u.startswith(base) for u in requests), "the page fetched from elsewhere (a CDN?)"
    assert shot.stat().st_size > 10_000
    # kill -9: what was answered is already committed
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    eng = sa.create_engine(f"sqlite:///{db}")
    with eng.connect() as c:
        turns = c.execute(sa.text("SELECT id, kind, handoff FROM assist_turns WHERE "
                                  "conversation_id = :c ORDER BY seq"), {"c": conversation}).all()
        fb = dict(c.execute(sa.text("SELECT turn_id, helpful FROM assist_feedback")).all())
        fb_intent = c.execute(sa.text("SELECT correct_intent FROM assist_feedback WHERE "
                                      "turn_id = :t"), {"t": turns[1][0]}).scalar()
    eng.dispose()
    assert [t[1] for t in turns] == ["intent", "fallback"] and bool(turns[1][2])
    assert fb[turns[0][0]] == 1 and fb[turns[1][0]] == 0 and fb_intent == "oos"
