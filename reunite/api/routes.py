"""HTTP endpoints under ``/api/v1``: thin wrappers that call ``Reunite`` and shape responses.

Endpoints are plain ``def`` functions, so FastAPI runs them in its thread pool: decoding, dlib and
FAISS never block the event loop.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    Header,
    Path,
    Query,
    Request,
    Response,
    UploadFile,
)

from reunite.api import schemas
from reunite.api.auth import actor_of, admin, csrf_header, service_of, signed_in
from reunite.errors import ImageTooLarge
from reunite.index import KINDS
from reunite.service import Reunite
from reunite.store import CaseFields, User

router = APIRouter(prefix="/api/v1")

MAX_ID = 2**63 - 1
Id = Annotated[int, Path(ge=1, le=MAX_ID, description="A positive id.")]
"""Ids are 64-bit: anything larger is a 422, never an overflow deeper down."""

Responses = dict[int | str, dict[str, Any]]
PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
CASE_ERRORS: Responses = {404: {"description": "No such case", **PROBLEM}}
PHOTO_ERRORS: Responses = {
    404: {"description": "No such case", **PROBLEM},
    413: {"description": "File or image too large", **PROBLEM},
    415: {"description": "Not a JPEG, PNG or WebP image", **PROBLEM},
    422: {"description": "Unreadable image, no face, several faces, bad field", **PROBLEM},
}


def actor(request: Request, x_actor: Annotated[str | None, Header(max_length=200)] = None) -> str:
    """Who is acting, for the audit log: the signed-in user, else the ``X-Actor`` header."""
    return actor_of(request, x_actor)


Service = Annotated[Reunite, Depends(service_of)]
Actor = Annotated[str, Depends(actor)]
Staff = Annotated[User, Depends(signed_in)]
Admin = Annotated[User, Depends(admin)]
CSRF = Depends(csrf_header)


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


@router.post("/cases", status_code=201, responses={409: {"description": "Duplicate", **PROBLEM}})
def create_case(body: CaseFields, service: Service, actor: Actor) -> schemas.CaseOut:
    """Create a ``missing`` case (family or police report) or a ``found`` one (rescue center)."""
    return schemas.case_out(service.create_case(body.model_dump(), actor=actor))


@router.get("/cases")
def list_cases(
    service: Service,
    kind: Literal["missing", "found"] | None = None,
    status: Literal["open", "matched", "closed"] | None = None,
    agency: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> schemas.CasePage:
    """Cases, newest first, filtered by kind, status and agency."""
    items, total = service.cases(
        kind=kind, status=status, agency=agency, limit=limit, offset=offset
    )
    return schemas.CasePage(
        items=[schemas.case_out(c) for c in items], total=total, limit=limit, offset=offset
    )


@router.get("/cases/{case_id}", responses=CASE_ERRORS)
def get_case(case_id: Id, service: Service) -> schemas.CaseOut:
    return schemas.case_out(service.case(case_id))


@router.patch("/cases/{case_id}", responses=CASE_ERRORS)
def update_case(
    case_id: Id, body: schemas.CaseUpdate, service: Service, actor: Actor
) -> schemas.CaseOut:
    """Change some facts of a case; fields left out keep their values."""
    changes = body.model_dump(exclude_unset=True)
    return schemas.case_out(service.update_case(case_id, changes, actor=actor))


@router.delete("/cases/{case_id}", status_code=204, responses=CASE_ERRORS)
def delete_case(case_id: Id, service: Service, actor: Actor) -> Response:
    """Delete a case with its photos, faces (from search too) and candidates."""
    service.delete_case(case_id, actor=actor)
    return Response(status_code=204)


@router.post("/cases/{case_id}/photos", status_code=201, responses=PHOTO_ERRORS)
def add_photo(
    case_id: Id,
    file: Annotated[UploadFile, File(description="JPEG, PNG or WebP with one face.")],
    service: Service,
    actor: Actor,
    response: Response,
    taken_on: Annotated[date | None, Form(description="When the photo was taken.")] = None,
    face_index: Annotated[
        int | None, Form(ge=0, description="Which face to use when the photo shows several.")
    ] = None,
) -> schemas.EnrollmentOut:
    """Add a photo to a case, embed its face, and return the new candidates it produced.

    The same bytes sent again for the same case change nothing and answer 200.
    """
    data = upload_bytes(file, service)
    enrollment = service.enroll_photo(
        case_id, data, actor=actor, taken_on=taken_on, face_index=face_index
    )
    if not enrollment.created:
        response.status_code = 200
    return schemas.EnrollmentOut.of(enrollment)


@router.get("/cases/{case_id}/photos", responses=CASE_ERRORS)
def list_photos(case_id: Id, service: Service) -> list[schemas.PhotoOut]:
    return [schemas.PhotoOut.of(p, faces) for p, faces in service.photos(case_id)]


@router.get("/cases/{case_id}/candidates", responses=CASE_ERRORS)
def list_case_candidates(case_id: Id, service: Service) -> list[schemas.CandidateOut]:
    """The case's candidates, nearest first, with consistency flags and decisions."""
    return [schemas.CandidateOut.of(c) for c in service.candidates(case_id)]


