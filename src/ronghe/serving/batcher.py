"""Micro-batching: requests that arrive together are answered by one model call.

A ``Batcher`` serves one model name. ``submit(model, inputs)`` queues the inputs and waits; one
asyncio task forms batches and runs ``model.predict(batch)`` in a dedicated worker thread (one per
model, so the event loop never blocks and a model never runs two batches at once).

Rules:

* a batch never holds more than ``max_batch_size`` items. A request with more items is cut into
  chunks of at most that size; a chunk is never split further and never pushes a batch over the
  bound (it waits for the next batch instead - the over-full batch is a known bug elsewhere);
* a batch starts once it is full or once its oldest item has waited ``max_wait_ms``; while the model
  is busy, requests pile up and the next batch is formed from them immediately. Waiting only pays
  when others are likely to arrive in time, so it is skipped while the average gap between
  arrivals (an exponential moving average) is longer than ``max_wait_ms``: a lone client pays no
  batching delay;
* the queue holds at most ``max_queue`` items: ``submit`` raises ``QueueFull`` at once instead of
  letting the backlog (and every client's latency) grow without bound;
* each request is pinned to the model object that was current when it arrived, and a batch only
  holds items pinned to the same model: during a reload no request is answered by two versions;
* if a batch fails, its requests are retried one by one, so one bad input fails only its request;
* ``close()`` refuses new work and finishes everything already queued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Protocol


log = logging.getLogger("ronghe.serving")


class QueueFull(Exception):
    """The model's queue cannot take the request now; retry later (HTTP 503)."""


class Closed(Exception):
    """The batcher is shutting down and takes no new work (HTTP 503)."""


class Model(Protocol):
    def predict(self, inputs: list) -> list: ...


class _Entry:
    __slots__ = ("model", "inputs", "future", "enqueued", "batch_size")

    def __init__(self, model, inputs: list, future: asyncio.Future, enqueued: float):
        self.model = model
        self.inputs = inputs
        self.future = future
        self.enqueued = enqueued
        self.batch_size = 0


