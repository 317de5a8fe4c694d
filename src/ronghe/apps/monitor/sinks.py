"""Alert sinks beyond the alerts table and the log: webhooks.

Each alert gets one ``mon_deliveries`` row per webhook in the transaction that stored it
(status ``pending``). A sender thread POSTs the alert as JSON, retrying with exponential
back-off (``backoff_s`` x 2^attempt); each outcome is recorded (``sent``, or ``failed`` with the
last error after ``retries`` retries). Pending rows left by a killed process are sent when the
monitor starts again (delivery is at least once; the alert id lets a receiver ignore repeats).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone

import sqlalchemy as sa

from . import storage as T

log = logging.getLogger("ronghe.monitor")


def alert_json(row) -> dict:
    d = dict(row._mapping)
    for k, v in d.items():
        if isinstance(v, datetime):
            d[k] = v.astimezone(timezone.utc).isoformat() if v.tzinfo else \
                v.replace(tzinfo=timezone.utc).isoformat()
    return d


def _safe(url: str) -> str:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    return f"{u.scheme}://{u.hostname or ''}{f':{u.port}' if u.port else ''}{u.path}"


class Sinks:
    def __init__(self, monitor, *, sleep=time.sleep):
        self.monitor = monitor
        self.hooks = {h.url: h for h in monitor.config.sinks.webhooks}
        self.sleep = sleep
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        monitor.sinks = self

    def start(self) -> "Sinks":
        if self.hooks and self.thread is None:
            self.thread = threading.Thread(target=self._loop, daemon=True, name="monitor-sinks")
            self.thread.start()
            self.wake.set()  # deliveries left pending by an earlier run
        return self

    def notify(self) -> None:
        self.wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.wake.set()
        if self.thread:
            self.thread.join(timeout)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            self.wake.wait(5.0)
            self.wake.clear()
            try:
                self.deliver_pending()
            except Exception:  # noqa: BLE001 - keep the sender alive; the next round retries
                log.exception("delivering alerts failed")

    def deliver_pending(self) -> int:
        store = self.monitor.store
        with store.transaction() as conn:
            rows = conn.execute(sa.select(T.deliveries, T.alerts).join(
                T.alerts, T.alerts.c.id == T.deliveries.c.alert_id)
                .where(T.deliveries.c.status == "pending").order_by(T.deliveries.c.id)).all()
            pending = [(r[0], r.sink, alert_json(
                conn.execute(sa.select(T.alerts).where(T.alerts.c.id == r.alert_id)).one()))
                for r in rows]
        for did, url, alert in pending:
            self.send(did, url, alert)
        return len(pending)

    def send(self, delivery_id: int, url: str, alert: dict) -> bool:
        import httpx

        hook = self.hooks.get(url)
        retries = hook.retries if hook else 0
        backoff = hook.backoff_s if hook else 0.5
        timeout = hook.timeout_s if hook else 5.0
        error = None
        attempt = 0
        for attempt in range(1, retries + 2):
            if self.stopping.is_set() and attempt > 1:
                break
            try:
                r = httpx.post(url, json={"alert": alert}, timeout=timeout)
                if r.status_code < 300:
                    error = None
                    break
                error = f"HTTP {r.status_code}"
            except httpx.HTTPError as e:
                error = f"{type(e).__name__}: {str(e)[:200]}"
            if attempt <= retries:
                self.sleep(backoff * 2 ** (attempt - 1))
        status = "sent" if error is None else "failed"
        if error:
            log.warning("alert %s: webhook %s failed after %d attempt(s): %s", alert["id"],
                        _safe(url), attempt, error)
        with self.monitor.store.transaction() as conn:
            conn.execute(sa.update(T.deliveries).where(T.deliveries.c.id == delivery_id).values(
                status=status, attempts=attempt, last_error=error,
                updated_at=datetime.now(timezone.utc)))
        return error is None