@router.post("/search", responses={k: v for k, v in PHOTO_ERRORS.items() if k != 404})
def search(
    file: Annotated[UploadFile, File(description="JPEG, PNG or WebP; every face is searched.")],
    service: Service,
    actor: Actor,
    kind: Annotated[Literal["missing", "found", "all"], Form()] = "all",
    k: Annotated[int | None, Form(ge=1, le=200)] = None,
    tolerance: Annotated[float | None, Form(gt=0, le=2)] = None,
) -> schemas.SearchOut:
    """Search a photo against enrolled cases. Stores nothing but an audit record (ids only)."""
    data = upload_bytes(file, service)
    kinds: list[str] = list(KINDS) if kind == "all" else [kind]
    k = k or service.settings.top_k
    tolerance = tolerance or service.settings.tolerance
    results = service.search_photo(data, actor=actor, kinds=kinds, k=k, tolerance=tolerance)
    return schemas.SearchOut.of(results, kinds=kinds, k=k, tolerance=tolerance)


@router.get(
    "/photos/{photo_id}/image",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}},
        404: PROBLEM,
    },
)
def photo_image(photo_id: Id, service: Service, actor: Actor) -> Response:
    """The photo's original bytes. Each view is audited."""
    photo, data = service.photo_file(photo_id, actor=actor)
    media_type = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}[photo.format]
    return Response(data, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"})


@router.get(
    "/faces/{face_id}/crop",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: PROBLEM},
)
def face_crop(face_id: Id, service: Service, actor: Actor) -> Response:
    """A JPEG crop of one face from its upright photo, with a 25% margin. Each view is audited."""
    return Response(
        service.face_crop(face_id, actor=actor),
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=3600"},
    )


AUTH_ERRORS: Responses = {
    401: {"description": "Not signed in", **PROBLEM},
    403: {"description": "Role too low, or CSRF token missing", **PROBLEM},
}


@router.get("/candidates", tags=["review"], responses=AUTH_ERRORS)
def candidate_queue(
    service: Service,
    user: Staff,
    status: Literal["pending", "confirmed", "rejected"] = "pending",
    order: Literal["closest", "newest"] = "closest",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> schemas.CandidatePage:
    """The review queue: candidates with ``status``, closest (then newest) first by default."""
    views, total = service.candidate_queue(status=status, order=order, limit=limit, offset=offset)
    return schemas.CandidatePage(
        items=[schemas.CandidateDetail.of(v) for v in views],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/candidates/{candidate_id}", tags=["review"], responses=AUTH_ERRORS | CASE_ERRORS)
def get_candidate(candidate_id: Id, service: Service, user: Staff) -> schemas.CandidateDetail:
    return schemas.CandidateDetail.of(service.candidate(candidate_id))


@router.post(
    "/candidates/{candidate_id}/decisions",
    tags=["review"],
    dependencies=[CSRF],
    responses=AUTH_ERRORS | CASE_ERRORS | {409: {"description": "Not allowed now", **PROBLEM}},
)
def decide(
    candidate_id: Id, body: schemas.DecisionIn, service: Service, user: Staff, actor: Actor
) -> schemas.CandidateDetail:
    """Confirm or reject a pending candidate (staff), or reopen a decided one (admin, reason in
    ``note``). Confirming marks both cases ``matched``."""
    view = service.decide(candidate_id, body.status, actor=actor, role=user.role, note=body.note)
    return schemas.CandidateDetail.of(view)


@router.get("/audit", tags=["review"], responses=AUTH_ERRORS)
def audit_log(
    service: Service,
    user: Admin,
    action: str | None = None,
    actor: str | None = None,
    case_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> schemas.AuditPage:
    """The append-only audit log, newest first (admins only). Nothing can change it."""
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
