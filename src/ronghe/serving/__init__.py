"""``ronghe serve``: a REST service for bundles.

::

    config.py    ServeConfig: every knob of the service, validated (pydantic)
    registry.py  models by name: bundle or folder of versions, a loader per task, atomic reload,
                 a file watcher
    batcher.py   asyncio micro-batcher: bounded queue, batches never above max_batch_size, model
                 calls in a worker thread
    auth.py      API keys (file or RONGHE_API_KEYS), stored as sha256, constant-time comparison,
                 per-model permission, per-key rate limit
    logging.py   JSON-lines request log with PII masking
    app.py       create_app(config) -> FastAPI: endpoints, limits, errors, metrics
    server.py    run(...): what the CLI calls (bind checks, uvicorn, graceful shutdown, workers)

The web dependencies (fastapi, uvicorn, prometheus-client) are the ``serve`` extra; nothing in
``ronghe`` outside this package imports them.
"""

from __future__ import annotations

__all__ = ["ServeConfig", "create_app", "run", "Registry", "LOADERS", "register_loader"]


def __getattr__(name: str):  # lazy: importing ronghe.serving does not import fastapi
    if name == "ServeConfig":
        from .config import ServeConfig

        return ServeConfig
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "run":
        from .server import run

        return run
    if name in ("Registry", "LOADERS", "register_loader"):
        from . import registry

        return getattr(registry, name)
    raise AttributeError(name)
