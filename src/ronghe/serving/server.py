"""``run(...)``: what ``ronghe serve`` calls.

* builds and validates the ``ServeConfig`` (user errors are ``ConfigError``: exit code 2);
* reads API keys from ``--api-keys FILE`` and/or ``RONGHE_API_KEYS`` (kept as sha256 only);
* refuses a non-loopback address without keys unless ``insecure``;
* with one worker: loads and warms every model *before* binding (a broken bundle fails at once),
  then runs uvicorn in this process; SIGTERM/SIGINT flip the service to draining (new requests
  503, ``/readyz`` 503), uvicorn stops accepting connections and waits up to
  ``shutdown_timeout_s`` for in-flight requests, then the batchers finish their queues;
* with ``workers > 1``: uvicorn starts N processes on one socket, each building the app from the
  config passed in ``RONGHE_SERVE_CONFIG`` and loading its own copy of every model in the
  background (``/readyz`` is 503 until then). Per-process state is not shared: rate limits apply
  per worker (a key gets up to N x its rate), ``/metrics`` shows the worker that answered, and
  each worker watches for new versions itself.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any, Sequence

from ..errors import ConfigError
from .auth import load_keys
from .config import ServeConfig, build
from .protocol import protocol_class

CONFIG_ENV = "RONGHE_SERVE_CONFIG"


def require_web_stack() -> None:
    """A clear message instead of an ImportError when the ``serve`` extra is not installed."""
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn", "prometheus_client")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"serving needs {', '.join(missing)}: pip install 'ronghe[serve]'")


def is_loopback(host: str) -> bool:
    """True when ``host`` only ever means this machine (127.0.0.0/8, ::1, localhost)."""
    h = host.strip().strip("[]")
    if h.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        pass
    try:
        addrs = {info[4][0] for info in socket.getaddrinfo(h, None)}
    except OSError:
        return False
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def check_bind(host: str, keys_configured: bool, insecure: bool) -> None:
    if keys_configured or insecure or is_loopback(host):
        return
    raise ConfigError(f"refusing to serve on {host} without API keys: anyone who can reach this "
                      "address could use the models. Give --api-keys FILE (or set RONGHE_API_KEYS), "
                      "bind to 127.0.0.1, or pass --insecure if another layer guards access.")


def build_config(models: Sequence[str | os.PathLike], *, host: str = "127.0.0.1",
                 port: int = 8000, api_keys: str | os.PathLike | None = None, workers: int = 1,
                 insecure: bool = False, env: dict[str, str] | None = None,
                 **options: Any) -> ServeConfig:
    """Validated config: keys loaded and hashed, bind address checked, model paths checked."""
    from .registry import parse_specs

    keys = load_keys(api_keys, env)
    config = build({"models": [str(m) for m in models], "host": host, "port": port,
                    "workers": workers, "insecure": insecure, "api_keys": keys, **options})
    check_bind(config.host, config.auth_enabled, config.insecure)
    parse_specs(config.models)  # paths exist and hold bundles or versions; names are unique
    return config


def app_from_env():
    """uvicorn factory for worker processes: the app for the config in ``RONGHE_SERVE_CONFIG``."""
    from .app import create_app

    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise RuntimeError(f"{CONFIG_ENV} is not set; start workers through ronghe serve")
    return create_app(ServeConfig.model_validate_json(raw).for_process())




def _uvicorn_options(config: ServeConfig) -> dict:
    """uvicorn settings from the serve config (one process or several)."""
    return dict(host=config.host, port=config.port, workers=config.workers, access_log=False,
                timeout_graceful_shutdown=config.shutdown_timeout_s, server_header=False,
                lifespan="on", http=protocol_class(), limit_concurrency=config.max_connections)


def _uvicorn_config(app, config: ServeConfig, **extra):
    import uvicorn

    cfg = uvicorn.Config(app, **{**_uvicorn_options(config), **extra})
    cfg.ronghe_header_timeout_s = config.header_timeout_s  # read by the protocol
    return cfg


def make_server(config: ServeConfig, app=None):
    """A uvicorn server for one process whose exit signal first puts the service in drain."""
    import uvicorn

    from .app import app_installers, apply_inference_threads, create_app
    from .registry import Registry

    app_installers(config)  # applications register their bundle loaders before models load
    if app is None:
        apply_inference_threads(config.inference_threads)  # onnxruntime reads it at load
        registry = Registry.from_sources(config.models, version_order=config.version_order)
        registry.load_all()
        app = create_app(config, registry)
    service = app.state.service

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            service.begin_drain()
            super().handle_exit(sig, frame)

    return Server(_uvicorn_config(app, config))


def run(models: Sequence[str | os.PathLike], *, host: str = "127.0.0.1", port: int = 8000,
        api_keys: str | os.PathLike | None = None, workers: int = 1, insecure: bool = False,
        **options: Any) -> None:
    """Serve ``models`` (bundle folders, folders of versions, or NAME=PATH) until stopped.

    ``options`` are further ``ServeConfig`` fields: max_batch_size, max_wait_ms, max_queue,
    max_texts_per_request, max_chars_per_text, max_body_bytes, max_images_per_request,
    max_image_bytes, max_image_pixels, max_image_body_bytes, request_timeout_s, header_timeout_s,
    body_timeout_s, max_connections, inference_threads, watch_interval_s, version_order,
    request_log, log_inputs, shutdown_timeout_s.
    """
    from .. import log as ronghe_log

    require_web_stack()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    ronghe_log.set_quiet(True)  # no progress bars per batch
    config = build_config(models, host=host, port=port, api_keys=api_keys, workers=workers,
                          insecure=insecure, **options).for_process()
    if config.workers > 1:
        import uvicorn

        from .protocol import ENV

        os.environ[CONFIG_ENV] = config.model_dump_json()  # keys as sha256 digests only
        os.environ[ENV] = str(config.header_timeout_s)
        uvicorn.run("ronghe.serving.server:app_from_env", factory=True,
                    **_uvicorn_options(config))
        return
    server = make_server(config)
    try:
        server.run()
    except KeyboardInterrupt:  # a second Ctrl-C, or the re-raised signal after a clean drain
        pass
    if not server.started:
        raise ConfigError(f"could not start the server on {config.host}:{config.port} (see the "
                          "messages above; is the port in use?)")
