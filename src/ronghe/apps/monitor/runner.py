"""The monitor's loop: read the sources in batches, ``Monitor.process`` each, until stopped.

``run(config)`` reads the watched folder every ``sources.poll_s`` seconds and standard input as
lines arrive; with ``once=True`` it stops when the folder has nothing new and stdin is closed
(a batch job); otherwise it runs until SIGINT/SIGTERM (or ``stop`` is set). With
``serve.enabled`` the HTTP service (ingest endpoint, alerts API, dashboard) runs beside it.
"""

from __future__ import annotations

import logging
import signal
import threading

from .config import MonitorConfig
from .monitor import Monitor
from .sinks import Sinks
from .sources import Folder, Stdin

log = logging.getLogger("ronghe.monitor")


def drain_folder(monitor: Monitor, folder: Folder) -> int:
    """Process everything new in ``folder``; the number of items read."""
    total = 0
    limit = monitor.config.models.batch_size
    while True:
        raws, offsets = folder.read(monitor.offsets(), limit)
        if not raws and not offsets:
            return total
        monitor.process(raws, offsets=offsets)
        total += len(raws)


def loop(monitor: Monitor, stop: threading.Event, *, stdin=None, once: bool = False) -> None:
    cfg = monitor.config
    folder = Folder(cfg.sources.folder) if cfg.sources.folder else None
    if folder and not folder.root.is_dir():
        log.warning("sources.folder %s does not exist yet; waiting for it", folder.root)
    reader = Stdin(stdin) if (cfg.sources.stdin or stdin is not None) else None
    limit = cfg.models.batch_size
    pending: list = []  # stdin lines taken but not yet stored (kept until they are)
    while not stop.is_set():
        busy = False
        try:
            if folder is not None:
                busy |= drain_folder(monitor, folder) > 0
            if reader is not None:
                pending = pending or reader.take(limit, wait=0.05 if folder else cfg.sources.poll_s)
                if pending:
                    monitor.process(pending, source="stdin")
                    pending = []
                    busy = True
        except Exception:  # noqa: BLE001 - the database or a model failed: nothing is lost
            # (the folder's offsets did not move, stdin's lines are kept); try again shortly
            if once:
                raise
            log.exception("processing a batch failed; retrying in %.0f s", cfg.sources.poll_s)
            stop.wait(cfg.sources.poll_s)
            continue
        if once and not busy and (reader is None or reader.done):
            return
        if not busy and folder is not None:
            stop.wait(cfg.sources.poll_s)


def run(config: MonitorConfig, *, once: bool = False, stdin=None) -> Monitor | None:
    """Run until stopped (or, ``once``, until the sources are drained). With ``serve.enabled``
    the monitor lives in ``ronghe serve``'s app (routes added through its ``apps`` hook, the
    sentiment bundle served as a model) and the sources are read beside it."""
    if config.serve.enabled:
        from ...serving.server import require_web_stack
        from ...serving.server import run as serve

        require_web_stack()
        s = config.serve
        serve([config.models.sentiment], host=s.host, port=s.port, api_keys=s.api_keys,
              insecure=s.insecure, **{**s.options, "apps": {
                  "ronghe.apps.monitor.routes:install": {"config": config.model_dump()}}})
        return None
    monitor = Monitor(config)
    sinks = Sinks(monitor).start()
    stop = threading.Event()

    def _stop(*_):
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    loop(monitor, stop, stdin=stdin, once=once)
    sinks.stop()
    return monitor
