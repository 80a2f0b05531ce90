"""The admins' agencies page (``/admin/agencies``): the list the intake form's agency is chosen
from; add an agency, rename one, retire one or bring it back.

Every change goes through ``reunite.agencies``, which checks and audits it; a refused change is
shown next to its field, in the user's language.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from reunite import agencies
from reunite.api.auth import check_csrf, service_of
from reunite.errors import Conflict, InvalidField
from reunite.web import i18n
from reunite.web.account_pages import admin_user
from reunite.web.pages import PageRoute, language, render

router = APIRouter(include_in_schema=False, route_class=PageRoute)

AGENCIES_PAGE = "/admin/agencies"


def _agencies_page(
    request: Request,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    errors = errors or {}
    return render(
        request,
        "agencies.html",
        status_code=status_code,
        agency_rows=agencies.agencies(service_of(request).store),
        errors=errors,
        values=values or {},
        first_error=next(iter(errors), None),
    )


def _done(request: Request, key: str, code: str) -> Response:
    request.session["notice"] = i18n.text(language(request), key, code=code)
    return RedirectResponse(AGENCIES_PAGE, status_code=303)


@router.get(AGENCIES_PAGE)
def agencies_page(request: Request) -> Response:
    admin_user(request)
    return _agencies_page(request)


@router.post(AGENCIES_PAGE)
def add_agency(
    request: Request,
    code: Annotated[str, Form(max_length=200)] = "",
    name: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    admin = admin_user(request)
    check_csrf(request, csrf_token)
    lang = language(request)
    errors: dict[str, str] = {}
    if not name.strip() or len(name.strip()) > agencies.MAX_NAME_CHARS:
        errors["new-name"] = i18n.text(lang, "hint.agency_name")
    try:
        if not errors:
            row = agencies.add_agency(
                service_of(request).store, code, name, actor=f"user:{admin.username}"
            )
            return _done(request, "agencies.added", row.code)
        agencies.checked_code(code)
    except InvalidField:
        errors = {"new-code": i18n.text(lang, "hint.agency")} | errors
    except Conflict:
        errors = {"new-code": i18n.text(lang, "agencies.exists", code=code.strip())}
    values = {"code": code, "name": name}
    return _agencies_page(request, status_code=422, errors=errors, values=values)


@router.post(AGENCIES_PAGE + "/{code}/name")
def rename_agency(
    request: Request,
    code: str,
    name: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    admin = admin_user(request)
    check_csrf(request, csrf_token)
    try:
        row = agencies.rename_agency(
            service_of(request).store, code, name, actor=f"user:{admin.username}"
        )
    except InvalidField:
        errors = {f"name-{code}": i18n.text(language(request), "hint.agency_name")}
        return _agencies_page(request, status_code=422, errors=errors)
    return _done(request, "agencies.renamed", row.code)


@router.post(AGENCIES_PAGE + "/{code}/retired")
def retire_agency(
    request: Request,
    code: str,
    retired: Annotated[str, Form()] = "1",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    admin = admin_user(request)
    check_csrf(request, csrf_token)
    row = agencies.retire_agency(
        service_of(request).store, code, actor=f"user:{admin.username}", retired=retired == "1"
    )
    return _done(
        request, "agencies.retired_done" if row.retired else "agencies.restored_done", code
    )
