"""The monitor's routes, added to ``ronghe serve``'s app through its ``apps`` hook (its API
keys, rate limits, body limits, metrics, request log and error format apply):

    POST /v1/monitor/items                  {"items": [{id?, time?, text, source?, meta?}, ...]}
                                            -> stored / duplicates / rejected (index + reason);
                                            answered after the batch is committed
    GET  /v1/monitor/alerts                 ?status=open|acknowledged|resolved &key= &limit=
    POST /v1/monitor/alerts/{id}/ack        {"note"?}   (by the API key's name)
    POST /v1/monitor/alerts/{id}/resolve    {"note"?}
    GET  /v1/monitor/keys                   watch keys: volume, negative share, open alerts
    GET  /v1/monitor/series                 ?rule= &key= &bucket_s= &since= -> per bucket n, share
    GET  /v1/monitor/chart.svg              the same as a server-side SVG chart
    GET  /v1/monitor/items                  recent items ?key= &label= &source= &negative= &since=
    POST /v1/monitor/items/{id}/correction  {"sentiment": label}: an analyst's correct label (by
                                            the API key's name), exported for retraining
    GET  /v1/monitor/summary                totals
    GET  /monitor                           the dashboard (static files of this package; open
                                            without a key: it holds no data, its calls need one)

Ingest is bounded: at most ``serve.max_queue`` items wait to be scored; beyond that the answer
is 503 with ``Retry-After`` (and the key's rate limit answers 429 with ``Retry-After``).
"""

# no `from __future__ import annotations`: FastAPI reads the local request model

import asyncio
import json
import logging
import queue
import threading
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from ...serving.app import _info, error_response
from . import queries
from .charts import key_chart
from .config import MonitorConfig

log = logging.getLogger("ronghe.monitor")
STATIC = ("dashboard.html", "dashboard.js", "dashboard.css")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8"}


class Correction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sentiment: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None


class Ingest:
    """A bounded queue of ingest jobs and one thread that scores and stores them in batches
    (jobs that wait together are processed as one batch, one transaction)."""

    def __init__(self, monitor, max_queue: int):
        self.monitor = monitor
        self.max_queue = max_queue
        self.pending = 0  # items queued or being processed
        self.lock = threading.Lock()
        self.jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._work, daemon=True, name="monitor-ingest")
        self.thread.start()

    def offer(self, n: int) -> bool:
        with self.lock:
            if self.pending + n > self.max_queue:
                return False
            self.pending += n
            return True

    async def submit(self, raws: list) -> Any:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.jobs.put((raws, loop, fut))
        return await fut

    def _work(self) -> None:
        limit = self.monitor.config.models.batch_size * 4
        while True:
            jobs = [self.jobs.get()]
            n = len(jobs[0][0])
            while n < limit:
                try:
                    jobs.append(self.jobs.get_nowait())
                    n += len(jobs[-1][0])
                except queue.Empty:
                    break
            raws = [r for j in jobs for r in j[0]]
            settle = []
            try:
                res = self.monitor.process(raws, source="api")
                at = 0
                for job_raws, loop, fut in jobs:
                    settle.append((loop, fut, (res, at, len(job_raws)), None))
                    at += len(job_raws)
            except Exception as e:  # noqa: BLE001 - every waiting request learns it failed
                log.exception("storing ingested items failed")
                settle = [(loop, fut, None, e) for _, loop, fut in jobs]
            with self.lock:  # free the room before answering: a client may send again at once
                self.pending -= n
            for loop, fut, value, error in settle:
                loop.call_soon_threadsafe(_settle, fut, value, error)


def _settle(fut, value, error):
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)


