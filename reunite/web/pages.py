"""Routes of the staff pages. Each handler calls ``Reunite`` and renders one template.

Pages need a signed-in user (else a redirect to the sign-in page). Every form carries the
session's CSRF token. When a form is refused, the page is shown again with the error next to
the form, in the user's language, and every field the user typed still filled in (browsers do
not allow a page to refill a file input, so photos must be chosen again).
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Callable, Coroutine
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from reunite import accounts
from reunite.api.auth import (
    CSRF_FIELD,
    check_csrf,
    csrf_token,
    end_session,
    limit_sign_ins,
    service_of,
    session_user,
    start_session,
)
from reunite.api.errors import headers_for, http_problem, status_of
from reunite.api.routes import Id, decoded_cursor, encoded_cursor
from reunite.enrollment import PreparedPhoto
from reunite.errors import InvalidField, InvalidInput, ReuniteError
from reunite.review import birth_years
from reunite.service import Reunite
from reunite.store import EARLIEST_DATE, CaseRow, UserRow, validated_case_fields
from reunite.web import i18n

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
templates = Jinja2Templates(directory=TEMPLATES_DIR)

MAX_INTAKE_PHOTOS = 10
"""Most photos one intake form may carry."""
MAX_NOTE_CHARS = 2000
QUEUE_PAGE = 25


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
    from reunite.web.account_pages import router as account_router  # it imports this module

    app.include_router(router)
    app.include_router(account_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not wants_page(request):
            return http_problem(exc)
        lang = language(request)
        key = {404: "error.page_not_found", 405: "error.method_not_allowed"}.get(
            exc.status_code, "error.http"
        )
        message = i18n.text(lang, key, status=exc.status_code)
        return error_page(request, exc.status_code, message, getattr(exc, "headers", None))


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
            "when": lambda value: i18n.time_text(lang, value, service_of(request).display_zone),
            "facts": lambda case: case_facts(lang, case),
            "flag_text": lambda flag: i18n.flag_text(lang, flag),
            "user": session_user(request),
            "csrf": ensure_csrf(request),
            "csrf_field": CSRF_FIELD,
            "notice": request.session.pop("notice", None),
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
        born = f"{years[0]}\u2013{years[1]}" if years[0] != years[1] else str(years[0])
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
        limit_sign_ins(request, username)
        user = accounts.signed_in_user(service_of(request).store, username, password)
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
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout")
def sign_out(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, csrf_token)
    end_session(request)
    return RedirectResponse("/login", status_code=303)


# ------------------------------------------------------------------------------- review


@router.get("/review")
def review_queue(request: Request, order: str = "closest", cursor: str | None = None) -> Response:
    """The pending candidates, a page of ``QUEUE_PAGE`` at a time."""
    page_user(request)
    order = order if order in ("closest", "newest") else "closest"
    listing = service_of(request).candidate_queue(
        status="pending",
        order=order,
        limit=QUEUE_PAGE,
        after=decoded_cursor(cursor, order=order),
    )
    return render(
        request,
        "queue.html",
        views=listing.items,
        total=listing.total,
        order=order,
        next_cursor=encoded_cursor(listing.next_after),
    )


@router.post("/candidates/{candidate_id}/decision")
def decide(
    request: Request,
    candidate_id: Id,
    status: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/review",
) -> Response:
    user = page_user(request)
    lang = language(request)
    if len(note) > MAX_NOTE_CHARS:
        request.session["notice"] = i18n.text(lang, "error.note_too_long")
        return RedirectResponse(safe_next(next), status_code=303)
    try:
        check_csrf(request, csrf_token)
        view = service_of(request).decide(
            candidate_id,
            status,
            actor=f"user:{user.username}",
            role=user.role,
            note=note.strip() or None,
        )
        c = view.candidate
        request.session["notice"] = i18n.text(
            lang,
            "decision.saved",
            id=c.id,
            found=c.found_case_id,
            missing=c.missing_case_id,
            status=i18n.text(lang, f"status.{c.status}").lower(),
        )
    except ReuniteError as exc:
        request.session["notice"] = i18n.error_text(lang, exc)
    return RedirectResponse(safe_next(next), status_code=303)


# ------------------------------------------------------------------------------- intake


@router.get("/intake")
def intake_page(request: Request) -> Response:
    page_user(request)
    return render(request, "intake.html", values={}, errors=[], photo_errors=[])


@router.post("/intake")
def intake(
    request: Request,
    photos: Annotated[list[UploadFile], File()] = [],  # noqa: B006 (FastAPI reads, never mutates)
    csrf_token: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    sex: Annotated[str, Form()] = "unknown",
    age_min: Annotated[str, Form()] = "",
    age_max: Annotated[str, Form()] = "",
    date_found: Annotated[str, Form()] = "",
    taken_on: Annotated[str, Form()] = "",
    place: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    contact: Annotated[str, Form()] = "",
    agency: Annotated[str, Form()] = "",
    external_ref: Annotated[str, Form()] = "",
) -> Response:
    """Create a found case from the form and enroll its photos, all or nothing."""
    user = page_user(request)
    service = service_of(request)
    lang = language(request)
    values = {
        "name": name,
        "sex": sex,
        "age_min": age_min,
        "age_max": age_max,
        "date_found": date_found,
        "taken_on": taken_on,
        "place": place,
        "description": description,
        "contact": contact,
        "agency": agency,
        "external_ref": external_ref,
    }

    def refused(errors: list[str], photo_errors: list[tuple[str, str]]) -> Response:
        return render(
            request,
            "intake.html",
            status_code=422,
            values=values,
            errors=errors,
            photo_errors=photo_errors,
        )

    try:
        check_csrf(request, csrf_token)
    except ReuniteError as exc:
        return refused([i18n.error_text(lang, exc)], [])
    fields, field_errors = _found_case_fields(lang, values)
    try:
        validated_case_fields(fields)
    except InvalidField as exc:
        field_errors.append(i18n.error_text(lang, exc))
    photo_date = _form_date(lang, values, "taken_on", field_errors)
    prepared, photo_errors = _prepared_uploads(service, lang, photos, field_errors)
    if field_errors or photo_errors:
        return refused(field_errors, photo_errors)
    actor = f"user:{user.username}"
    try:
        case = service.create_case(fields, actor=actor)
    except ReuniteError as exc:
        return refused([i18n.error_text(lang, exc)], [])
    found = 0
    for photo in prepared:
        enrolled = service.enroll_prepared(case.id, photo, actor=actor, taken_on=photo_date)
        found += len(enrolled.new_candidates)
    request.session["notice"] = i18n.text(lang, "case.created", count=found)
    return RedirectResponse(f"/cases/{case.id}", status_code=303)


def _prepared_uploads(
    service: Reunite, lang: str, photos: list[UploadFile], field_errors: list[str]
) -> tuple[list[PreparedPhoto], list[tuple[str, str]]]:
    """The intake form's photos, each decoded with its one face found, and (file name, problem
    in ``lang``) for each that is not usable; a missing photo or too many go to
    ``field_errors``."""
    uploads = [p for p in photos if p.filename]
    if not uploads:
        field_errors.append(i18n.text(lang, "error.photo_required"))
    if len(uploads) > MAX_INTAKE_PHOTOS:
        field_errors.append(i18n.text(lang, "error.too_many_photos", limit=MAX_INTAKE_PHOTOS))
        uploads = []
    prepared: list[PreparedPhoto] = []
    photo_errors = []
    for upload in uploads:
        try:
            data = upload.file.read(service.settings.max_upload_bytes + 1)
            prepared.append(service.prepared_photo(data))
        except InvalidInput as exc:
            photo_errors.append((upload.filename or "", i18n.error_text(lang, exc)))
    return prepared, photo_errors


def _found_case_fields(lang: str, values: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The ``CaseFields`` of a found case from the intake form, and problems in ``lang``."""
    fields: dict[str, Any] = {"kind": "found"}
    errors: list[str] = []
    for key in ("name", "place", "description", "contact", "agency", "external_ref"):
        if values[key].strip():
            fields[key] = values[key].strip()
    fields["sex"] = values["sex"] if values["sex"] in ("female", "male") else "unknown"
    found_on = _form_date(lang, values, "date_found", errors)
    if found_on:
        fields["date_found"] = found_on
    ages = []
    for key in ("age_min", "age_max"):
        raw = values[key].strip()
        if raw and not (raw.isascii() and raw.isdigit() and int(raw) <= 120):
            errors.append(i18n.text(lang, "error.bad_age", field=i18n.text(lang, f"field.{key}")))
        elif raw:
            ages.append(int(raw))
    if ages:  # an apparent age of 60-70 on the day found means born 70 to 60 years before
        year = (found_on or date.today()).year
        fields["birth_year_min"] = year - max(ages)
        fields["birth_year_max"] = year - min(ages)
    return fields, errors


