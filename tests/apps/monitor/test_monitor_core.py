"""The monitor's core: item checks, scoring + storing in one transaction, idempotency by id,
rejected items kept with reasons, the watched folder and its offsets, crash safety under
SIGKILL, the webhook sink, and the CLI's errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import sqlalchemy as sa
from monitor_material import TONE, stream

from ronghe.apps.monitor import Monitor
from ronghe.apps.monitor import storage as T
from ronghe.apps.monitor.items import Item, Rejected, check
from ronghe.apps.monitor.sources import Folder


def rows(monitor, table):
    with monitor.store.transaction() as c:
        return c.execute(sa.select(table)).all()


def test_item_checks_give_reasons_and_content_ids():
    a = check({"text": "card is broken", "time": "2026-12-02T09:30:00Z"}, "x:1")
    b = check({"text": "card is broken", "time": "2026-12-02T10:30:00+01:00"}, "x:2")
    assert isinstance(a, Item) and a.id.startswith("sha256:") and a.id == b.id  # same instant
    assert check({"text": "card is broken", "time": 1.7e9}, "x").id != a.id
    assert check({"id": 7, "text": "t"}, "x").id == "7"
    cases = {"x": "JSON object", '{"text": ""}': "empty", '{"txt": "a"}': "unknown field",
             '{"text": "a", "time": "yesterday"}': "ISO 8601",
             '{"text": "a", "meta": [1]}': "'meta' must be an object",
             '{"text": 5}': "must be a string", '{"text": "a", "id": true}': "'id' must be"}
    for raw, reason in cases.items():
        r = check(json.loads(raw) if raw.startswith("{") else raw, "f.jsonl:3")
        assert isinstance(r, Rejected) and reason in r.reason and r.where == "f.jsonl:3", raw
    assert "limit of 10" in check({"text": "x" * 11}, "w", max_chars=10).reason


def test_batch_is_stored_once_with_scores_and_rejects_counted(make_config, db_url):
    m = Monitor(make_config(db=db_url))
    items = stream(120)
    raws = [(x, f"t:{i}") for i, x in enumerate(items)]
    raws += [({"text": ""}, "t:bad1"), ("not an object", "t:bad2"), (items[0], "t:dup")]
    r = m.process(raws)
    assert (r.accepted, r.duplicates, len(r.rejected)) == (120, 1, 2)
    assert r.statuses[-3:] == ["rejected", "rejected", "duplicate"]
    again = m.process(raws)  # the same batch again: nothing new
    assert (again.accepted, again.duplicates) == (0, 121)
    stored = rows(m, T.items)
    assert len(stored) == 120
    by_id = {s.id: s for s in stored}
    first = by_id[items[0]["id"]]
    assert first.topic == "cards" and set(first.scores) == {"sentiment", "topic"}
    assert first.received_at is not None and first.meta == {"ticker": "VISA"}
    # the classic models learnt the made-up data: topics and tone right on (nearly) all items
    topics = [("cards", "loans", "app")[i % 3] for i in range(120)]
    tones = [any(p in x["text"] for p in TONE["negative"]) for x in items]
    assert sum(by_id[x["id"]].topic == t for x, t in zip(items, topics)) >= 114
    assert sum(by_id[x["id"]].negative == t for x, t in zip(items, tones)) >= 114
    assert all(by_id[x["id"]].negative == (by_id[x["id"]].neg_prob > 0.5) for x in items)
    assert len(rows(m, T.keys)) == 120  # one topic key each
    rej = rows(m, T.rejects)
    assert len(rej) == 4 and {x.location for x in rej} == {"t:bad1", "t:bad2"}
    assert m.counts() == {"items": 120, "rejected": 4, "alerts": 0}


def test_surge_alerts_once_with_evidence_and_state_survives_restart(make_config, db_url):
    cfg = make_config(db=db_url)
    m = Monitor(cfg)
    calm = stream(600)
    for i in range(0, 600, 50):
        assert not m.process([(x, "c") for x in calm[i:i + 50]]).alerts
    m2 = Monitor(cfg)  # a restart: detector states come back from the database
    st1, st2 = m.states["topic"]["topic=cards"], m2.states["topic"]["topic=cards"]
    assert st1.to_dict() == st2.to_dict() and st2.seen == 200
    surge = stream(300, seed=5, neg={"cards": 0.7}, start=1.7e9 + 1000)
    alerts = []
    for i in range(0, 300, 30):
        alerts += m2.process([(x, "s") for x in surge[i:i + 30]]).alerts
    assert len(alerts) == 1, "a level shift is reported once (cool-down, baseline restart)"
    (a,) = rows(m2, T.alerts)
    assert a.key == "topic=cards" and a.status == "open" and a.method == "cusum"
    assert a.observed > 1.5 * a.expected and a.score >= 10 and a.p_value < 0.01
    assert a.window_n == 60 and len(a.evidence) == 5
    # the window ends at the item that raised the alert, not at the end of its batch
    trigger = next(x for x in surge if x["id"] == a.trigger_item)
    end = a.window_end if a.window_end.tzinfo else a.window_end.replace(tzinfo=timezone.utc)
    assert end.timestamp() == trigger["time"] < surge[-1]["time"]
    assert all(e["time"] <= end.isoformat() for e in a.evidence)
    assert all("card" in e["text"] for e in a.evidence)
    assert all(e["neg_prob"] > 0.5 for e in a.evidence)
    # replaying the surge changes nothing: no new items, no new alert
    assert not m2.process([(x, "s") for x in surge]).alerts
    assert len(rows(m2, T.alerts)) == 1


def test_meta_rule_and_binomial_method(make_config, tmp_path):
    m = Monitor(make_config(rules=[{"key": "meta.ticker", "method": "binomial", "window": 60,
                                    "min_count": 60}]))
    m.process([(x, "c") for x in stream(450)])
    out = m.process([(x, "s") for x in stream(240, seed=3, neg={"loans": 0.8}, start=2e9)])
    keys = {a.key for a in rows(m, T.alerts)}
    assert out.alerts and keys == {"meta.ticker=HSBC"}


def write_lines(path, lines, mode="a"):
    with open(path, mode, encoding="utf-8") as f:
        for x in lines:
            f.write((x if isinstance(x, str) else json.dumps(x)) + "\n")


def test_folder_reads_jsonl_and_csv_on_from_stored_offsets(make_config, tmp_path):
    from ronghe.apps.monitor.runner import drain_folder

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    items = stream(30)
    write_lines(inbox / "a.jsonl", items[:10] + ["{broken"])
    with open(inbox / "b.csv", "w", encoding="utf-8") as f:
        f.write("id,time,text,ticker\n")
        for x in items[10:20]:
            f.write(f'{x["id"]},{x["time"]},"{x["text"]}, ""quoted""\n and more",{x["meta"]["ticker"]}\n')
        f.write(',2026-01-01,"half a row')  # still being written: not read yet
    (inbox / "notes.txt").write_text("ignored")
    m = Monitor(make_config(**{"models.batch_size": 4}))
    drain_folder(m, Folder(inbox))
    assert m.counts() == {"items": 20, "rejected": 1, "alerts": 0}
    (rej,) = rows(m, T.rejects)
    assert rej.location == "a.jsonl:11" and "not valid JSON" in rej.reason
    stored = {r.id: r for r in rows(m, T.items)}
    assert stored[items[12]["id"]].meta == {"ticker": "VISA"}
    assert stored[items[12]["id"]].text.endswith('"quoted"\n and more')
    offsets = m.offsets()
    assert offsets["a.jsonl"][1] == 11 and offsets["b.csv"][1] == 21
    # the file grows, another file arrives; a new monitor on the same database reads on
    with open(inbox / "b.csv", "a", encoding="utf-8") as f:
        f.write(' finished",VISA\n')
    write_lines(inbox / "a.jsonl", items[20:30])
    m2 = Monitor(make_config(**{"models.batch_size": 4}))
    drain_folder(m2, Folder(inbox))
    assert m2.counts() == {"items": 31, "rejected": 1, "alerts": 0}


CLI = [sys.executable, "-c", "from ronghe.cli import main; main()"]


def _count(db):
    eng = sa.create_engine(f"sqlite:///{db}")
    try:
        with eng.connect() as c:
            return c.execute(sa.text("select count(*) from mon_items")).scalar()
    except sa.exc.OperationalError:
        return 0
    finally:
        eng.dispose()


def test_kill_9_mid_batch_then_restart_stores_every_item_exactly_once(bundles, tmp_path):
    inbox, db = tmp_path / "inbox", tmp_path / "m.sqlite"
    inbox.mkdir()
    items = stream(1500)
    write_lines(inbox / "big.jsonl", items)
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(f"db: m.sqlite\nmodels:\n  sentiment: {bundles['sentiment']}\n"
                   f"  topic: {bundles['topic']}\n  batch_size: 8\nsources:\n  folder: inbox\n"
                   "rules:\n  - {key: topic, min_count: 50, window: 50}\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    kills = 0
    for target in (200, 700):  # two kills at different points
        p = subprocess.Popen(CLI + ["monitor", "run", str(cfg), "-q"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while _count(db) < target and time.time() < deadline and p.poll() is None:
            time.sleep(0.05)
        assert p.poll() is None, p.stderr.read().decode()
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        kills += 1
        assert 0 < _count(db) < 1500
    done = subprocess.run(CLI + ["monitor", "run", str(cfg), "--once"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "stored 1500 items, 0 rejected" in done.stderr
    eng = sa.create_engine(f"sqlite:///{db}")
    with eng.connect() as c:
        ids = [r[0] for r in c.execute(sa.text("select id from mon_items"))]
        n_keys = c.execute(sa.text("select count(*) from mon_keys")).scalar()
        seen = sum(json.loads(r[0])["seen"] for r in c.execute(sa.text(
            "select state from mon_state")))
        off = c.execute(sa.text("select line from mon_offsets")).scalar()
    eng.dispose()
    assert sorted(ids) == sorted(x["id"] for x in items)
    # the keys and the detectors' states moved with the items, batch by batch
    assert n_keys == 1500 and seen == 1500 and off == 1500


def invoke(args, input=""):
    from typer.testing import CliRunner

    from ronghe.cli import app

    return CliRunner().invoke(app, args, input=input)


def test_stdin_twice_stores_once(bundles, tmp_path):
    lines = "\n".join(json.dumps({k: v for k, v in x.items() if k != "id"})
                      for x in stream(40)) + "\n{oops\n"
    args = ["monitor", "run", "--stdin", "--once", "--db", str(tmp_path / "s.sqlite"),
            "--sentiment", bundles["sentiment"], "--topic", bundles["topic"]]
    for expected in ("stored 40 items, 1 rejected", "stored 40 items, 2 rejected"):
        r = invoke(args, lines)
        assert r.exit_code == 0 and expected in r.output, r.output


@pytest.mark.parametrize("args, message", [
    (["--stdin", "--sentiment", "nowhere"], "models.sentiment"),
    (["--stdin", "--option", "rules.0.method=magic"], "rules.0.method"),
    (["--stdin", "--option", "rules.0.key=entity"], "models.ner"),
    (["--stdin", "--option", "models.negative_labels=[awful]"], "its labels: ['negative', "),
    (["--stdin", "--option", "nonsense"], "KEY=VALUE"),
    ([], "nothing to read"),
])
def test_cli_errors_exit_2_with_a_message(bundles, tmp_path, args, message):
    base = ["--db", str(tmp_path / "e.sqlite"), "--sentiment", bundles["sentiment"],
            "--topic", bundles["topic"]]
    r = invoke(["monitor", "run", "--once", *base, *args])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output


class _Hook(BaseHTTPRequestHandler):
    fails = 2
    got: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        cls = type(self)
        if cls.fails > 0:
            cls.fails -= 1
            self.send_response(500)
        else:
            cls.got.append(body)
            self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


def test_webhook_retries_with_backoff_and_records_failures(make_config):
    from ronghe.apps.monitor.sinks import Sinks

    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    good = f"http://127.0.0.1:{server.server_port}/hook"
    dead = "http://127.0.0.1:9/hook"  # nothing listens on the discard port
    cfg = make_config(sinks={"webhooks": [{"url": good, "retries": 3, "backoff_s": 0.01},
                                          {"url": dead, "retries": 1, "backoff_s": 0.01}]})
    m = Monitor(cfg)
    waits = []
    sinks = Sinks(m, sleep=waits.append)  # not started: delivered by hand below
    m.process([(x, "c") for x in stream(450)])
    out = m.process([(x, "s") for x in stream(150, seed=9, neg={"app": 0.8}, start=2e9)])
    assert out.alerts
    assert {d.status for d in rows(m, T.deliveries)} == {"pending"}
    assert sinks.deliver_pending() == 2 * len(out.alerts)
    server.shutdown()
    d = {r.sink: r for r in rows(m, T.deliveries)}
    assert d[good].status == "sent" and d[good].attempts == 3
    assert d[dead].status == "failed" and d[dead].attempts == 2 and d[dead].last_error
    assert waits[:2] == [0.01, 0.02]  # doubled
    (body,) = _Hook.got
    assert body["alert"]["key"] == "topic=app" and body["alert"]["evidence"]
    assert datetime.fromisoformat(body["alert"]["created_at"]).tzinfo == timezone.utc


def test_report_is_a_static_page_with_charts_and_alerts(make_config, tmp_path):
    cfg = make_config()
    m = Monitor(cfg)
    m.process([(x, "c") for x in stream(600, start=1_699_999_980, step=6.0)])
    m.process([(x, "s") for x in stream(240, seed=3, neg={"cards": 0.85},
                                        start=1_699_999_980 + 3600, step=6.0)])
    out = tmp_path / "out" / "report.html"
    r = invoke(["monitor", "report", "--db", cfg.db, "--out", str(out), "--bucket-s", "600"])
    assert r.exit_code == 0, r.output
    html = out.read_text()
    assert html.count("<svg") == 3 and "<script" not in html and "http" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert html.count('class="vol"') == 3 * 9  # 84 minutes in 10-minute buckets
    assert "topic=cards" in html and "Alerts (1)" in html and 'class="alert"' in html
    assert "card" in html.split("top negative texts")[1]
    # an alert raised now is outside a period that ended before it; --since in the future
    r = invoke(["monitor", "report", "--db", cfg.db, "--out", str(out), "--since", "2099-01-01"])
    assert r.exit_code == 0 and "no items in this period" in out.read_text()
    r = invoke(["monitor", "report", "--db", cfg.db, "--since", "last week"])
    assert r.exit_code == 2 and "--since" in r.output
