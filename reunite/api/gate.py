"""The gate in front of request bodies: a body is read only once its sender is known, only as
fast as a living client sends it, and only a few at once per sender.

A request that carries a body (``Content-Length`` over 0, or ``Transfer-Encoding``) passes the
gate only when, from its headers and cookie alone:

- it goes to a route open to anyone that takes a small body (the sign-in form and
  ``POST /api/v1/session``; ``app.body_limit_bytes`` holds those to a few kB), or
- it comes from a known caller: a valid API key (``Authorization: Bearer rk_...``), or a
  signed-in session. With a session, an API write must carry its ``X-CSRF-Token`` header
  (checked here), and a page form must not come from another site (``Sec-Fetch-Site``
  ``cross-site`` or ``same-site`` is refused); the form's own CSRF token is in the body and is
  checked after it is parsed, as before.

Anyone else is answered at once (401, or for a browser's page a redirect to the sign-in page;
403 for a request from another site or without its CSRF header), and the body is never read.

Past the gate, each wait for the next piece of the body is limited to ``body_timeout_s``, and
after the first ``rate_grace_s`` the body must have come at ``min_bytes_per_s`` on average: a
client that stops sending, or trickles (a byte every few seconds, to hold its upload places),
is answered 408 and the request is ended, so whatever it had sent (a spooled upload) is freed.
A caller may have at most ``uploads.limit`` large bodies (over ``LARGE_BODY_BYTES``, or of
unknown length) being received at once, counted across the server's worker processes
(``reunite.upload_slots``); one more is answered 429 with ``Retry-After`` before its body is
read.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reunite import accounts
from reunite.api.auth import csrf_token, session_user
from reunite.api.errors import STORE_RETRY_AFTER_S, headers_for, problem
from reunite.errors import Forbidden, NotAuthenticated, RateLimited, StoreUnavailable
from reunite.upload_slots import UploadSlots

OPEN_BODY_ROUTES = frozenset({("POST", "/login"), ("POST", "/api/v1/session")})
"""Routes anyone may send a body to: signing in. Their bodies are held to a few kB."""

LARGE_BODY_BYTES = 1024 * 1024
"""A body over this (or of unknown length) counts against the caller's concurrent uploads."""

UPLOADS_RETRY_AFTER_S = 5
"""``Retry-After`` on a 429 for too many uploads at once."""

OTHER_SITES = frozenset({b"cross-site", b"same-site"})
"""``Sec-Fetch-Site`` values a browser sends for a request made by another site's page."""


@dataclass(frozen=True)
class Refusal:
    """Why a request is answered before its body: the status, the error code, a message."""

    status: int
    code: str
    detail: str
    retry_after_s: int | None = None


PageAnswer = Callable[[Scope, Refusal], Response | None]
"""The refusal as a page for a browser (a redirect to sign in, an error page), or None."""