def _form_date(lang: str, values: dict[str, str], key: str, errors: list[str]) -> date | None:
    """A date typed in a form (YYYY-MM-DD, 1900 to today), or None; problems go to ``errors``."""
    raw = values[key].strip()
    if not raw:
        return None
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        value = None
    if value is None or not EARLIEST_DATE <= value <= date.today():
        label = i18n.text(lang, f"field.{key}")
        errors.append(i18n.text(lang, "error.bad_date", field=label, value=raw))
        return None
    return value


# ------------------------------------------------------------------------------- search


@router.get("/search")
def search_page(request: Request) -> Response:
    page_user(request)
    return render(request, "search.html", kind="all", results=None)


@router.post("/search")
def search(
    request: Request,
    photo: Annotated[UploadFile | None, File()] = None,
    csrf_token: Annotated[str, Form()] = "",
    kind: Annotated[str, Form()] = "all",
) -> Response:
    user = page_user(request)
    service = service_of(request)
    lang = language(request)
    kind = kind if kind in ("missing", "found", "all") else "all"
    if photo is None or not photo.filename:
        return render(
            request,
            "search.html",
            status_code=422,
            kind=kind,
            results=None,
            error=i18n.text(lang, "error.photo_required"),
        )
    try:
        check_csrf(request, csrf_token)
        data = photo.file.read(service.settings.max_upload_bytes + 1)
        image = service.decoded_photo(data)
        results = service.search_image(
            image,
            actor=f"user:{user.username}",
            kinds=["missing", "found"] if kind == "all" else [kind],
        )
    except ReuniteError as exc:
        return render(
            request,
            "search.html",
            status_code=422,
            kind=kind,
            results=None,
            error=i18n.error_text(lang, exc),
        )
    shown = f"data:{image.media_type};base64,{base64.b64encode(data).decode('ascii')}"
    return render(
        request,
        "search.html",
        kind=kind,
        results=results,
        image_url=shown,
        width=image.width,
        height=image.height,
    )


# --------------------------------------------------------------------------------- case


@router.get("/cases/{case_id}")
def case_page(request: Request, case_id: Id) -> Response:
    page_user(request)
    service = service_of(request)
    try:
        case = service.case(case_id)
    except ReuniteError as exc:
        return page_error(request, exc, 404)
    return render(
        request,
        "case.html",
        case=case,
        photos=service.photos(case_id),
        views=service.candidates(case_id),
    )
