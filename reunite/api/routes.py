"""HTTP endpoints under ``/api/v1``: thin wrappers that check access, call ``Reunite`` and shape
responses.

Every endpoint depends on ``principal`` (an API key or a staff session; see ``api.auth``) and
checks the role rules of ``reunite.access`` before it acts. Endpoints are plain ``def``
functions, so FastAPI runs them in its thread pool: decoding, dlib and FAISS never block the
event loop.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Response, UploadFile
from pydantic import AfterValidator, AwareDatetime, BeforeValidator

from reunite import access, webhooks
from reunite.access import Principal
from reunite.api import schemas
from reunite.api.auth import principal, service_of
from reunite.errors import Forbidden, ImageTooLarge, InvalidField, NotFound
from reunite.index import KINDS
from reunite.privacy import ErasureReason
from reunite.service import Reunite
from reunite.store import CaseFields

router = APIRouter(prefix="/api/v1")

MAX_ID = 2**63 - 1
Id = Annotated[int, Path(ge=1, le=MAX_ID, description="A positive id.")]
"""Ids are 64-bit: anything larger is a 422, never an overflow deeper down."""


def _iso_only(value: object) -> object:
    if isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit():
        raise ValueError("give a date-time with its zone, e.g. 2024-03-05T08:00:00Z")
    return value


def utc_moment(value: datetime) -> datetime:
    """``value`` in UTC. Raises ``ValueError`` for a moment outside the calendar once in UTC
    (``9999-12-31T23:00:00-05:00`` is in the year 10000), which ``astimezone`` would answer
    with ``OverflowError``."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            "give a date-time between 0001-01-01 and 9999-12-31 in UTC, e.g. 2024-03-05T08:00:00Z"
        ) from None


Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_only), AfterValidator(utc_moment)]
"""An ISO 8601 date-time with its zone (not a bare number, not a time without zone), in UTC."""

Service = Annotated[Reunite, Depends(service_of)]
Caller = Annotated[Principal, Depends(principal)]
Cursor = Annotated[
    str | None, Query(max_length=500, description="`next_cursor` of the previous page.")
]
Limit = Annotated[int, Query(ge=1, le=500)]

Responses = dict[int | str, dict[str, Any]]


def error_responses(*statuses: int) -> Responses:
    """OpenAPI entries for error statuses (the shape is added for all of them in one place)."""
    described = {
        404: "No such resource, or one this caller may not see",
        409: "Not allowed in the current state, or a duplicate",
        413: "File, image or request too large",
        415: "Not a JPEG, PNG or WebP image",
    }
    return {status: {"description": described[status]} for status in statuses}


# ----------------------------------------------------------------------------------- cursors


def encoded_cursor(key: list[Any] | None) -> str | None:
    """An opaque cursor for a sort key (dates become ISO text)."""
    if key is None:
        return None
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


CURSOR_SHAPES = {
    "updated": ("time", "id"),
    "closest": ("number", "number", "id"),  # superseded last (0 or 1), distance, id
    "newest": ("id",),
}
"""The sort key of each listing order, as a cursor carries it."""


def decoded_cursor(cursor: str | None, *, order: str) -> list[Any] | None:
    """The sort key in a cursor made for ``order`` (see ``CURSOR_SHAPES``).

    Raises ``InvalidField`` for anything else, including a cursor of another order.
    """
    if not cursor:
        return None
    shape = CURSOR_SHAPES[order]
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(shape):
            raise ValueError("wrong length")
        return [_cursor_value(kind, value) for kind, value in zip(shape, values, strict=True)]
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidField(
            "The cursor is not one this service gave out for this listing (order).",
            reason="cursor",
        ) from exc


def _cursor_value(kind: str, value: Any) -> Any:
    if kind == "time":
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("a cursor time has a zone")
        return utc_moment(moment)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("not a number")
    if kind == "id" and (not isinstance(value, int) or not 0 <= value <= MAX_ID):
        raise ValueError("not an id")
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value


# ------------------------------------------------------------------------------------ cases


