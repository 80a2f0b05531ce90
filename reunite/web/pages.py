"""The staff pages' frame: rendering, errors as pages (``PageRoute``), sign-in and language.

The pages themselves are in ``review_pages`` (queue, decisions, cases), ``intake_pages``
(intake, search) and ``account_pages`` (passwords, accounts). Pages need a signed-in user (else
a redirect to the sign-in page). Every form carries the session's CSRF token.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from reunite.api.auth import (
    CSRF_FIELD,
    check_csrf,
    csrf_token,
    end_session,
    remember_device,
    service_of,
    session_user,
    signed_in_user,
    start_session,
)
from reunite.api.errors import headers_for, http_error_headers, http_problem, status_of
from reunite.api.gate import Refusal, is_page
from reunite.errors import ReuniteError, StoreUnavailable
from reunite.review import birth_years
from reunite.store import CaseRow, UserRow
from reunite.web import i18n

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
templates = Jinja2Templates(directory=TEMPLATES_DIR)


class SignInFirst(Exception):
    """Raised by a page that needs a user; answered with a redirect to the sign-in page."""


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class PageRoute(APIRoute):
    """A page's route: its errors are answered as pages, never as problem+json.

    A library error shows the error page with the error's HTTP status, a request that does not
    validate the "not found" page (a malformed id in the path) or the error page with 422 (a
    form without its fields), an unexpected error the error page with 500 (logged), and a page
    that needs a user redirects a visitor to the sign-in page.
    """

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInFirst:
                return sign_in_redirect(request)
            except ReuniteError as exc:
                return page_error(request, exc, status_of(exc), headers_for(exc))
            except RequestValidationError as exc:
                if any(error.get("loc", ("path",))[0] == "path" for error in exc.errors()):
                    return page_error(request, None, 404)  # a malformed id: no such page
                return error_page(request, 422, i18n.text(language(request), "error.form"))
            except StarletteHTTPException:
                raise  # answered by install_pages's handler, as a page for a browser
            except Exception:
                log.exception("unexpected error on %s %s", request.method, request.url.path)
                return error_page(request, 500, i18n.text(language(request), "error.unexpected"))

        return page_handler


router = APIRouter(include_in_schema=False, route_class=PageRoute)


def install_pages(app: FastAPI) -> None:
    """Add the pages and their static files to ``app``, and answer a browser's unknown paths
    (and wrong methods) outside /api/ with the error page. Call after
    ``install_error_handlers``: this replaces its handler of the framework's HTTP errors."""
    # The page modules import this one (their routes' helpers), so they are imported here.
    from reunite.web import account_pages, admin_pages, intake_pages, review_pages

    app.include_router(router)
    for module in (review_pages, intake_pages, account_pages, admin_pages):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not wants_page(request):
            return http_problem(request, exc)
        lang = language(request)
        key = {404: "error.page_not_found", 405: "error.method_not_allowed"}.get(
            exc.status_code, "error.http"
        )
        message = i18n.text(lang, key, status=exc.status_code)
        return error_page(request, exc.status_code, message, http_error_headers(request, exc))


def wants_page(request: Request) -> bool:
    """Whether an error here is answered with a page: a browser (asking for HTML) outside the
    API. The API, and any client not asking for HTML, gets problem+json."""
    path = request.url.path
    api = path == "/api" or path.startswith("/api/")
    return not api and "text/html" in request.headers.get("accept", "")


