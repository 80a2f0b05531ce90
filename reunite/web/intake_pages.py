"""Intake and search pages: a found person's case from a form with photos, and a search by
photo.

Every field says its rule next to it. When a form is refused, the page is shown again in the
user's language with every field typed still filled in, each error next to its field (the first
wrong field focused, a summary at the top linking to each), and the photos that were fine kept
(``reunite.staging``: browsers do not allow a page to refill a file input), so they need not be
chosen again. A group photo is kept too, shown with a numbered box per face and, under it, one
choice per face (its crop, touch-sized) for the person to pick one.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from reunite import agencies, names
from reunite.api.auth import check_csrf, service_of
from reunite.enrollment import PreparedPhoto
from reunite.errors import (
    InvalidField,
    InvalidInput,
    MultipleFaces,
    NotFound,
    Overloaded,
    ReuniteError,
)
from reunite.service import Reunite
from reunite.staging import Staging
from reunite.store import EARLIEST_DATE, UserRow, validated_case_fields
from reunite.web import i18n
from reunite.web.cards import reference_text
from reunite.web.pages import PageRoute, language, page_user, render

router = APIRouter(include_in_schema=False, route_class=PageRoute)

MAX_INTAKE_PHOTOS = 10
"""Most photos one intake form may carry (kept ones included)."""
FORM_FIELDS = (
    "name",
    "sex",
    "age_min",
    "age_max",
    "date_found",
    "place",
    "description",
    "contact",
    "agency",
    "external_ref",
    "photos",
    "taken_on",
)
"""The intake form's fields in the order shown (errors are listed and focused in this order)."""
CASE_FIELD_OF = {"birth_year_min": "age_min", "birth_year_max": "age_max"}
"""The form field a ``CaseFields`` problem belongs to, where the names differ."""


@dataclass
class IntakePhoto:
    """A photo of the form: its bytes, the staged token once kept, and either its prepared
    face or (a group photo not yet picked) the boxes of its faces."""

    filename: str
    data: bytes
    token: str | None = None
    prepared: PreparedPhoto | None = None
    boxes: list[dict[str, int]] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)
    picked: int | None = None


def staging_of(request: Request) -> Staging:
    """The staging folder of this service's data folder."""
    return Staging(service_of(request).settings.data_dir / "staging")


def owner_of(user: UserRow) -> str:
    return f"user:{user.id}"


async def face_picks(request: Request) -> dict[str, int]:
    """The faces picked on the form: ``face-<token>`` radio values, by token."""
    form = await request.form()
    picks = {}
    for key, value in form.multi_items():
        if key.startswith("face-") and isinstance(value, str) and value.isdigit():
            picks[key.removeprefix("face-")] = int(value)
    return picks