def upload_bytes(upload: UploadFile, service: Reunite) -> bytes:
    """The uploaded file's bytes, refusing more than the configured limit without reading it all."""
    limit = service.settings.max_upload_bytes
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise ImageTooLarge(
            f"The file is larger than {limit} bytes. Send a smaller copy of the photo.",
            max_bytes=limit,
        )
    return data


def readable_case(service: Reunite, caller: Principal, case_id: int) -> Any:
    case = service.case(case_id)
    access.check_read_case(caller, case)
    return case


def writable_case(service: Reunite, caller: Principal, case_id: int) -> Any:
    case = service.case(case_id)
    access.check_write_case(caller, case)
    return case


@router.post("/cases", status_code=201, tags=["cases"], responses=error_responses(409))
def create_case(body: CaseFields, service: Service, caller: Caller) -> schemas.CaseOut:
    """Create a ``missing`` case (family or police report) or a ``found`` one (rescue center).

    Staff create found cases; a police key creates its own agency's missing cases.
    """
    fields = access.checked_new_case_fields(caller, body.model_dump())
    return schemas.case_out(service.create_case(fields, actor=caller.name), caller)


@router.get("/cases", tags=["cases"])
def list_cases(
    service: Service,
    caller: Caller,
    kind: Literal["missing", "found"] | None = None,
    status: Literal["open", "matched", "closed"] | None = None,
    agency: Annotated[str | None, Query(max_length=64)] = None,
    updated_since: Timestamp | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> schemas.CasePage:
    """Cases by last change, oldest first, filtered; follow `next_cursor` page by page.

    To sync: pass the time of your last sync as `updated_since`. A police key sees its own
    agency's missing cases only.
    """
    if caller.is_police:
        if agency not in (None, caller.agency) or kind == "found":
            return schemas.CasePage(items=[], total=0, next_cursor=None)
        agency, kind = caller.agency, "missing"
    listing = service.cases(
        kind=kind,
        status=status,
        agency=agency,
        updated_since=updated_since,
        after=decoded_cursor(cursor, order="updated"),
        limit=limit,
    )
    return schemas.CasePage(
        items=[schemas.case_out(c, caller) for c in listing.items],
        total=listing.total,
        next_cursor=encoded_cursor(listing.next_after),
    )


@router.get("/cases/{case_id}", tags=["cases"], responses=error_responses(404))
def get_case(case_id: Id, service: Service, caller: Caller) -> schemas.CaseOut:
    return schemas.case_out(readable_case(service, caller, case_id), caller)


@router.patch("/cases/{case_id}", tags=["cases"], responses=error_responses(404, 409))
def update_case(
    case_id: Id, body: schemas.CaseUpdate, service: Service, caller: Caller
) -> schemas.CaseOut:
    """Change some facts of a case; fields left out keep their values."""
    writable_case(service, caller, case_id)
    changes = body.model_dump(exclude_unset=True)
    if caller.is_police and changes.get("agency", caller.agency) != caller.agency:
        raise Forbidden("A police key cannot move a case to another agency.")
    return schemas.case_out(service.update_case(case_id, changes, actor=caller.name), caller)


@router.delete("/cases/{case_id}", status_code=204, tags=["cases"], responses=error_responses(404))
def delete_case(
    case_id: Id,
    service: Service,
    caller: Caller,
    reason: Annotated[
        ErasureReason,
        Query(description="Why the case is erased: a category, recorded in the audit log."),
    ],
) -> Response:
    """Erase a case: its record, photos (files too), faces (from search too), face crops and
    candidates. The audit log keeps who erased which case, when, and the `reason` category.

    A police key erases its own agency's missing cases, staff found cases, an admin any case.
    """
    writable_case(service, caller, case_id)
    service.delete_case(case_id, actor=caller.name, reason=reason)
    return Response(status_code=204)


@router.put(
    "/agencies/{agency}/cases/{external_ref}",
    tags=["sync"],
    responses=error_responses(409),
    status_code=200,
)
def put_agency_case(
    agency: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")],
    external_ref: Annotated[
        str,
        Path(
            min_length=1,
            max_length=128,
            pattern="^[^\ufffd]+$",
            description="Percent-encoded UTF-8. Bytes that are not UTF-8 are refused: the server "
            "would decode each to U+FFFD, and different references would name one case.",
        ),
    ],
    body: schemas.CaseRecord,
    service: Service,
    caller: Caller,
    response: Response,
) -> schemas.CaseOut:
    """Create or update the agency's case with this reference, idempotently.

    The body is the whole record. The same body again changes nothing (200); a changed body
    updates the case (200); a new reference creates it (201). For police keys of that agency
    and admins.
    """
    access.check_agency(caller, agency)
    if caller.is_police and body.kind != "missing":
        raise Forbidden("Police keys sync missing cases only.")
    record = body.model_dump(exclude_unset=True)
    if record.get("status") is None:
        record.pop("status", None)  # left out or null: the stored status is kept
    case, outcome = service.put_case(agency, external_ref, record, actor=caller.name)
    if outcome == "created":
        response.status_code = 201
    return schemas.case_out(case, caller)


@router.post(
    "/cases/{case_id}/photos",
    status_code=201,
    tags=["photos"],
    responses=error_responses(404, 409, 413, 415),
)
def add_photo(
    case_id: Id,
    file: Annotated[UploadFile, File(description="JPEG, PNG or WebP with one face.")],
    service: Service,
    caller: Caller,
    response: Response,
    taken_on: Annotated[date | None, Form(description="When the photo was taken.")] = None,
    face_index: Annotated[
        int | None,
        Form(ge=0, le=1000, description="Which face to use when the photo shows several."),
    ] = None,
) -> schemas.EnrollmentOut:
    """Add a photo to a case, embed its face, and return the new candidates it produced.

    The same bytes sent again for the same case change nothing and answer 200.
    """
    writable_case(service, caller, case_id)
    data = upload_bytes(file, service)
    enrollment = service.enroll_photo(
        case_id, data, actor=caller.name, taken_on=taken_on, face_index=face_index
    )
    if not enrollment.created:
        response.status_code = 200
    return schemas.EnrollmentOut.of(enrollment)


@router.get("/cases/{case_id}/photos", tags=["photos"], responses=error_responses(404))
def list_photos(case_id: Id, service: Service, caller: Caller) -> list[schemas.PhotoOut]:
    readable_case(service, caller, case_id)
    return [schemas.PhotoOut.of(p, faces) for p, faces in service.photos(case_id)]


@router.get("/cases/{case_id}/candidates", tags=["review"], responses=error_responses(404))
def list_case_candidates(
    case_id: Id, service: Service, caller: Caller
) -> list[schemas.CandidateDetail]:
    """The case's candidates, nearest first, with both cases, flags and decisions."""
    readable_case(service, caller, case_id)
    return [schemas.CandidateDetail.of(v, caller) for v in service.candidates(case_id)]


# ----------------------------------------------------------------------------------- search


@router.post("/search", tags=["search"], responses=error_responses(413, 415))
def search(
    file: Annotated[UploadFile, File(description="JPEG, PNG or WebP; every face is searched.")],
    service: Service,
    caller: Caller,
    kind: Annotated[Literal["missing", "found", "all"], Form()] = "all",
    k: Annotated[int | None, Form(ge=1, le=200)] = None,
    tolerance: Annotated[float | None, Form(gt=0, le=2)] = None,
) -> schemas.SearchOut:
    """Search a photo against enrolled cases. Stores nothing but an audit record (ids only).

    A police key sees other agencies' cases redacted (what a candidate shows).
    """
    data = upload_bytes(file, service)
    kinds: list[str] = list(KINDS) if kind == "all" else [kind]
    k = k or service.settings.top_k
    tolerance = tolerance or service.settings.tolerance
    results = service.search_photo(data, actor=caller.name, kinds=kinds, k=k, tolerance=tolerance)
    return schemas.SearchOut.of(results, kinds=kinds, k=k, tolerance=tolerance, principal=caller)


# ----------------------------------------------------------------------------------- images

IMAGE_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
"""Photos and crops are kept by no cache, the browser's included (every view is audited)."""


def visible_case_of(service: Reunite, caller: Principal, case_id: int, what: str) -> None:
    if not access.may_see_face_of(caller, service.case(case_id)):
        raise NotFound(f"There is no {what}.")


@router.get(
    "/photos/{photo_id}/image",
    response_class=Response,
    tags=["photos"],
    responses={
        200: {"content": {t: {} for t in IMAGE_TYPES.values()}, "description": "The photo"},
        **error_responses(404),
    },
)
def photo_image(photo_id: Id, service: Service, caller: Caller) -> Response:
    """The photo's original bytes. Each view is audited."""
    visible_case_of(service, caller, service.photo(photo_id).case_id, f"photo {photo_id}")
    photo, data = service.photo_file(photo_id, actor=caller.name)
    return Response(data, media_type=IMAGE_TYPES[photo.format])  # no-store: SecurityHeaders


@router.get(
    "/faces/{face_id}/crop",
    response_class=Response,
    tags=["photos"],
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The face, cut out"},
        **error_responses(404),
    },
)
def face_crop(face_id: Id, service: Service, caller: Caller) -> Response:
    """A JPEG crop of one face from its upright photo, with a 25% margin. Each view is audited."""
    visible_case_of(service, caller, service.face(face_id).case_id, f"face {face_id}")
    return Response(service.face_crop(face_id, actor=caller.name), media_type="image/jpeg")