def install(app: FastAPI, service, *, config: dict, start_sources: bool = True) -> None:
    """Add the monitor's routes for ``config`` (a ``MonitorConfig`` as a dict); starts the
    webhook sender, the ingest worker and (``start_sources``) the folder/stdin loop."""
    from .monitor import Monitor
    from .runner import loop as sources_loop
    from .sinks import Sinks

    cfg = MonitorConfig.model_validate(config)
    monitor = Monitor(cfg)
    monitor.predictions = getattr(service, "predictions", None)  # --option prediction_log=DB
    Sinks(monitor).start()
    ingest = Ingest(monitor, cfg.serve.max_queue)
    app.state.monitor = monitor
    if start_sources and (cfg.sources.folder or cfg.sources.stdin):
        stop = threading.Event()
        threading.Thread(target=sources_loop, args=(monitor, stop), daemon=True,
                         name="monitor-sources").start()
        app.state.monitor_stop = stop
    service.metrics.registry.register(_Collector(monitor, ingest))
    store = monitor.store
    rules = list(monitor.rules)
    for pattern, endpoint in ((r"^/v1/monitor/items/?$", "monitor_items"),
                              (r"^/v1/monitor/items/[^/]+/correction/?$", "monitor_corrections"),
                              (r"^/v1/monitor/alerts(?:/\d+/(?:ack|resolve))?/?$",
                               "monitor_alerts"),
                              (r"^/v1/monitor/(?:keys|series|chart\.svg|summary)/?$",
                               "monitor_read")):
        service.add_path(pattern, endpoint)
    service.add_path(r"^/monitor(?:/static/[A-Za-z0-9_.-]+)?/?$", "monitor_page", None, True)
    router = APIRouter(prefix="/v1/monitor", tags=["monitor"])
    max_items = cfg.serve.max_items_per_request

    class ItemsRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        items: list[Any] = Field(min_length=1, max_length=max_items, description=(
            f"1 to {max_items} items {{id?, time?, text, source?, meta?}}; each is checked on "
            "its own: bad ones come back with a reason, the others are stored"))

    def as_json(payload, status: int = 200) -> Response:
        return Response(json.dumps(payload, ensure_ascii=False, separators=(",", ":"),
                                   default=str), status_code=status,
                        media_type="application/json")

    def who(request: Request) -> str | None:
        client = _info(request.scope).get("client")
        return client.name if client else None

    @router.post("/items", summary="ingest items: scored, stored once per id, watched")
    async def post_items(request: Request, body: ItemsRequest):
        info = _info(request.scope)
        info["n_inputs"] = len(body.items)
        if not ingest.offer(len(body.items)):
            return error_response(request, 503, "queue_full", f"the monitor has "
                                  f"{ingest.max_queue} items waiting to be scored; retry "
                                  "shortly", {"Retry-After": "2"})
        raws = [(x, f"items[{i}]") for i, x in enumerate(body.items)]
        res = await ingest.submit(raws)
        result, at, n = res
        statuses = result.statuses[at:at + n]
        rejected = {r.where: r.reason for r in result.rejected}
        info["batch_size"] = len(result.statuses)
        return as_json({"stored": statuses.count("stored"),
                        "duplicates": statuses.count("duplicate"),
                        "rejected": [{"index": i, "reason": rejected.get(f"items[{i}]", "")}
                                     for i, s in enumerate(statuses) if s == "rejected"],
                        "statuses": statuses})

    @router.get("/alerts", summary="alerts, newest first, with their evidence")
    async def list_alerts(status: Literal["open", "acknowledged", "resolved"] | None = None,
                          key: Annotated[str | None, Query(max_length=300)] = None,
                          limit: Annotated[int, Query(ge=1, le=1000)] = 100):
        return as_json({"alerts": await run_in_threadpool(queries.alerts, store, status=status,
                                                          key=key, limit=limit)})

    async def _set(request: Request, alert_id: int, status: str, body: Note | None):
        try:
            row = await run_in_threadpool(queries.set_status, store, alert_id, status,
                                          by=who(request), note=body.note if body else None)
        except ValueError as e:
            return error_response(request, 409, "conflict", str(e))
        if row is None:
            return error_response(request, 404, "alert_not_found", f"no alert {alert_id}")
        return as_json(row)

    @router.post("/items/{item_id}/correction",
                 summary="an analyst's correct sentiment for a stored item, for retraining")
    async def correct(request: Request, item_id: Annotated[str, Path(max_length=200)],
                      body: Correction):
        labels = monitor.scorer.labels
        if body.sentiment not in labels:
            return error_response(request, 422, "unknown_label", f"'{body.sentiment[:60]}' is "
                                  f"not a label of the sentiment model; one of {labels}")
        row = await run_in_threadpool(queries.correct, store, item_id, body.sentiment,
                                      by=who(request))
        if row is None:
            return error_response(request, 404, "item_not_found", f"no stored item "
                                  f"'{item_id[:60]}'")
        return as_json(row)

    @router.post("/alerts/{alert_id}/ack", summary="acknowledge an alert")
    async def ack(request: Request, alert_id: Annotated[int, Path(ge=1)], body: Note | None = None):
        return await _set(request, alert_id, "acknowledged", body)

    @router.post("/alerts/{alert_id}/resolve", summary="resolve an alert")
    async def resolve(request: Request, alert_id: Annotated[int, Path(ge=1)],
                      body: Note | None = None):
        return await _set(request, alert_id, "resolved", body)

    @router.get("/keys", summary="watch keys: volume, negative share, open alerts")
    async def get_keys(since: float | None = None,
                       limit: Annotated[int, Query(ge=1, le=500)] = 50):
        return as_json({"keys": await run_in_threadpool(queries.keys, store, since=since,
                                                        limit=limit)})

    def _rule(request: Request, rule: str | None):
        if rule is None:
            return rules[0], None
        if rule not in rules:
            return None, error_response(request, 404, "rule_not_found", f"no rule "
                                        f"'{rule[:60]}'; rules: {rules}")
        return rule, None

    Bucket = Annotated[int | None, Query(ge=1, le=86400 * 31)]

    @router.get("/series", summary="one key's volume and negative share per time bucket")
    async def get_series(request: Request, key: Annotated[str, Query(max_length=300)],
                         rule: str | None = None, bucket_s: Bucket = None,
                         since: float | None = None, until: float | None = None):
        rule, err = _rule(request, rule)
        if err:
            return err
        pts = await run_in_threadpool(queries.series, store, rule, key,
                                      bucket_s=bucket_s or cfg.bucket_s, since=since, until=until)
        return as_json({"rule": rule, "key": key, "bucket_s": bucket_s or cfg.bucket_s,
                        "points": pts})

    @router.get("/chart.svg", summary="one key's chart as SVG")
    async def get_chart(request: Request, key: Annotated[str, Query(max_length=300)],
                        rule: str | None = None, bucket_s: Bucket = None,
                        since: float | None = None):
        rule, err = _rule(request, rule)
        if err:
            return err
        svg = await run_in_threadpool(chart_svg, store, rule, key, bucket_s or cfg.bucket_s, since)
        return Response(svg, media_type="image/svg+xml")

    @router.get("/items", summary="recent items, filterable")
    async def get_items(key: Annotated[str | None, Query(max_length=300)] = None,
                        rule: str | None = None,
                        label: Annotated[str | None, Query(max_length=200)] = None,
                        source: Annotated[str | None, Query(max_length=200)] = None,
                        negative: bool | None = None, since: float | None = None,
                        until: float | None = None,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 50):
        return as_json({"items": await run_in_threadpool(
            queries.items, store, rule=rule, key=key, label=label, source=source,
            negative=negative, since=since, until=until, limit=limit)})

    @router.get("/summary", summary="totals: items, negative, rejected, alerts")
    async def summary():
        out = await run_in_threadpool(queries.totals, store)
        return as_json({**out, "rules": rules, "queued": ingest.pending,
                        "bucket_s": cfg.bucket_s})

    app.include_router(router)

    @app.get("/monitor", include_in_schema=False)
    async def page():
        return _static("dashboard.html")

    @app.get("/monitor/static/{name}", include_in_schema=False)
    async def static(request: Request, name: str):
        if name not in STATIC:
            return error_response(request, 404, "not_found", f"no such file: {name[:60]}")
        return _static(name)


