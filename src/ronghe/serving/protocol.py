"""uvicorn's HTTP protocol with a deadline for each request's line and headers.

uvicorn times out idle keep-alive connections but not a client that sends its headers a byte at
a time (slowloris): each such connection is held open for as long as the client likes. Here a
connection must deliver a complete request head within ``header_timeout_s`` of connecting, and
again after each response; otherwise it is closed. The body has its own deadline
(``body_timeout_s``, in the app's middleware), and the number of connections is bounded by
uvicorn's ``limit_concurrency`` (``max_connections``).

The deadline is a mixin over uvicorn's two HTTP/1.1 implementations: ``httptools`` (the C
parser; uvicorn's own choice when it is installed, and in the ``serve`` extra) and ``h11`` (pure
Python, the fallback); ``protocol_class()`` picks httptools when it imports.
"""

from __future__ import annotations

import os

from uvicorn.protocols.http.h11_impl import H11Protocol

ENV = "RONGHE_HEADER_TIMEOUT_S"  # for worker processes, which build their own uvicorn config


class _Deadline:
    """Closes a connection whose request head is not complete ``header_timeout_s`` after it
    opened or after the previous response (both protocols keep the current request in
    ``self.cycle``)."""

    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        self.header_timeout_s = float(getattr(config, "ronghe_header_timeout_s", None)
                                      or os.environ.get(ENV) or 10.0)
        self._header_timer = None

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # the head is complete; the body has its own deadline

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)


class HeaderDeadline(_Deadline, H11Protocol):
    """h11 (pure Python) with the head deadline."""


try:  # httptools is optional (the serve extra installs it)
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:
    HttpToolsProtocol = None
else:
    class HeaderDeadlineFast(_Deadline, HttpToolsProtocol):
        """httptools (C parser) with the head deadline."""


def protocol_class() -> str:
    """The import path uvicorn should load: httptools with the deadline when available."""
    return f"{__name__}:{'HeaderDeadline' if HttpToolsProtocol is None else 'HeaderDeadlineFast'}"
