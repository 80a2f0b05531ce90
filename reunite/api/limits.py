"""Limits on callers: request rates (a token bucket per API key, user or sign-in source, in
this process's memory) and request body sizes (counted as the body streams in, so a chunked
upload without Content-Length is held to the same limit).

Each bucket holds up to ``burst`` requests and refills at ``per_minute / 60`` a second. Behind
several server processes each keeps its own buckets, so the effective limit is per process.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reunite.errors import RateLimited, RequestTooLarge


class RateLimiter:
    """Token buckets keyed by principal name. Thread-safe; O(1) a request."""

    def __init__(
        self, *, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate_per_s = per_minute / 60.0
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, name: str) -> None:
        """Spend one request for ``name``; raise ``RateLimited`` (with ``retry_after_s``) if none
        is left."""
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.get(name, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate_per_s)
            if tokens < 1.0:
                self._buckets[name] = (tokens, now)
                retry_after_s = max(1, math.ceil((1.0 - tokens) / self.rate_per_s))
                raise RateLimited(
                    f"Too many requests; try again in {retry_after_s} s.",
                    retry_after_s=retry_after_s,
                )
            self._buckets[name] = (tokens - 1.0, now)


class BodyLimit:
    """ASGI middleware: refuse a request whose body is over ``limit_of(scope)`` bytes.

    A declared ``Content-Length`` over the limit is refused before reading. Otherwise the bytes
    are counted as they arrive (whatever ``Content-Length`` says, or without one): at the limit
    this middleware answers 413 itself, tells the application the client has gone, and drops
    whatever the application would still send. Nothing beyond the limit is read or stored.

    The refusal is ``answer_of(scope, limit)`` where that gives one (a page for a browser),
    else a problem.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit_of: Callable[[Scope], int],
        answer_of: Callable[[Scope, int], Response | None] = lambda _scope, _limit: None,
    ) -> None:
        self.app = app
        self.limit_of = limit_of
        self.answer_of = answer_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_of(scope)
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit, self.answer_of)
            return
        received = 0
        refused = False

        async def counted() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    await self._refuse(scope, receive, send, limit, self.answer_of)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not refused:  # once refused, the application's own answer comes too late
                await send(message)

        await self.app(scope, counted, guarded)

    @staticmethod
    async def _refuse(
        scope: Scope,
        receive: Receive,
        send: Send,
        limit: int,
        answer_of: Callable[[Scope, int], Response | None],
    ) -> None:
        from reunite.api.errors import problem

        response = answer_of(scope, limit) or problem(
            413,
            RequestTooLarge.code,
            f"The request is over {limit} bytes, the limit here.",
            {"max_bytes": limit},
        )
        await response(scope, receive, send)