class _Collector:
    """The monitor's numbers on the service's /metrics (read at scrape time)."""

    def __init__(self, monitor, ingest: Ingest):
        self.monitor, self.ingest = monitor, ingest

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        items = CounterMetricFamily("ronghe_monitor_items", "items by outcome (this process)",
                                    labels=["outcome"])
        for k in ("stored", "duplicates", "rejected"):
            items.add_metric([k], self.monitor.stats[k])
        alerts = CounterMetricFamily("ronghe_monitor_alerts", "alerts raised (this process)")
        alerts.add_metric([], self.monitor.stats["alerts"])
        queued = GaugeMetricFamily("ronghe_monitor_ingest_queue", "items waiting to be scored")
        queued.add_metric([], self.ingest.pending)
        return [items, alerts, queued]


def chart_svg(store, rule: str, key: str, bucket_s: int, since: float | None = None) -> str:
    pts = queries.series(store, rule, key, bucket_s=bucket_s, since=since)
    marks = [{"id": a["id"], "ts": _ts(a["window_end"] or a["created_at"])}
             for a in queries.alerts(store, key=key, limit=50) if a["rule"] == rule]
    return key_chart(key, pts, marks, bucket_s)


def _ts(iso_text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso_text).timestamp()


def _static(name: str) -> Response:
    data = resources.files(__package__).joinpath("static", name).read_bytes()
    return Response(data, media_type=_TYPES[name[name.rfind("."):]],
                    headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
                             "Content-Security-Policy": "default-src 'self'; img-src 'self' "
                                                        "data:; frame-ancestors 'none'"})