class BodyGate:
    """ASGI middleware (inside the session middleware): see the module's description."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        body_timeout_s: float,
        uploads: UploadSlots,
        min_bytes_per_s: float = 0,
        rate_grace_s: float = 10.0,
        page_answer: PageAnswer = lambda _scope, _refusal: None,
    ) -> None:
        self.app = app
        self.body_timeout_s = body_timeout_s
        self.uploads = uploads
        self.min_bytes_per_s = min_bytes_per_s
        self.rate_grace_s = rate_grace_s
        self.page_answer = page_answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not has_body(scope):
            await self.app(scope, receive, send)
            return
        if (scope["method"], scope["path"]) in OPEN_BODY_ROUTES:
            await self._pass_timed(scope, receive, send)
            return
        try:
            caller = await run_in_threadpool(caller_of, scope)
        except StoreUnavailable as exc:  # the key or session cannot be checked now
            caller = Refusal(503, exc.code, exc.message, STORE_RETRY_AFTER_S)
        if isinstance(caller, Refusal):
            await self._refuse(scope, receive, send, caller)
            return
        if not is_large(scope):
            await self._pass_timed(scope, receive, send)
            return
        with self.uploads.slot(caller) as taken:
            if not taken:
                await self._refuse(scope, receive, send, too_many_uploads(self.uploads.limit))
                return
            await self._pass_timed(scope, receive, send)

    async def _pass_timed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; a body that stalls or trickles ends it with 408."""
        started = False
        timed_out = False
        body_complete = False
        began = time.monotonic()
        received = 0

        async def timed_receive() -> Message:
            nonlocal timed_out, body_complete, received
            if timed_out:
                return {"type": "http.disconnect"}
            if body_complete:  # waiting for a disconnect, however long the answer takes
                return await receive()
            wait_s, too_slow = self._wait_s(time.monotonic() - began, received)
            try:
                message = await asyncio.wait_for(receive(), wait_s)
            except TimeoutError:
                timed_out = True
                if not started:
                    await self._too_late(too_slow)(scope, receive, send)
                return {"type": "http.disconnect"}
            body_complete = not message.get("more_body", False)
            received += len(message.get("body", b""))
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return  # answered 408 already: the application's own answer comes too late
            started = True
            await send(message)

        await self.app(scope, timed_receive, guarded_send)

    def _wait_s(self, elapsed_s: float, received: int) -> tuple[float, bool]:
        """How long to wait for the next piece of a body of which ``received`` bytes came in
        ``elapsed_s``, and whether that wait ends because the body would then be too slow
        (rather than stalled)."""
        if self.min_bytes_per_s <= 0:
            return self.body_timeout_s, False
        # The average rate falls under the minimum once past the grace and received / rate.
        until_slow = max(self.rate_grace_s, received / self.min_bytes_per_s) - elapsed_s
        if until_slow < self.body_timeout_s:
            return max(0.0, until_slow), True
        return self.body_timeout_s, False

    def _too_late(self, too_slow: bool) -> Response:
        if too_slow:
            detail = (
                f"The request body came slower than {self.min_bytes_per_s:g} bytes a second; "
                "send it again over a faster connection."
            )
        else:
            detail = (
                f"No part of the request body came for {self.body_timeout_s:g} s; send it again."
            )
        return problem(408, "request_timeout", detail, headers={"Connection": "close"})

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, why: Refusal) -> None:
        """Answer ``why`` and close the connection: its unread body must not be taken for the
        next request."""
        response = self.page_answer(scope, why) or refusal_problem(why)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def refusal_problem(why: Refusal) -> Response:
    """``why`` as a problem, with the headers and members its error has elsewhere."""
    extra: dict[str, object] = {}
    headers: dict[str, str] = {}
    if why.retry_after_s is not None:
        extra["retry_after_s"] = why.retry_after_s
        headers["Retry-After"] = str(why.retry_after_s)
    if why.status == 401:
        headers |= headers_for(NotAuthenticated(why.detail))
    if why.code == Forbidden.code:
        extra["reason"] = "csrf"
    return problem(why.status, why.code, why.detail, extra, headers)


def has_body(scope: Scope) -> bool:
    """Whether the request says a body follows (a length over 0, or chunked)."""
    headers = dict(scope.get("headers", []))
    length = headers.get(b"content-length", b"0").strip()
    return b"transfer-encoding" in headers or not length.isdigit() or int(length) > 0


def is_large(scope: Scope) -> bool:
    """Whether the body is over ``LARGE_BODY_BYTES`` or of unknown length."""
    length = dict(scope.get("headers", [])).get(b"content-length", b"").strip()
    return not length.isdigit() or int(length) > LARGE_BODY_BYTES


def is_page(scope: Scope) -> bool:
    path: str = scope["path"]
    return not (path == "/api" or path.startswith("/api/"))


def too_many_uploads(limit: int) -> Refusal:
    return Refusal(
        429,
        RateLimited.code,
        f"At most {limit} uploads at once from one caller; wait for one to finish.",
        retry_after_s=UPLOADS_RETRY_AFTER_S,
    )


def caller_of(scope: Scope) -> str | Refusal:
    """The caller a request with a body comes from (``key:<prefix>`` or ``user:<id>``), from
    its headers and session cookie alone; or why it is refused. Runs a store query."""
    request = Request(scope)
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    service = request.app.state.service
    if scheme.lower() == "bearer" and credentials.strip():
        try:
            key = accounts.api_key(service.store, credentials.strip())
        except NotAuthenticated as exc:
            return Refusal(401, NotAuthenticated.code, str(exc))
        return f"key:{key.prefix}"
    user = session_user(request)
    if user is None:
        return Refusal(
            401,
            NotAuthenticated.code,
            "Sign in first, or send an API key (Authorization: Bearer rk_...).",
        )
    if is_page(scope):
        if request.headers.get("sec-fetch-site", "").encode("latin-1") in OTHER_SITES:
            return Refusal(403, Forbidden.code, "A form from another site is not accepted.")
    else:
        sent = request.headers.get("x-csrf-token", "")
        expected = csrf_token(request)
        if not (expected and sent and hmac.compare_digest(expected, sent)):
            return Refusal(
                403,
                Forbidden.code,
                "The request is stale (CSRF token missing or wrong); reload it.",
            )
    return f"user:{user.id}"
