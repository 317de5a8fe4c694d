"""``create_app(config) -> FastAPI``: the endpoints, their limits and errors, metrics and the log.

Endpoints::

    GET  /healthz                      200 while the process runs (always open)
    GET  /readyz                       200 when every model is loaded and warm, else 503 (open)
    GET  /v1/models                    the served models: name, version, task, labels, metrics
    GET  /v1/models/{name}             one of them
    POST /v1/models/{name}/predict     {"texts": [...]} (or {"tokens": [[...], ...]} for models
                                       that take pre-tokenised input) -> one record per input,
                                       as ``ronghe predict`` prints them
    POST /v1/models/{name}/predict/files  multipart/form-data image files (field 'images',
                                       repeatable) -> one record per file, for image models
                                       (which also take {"images": [base64, ...]} on /predict)
    POST /v1/models/{name}/reload      switch to the newest version on disk (?force=true: reload
                                       even if unchanged)
    GET  /metrics                      Prometheus text format
    GET  /openapi.json, /docs          the schema (and, without API keys, its browser page)

Every error is JSON: ``{"error": {"status", "code", "message", "details"?}}``.

One pure ASGI middleware (``_Guard``) runs before FastAPI: it answers 503 while draining, checks
the API key (401), the key's permission for the model in the path (403) and its rate (429), and
the body size (413) - all before the body is parsed - then times the request, counts it in the
metrics and writes the request log line. A predict request whose JSON body the schema accepts is
answered from there by the route's own code (``predict_fast``), without FastAPI's routing and
dependency resolution, which cost more of the event loop than the rest of such a request.
"""

import asyncio
import json
import logging
import os
import re
import sys
import time
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StringConstraints,
                      create_model, model_validator)
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import InputRejected, RongheError
from .auth import ApiKey, ConflictingCredentials, Keyring, key_from_headers, retry_after
from .batcher import Batcher, Closed, QueueFull
from .config import ServeConfig
from .logging import RequestLog
from .registry import Registry, ReloadError

log = logging.getLogger("ronghe.serving")

OPEN_ENDPOINTS = {"healthz", "readyz"}
_MODEL_PATH = re.compile(r"^/v1/models/(?P<name>[^/]+)(?:/(?P<action>predict/files|predict|reload))?/?$")
_FIXED = {"/v1/models": "models", "/v1/models/": "models", "/metrics": "metrics",
          "/healthz": "healthz", "/readyz": "readyz", "/openapi.json": "docs", "/docs": "docs",
          "/docs/oauth2-redirect": "docs", "/redoc": "docs"}


def classify(path: str) -> tuple[str, str | None]:
    """(endpoint, model name in the path or None) for metrics, auth and the log."""
    endpoint = _FIXED.get(path)
    if endpoint:
        return endpoint, None
    m = _MODEL_PATH.match(path)
    if m:
        return (m["action"] or "model").replace("/", "_"), m["name"]
    return "other", None


# -- schemas ------------------------------------------------------------------------------------

class ErrorDetail(BaseModel):
    loc: list[str | int] = Field(description="where in the request: e.g. ['texts', 3]")
    msg: str
    type: str


class ErrorInfo(BaseModel):
    status: int
    code: str = Field(description="stable machine-readable code, e.g. 'model_not_found'")
    message: str
    details: list[ErrorDetail] | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo


class ClassificationRecord(BaseModel):
    label: int | str = Field(description="the predicted class")
    score: float = Field(description="its probability")
    probabilities: dict[str, float] = Field(description="every class's probability")


class PredictResponse(BaseModel):
    model: str
    version: str = Field(description="the version that answered (all inputs of a request are "
                                     "answered by the same version)")
    task: str
    predictions: list[ClassificationRecord | dict[str, Any]] = Field(
        description="one record per input, in order; text-classification records are what "
                    "`ronghe predict` prints: label, score, probabilities")


class ModelInfo(BaseModel):
    name: str
    version: str | None = Field(description="the version served (None while loading)")
    versions: list[str] = Field(description="versions found on disk (folder of versions only)")
    task: str | None
    strategy: str | None
    labels: list[int | str]
    metrics: dict[str, Any]
    created_at: str | None
    loaded_at: str | None
    accepts: list[str] = Field(description="input fields the model takes: texts and/or tokens")
    reload_error: str | None = Field(None, description="why the newest version is not served")


class ModelList(BaseModel):
    models: list[ModelInfo]


class ReloadResponse(BaseModel):
    model: str
    changed: bool
    version: str
    previous_version: str | None


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready", "loading", "draining", "failed"]
    models: dict[str, str | None] = Field(description="name -> version served (None: not yet)")
    error: str | None = None


_PATH = re.compile(r"(?:~|\.{0,2})?(?:/[^/\s'\":,;()]+)+/([^/\s'\":,;()]+)")


def public(message: str | None) -> str | None:
    """A message for clients: file-system paths cut to their last part (where the server keeps
    its models is not the client's business)."""
    return _PATH.sub(r"\1", message) if message else message