def too_large_page(scope: Scope, limit: int) -> Response | None:
    """A request body over the limit, as a page for a browser (``BodyLimit``'s answer)."""
    request = Request(scope)
    if not wants_page(request):
        return None
    lang = language(request)
    return error_page(
        request, 413, i18n.text(lang, "error.request_too_large", mb=max(1, limit // 1_000_000))
    )


def refused_page(scope: Scope, refusal: Refusal) -> Response | None:
    """A request refused before its body was read (``BodyGate``), as a browser sees it: a
    page without a signed-in user redirects to the sign-in page; a browser gets other refusals
    as the error page; any other client a problem (None)."""
    request = Request(scope)
    if refusal.status == 401 and is_page(scope):
        return sign_in_redirect(request)
    if not wants_page(request):
        return None
    key = {403: "error.forbidden", 429: "error.rate_limited"}.get(refusal.status, "error.http")
    message = i18n.text(language(request), key, status=refusal.status)
    headers = {"Retry-After": str(refusal.retry_after_s)} if refusal.retry_after_s else None
    return error_page(request, refusal.status, message, headers)


def sign_in_redirect(request: Request) -> Response:
    """To the sign-in page, coming back to this page afterwards."""
    target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return RedirectResponse(f"/login?next={target}", status_code=303)


def language(request: Request) -> str:
    return i18n.language_of(
        request.cookies.get(i18n.LANGUAGE_COOKIE), request.headers.get("accept-language")
    )


def page_user(request: Request) -> UserRow:
    user = session_user(request)
    if user is None:
        raise SignInFirst()
    return user


def ensure_csrf(request: Request) -> str:
    """The session's CSRF token, made now for a visitor who has none (the sign-in form)."""
    if not csrf_token(request):
        request.session["csrf"] = secrets.token_urlsafe(32)
    return csrf_token(request)


def shown_user(request: Request) -> UserRow | None:
    """The signed-in user the page header names; None when the database cannot be reached
    (the page that says so is shown without a name)."""
    try:
        return session_user(request)
    except StoreUnavailable:
        return None


def render(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    lang = language(request)

    def t(key: str, **values: Any) -> str:
        return i18n.text(lang, key, **values)

    return templates.TemplateResponse(
        request,
        template,
        {
            "lang": lang,
            "other_lang": "en" if lang == "zh-CN" else "zh-CN",
            "t": t,
            "d": lambda value: i18n.date_text(lang, value),
            "percent": i18n.percent_text,
            "closeness": lambda distance: i18n.closeness_text(
                lang, distance, service_of(request).settings.tolerance
            ),
            "no_chance": lambda score: i18n.no_chance_text(
                lang, score, service_of(request).settings.cohort_size
            ),
            "rules": lambda: service_of(request).settings,
            "when": lambda value: i18n.time_text(lang, value, service_of(request).display_zone),
            "facts": lambda case: case_facts(lang, case),
            "flag_text": lambda flag: i18n.flag_text(lang, flag),
            "user": shown_user(request),
            "csrf": ensure_csrf(request),
            "csrf_field": CSRF_FIELD,
            "notice": request.session.pop("notice", None),
            "undo": request.session.pop("undo", None),  # the notice's undo (review_pages)
            "path": request.url.path,
            **context,
        },
        status_code=status_code,
    )


def page_error(
    request: Request,
    error: ReuniteError | None,
    status_code: int,
    headers: dict[str, str] | None = None,
) -> Response:
    """An error on a page, as a page in the user's language (not JSON)."""
    lang = language(request)
    message = i18n.error_text(lang, error) if error else i18n.text(lang, "error.not_found")
    return error_page(request, status_code, message, headers)


def error_page(
    request: Request, status_code: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """The error page: ``message``, the status, and a way back to the queue."""
    response = render(
        request, "error.html", status_code=status_code, error=message, status=status_code
    )
    for name, value in (headers or {}).items():
        if name.lower() != "www-authenticate":  # a page signs in by its form, not by Bearer
            response.headers[name] = value
    return response


def case_facts(lang: str, case: CaseRow) -> list[tuple[str, str]]:
    """The key facts of a case as (label, value) rows, in ``lang``."""
    t = i18n.text
    years = birth_years(case)
    if case.birth_date:
        born = i18n.date_text(lang, case.birth_date)
    elif years:
        born = i18n.range_text(years)
    else:
        born = t(lang, "unknown")
    when_label = "field.date_missing" if case.kind == "missing" else "field.date_found"
    when = case.date_missing if case.kind == "missing" else case.date_found
    return [
        (t(lang, "field.name"), case.name or t(lang, "unknown")),
        (t(lang, "field.sex"), t(lang, f"sex.{case.sex}")),
        (t(lang, "field.birth_years" if not case.birth_date else "field.birth_date"), born),
        (t(lang, when_label), i18n.date_text(lang, when)),
        (t(lang, "field.place"), case.place or t(lang, "unknown")),
        (t(lang, "field.status"), t(lang, f"status.{case.status}")),
    ]


def safe_next(target: str | None, default: str = "/review") -> str:
    """Only same-site paths may be redirect targets."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return default


# ------------------------------------------------------------------------------ sign in


@router.get("/")
def home() -> Response:
    return RedirectResponse("/review", status_code=303)


@router.get("/lang/{code}")
def switch_language(code: str, next: str | None = None) -> Response:
    response = RedirectResponse(safe_next(next), status_code=303)
    if code in i18n.LANGUAGES:
        response.set_cookie(i18n.LANGUAGE_COOKIE, code, max_age=365 * 86400, samesite="lax")
    return response


@router.get("/login")
def sign_in_page(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", next=safe_next(next), username="")


@router.post("/login")
def sign_in(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/review",
) -> Response:
    try:
        check_csrf(request, csrf_token)
        user = signed_in_user(request, username, password)
    except ReuniteError as exc:
        return render(
            request,
            "login.html",
            status_code=status_of(exc),
            error=i18n.error_text(language(request), exc),
            next=safe_next(next),
            username=username,
        )
    start_session(request, user)
    response = RedirectResponse(safe_next(next), status_code=303)
    remember_device(request, response, user.username)
    return response


@router.post("/logout")
def sign_out(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, csrf_token)
    end_session(request)
    return RedirectResponse("/login", status_code=303)