# ----------------------------------------------------------------------------------- review


@router.get("/candidates", tags=["review"])
def candidate_queue(
    service: Service,
    caller: Caller,
    status: Literal["pending", "confirmed", "rejected", "any"] = "pending",
    order: Literal["closest", "newest", "updated"] = "closest",
    updated_since: Timestamp | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> schemas.CandidatePage:
    """Candidates: the review queue (pending, closest first; those flagged
    `no_longer_proposed` after all others), or any status for sync clients
    (`order=updated` with `updated_since`). A police key sees those of its own cases."""
    listing = service.candidate_queue(
        status=None if status == "any" else status,
        order=order,
        agency=caller.agency if caller.is_police else None,
        updated_since=updated_since,
        after=decoded_cursor(cursor, order=order),
        limit=limit,
    )
    return schemas.CandidatePage(
        items=[schemas.CandidateDetail.of(v, caller) for v in listing.items],
        total=listing.total,
        next_cursor=encoded_cursor(listing.next_after),
    )


@router.get("/candidates/{candidate_id}", tags=["review"], responses=error_responses(404))
def get_candidate(candidate_id: Id, service: Service, caller: Caller) -> schemas.CandidateDetail:
    view = service.candidate(candidate_id)
    if caller.is_police and not access.owns(caller, view.missing):
        raise NotFound(f"There is no candidate {candidate_id}.")
    return schemas.CandidateDetail.of(view, caller)


@router.post(
    "/candidates/{candidate_id}/decisions", tags=["review"], responses=error_responses(404, 409)
)
def decide(
    candidate_id: Id, body: schemas.DecisionIn, service: Service, caller: Caller
) -> schemas.CandidateDetail:
    """Confirm or reject a pending candidate (staff), or reopen a decided one (admin, reason in
    ``note``). Confirming marks both cases ``matched``."""
    access.check_role(caller, "staff")
    view = service.decide(
        candidate_id, body.status, actor=caller.name, role=caller.role, note=body.note
    )
    return schemas.CandidateDetail.of(view, caller)


@router.post(
    "/candidates/{candidate_id}/decisions/{decision_id}/undo",
    tags=["review"],
    responses=error_responses(404, 409),
)
def undo_decision(
    candidate_id: Id, decision_id: Id, service: Service, caller: Caller
) -> schemas.CandidateDetail:
    """Undo the caller's own confirm or reject of a candidate within ``REUNITE_UNDO_WINDOW_S``
    seconds (staff): the candidate is ``pending`` again, a confirm's cases ``open``. Refused
    with 409 ``undo_refused`` (``reason``: ``off``, ``not_undoable``, ``not_yours``,
    ``window_passed``, ``later_decision``, ``case_changed``)."""
    access.check_role(caller, "staff")
    view = service.undo(candidate_id, decision_id, actor=caller.name)
    return schemas.CandidateDetail.of(view, caller)


@router.get("/audit", tags=["admin"])
def audit_log(
    service: Service,
    caller: Caller,
    action: Annotated[str | None, Query(max_length=40)] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    case_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    since: Timestamp | None = None,
    until: Timestamp | None = None,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> schemas.AuditPage:
    """The append-only audit log, newest first (admins only). Nothing can change it."""
    access.check_role(caller)
    events = service.audit_events(
        action=action,
        actor=actor,
        case_id=case_id,
        since=since,
        until=until,
        before_id=before_id,
        limit=limit,
    )
    return schemas.AuditPage(
        items=[schemas.AuditEventOut.model_validate(e) for e in events],
        next_before_id=events[-1].id if len(events) == limit else None,
    )


# --------------------------------------------------------------------------------- webhooks

Agency = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]


@router.post("/agencies/{agency}/webhooks", status_code=201, tags=["webhooks"])
def register_webhook(
    agency: Agency, body: schemas.WebhookIn, service: Service, caller: Caller
) -> schemas.WebhookCreated:
    """Register a URL to receive the agency's candidate events, signed with the returned secret
    (shown once). See docs/webhooks.md for the event format and the signature header."""
    access.check_agency(caller, agency)
    hook, secret = webhooks.create_webhook(
        service.store,
        agency,
        body.url,
        actor=caller.name,
        allowed_networks=service.settings.webhook_networks,
    )
    return schemas.WebhookCreated(
        **schemas.WebhookOut.model_validate(hook).model_dump(), secret=secret
    )


@router.get("/agencies/{agency}/webhooks", tags=["webhooks"])
def list_webhooks(agency: Agency, service: Service, caller: Caller) -> list[schemas.WebhookOut]:
    access.check_agency(caller, agency)
    return [
        schemas.WebhookOut.model_validate(h) for h in webhooks.webhooks_of(service.store, agency)
    ]


@router.delete(
    "/agencies/{agency}/webhooks/{webhook_id}",
    status_code=204,
    tags=["webhooks"],
    responses=error_responses(404),
)
def deactivate_webhook(
    agency: Agency, webhook_id: Id, service: Service, caller: Caller
) -> Response:
    """Stop sending events to this webhook; its undelivered events are marked failed."""
    access.check_agency(caller, agency)
    webhooks.disable_webhook(service.store, webhook_id, agency=agency, actor=caller.name)
    return Response(status_code=204)


@router.get("/webhook-deliveries", tags=["webhooks"])
def webhook_deliveries(
    service: Service,
    caller: Caller,
    status: Literal["pending", "delivered", "failed"] | None = None,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> schemas.DeliveryPage:
    """Webhook events and their delivery state, newest first (admins)."""
    access.check_role(caller)
    rows = webhooks.webhook_deliveries(
        service.store, status=status, limit=limit, before_id=before_id
    )
    return schemas.DeliveryPage(
        items=[schemas.DeliveryOut.model_validate(r) for r in rows],
        next_before_id=rows[-1].id if len(rows) == limit else None,
    )


@router.post(
    "/webhook-deliveries/{delivery_id}/retry",
    tags=["webhooks"],
    responses=error_responses(404, 409),
)
def retry_webhook_delivery(
    delivery_id: Id, service: Service, caller: Caller, request: Request
) -> schemas.DeliveryOut:
    """Send a failed event again (admins)."""
    access.check_role(caller)
    event = webhooks.retry_webhook_delivery(service.store, delivery_id, actor=caller.name)
    request.app.state.webhook_worker.wake()
    return schemas.DeliveryOut.model_validate(event)