def _intake_page(
    request: Request,
    *,
    values: dict[str, str],
    errors: dict[str, str],
    general: list[str],
    photo_errors: list[tuple[str, str]],
    kept: list[IntakePhoto],
    status_code: int = 200,
) -> Response:
    lang = language(request)
    settings = service_of(request).settings
    summary = [(key, errors[key]) for key in _in_form_order(errors)]
    summary += [
        ("photos", f"{name}: {message}" if name else message) for name, message in photo_errors
    ]
    summary.sort(key=lambda item: _form_position(item[0]))
    return render(
        request,
        "intake.html",
        status_code=status_code,
        values=values,
        errors=errors,
        general=general,
        summary=summary,
        first_error=summary[0][0] if summary else None,
        photo_errors=photo_errors,
        kept=kept,
        agency_list=agencies.agencies(service_of(request).store, include_retired=False),
        photos_hint=i18n.text(
            lang,
            "hint.photos",
            mb=max(1, settings.max_upload_bytes // 1_000_000),
            limit=MAX_INTAKE_PHOTOS,
        ),
    )


def _form_position(key: str) -> int:
    """Where a field is on the intake form: the face pickers follow the photos."""
    if key.startswith("face-"):
        return FORM_FIELDS.index("photos")
    return FORM_FIELDS.index(key) if key in FORM_FIELDS else len(FORM_FIELDS)


def _in_form_order(errors: dict[str, str]) -> list[str]:
    return sorted(errors, key=_form_position)


@router.get("/intake")
def intake_page(request: Request) -> Response:
    page_user(request)
    staging_of(request).remove_expired()
    return _intake_page(request, values={}, errors={}, general=[], photo_errors=[], kept=[])


@router.get("/intake/kept/{token}")
def kept_photo(request: Request, token: str) -> Response:
    """A photo kept for the signed-in user's form (``NotFound`` for anyone else's)."""
    user = page_user(request)
    staged = staging_of(request).staged(owner_of(user), token)
    return Response(
        staged.data,
        media_type=_media_type(staged.data),
        headers={"Cache-Control": "private, no-store"},
    )


def intake_values(
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
) -> dict[str, str]:
    """The intake form's case fields as typed, by field name (checked later, and shown again
    with the errors when the form is refused)."""
    return {
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


@router.post("/intake")
def intake(
    request: Request,
    picks: Annotated[dict[str, int], Depends(face_picks)],
    values: Annotated[dict[str, str], Depends(intake_values)],
    photos: Annotated[list[UploadFile], File()] = [],  # noqa: B006 (FastAPI reads, never mutates)
    kept: Annotated[list[str], Form()] = [],  # noqa: B006
    drop: Annotated[list[str], Form()] = [],  # noqa: B006
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Create a found case from the form and enroll its photos, all or nothing."""
    user = page_user(request)
    service = service_of(request)
    lang = language(request)
    staging, owner = staging_of(request), owner_of(user)
    try:
        check_csrf(request, csrf_token)
    except ReuniteError as exc:
        general = [i18n.error_text(lang, exc)]
        return _intake_page(
            request,
            values=values,
            errors={},
            general=general,
            photo_errors=[],
            kept=[],
            status_code=422,
        )
    for token in drop:
        staging.remove(owner, token)
    fields, errors, general = _found_case_fields(service, lang, values)
    photo_date = _form_date(lang, values, "taken_on", errors)
    tokens = [t for t in dict.fromkeys(kept) if t not in drop]
    form_photos, photo_errors = _form_photos(
        service, staging, owner, lang, tokens, photos, picks, errors
    )
    actor = f"user:{user.username}"
    case = None
    if not (errors or general or photo_errors or any(p.prepared is None for p in form_photos)):
        try:
            case = service.create_case(fields, actor=actor)
        except ReuniteError as exc:  # a duplicate agency case number (Conflict)
            general.append(i18n.error_text(lang, exc))
    if case is None:
        kept_photos = _kept(service, staging, owner, lang, form_photos, errors)
        return _intake_page(
            request,
            values=values,
            errors=errors,
            general=general,
            photo_errors=photo_errors,
            kept=kept_photos,
            status_code=422,
        )
    found = 0
    for photo in form_photos:
        assert photo.prepared is not None
        enrolled = service.enroll_prepared(
            case.id, photo.prepared, actor=actor, taken_on=photo_date
        )
        found += len(enrolled.new_candidates)
        if photo.token:
            staging.remove(owner, photo.token)
    request.session["notice"] = i18n.text(lang, "case.created", count=found)
    return RedirectResponse(f"/cases/{case.id}", status_code=303)


def _kept(
    service: Reunite,
    staging: Staging,
    owner: str,
    lang: str,
    photos: list[IntakePhoto],
    errors: dict[str, str],
) -> list[IntakePhoto]:
    """A refused form's photos, each staged (kept) for the form shown again, a group photo with
    its boxes; a group photo with no face picked yet adds its error to ``errors``."""
    for photo in photos:
        if photo.token is None:
            photo.token = staging.stage(owner, photo.filename, photo.data).token
        if photo.prepared is None:
            errors[f"face-{photo.token}"] = i18n.text(
                lang, "error.pick_face", filename=photo.filename, count=len(photo.boxes)
            )
    _add_boxes(service, photos)
    return photos


def _form_photos(
    service: Reunite,
    staging: Staging,
    owner: str,
    lang: str,
    tokens: list[str],
    uploads: list[UploadFile],
    picks: dict[str, int],
    errors: dict[str, str],
) -> tuple[list[IntakePhoto], list[tuple[str, str]]]:
    """The form's photos (kept ones first), each examined, and (file name, problem in
    ``lang``) for each that is not usable; a missing photo or too many go to ``errors``."""
    uploads = [p for p in uploads if p.filename]
    if not tokens and not uploads:
        errors["photos"] = i18n.text(lang, "error.photo_required")
    if len(tokens) + len(uploads) > MAX_INTAKE_PHOTOS:
        errors["photos"] = i18n.text(lang, "error.too_many_photos", limit=MAX_INTAKE_PHOTOS)
        uploads = []
    chosen: list[tuple[str | None, str, bytes]] = []
    photo_errors = []
    for token in tokens[:MAX_INTAKE_PHOTOS]:
        try:
            staged = staging.staged(owner, token)
        except NotFound:
            photo_errors.append(("", i18n.text(lang, "error.kept_gone")))
            continue
        chosen.append((token, staged.filename, staged.data))
    for upload in uploads:
        data = upload.file.read(service.settings.max_upload_bytes + 1)
        chosen.append((None, upload.filename or "", data))
    examined = []
    for kept_as, filename, data in chosen:
        photo = IntakePhoto(filename, data, kept_as, picked=picks.get(kept_as or ""))
        try:
            _examine(service, photo)
        except InvalidInput as exc:
            photo_errors.append((filename, i18n.error_text(lang, exc)))
            if kept_as:
                staging.remove(owner, kept_as)
            continue
        examined.append(photo)
    return examined, photo_errors


def _examine(service: Reunite, photo: IntakePhoto) -> None:
    """Find ``photo``'s one face (the picked one in a group photo); a group photo with no face
    picked keeps its boxes instead. Raises ``InvalidInput`` for a photo that cannot be used."""
    try:
        photo.prepared = service.prepared_photo(photo.data, face_index=photo.picked)
    except (MultipleFaces, InvalidField) as exc:
        if "boxes" not in exc.details:
            raise
        photo.boxes, photo.picked = list(exc.details["boxes"]), None


def _add_boxes(service: Reunite, photos: list[IntakePhoto]) -> None:
    """Give each group photo its boxes and size (a picked one's too), for the face picker."""
    for photo in photos:
        if photo.prepared is not None and photo.picked is not None:
            try:
                service.prepared_photo(photo.data)
            except MultipleFaces as exc:
                photo.boxes = list(exc.details["boxes"])
        if photo.boxes:
            image = service.decoded_photo(photo.data)
            photo.size = (image.width, image.height)


def _media_type(data: bytes) -> str:
    """The media type of a photo the form accepted (JPEG, PNG or WebP), by its first bytes."""
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg"


def _found_case_fields(
    service: Reunite, lang: str, values: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """The ``CaseFields`` of a found case from the intake form, and its problems in ``lang``:
    by form field, and those of no one field."""
    fields: dict[str, Any] = {"kind": "found"}
    errors: dict[str, str] = {}
    for key in ("name", "place", "description", "contact", "agency", "external_ref"):
        if values[key].strip():
            fields[key] = values[key].strip()
    fields["sex"] = values["sex"] if values["sex"] in ("female", "male") else "unknown"
    found_on = _form_date(lang, values, "date_found", errors)
    if found_on:
        fields["date_found"] = found_on
    ages = _ages(lang, values, errors)
    if ages:  # an apparent age of 60-70 on the day found means born 70 to 60 years before
        year = (found_on or date.today()).year
        fields["birth_year_min"] = year - ages[1]
        fields["birth_year_max"] = year - ages[0]
    kept = agencies.active_codes(service.store)
    if kept and "agency" in fields and fields["agency"] not in kept:
        errors["agency"] = i18n.text(lang, "error.unknown_agency")
    general: list[str] = []
    try:
        validated_case_fields(fields)
    except InvalidField as exc:
        for problem in exc.details.get("errors", []):
            name = str(problem.get("field") or "")
            key = CASE_FIELD_OF.get(name, name)
            if key in FORM_FIELDS:
                errors.setdefault(key, _field_problem(lang, key, name, fields, listed=bool(kept)))
            else:
                general.append(i18n.error_text(lang, InvalidField("", errors=[problem])))
    return fields, errors, general


def _field_problem(lang: str, key: str, name: str, fields: dict[str, Any], *, listed: bool) -> str:
    """What is wrong with the form field ``key`` (the case field ``name``), in words that fit
    its control: the field and its rule (the drop-down's where an admin keeps the agencies,
    ``listed``), or, for a case number sent without an agency, that the agency is needed."""
    if key == "agency" and "external_ref" in fields and "agency" not in fields:
        return i18n.text(
            lang, "error.ref_needs_agency_list" if listed else "error.ref_needs_agency"
        )
    message = i18n.text(lang, "error.field", field=i18n.field_label(lang, name))
    hint = "hint.agency_list" if key == "agency" and listed else f"hint.{key}"
    rule = i18n.text(lang, hint) if i18n.has_text(lang, hint) else ""
    return f"{message} {rule}".strip()


def _ages(lang: str, values: dict[str, str], errors: dict[str, str]) -> tuple[int, int] | None:
    """The apparent ages (from, to) typed, either alone standing for both; None when neither;
    problems (not a number, "from" above "to") go to ``errors``."""
    ages: dict[str, int] = {}
    for key in ("age_min", "age_max"):
        raw = values[key].strip()
        if raw and not (raw.isascii() and raw.isdigit() and int(raw) <= 120):
            label = i18n.text(lang, f"field.{key}")
            errors[key] = i18n.text(lang, "error.bad_age", field=label)
        elif raw:
            ages[key] = int(raw)
    if not ages or "age_min" in errors or "age_max" in errors:
        return None
    low, high = ages.get("age_min", ages.get("age_max", 0)), ages.get("age_max", ages["age_min"])
    if low > high:
        errors["age_min"] = i18n.text(lang, "error.age_range", low=low, high=high)
        return None
    return low, high


def _form_date(lang: str, values: dict[str, str], key: str, errors: dict[str, str]) -> date | None:
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
        errors[key] = i18n.text(lang, "error.bad_date", field=label, value=raw)
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
        image, results = service.decoded_and_searched(
            data,
            actor=f"user:{user.username}",
            kinds=["missing", "found"] if kind == "all" else [kind],
        )
    except Overloaded:
        raise  # the busy page (503, Retry-After), not the form again: nothing to correct
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
