"""Connections that must send their request headers in time: uvicorn's HTTP/1.1 protocol with
a header timeout, which uvicorn does not have of its own.

A connection gets ``header_timeout_s`` from when it opens, and again from the first bytes of
each further request on it, to finish that request's headers. One that has not is answered
``408 Request Timeout`` and closed. (Waiting between requests is uvicorn's keep-alive
timeout; waiting for the body is ``BodyGate``'s body timeout.)

``reunite serve`` names this class as uvicorn's ``http`` protocol; every worker process
imports it and reads the timeout from ``REUNITE_HEADER_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from reunite.config import Settings

log = logging.getLogger(__name__)

PROTOCOL = "reunite.api.connections:HeaderTimeoutH11Protocol"
"""``module:class`` for uvicorn's ``http`` option."""

TIMEOUT_MESSAGE = b"The request headers did not come in time.\n"
TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n%s" % (len(TIMEOUT_MESSAGE), TIMEOUT_MESSAGE)
)


@functools.cache
def header_timeout_s() -> float:
    """``REUNITE_HEADER_TIMEOUT_S``, read once per process."""
    return Settings().header_timeout_s


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers come too slowly."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s()
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_request() or self.transport.is_closing():
            self._disarm_header_timer()
        elif self._header_timer is None:  # the first bytes of a further request
            self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _in_request(self) -> bool:
        """Whether a request's headers have come and its answer is not yet complete."""
        return self.cycle is not None and not self.cycle.response_complete

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._in_request() or self.transport.is_closing():
            return
        log.info("request headers did not come in %g s; connection closed", self.header_timeout_s)
        self.transport.write(TIMEOUT_ANSWER)
        self.transport.close()
