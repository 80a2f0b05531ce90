"""The one place where library errors become HTTP responses (RFC 9457 problem details).

Every error response, ours or the framework's, has the media type ``application/problem+json``
and this shape::

    {"type": "urn:reunite:error:no_face_found", "title": "Unprocessable Entity", "status": 422,
     "code": "no_face_found", "detail": "No face was found in this photo. ...", ...details}
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reunite import errors
from reunite.api.examples import examples

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemField(BaseModel):
    """One invalid part of a request (``invalid_request``, ``invalid_field``)."""

    field: str | None = Field(
        description="Where: `query.limit`, `body.name`, ... (`invalid_request`) or a case field "
        "(`invalid_field`); null: the fields together (e.g. inconsistent dates)."
    )
    message: str


class Problem(BaseModel):
    """An error (RFC 9457 problem details). ``code`` is stable; other members vary by code:
    ``invalid_request`` lists ``errors``, ``rate_limited`` has ``retry_after_s``,
    ``image_too_large`` has ``max_bytes``."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra=examples(
            {
                "type": "urn:reunite:error:no_face_found",
                "title": "Unprocessable Entity",
                "status": 422,
                "code": "no_face_found",
                "detail": "No face was found in this photo. Use a clear photo ...",
            },
            {
                "type": "urn:reunite:error:invalid_request",
                "title": "Unprocessable Entity",
                "status": 422,
                "code": "invalid_request",
                "detail": "The request is invalid: query.limit: Input should be less than or "
                "equal to 500",
                "errors": [
                    {"field": "query.limit", "message": "Input should be less than or equal to 500"}
                ],
            },
        ),
    )

    type: str = Field(description="`urn:reunite:error:<code>`.")
    title: str = Field(description="The HTTP status phrase.")
    status: int
    code: str = Field(description="Stable and machine-readable: branch on this.")
    detail: str = Field(description="For people: what went wrong and what to do.")
    errors: list[ProblemField] = Field(
        default_factory=list,
        description="`invalid_request` and `invalid_field`: each invalid part of the request.",
    )


STATUS_BY_ERROR: dict[type[errors.ReuniteError], int] = {
    errors.UnsupportedImage: 415,
    errors.ImageTooLarge: 413,
    errors.RequestTooLarge: 413,
    errors.InvalidInput: 422,
    errors.NotAuthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.RateLimited: 429,
    errors.Overloaded: 503,
    errors.NotReady: 503,
    errors.IndexUnusable: 503,
    errors.PhotoStoreUnavailable: 503,
    errors.StoreUnavailable: 503,
}
"""HTTP status per error class; the most specific class listed in an error's MRO wins."""


STORE_RETRY_AFTER_S = 5
"""Seconds a client is asked to wait when the database cannot be reached (a restart takes a few)."""


def status_of(error: errors.ReuniteError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


RESERVED_MEMBERS = frozenset({"type", "title", "status", "code", "detail"})


def problem(
    status: int,
    code: str,
    detail: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An RFC 9457 problem response; ``extra`` members never replace the standard ones."""
    body = {k: v for k, v in (extra or {}).items() if k not in RESERVED_MEMBERS}
    body |= {
        "type": f"urn:reunite:error:{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "code": code,
        "detail": detail,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def headers_for(error: errors.ReuniteError) -> dict[str, str]:
    """HTTP headers an error calls for: when to retry, or how to authenticate."""
    if isinstance(error, errors.RateLimited | errors.Overloaded):
        return {"Retry-After": str(error.details.get("retry_after_s", 1))}
    if isinstance(error, errors.NotReady | errors.PhotoStoreUnavailable):
        return {"Retry-After": "1"}
    if isinstance(error, errors.StoreUnavailable):
        return {"Retry-After": str(STORE_RETRY_AFTER_S)}
    if isinstance(error, errors.NotAuthenticated):
        return {"WWW-Authenticate": 'Bearer realm="reunite"'}
    return {}


def http_problem(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """The framework's HTTP errors (no such route, method not allowed) as a problem."""
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    return problem(exc.status_code, code, str(exc.detail), headers=http_error_headers(request, exc))


def http_error_headers(request: Request, exc: StarletteHTTPException) -> dict[str, str]:
    """The headers of a framework HTTP error; a 405's ``Allow`` lists every method the path
    answers (the framework names only those of the first route on the path)."""
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        routes = request.app.router.routes
        headers["Allow"] = ", ".join(
            method
            for method in HTTP_METHODS
            if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
        )
    return headers


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def install_error_handlers(app: FastAPI) -> None:
    """Route library, validation, HTTP and unexpected errors to ``problem`` responses.

    The staff pages answer their own errors as pages (``reunite.web.pages.PageRoute``), and
    ``reunite.web.pages.install_pages`` answers a browser's unknown paths outside /api/ with a
    page too."""

    @app.exception_handler(errors.ReuniteError)
    async def _reunite_error(_request: Request, exc: errors.ReuniteError) -> JSONResponse:
        return problem(status_of(exc), exc.code, exc.message, exc.details, headers_for(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Echoing "input" back could repeat names or bytes; keep where and what only.
        problems = [
            {"field": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg", "")}
            for err in exc.errors()
        ]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        return problem(
            422, "invalid_request", f"The request is invalid: {summary}", {"errors": problems}
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return http_problem(request, exc)


class UnexpectedErrors:
    """ASGI middleware answering an unexpected exception with a 500 problem, inside the other
    middleware, so the answer still gets its request id, security headers, ``no-store``, access
    log line and metrics. (A FastAPI handler for ``Exception`` would answer from the outermost
    layer, past all of them.) Add it first, so it sits innermost. An exception after the answer
    has begun can only be logged and re-raised: the connection is then cut."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception:
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            answer = problem(
                500, "internal_error", "Something went wrong on our side; it was logged."
            )
            await answer(scope, receive, send)