def _utf8(s: str) -> str:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains an unpaired surrogate; send valid UTF-8 text") from None
    return s


def _drop_default(schema: dict) -> None:
    schema.pop("default", None)


KINDS = ("texts", "tokens", "images")  # what a predict body can carry, one kind per request
_KIND_HELP = {"texts": "'texts' (a list of strings)", "tokens": "'tokens' (a list of token lists)",
              "images": "'images' (a list of base64-encoded image files)"}


def _b64_limit(cfg: ServeConfig) -> int:
    return 4 * -(-cfg.max_image_bytes // 3) + 100  # base64 of the largest file, a data: prefix


def _request_model(cfg: ServeConfig, kinds: tuple[str, ...] = KINDS) -> type[BaseModel]:
    """The predict body, with this service's limits in its schema (so OpenAPI states them).
    ``kinds``: the inputs offered (tokens and images only when a served model takes them)."""
    Text = Annotated[str, StringConstraints(max_length=cfg.max_chars_per_text),
                     AfterValidator(_utf8)]
    Token = Annotated[str, StringConstraints(min_length=1, max_length=cfg.max_chars_per_text),
                      AfterValidator(_utf8)]
    TokenList = Annotated[list[Token], Field(min_length=1, max_length=cfg.max_chars_per_text)]
    Image64 = Annotated[str, StringConstraints(min_length=1, max_length=_b64_limit(cfg))]
    max_chars = cfg.max_chars_per_text
    fields: dict[str, Any] = {"texts": (list[Text], Field(
        None, min_length=1, max_length=cfg.max_texts_per_request, json_schema_extra=_drop_default,
        description=f"texts: 1 to {cfg.max_texts_per_request}, each at most "
                    f"{cfg.max_chars_per_text} characters"))}
    if "tokens" in kinds:
        fields["tokens"] = (list[TokenList], Field(
            None, min_length=1, max_length=cfg.max_texts_per_request,
            json_schema_extra=_drop_default,
            description="pre-tokenised inputs (token-classification models): one list of tokens "
                        f"per input, at most {cfg.max_chars_per_text} characters per input"))
    if "images" in kinds:
        fields["images"] = (list[Image64], Field(
            None, min_length=1, max_length=cfg.max_images_per_request,
            json_schema_extra=_drop_default,
            description=f"image files (PNG, JPEG, BMP, TIFF, WebP, GIF), base64-encoded (a "
                        f"'data:image/...;base64,' prefix is allowed): 1 to "
                        f"{cfg.max_images_per_request}, each at most {cfg.max_image_bytes} bytes "
                        f"and {cfg.max_image_pixels} pixels (image models; multipart uploads: "
                        "POST .../predict/files)"))
    offered = [k for k in KINDS if k in fields]

    def _exactly_one(self):
        given = [k for k in offered if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of " + " or ".join(_KIND_HELP[k] for k in offered))
        for i, toks in enumerate(getattr(self, "tokens", None) or []):
            if sum(len(t) for t in toks) > max_chars:
                raise ValueError(f"tokens[{i}] has more than {max_chars} characters")
        return self

    extra = ({"oneOf": [{"required": [k]} for k in offered]} if len(offered) > 1
             else {"required": offered})
    return create_model(
        "PredictRequest", __config__=ConfigDict(extra="forbid", json_schema_extra={
            **extra, "examples": [{"texts": ["great service", "card never arrived"]}]}),
        __validators__={"_exactly_one": model_validator(mode="after")(_exactly_one)}, **fields)


def decode_images(items: list[str]) -> list[bytes]:
    """Base64 strings (optionally data: URLs) -> bytes; ``InputRejected`` names the bad one."""
    import base64
    import binascii

    out = []
    for i, s in enumerate(items):
        if s.startswith("data:"):
            head, _, s = s.partition(",")
            if not head.endswith(";base64"):
                raise InputRejected(f"images[{i}] is a data: URL without ';base64'", index=i)
        try:
            out.append(base64.b64decode(s, validate=True))
        except (binascii.Error, ValueError):
            raise InputRejected(f"images[{i}] is not valid base64 (send each image file as "
                                "standard base64, e.g. `base64 -w0 photo.jpg`)", index=i) from None
    return out


# -- errors -------------------------------------------------------------------------------------

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 408: "request_timeout", 409: "conflict",
          413: "body_too_large",
          415: "unsupported_media_type", 422: "invalid_request", 429: "rate_limited",
          500: "internal_error", 503: "unavailable", 504: "timeout"}


def _error_body(status: int, code: str, message: str, details: list | None = None) -> bytes:
    err: dict[str, Any] = {"status": status, "code": code, "message": message}
    if details is not None:
        err["details"] = details
    return json.dumps({"error": err}, ensure_ascii=False).encode("utf-8")


def error_response(request: Request | None, status: int, code: str, message: str,
                   headers: dict[str, str] | None = None, details: list | None = None) -> Response:
    if request is not None:
        _info(request.scope)["error"] = code
    return Response(_error_body(status, code, message, details), status_code=status,
                    media_type="application/json", headers=headers)


def _info(scope) -> dict:
    state = scope.setdefault("state", {})
    return state.setdefault("ronghe", {})


async def submit(svc, request: Request, name: str, model, inputs: list, *, timeout_s: float,
                 who: str, on_timeout: str = "retry"):
    """``(results, batch size)`` from ``name``'s micro-batcher, or the error response the client
    sees: 503 at capacity or while shutting down, 504 after ``timeout_s``, 422 for inputs the
    model refuses, 500 (logged) if it fails. ``who`` names the model in the messages."""
    try:
        async with asyncio.timeout(timeout_s):
            answer = await svc.batcher(name).submit(model, inputs)
        if svc.predictions is not None:  # opt-in prediction log (predlog.py), before answering
            await run_in_threadpool(svc.predictions.write, name, model.version,
                                    model.predictor, inputs, answer[0])
        return answer
    except QueueFull:
        return error_response(request, 503, "queue_full", f"{who} is at capacity; retry shortly",
                              {"Retry-After": "1"})
    except Closed:
        return error_response(request, 503, "shutting_down", "the service is shutting down",
                              {"Retry-After": "5"})
    except TimeoutError:
        return error_response(request, 504, "timeout", f"no answer within {timeout_s:g} s; "
                              f"{on_timeout}")
    except RongheError as e:
        return error_response(request, 422, "invalid_input", str(e))
    except Exception:  # noqa: BLE001 - the model failed on this request's inputs
        log.exception("model '%s' version %s failed", name, model.version)
        return error_response(request, 500, "internal_error", f"{who} failed on this request; "
                              "see the server log")


def _describe(err: dict, cfg: ServeConfig, offered: tuple[str, ...] = ("texts",)) -> str:
    loc = [x for x in err.get("loc", ()) if x != "body"]
    where = ".".join(str(x) if not isinstance(x, int) else f"[{x}]" for x in loc).replace(".[", "[")
    t = err.get("type", "")
    ctx = err.get("ctx") or {}
    if t == "json_invalid":
        return f"the request body is not valid JSON ({ctx.get('error', 'parse error')})"
    if t == "missing" and not loc:
        return 'a JSON body is required, e.g. {"texts": ["some text"]}'
    if t == "too_long" and loc and loc[-1] == "images":
        return (f"too many images: at most {cfg.max_images_per_request} per request, got "
                f"{ctx.get('actual_length', 'more')}; split the request")
    if t == "too_long" and loc and loc[-1] in ("texts", "tokens"):
        return (f"too many inputs: at most {cfg.max_texts_per_request} per request, got "
                f"{ctx.get('actual_length', 'more')}; split the request")
    if t == "string_too_long" and loc and loc[0] == "images":
        return f"{where} is larger than the limit of {cfg.max_image_bytes} bytes per image"
    if t == "string_too_long":
        return f"{where} is longer than the limit of {cfg.max_chars_per_text} characters"
    if t == "extra_forbidden":
        return (f"unknown field '{where}'; the body takes "
                + " or ".join(repr(k) for k in offered))
    if t == "model_attributes_type" or (t == "dict_type" and not loc):
        return 'the body must be a JSON object, e.g. {"texts": ["some text"]}'
    msg = err.get("msg", "invalid value")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return f"{where}: {msg}" if where else msg


# -- metrics ------------------------------------------------------------------------------------

class Metrics:
    """Prometheus metrics in a registry of this app's own (several apps can live in a process)."""

    def __init__(self, service: "Service"):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("ronghe_requests", "HTTP requests by endpoint, model and status",
                                ["endpoint", "model", "status"], registry=self.registry)
        self.latency = Histogram("ronghe_request_duration_seconds",
                                 "time from request to response, by endpoint and model",
                                 ["endpoint", "model"], registry=self.registry,
                                 buckets=(.001, .0025, .005, .0075, .01, .015, .02, .03, .05, .075,
                                          .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
        self.batch_size = Histogram("ronghe_batch_size", "items per model call",
                                    ["model"], registry=self.registry,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096))
        self.inflight = Gauge("ronghe_inflight_requests", "requests being handled",
                              registry=self.registry)
        self.registry.register(_StateCollector(service))

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class _StateCollector:
    """Gauges read at scrape time: queue depth, versions served, reloads, readiness."""

    def __init__(self, service: "Service"):
        self.service = service

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        svc = self.service
        depth = GaugeMetricFamily("ronghe_queue_depth", "items waiting to be batched",
                                  labels=["model"])
        info = GaugeMetricFamily("ronghe_model_info", "the version served (value 1)",
                                 labels=["model", "version", "task"])
        reloads = CounterMetricFamily("ronghe_model_reloads", "version switches by outcome",
                                      labels=["model", "outcome"])
        for name, slot in svc.registry.slots.items():
            b = svc.batchers.get(name)
            depth.add_metric([name], b.queued_items if b else 0)
            cur = slot.current
            if cur is not None:
                info.add_metric([name, cur.version, cur.task], 1)
            reloads.add_metric([name, "ok"], slot.reloads)
            reloads.add_metric([name, "failed"], slot.reload_failures)
        ready = GaugeMetricFamily("ronghe_ready", "1 when every model is loaded and warm")
        ready.add_metric([], 1 if svc.ready else 0)
        return [depth, info, reloads, ready]


# -- the service state ----------------------------------------------------------------------------

def apply_inference_threads(threads: int | None) -> None:
    """Set the inference thread count for torch once torch is in use (never imports torch for
    classic models) and for the onnxruntime sessions made from now on - so call it before
    models load. ``server.run`` fills in its default (the cores, shared among its workers); an
    app built directly leaves both alone unless asked (None), so it does not change its host
    process."""
    if not threads:
        return
    from ..runtime import onnx

    onnx.set_process_threads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


class Service:
    """What the app holds: config, models, batchers, keys, metrics, log; and the drain switch."""

    def __init__(self, config: ServeConfig, registry: Registry, log_sink=None):
        self.config = config
        self.registry = registry
        self.keyring = Keyring(list(config.api_keys))
        self.request_log = RequestLog(config.request_log if log_sink is None else log_sink,
                                      log_inputs=config.log_inputs)
        self.batchers: dict[str, Batcher] = {}
        self.metrics = Metrics(self)
        self.draining = False
        self.load_error: str | None = None
        self._loading: asyncio.Future | None = None
        # paths added by applications: (regex, endpoint, model name or None, open without key)
        self.extra_paths: list[tuple[re.Pattern, str, str | None, bool]] = []
        self.predictions = None
        # POST .../predict without FastAPI's routing (create_app sets it; None: always the route)
        self.predict_fast = None
        if config.prediction_log:
            from .predlog import PredictionLog

            self.predictions = PredictionLog(config.prediction_log,
                                             with_text=config.prediction_log_text)

    def add_path(self, pattern: str, endpoint: str, model: str | None = None,
                 open_: bool = False) -> None:
        """Name an application's path for metrics, the log and the guard: its endpoint label,
        the served model it uses (key permissions, body limit), and whether it is open without
        an API key (static pages that hold no data)."""
        self.extra_paths.append((re.compile(pattern), endpoint, model, open_))

    def classify(self, path: str) -> tuple[str, str | None, bool]:
        """(endpoint, model, open) for a request path."""
        endpoint, model = classify(path)
        if endpoint == "other":
            for pattern, ep, mdl, open_ in self.extra_paths:
                if pattern.match(path):
                    return ep, mdl, open_
        return endpoint, model, endpoint in OPEN_ENDPOINTS

    @property
    def ready(self) -> bool:
        return self.registry.loaded and not self.draining

    def begin_drain(self) -> None:
        """From now on new requests get 503 (health endpoints excepted); in-flight ones finish."""
        self.draining = True

    def batcher(self, name: str) -> Batcher:
        b = self.batchers.get(name)
        if b is None:
            c = self.config
            hist = self.metrics.batch_size.labels(name)
            b = self.batchers[name] = Batcher(
                name, max_batch_size=c.max_batch_size, max_wait_ms=c.max_wait_ms,
                max_queue=c.max_queue, on_batch=lambda items, _requests: hist.observe(items))
        return b

    def apply_threads(self) -> None:
        """``apply_inference_threads`` with this service's setting."""
        apply_inference_threads(self.config.inference_threads)

    async def start(self) -> None:
        self.apply_threads()
        for name in self.registry.names:
            self.batcher(name)
        if not self.registry.loaded:
            loop = asyncio.get_running_loop()
            self._loading = loop.run_in_executor(None, self._load)
        self.registry.start_watcher(self.config.watch_interval_s)

    def _load(self) -> None:
        try:
            self.registry.load_all()
        except Exception as e:  # noqa: BLE001 - reported by /readyz and the log
            self.load_error = str(e)
            log.error("loading models failed: %s", e)
        self.apply_threads()

    async def stop(self) -> None:
        self.draining = True
        await asyncio.gather(*(b.close(self.config.shutdown_timeout_s)
                               for b in self.batchers.values()))
        self.registry.stop_watcher()
        self.request_log.close()
        if self.predictions is not None:
            self.predictions.close()


# -- the middleware -----------------------------------------------------------------------------

class _Guard:
    """Drain, auth, rate limit and body size checks; timing, metrics and the request log."""

    def __init__(self, app, service: Service):
        self.app = app
        self.svc = service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        svc = self.svc
        start = time.perf_counter()
        endpoint, model, is_open = svc.classify(scope["path"])
        info = _info(scope)
        status = [500]
        rid = os.urandom(8).hex()

        async def send_(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
            await send(message)

        async def refuse(code: int, kind: str, message: str, headers: dict[str, str] | None = None):
            info["error"] = kind
            body = _error_body(code, kind, message)
            raw = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode())]
            raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
            await send_({"type": "http.response.start", "status": code, "headers": raw})
            await send_({"type": "http.response.body", "body": body})

        svc.metrics.inflight.inc()
        try:
            if is_open:
                return await self.app(scope, receive, send_)
            if svc.draining:
                return await refuse(503, "shutting_down", "the service is shutting down; retry "
                                    "on another instance", {"Retry-After": "5",
                                                            "Connection": "close"})
            if svc.keyring.enabled:
                try:
                    client = svc.keyring.authenticate(key_from_headers(scope["headers"]))
                except ConflictingCredentials:
                    return await refuse(401, "unauthorized", "conflicting credentials: the "
                                        "Authorization and X-API-Key headers hold different "
                                        "keys; send one key", {"WWW-Authenticate": "Bearer"})
                if client is None:
                    return await refuse(401, "unauthorized", "a valid API key is required: send "
                                        "'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                                        {"WWW-Authenticate": "Bearer"})
                info["client"] = client
                if model is not None and not client.allows(model):
                    return await refuse(403, "forbidden", f"this API key may not use model "
                                        f"'{model[:100]}'")
                wait = svc.keyring.rate_check(client)
                if wait > 0:
                    return await refuse(429, "rate_limited", f"rate limit of "
                                        f"{client.rate_per_minute:g} requests per minute exceeded",
                                        {"Retry-After": retry_after(wait)})
            if scope["method"] in ("POST", "PUT", "PATCH"):
                slot = svc.registry.slots.get(model) if model else None
                images = slot is not None and slot.current is not None and \
                    "images" in slot.current.accepts
                limit = svc.config.max_image_body_bytes if images else svc.config.max_body_bytes
                too_big = (f"the request body is larger than the limit of {limit} bytes; send "
                           + ("fewer or smaller images" if images else "fewer or shorter texts")
                           + " per request")
                for k, v in scope["headers"]:
                    if k == b"content-length":
                        try:
                            declared = int(v)
                        except ValueError:
                            return await refuse(400, "bad_request", "invalid Content-Length")
                        if declared > limit:
                            return await refuse(413, "body_too_large", too_big,
                                                {"Connection": "close"})
                body = bytearray()
                more = True
                deadline = time.monotonic() + svc.config.body_timeout_s
                while more:
                    try:
                        msg = await asyncio.wait_for(receive(), deadline - time.monotonic())
                    except (asyncio.TimeoutError, ValueError):
                        return await refuse(408, "request_timeout", "the request body did not "
                                            f"arrive within {svc.config.body_timeout_s:g} s",
                                            {"Connection": "close"})
                    if msg["type"] == "http.disconnect":
                        status[0] = 499
                        return
                    body += msg.get("body", b"")
                    more = msg.get("more_body", False)
                    if len(body) > limit:
                        return await refuse(413, "body_too_large", too_big, {"Connection": "close"})
                replayed = False

                async def receive_():
                    nonlocal replayed
                    if not replayed:
                        replayed = True
                        return {"type": "http.request", "body": bytes(body), "more_body": False}
                    return await receive()

                if endpoint == "predict" and scope["method"] == "POST" and svc.predict_fast:
                    response = await svc.predict_fast(scope, model, bytes(body))
                    if response is not None:
                        return await response(scope, receive_, send_)
                return await self.app(scope, receive_, send_)
            return await self.app(scope, receive, send_)
        finally:
            svc.metrics.inflight.dec()
            elapsed = time.perf_counter() - start
            label = model if model in svc.registry.slots else ("unknown" if model else "")
            code = str(status[0])
            svc.metrics.requests.labels(endpoint, label, code).inc()
            svc.metrics.latency.labels(endpoint, label).observe(elapsed)
            if svc.request_log.enabled:
                client: ApiKey | None = info.get("client")
                record = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                          "request_id": rid, "method": scope["method"],
                          "path": scope["path"][:500],
                          "endpoint": endpoint, "model": model, "version": info.get("version"),
                          "status": status[0], "latency_ms": round(elapsed * 1000, 3),
                          "batch_size": info.get("batch_size"), "n_inputs": info.get("n_inputs"),
                          "client": client.name if client else None, "error": info.get("error")}
                if "inputs" in info:
                    record["inputs"] = info["inputs"]
                svc.request_log.write(record)


def _unrouted(*_args, **_kwargs):
    """``app.post``'s stand-in for a route this service does not offer."""
    return lambda fn: fn


# -- the app ------------------------------------------------------------------------------------

def _doc(description: str, retry: bool = False) -> dict:
    # errors are JSON on every route (also /metrics, whose own answer is text)
    d: dict[str, Any] = {"model": ErrorResponse, "description": description,
                         "content": {"application/json": {}}}
    if retry:
        d["headers"] = {"Retry-After": {"description": "seconds to wait before retrying",
                                        "schema": {"type": "integer"}}}
    return d


def create_app(config: ServeConfig, registry: Registry | None = None, *, log_sink=None) -> FastAPI:
    """The FastAPI app for ``config``. ``registry`` (already loaded, or not) may be shared;
    otherwise one is built from ``config.models`` and loaded in the background at startup
    (``/readyz`` says 503 until it is). ``log_sink`` overrides ``config.request_log``."""
    from .. import __version__ as ronghe_version

    registry = registry or Registry.from_sources(config.models, version_order=config.version_order)
    svc = Service(config, registry, log_sink)
    auth = svc.keyring.enabled
    loaded = [slot.current for slot in registry.slots.values()]
    offered = KINDS if not all(loaded) else tuple(  # not loaded yet: offer every kind
        k for k in KINDS if k == "texts" or any(k in m.accepts for m in loaded))
    PredictRequest = _request_model(config, offered)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await svc.start()
        try:
            yield
        finally:
            await svc.stop()

    app = FastAPI(
        title="ronghe serve", version=ronghe_version, lifespan=lifespan,
        description="Predictions from ronghe bundles. Every error is JSON: "
                    "`{\"error\": {\"status\", \"code\", \"message\", \"details\"?}}`."
                    + (" Every endpoint except /healthz and /readyz needs an API key "
                       "(`Authorization: Bearer KEY` or `X-API-Key: KEY`)." if auth else ""),
        docs_url=None if auth else "/docs", redoc_url=None)
    app.state.service = svc

    # documentation of the key check the middleware does (no-ops at run time)
    security = []
    if auth:
        bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer KEY")
        header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: KEY")

        async def _documented(_b=Security(bearer), _h=Security(header)) -> None:
            return None

        security = [Security(_documented)]
    unavailable = {503: _doc("shutting down, model not loaded yet, or its queue is full",
                             retry=True)}
    closed = ({401: _doc("missing or unknown API key"),
               429: _doc("this key's rate limit is exceeded", retry=True)} if auth else {})
    forbidden = {403: _doc("this API key may not use this model")} if auth else {}
    not_found = {404: _doc("no model of that name is served")}
    body_errors = {413: _doc("request body too large"),
                   422: _doc("malformed JSON, wrong types, too many inputs or too long a text")}
    bad_param = {422: _doc("invalid parameter")}
    NameParam = Annotated[str, Path(description="the model's name (see GET /v1/models)")]

    def _key_holder(request: Request) -> bool:
        if not svc.keyring.enabled:
            return True
        try:
            return svc.keyring.authenticate(key_from_headers(request.scope["headers"])) is not None
        except ConflictingCredentials:
            return False

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        ctype = request.headers.get("content-type", "")
        if ctype and "json" not in ctype.lower():
            return error_response(request, 422, "invalid_request", "send the body as JSON with "
                                  f"'Content-Type: application/json' (got {ctype[:60]!r})")
        errors = exc.errors()
        body = getattr(exc, "body", None)
        wrong = [tuple(e.get("loc", ()))[-1] for e in errors if e.get("type") == "extra_forbidden"
                 and tuple(e.get("loc", ()))[-1:] in [(k,) for k in KINDS]]
        if isinstance(body, dict) and wrong and not any(k in body for k in offered):
            # the schema offers 'tokens' and 'images' only where a served model takes them
            return error_response(request, 422, "wrong_input_kind", "the models served here take "
                                  + " or ".join(_KIND_HELP[k] for k in offered)
                                  + f", not '{wrong[0]}'")
        details = [{"loc": [x for x in e.get("loc", ()) if x != "body"] or ["body"],
                    "msg": _describe(e, config, offered), "type": e.get("type", "value_error")}
                   for e in errors[:20]]
        message = "; ".join(d["msg"] for d in details[:5]) or "invalid request"
        return error_response(request, 422, "invalid_request", message, details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400:  # FastAPI: a body that is not UTF-8 / cannot be decoded
            return error_response(request, 422, "invalid_request", "the request body is not "
                                  "valid JSON (it must be UTF-8 encoded JSON)")
        code = _CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path[:200]}"
        return error_response(request, exc.status_code, code, message,
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "internal_error", "internal error; see the server log")

    def _slot(request: Request, name: str):
        slot = registry.get(name)
        if slot is None:
            return None, error_response(request, 404, "model_not_found",
                                        f"no model named '{name[:100]}' is served; GET /v1/models "
                                        "lists them")
        return slot, None

    def _model_info(slot) -> dict:
        cur = slot.current
        m = cur.manifest if cur else None
        return {"name": slot.name, "version": cur.version if cur else None,
                "versions": list(slot.versions), "task": m.task if m else None,
                "strategy": m.strategy if m else None, "labels": list(m.labels) if m else [],
                "metrics": dict(m.metrics) if m else {}, "created_at": m.created_at if m else None,
                "loaded_at": cur.loaded_at if cur else None,
                "accepts": list(cur.accepts) if cur else [], "reload_error": public(slot.last_error)}

    def _visible(request: Request, name: str) -> bool:
        client: ApiKey | None = _info(request.scope).get("client")
        return client is None or client.allows(name)

    @app.get("/healthz", response_model=Health, tags=["health"],
             summary="the process is alive (always open)")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", response_model=Ready, tags=["health"],
             summary="every model is loaded and warm (always open)",
             responses={503: {"model": Ready, "description": "loading, failed or draining"}})
    async def readyz(request: Request):
        models = {n: (s.current.version if s.current else None) for n, s in registry.slots.items()}
        if svc.draining:
            status = "draining"
        elif registry.loaded:
            status = "ready"
        elif svc.load_error or registry.load_error:
            status = "failed"
        else:
            status = "loading"
        body = {"status": status, "models": models,
                "error": public(svc.load_error or registry.load_error) if status == "failed"
                else None}
        if not _key_holder(request):  # with keys, an anonymous probe learns ready or not, only
            body = {"status": status, "models": {}, "error": None}
        return Response(json.dumps(body), status_code=200 if status == "ready" else 503,
                        media_type="application/json")

    @app.get("/v1/models", response_model=ModelList, tags=["models"], dependencies=security,
             summary="the served models", responses={**closed, **unavailable})
    async def list_models(request: Request):
        return {"models": [_model_info(s) for n, s in registry.slots.items()
                           if _visible(request, n)]}

    @app.get("/v1/models/{name}", response_model=ModelInfo, tags=["models"], dependencies=security,
             summary="one served model",
             responses={**closed, **forbidden, **not_found, **bad_param, **unavailable})
    async def model_info(request: Request, name: NameParam):
        slot, err = _slot(request, name)
        return err or _model_info(slot)

    def _current(request: Request, name: str):
        slot, err = _slot(request, name)
        if err:
            return None, err
        if slot.current is None:
            return None, error_response(request, 503, "model_loading", f"model '{name}' is still "
                                        "loading; retry shortly", {"Retry-After": "2"})
        return slot.current, None

    def _wrong_kind(request: Request, name: str, model, kind: str):
        return error_response(request, 422, "wrong_input_kind",
                              f"model '{name}' ({model.task}) takes "
                              f"{' or '.join(repr(a) for a in model.accepts)}, not '{kind}'")

    def _rejected(request: Request, e: InputRejected, kind: str = "images"):
        details = ([{"loc": [kind, e.index], "msg": str(e), "type": e.code}]
                   if e.index is not None else None)
        return error_response(request, e.status, e.code, public(str(e)), details=details)

    async def _images(model, raw: list[bytes]) -> list:
        """Uploaded image files -> the model's inputs (decoded off the event loop); per-file
        byte limit here, pixel limit and format in the model's ``prepare``."""
        for i, b in enumerate(raw):
            if len(b) > config.max_image_bytes:
                raise InputRejected(f"image {i} is {len(b)} bytes, more than the limit of "
                                    f"{config.max_image_bytes}; send a smaller file",
                                    status=413, code="image_too_large", index=i)
        async with decoding:  # at most one decode per core: each can briefly hold
            # max_image_pixels x 3 bytes before it is cut to its working copy
            return await run_in_threadpool(model.predictor.prepare, raw, config.max_image_pixels)

    decoding = asyncio.Semaphore(max(1, os.cpu_count() or 1))

    async def _answer(request: Request, name: str, model, inputs: list, logged: list):
        """Queue ``inputs`` for ``model`` and answer with its records (or the error)."""
        info = _info(request.scope)
        info["n_inputs"] = len(inputs)
        if config.log_inputs:
            info["inputs"] = logged
        answer = await submit(svc, request, name, model, inputs,
                              timeout_s=config.request_timeout_s, who=f"model '{name}'",
                              on_timeout="retry, or send fewer inputs")
        if isinstance(answer, Response):
            return answer
        results, batch_size = answer
        info["batch_size"] = batch_size
        info["version"] = model.version
        payload = {"model": name, "version": model.version, "task": model.task,
                   "predictions": results}
        return Response(json.dumps(payload, ensure_ascii=False, allow_nan=False,
                                   separators=(",", ":")).encode("utf-8"),
                        media_type="application/json")

    def _digests(raw: list[bytes]) -> list[dict]:  # what the request log keeps of an image
        import hashlib

        return [{"sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b)} for b in raw]

    @app.post("/v1/models/{name}/predict", response_model=PredictResponse, tags=["models"],
              dependencies=security, summary="predict: one record per input",
              responses={**closed, **forbidden, **not_found, **body_errors, **unavailable,
                         504: _doc("not answered within the request timeout")})
    async def predict(request: Request, name: NameParam, body: PredictRequest):
        return await _predict(request, name, body)

    async def predict_fast(scope, name: str, raw: bytes) -> Response | None:
        """``POST /v1/models/{name}/predict`` without FastAPI's routing and dependency
        resolution, which cost more of the event loop than the rest of a request (the serving
        benchmark's ``--floor`` rows): a JSON body the request schema accepts goes straight to
        ``_predict``, the route's own code. Anything else - another content type, a body the
        schema refuses - returns None and takes the route, so every error is the route's.
        ``name`` is the model name ``classify`` read from the path."""
        path = scope["path"]
        if not path.endswith("/predict"):  # a trailing slash: the route's redirect
            return None
        ctype = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
        if ctype.split(b";")[0].strip().lower() != b"application/json":
            return None
        try:
            body = PredictRequest.model_validate_json(raw)
        except ValueError:  # pydantic's ValidationError, or bytes that are not JSON
            return None
        request = Request(scope)
        try:
            return await _predict(request, name, body)
        except Exception:  # noqa: BLE001 - what the route's exception handler answers
            log.exception("internal error on POST %s", path[:200])
            return error_response(request, 500, "internal_error",
                                  "internal error; see the server log")

    svc.predict_fast = predict_fast

    async def _predict(request: Request, name: str, body):
        model, err = _current(request, name)
        if err:
            return err
        kind = next(k for k in offered if getattr(body, k, None) is not None)
        inputs = getattr(body, kind)
        if kind not in model.accepts:
            return _wrong_kind(request, name, model, kind)
        logged = inputs
        if kind == "images":
            try:
                raw = decode_images(inputs)
                logged = _digests(raw)
                inputs = await _images(model, raw)
            except InputRejected as e:
                return _rejected(request, e)
        return await _answer(request, name, model, inputs, logged)

    upload_schema = {"requestBody": {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": ["images"], "properties": {"images": {
            "type": "array", "maxItems": config.max_images_per_request,
            "items": {"type": "string", "format": "binary"},
            "description": f"image files (PNG, JPEG, BMP, TIFF, WebP, GIF), each at most "
                           f"{config.max_image_bytes} bytes and {config.max_image_pixels} "
                           "pixels"}}}}}}}

    @(app.post if "images" in offered else _unrouted)(  # only where a model takes images
        "/v1/models/{name}/predict/files", response_model=PredictResponse, tags=["models"],
        dependencies=security, openapi_extra=upload_schema,
        summary="predict on uploaded image files (multipart/form-data): one record each",
        responses={**closed, **forbidden, **not_found, **unavailable,
                   413: _doc("request body, one file or one image's pixels too large"),
                   415: _doc("not multipart/form-data, or a file that is not an image"),
                   422: _doc("no file, unknown field, too many files, corrupt image"),
                   504: _doc("not answered within the request timeout")})
    async def predict_files(request: Request, name: NameParam):
        model, err = _current(request, name)
        if err:
            return err
        if "images" not in model.accepts:
            return _wrong_kind(request, name, model, "images")
        ctype = request.headers.get("content-type", "")
        if not ctype.lower().startswith("multipart/form-data"):
            return error_response(request, 415, "unsupported_media_type", "send the images as "
                                  "multipart/form-data, e.g. curl -F images=@photo.jpg (got "
                                  f"{ctype[:60]!r}); or POST base64 JSON to .../predict")
        try:
            form = await request.form(max_files=config.max_images_per_request, max_fields=0,
                                      max_part_size=1024)
        except StarletteHTTPException as e:
            return error_response(request, 422, "invalid_request", f"the multipart body cannot "
                                  f"be used: {e.detail} (at most "
                                  f"{config.max_images_per_request} files, no other fields)")
        try:
            files = []
            for field, value in form.multi_items():
                if field not in ("images", "image") or isinstance(value, str):
                    return error_response(request, 422, "invalid_request", f"unknown field "
                                          f"'{field[:60]}': send each image as a file part named "
                                          "'images'")
                part_type = (value.content_type or "application/octet-stream").lower()
                if not (part_type.startswith("image/") or part_type == "application/octet-stream"):
                    return error_response(request, 415, "unsupported_image", f"file {len(files)} "
                                          f"is sent as {part_type[:60]!r}, not as an image/* type")
                files.append(await value.read())
            if not files:
                return error_response(request, 422, "invalid_request", "no image in the request: "
                                      "send one or more file parts named 'images'")
            try:
                inputs = await _images(model, files)
            except InputRejected as e:
                return _rejected(request, e)
            return await _answer(request, name, model, inputs, _digests(files))
        finally:
            await form.close()

    @app.post("/v1/models/{name}/reload", response_model=ReloadResponse, tags=["models"],
              dependencies=security, summary="switch to the newest version on disk",
              responses={**closed, **forbidden, **not_found, **unavailable,
                         409: _doc("the newest version could not be loaded; the previous one "
                                   "is still served"),
                         413: _doc("request body too large"), **bad_param})
    async def reload(request: Request, name: NameParam,
                     force: Annotated[bool, Query(description="reload even if unchanged")] = False):
        slot, err = _slot(request, name)
        if err:
            return err
        try:
            result = await run_in_threadpool(registry.reload, name, force)
        except ReloadError as e:
            return error_response(request, 409, "reload_failed", public(str(e)))
        _info(request.scope)["version"] = result["version"]
        return result

    @app.get("/metrics", response_class=PlainTextResponse, tags=["health"], dependencies=security,
             summary="Prometheus metrics (text format)", responses={**closed, **unavailable})
    async def metrics():
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    for ref, install in app_installers(config):  # applications add routes (assistant ...)
        install(app, svc, **config.apps[ref])
    app.add_middleware(_Guard, service=svc)
    return app


def app_installers(config: ServeConfig) -> list:
    """The ``install`` functions of ``config.apps``, imported (importing an application's
    module registers its bundle loader, so call this before loading models)."""
    from ..tasks.base import import_ref

    return [(ref, import_ref(ref, f"serve app '{ref}'")) for ref in config.apps]