class Batcher:
    def __init__(self, name: str, *, max_batch_size: int = 32, max_wait_ms: float = 2.0,
                 max_queue: int = 1024,
                 on_batch: Callable[[int, int], None] | None = None):
        if max_batch_size < 1 or max_queue < 1:
            raise ValueError("max_batch_size and max_queue must be at least 1")
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.on_batch = on_batch  # (items, requests) of each batch run, for metrics
        self.queued_items = 0  # items waiting (not yet in a running batch)
        self.batches_run = 0
        self._queue: deque[_Entry] = deque()
        self._wake = asyncio.Event()
        self._closed = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ronghe-{name}")
        self._task: asyncio.Task | None = None
        self._last_arrival: float | None = None
        self.arrival_gap: float | None = None  # moving average of seconds between submits

    # -- client side ----------------------------------------------------------------------------

    async def submit(self, model: Model, inputs: list) -> tuple[list, int]:
        """Results for ``inputs`` (in order) from ``model``, and the largest batch they ran in."""
        if self._closed:
            raise Closed(f"model '{self.name}' is shutting down")
        n = len(inputs)
        if n == 0:
            return [], 0
        if self.queued_items + n > self.max_queue:
            raise QueueFull(f"model '{self.name}' has {self.queued_items} items queued (limit "
                            f"{self.max_queue})")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{self.name}")
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        if self._last_arrival is not None:
            gap = now - self._last_arrival
            self.arrival_gap = gap if self.arrival_gap is None else 0.8 * self.arrival_gap + 0.2 * gap
        self._last_arrival = now
        entries = []
        for i in range(0, n, self.max_batch_size):
            entry = _Entry(model, inputs[i:i + self.max_batch_size], loop.create_future(), now)
            entries.append(entry)
            self._queue.append(entry)
        self.queued_items += n
        self._wake.set()
        if len(entries) == 1:
            results = await entries[0].future
            return results, entries[0].batch_size
        parts = await asyncio.gather(*(e.future for e in entries))
        return [r for part in parts for r in part], max(e.batch_size for e in entries)

    # -- worker side ----------------------------------------------------------------------------

    def _drop_dead_head(self) -> None:
        while self._queue and self._queue[0].future.done():  # cancelled (timeout, disconnect)
            self.queued_items -= len(self._queue.popleft().inputs)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._drop_dead_head()
            if not self._queue:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            head = self._queue[0]
            deadline = head.enqueued + self.max_wait
            worth_waiting = self.arrival_gap is not None and self.arrival_gap < self.max_wait
            while (worth_waiting and self.queued_items < self.max_batch_size and not self._closed
                   and (delay := deadline - time.monotonic()) > 0):
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except asyncio.TimeoutError:
                    break
            batch = self._take()
            if not batch:
                continue
            try:
                await self._execute(loop, batch)
            except Exception as exc:  # noqa: BLE001 - never let the loop die: fail the batch only
                log.exception("batcher '%s': batch failed unexpectedly", self.name)
                for e in batch:
                    _fail(e, exc)

    def _take(self) -> list[_Entry]:
        """Entries from the head of the queue: same model, at most ``max_batch_size`` items."""
        self._drop_dead_head()
        if not self._queue:
            return []
        model = self._queue[0].model
        batch: list[_Entry] = []
        size = 0
        while self._queue:
            e = self._queue[0]
            if e.future.done():
                self._queue.popleft()
                self.queued_items -= len(e.inputs)
                continue
            if e.model is not model or size + len(e.inputs) > self.max_batch_size:
                break
            self._queue.popleft()
            self.queued_items -= len(e.inputs)
            batch.append(e)
            size += len(e.inputs)
        return batch

    async def _execute(self, loop, batch: list[_Entry]) -> None:
        model = batch[0].model
        inputs = [x for e in batch for x in e.inputs]
        assert len(inputs) <= self.max_batch_size  # the invariant this module exists for
        self.batches_run += 1
        if self.on_batch is not None:
            self.on_batch(len(inputs), len(batch))
        try:
            results = await loop.run_in_executor(self._executor, _call, model, inputs)
        except Exception as exc:  # noqa: BLE001 - isolate the failing request
            if len(batch) == 1:
                _fail(batch[0], exc)
                return
            for e in batch:
                if e.future.done():
                    continue
                try:
                    part = await loop.run_in_executor(self._executor, _call, model, e.inputs)
                except Exception as exc2:  # noqa: BLE001
                    _fail(e, exc2)
                else:
                    _succeed(e, part, len(e.inputs))
            return
        start = 0
        for e in batch:
            _succeed(e, results[start:start + len(e.inputs)], len(inputs))
            start += len(e.inputs)

    async def close(self, timeout: float | None = None) -> None:
        """Refuse new work; finish what is queued (up to ``timeout`` seconds); stop the thread."""
        self._closed = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except asyncio.TimeoutError:
                self._task.cancel()
                for e in self._queue:
                    if not e.future.done():
                        e.future.set_exception(Closed(f"model '{self.name}' shut down"))
        self._executor.shutdown(wait=False)

    @property
    def closed(self) -> bool:
        return self._closed


def _call(model: Model, inputs: list) -> list:
    out = model.predict(inputs)
    if len(out) != len(inputs):
        raise RuntimeError(f"model returned {len(out)} results for {len(inputs)} inputs")
    return list(out)


def _succeed(e: _Entry, results: list, batch_size: int) -> None:
    if not e.future.done():
        e.batch_size = batch_size
        e.future.set_result(results)


def _fail(e: _Entry, exc: BaseException) -> None:
    if not e.future.done():
        e.future.set_exception(exc)


__all__ = ["Batcher", "QueueFull", "Closed", "Model"]
