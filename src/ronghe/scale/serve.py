"""Elastic serving on Ray Serve: ``ronghe serve MODELS --engine ray [--address auto]
[--min-replicas 1] [--max-replicas 4] [--target-ongoing 8] [--replica-cpus 1]``.

The deployment serves the very app ``ronghe serve`` builds (``serving.app.create_app``): the same
routes, API keys, rate limits, micro-batching, request log, ``/readyz`` and ``/metrics``. Ray
Serve's ingress takes a *builder*: each replica builds the app from the serve config (passed as
JSON, API keys as sha256 digests only) and loads the bundles in the background, as a uvicorn
worker of ``ronghe serve --workers N`` does; ``/readyz`` answers 503 until they are loaded.

Replicas scale between ``min_replicas`` and ``max_replicas`` on ongoing requests per replica
(``target_ongoing_requests``; Ray Serve's autoscaler). Ray's HTTP proxy listens on the serve
config's host and port and routes to a replica; the app behind it checks the key.

What differs from the uvicorn path, per replica as with ``--workers N``: rate limits and
``/metrics`` are per replica (a request sees the replica that answered), and each replica
watches for new versions itself. Ray adds one hop (proxy -> replica) per request.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..config import validate
from ..errors import ConfigError
from ..log import info
from .batch import connect

APP_NAME = "ronghe"


class RayServeOptions(BaseModel):
    """How the deployment scales (validated; the CLI's ``--min-replicas`` ... flags)."""

    model_config = ConfigDict(extra="forbid")

    min_replicas: int = Field(1, ge=0, le=1000)
    max_replicas: int = Field(2, ge=1, le=1000)
    target_ongoing_requests: float = Field(
        8, gt=0, description="ongoing requests per replica the autoscaler aims at (ronghe's "
                             "micro-batcher wants several at once; Ray's default is 2)")
    replica_cpus: float = Field(1, gt=0, description="CPUs Ray reserves per replica; its torch "
                                                     "and onnxruntime threads")
    upscale_delay_s: float = Field(5, ge=0)
    downscale_delay_s: float = Field(60, ge=0)

    @model_validator(mode="after")
    def _order(self) -> "RayServeOptions":
        if self.max_replicas < max(1, self.min_replicas):
            raise ValueError(f"max_replicas ({self.max_replicas}) must be at least min_replicas "
                             f"({self.min_replicas}) and 1")
        return self

    def autoscaling(self) -> dict:
        return {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                "initial_replicas": max(1, self.min_replicas),
                "target_ongoing_requests": self.target_ongoing_requests,
                "upscale_delay_s": self.upscale_delay_s,
                "downscale_delay_s": self.downscale_delay_s}


def options(values: dict[str, Any]) -> RayServeOptions:
    return validate(RayServeOptions, values, "--engine ray")


def _builder(config_json: str):
    """The replica's app builder (Ray evaluates it on each replica)."""

    def build_app():
        import os

        from ..serving.app import app_installers, create_app
        from ..serving.config import ServeConfig

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        config = ServeConfig.model_validate_json(config_json)
        app_installers(config)  # applications register their bundle loaders before loading
        return create_app(config)

    return build_app


def deployment(config, opts: RayServeOptions):
    """The Ray Serve application (bound deployment) serving ``config`` (a ``ServeConfig``)."""
    from ray import serve

    # a replica runs its model calls on the CPUs Ray reserved for it
    threads = max(1, int(opts.replica_cpus))
    config = config.model_copy(update={"inference_threads": threads, "workers": 1})

    class RongheService:  # the ingress wrapper builds the app; nothing else lives here
        pass

    ingress = serve.ingress(_builder(config.model_dump_json()))(RongheService)
    dep = serve.deployment(
        ingress, name="RongheService", autoscaling_config=opts.autoscaling(),
        ray_actor_options={"num_cpus": opts.replica_cpus,
                           "runtime_env": {"env_vars": {"OMP_NUM_THREADS": str(threads),
                                                        "TOKENIZERS_PARALLELISM": "false"}}},
        max_ongoing_requests=max(16, int(4 * opts.target_ongoing_requests)),
        health_check_period_s=10, graceful_shutdown_timeout_s=config.shutdown_timeout_s)
    return dep.bind()


def start(config, opts: RayServeOptions, *, address: str | None = None, wait_ready_s: float = 300,
          **local) -> str:
    """Deploy on the Ray cluster at ``address`` (or a local one started with ``local``) and wait
    until a replica answers ``/readyz``; returns the service's base URL."""
    connect(address, **local)
    from ray import serve

    serve.start(http_options={"host": config.host, "port": config.port})
    serve.run(deployment(config, opts), name=APP_NAME, route_prefix="/", blocking=False)
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::") else config.host
    url = f"http://{host}:{config.port}"
    try:
        _wait_ready(url, wait_ready_s)
    except ConfigError:
        stop()  # no half-started deployment left on the cluster
        raise
    info("serving on Ray Serve at %s: %d-%d replicas, %g ongoing requests per replica",
         url, opts.min_replicas, opts.max_replicas, opts.target_ongoing_requests)
    return url


def _wait_ready(url: str, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url + "/readyz", timeout=5)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except httpx.HTTPError as e:
            last = type(e).__name__
        time.sleep(0.5)
    raise ConfigError(f"the Ray Serve deployment at {url} was not ready after {timeout:.0f} s "
                      f"({last}); see `serve status` and the replicas' logs under "
                      "/tmp/ray/session_latest/logs/serve")


def replicas() -> dict[str, int]:
    """Replica counts of the deployment by state (RUNNING, STARTING, ...)."""
    from ray import serve

    app = serve.status().applications.get(APP_NAME)
    if app is None:
        return {}
    dep = app.deployments["RongheService"]
    return {str(getattr(k, "value", k)): int(v) for k, v in dep.replica_states.items()}


def stop() -> None:
    from ray import serve

    serve.delete(APP_NAME)


def run(config, opts: RayServeOptions, *, address: str | None = None) -> None:
    """``ronghe serve --engine ray``: deploy, then keep the deployment until Ctrl-C."""
    url = start(config, opts, address=address)
    print(f"ronghe serve on Ray Serve: {url} (Ctrl-C stops and removes the deployment)",
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
