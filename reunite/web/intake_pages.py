"""Intake and search pages: a found person's case from a form with photos, and a search by
photo.

When a form is refused, the page is shown again with the error next to the form, in the user's
language, and every field the user typed still filled in (browsers do not allow a page to
refill a file input, so photos must be chosen again).
"""

from __future__ import annotations

import base64
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from reunite import names
from reunite.api.auth import check_csrf, service_of
from reunite.enrollment import PreparedPhoto
from reunite.errors import InvalidField, InvalidInput, ReuniteError
from reunite.service import Reunite
from reunite.store import EARLIEST_DATE, validated_case_fields
from reunite.web import i18n
from reunite.web.cards import reference_text
from reunite.web.pages import PageRoute, language, page_user, render

router = APIRouter(include_in_schema=False, route_class=PageRoute)

MAX_INTAKE_PHOTOS = 10
"""Most photos one intake form may carry."""


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
    agencies = names.agency_names(service.store, (c.case.agency for r in results for c in r.ranked))
    return render(
        request,
        "search.html",
        kind=kind,
        results=results,
        image_url=shown,
        width=image.width,
        height=image.height,
        reference=lambda case: reference_text(lang, case, agencies),
    )
