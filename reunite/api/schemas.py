"""Response bodies of the HTTP API (request bodies reuse ``reunite.store.CaseFields``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reunite.access import Principal, owns
from reunite.api.examples import (
    AUDIT_EVENT_EXAMPLE,
    BOX_EXAMPLE,
    CANDIDATE_DETAIL_EXAMPLE,
    CANDIDATE_EXAMPLE,
    DECISION_EXAMPLE,
    DELIVERY_EXAMPLE,
    EXPLANATION_EXAMPLE,
    FACE_EXAMPLE,
    FLAG_EXAMPLE,
    MISSING_CASE_EXAMPLE,
    PHOTO_EXAMPLE,
    RANKED_CASE_EXAMPLE,
    SEARCH_FACE_EXAMPLE,
    WEBHOOK_EXAMPLE,
    examples,
)
from reunite.calibration import SimilarityBasis
from reunite.review import birth_years
from reunite.service import CandidateView, Enrollment, FaceResult
from reunite.store import CaseFacts, CaseKind, CaseRow, CaseStatus, FaceRow, PhotoRow, Sex


class CaseOut(BaseModel):
    """A case as stored. ``redacted`` cases (another agency's, shown to a police key) carry only
    what a candidate shows: no name, case number, birth date, description or contact."""

    model_config = ConfigDict(json_schema_extra=examples(MISSING_CASE_EXAMPLE))

    id: int
    kind: CaseKind
    agency: str | None
    external_ref: str | None
    name: str | None
    sex: Sex
    birth_date: date | None
    birth_year_min: int | None
    birth_year_max: int | None
    date_missing: date | None
    date_found: date | None
    place: str | None
    description: str | None
    contact: str | None
    status: CaseStatus
    redacted: bool = False
    created_at: datetime
    updated_at: datetime


def case_out(case: CaseRow, principal: Principal | None = None) -> CaseOut:
    """A case for ``principal``: whole, or redacted when it is another agency's (police)."""
    whole = {name: getattr(case, name) for name in CaseOut.model_fields if name != "redacted"}
    if principal is None or not principal.is_police or owns(principal, case):
        return CaseOut(**whole)
    years = birth_years(case)
    return CaseOut(
        **whole
        | {
            "name": None,
            "external_ref": None,
            "birth_date": None,
            "description": None,
            "contact": None,
            "birth_year_min": years[0] if years else None,
            "birth_year_max": years[1] if years else None,
            "redacted": True,
        }
    )


CASE_RECORD_EXAMPLE: dict[str, Any] = {
    "kind": "missing",
    "name": "李建国",
    "sex": "male",
    "birth_year_min": 1960,
    "birth_year_max": 1962,
    "date_missing": "2024-02-20",
    "place": "杭州",
}
"""One missing person's record, the example the API documents (also in ``CaseFields``'s)."""


class CaseRecord(CaseFacts):
    """A whole case record for ``PUT /agencies/{agency}/cases/{external_ref}`` (the agency and
    reference come from the path). Fields left out are empty."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [CASE_RECORD_EXAMPLE]})

    kind: CaseKind
    status: CaseStatus | None = Field(None, description="Left out: the stored status is kept.")


class CaseUpdate(BaseModel):
    """Facts to change; fields left out keep their values. ``kind`` cannot change."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"place": "杭州市西湖区", "contact": "138-0000-0000"}, {"status": "closed"}
        ),
    )

    agency: str | None = None
    external_ref: str | None = None
    name: str | None = None
    sex: str | None = None
    birth_date: date | None = None
    birth_year_min: int | None = None
    birth_year_max: int | None = None
    date_missing: date | None = None
    date_found: date | None = None
    place: str | None = None
    description: str | None = None
    contact: str | None = None
    status: str | None = None


class CasePage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "items": [MISSING_CASE_EXAMPLE],
                "total": 120,
                "next_cursor": "WyIyMDI0LTAyLTIxVDA4OjAwOjAwKzAwOjAwIiwgNDJd",
            }
        )
    )

    items: list[CaseOut]
    total: int = Field(description="Cases matching the filters, all pages together.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: done.")


class BoxOut(BaseModel):
    """Pixels of the upright original photo."""

    model_config = ConfigDict(json_schema_extra=examples(BOX_EXAMPLE))

    top: int
    right: int
    bottom: int
    left: int


class FaceOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(FACE_EXAMPLE))

    id: int
    photo_id: int
    case_id: int
    box: BoxOut
    face_width_px: int
    sharpness: float
    model: str
    pipeline: str
    crop_url: str

    @classmethod
    def of(cls, face: FaceRow) -> FaceOut:
        return cls(
            id=face.id,
            photo_id=face.photo_id,
            case_id=face.case_id,
            box=BoxOut(top=face.top, right=face.right, bottom=face.bottom, left=face.left),
            face_width_px=face.face_width_px,
            sharpness=face.sharpness,
            model=face.model,
            pipeline=face.pipeline,
            crop_url=f"/api/v1/faces/{face.id}/crop",
        )


class PhotoOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(PHOTO_EXAMPLE))

    id: int
    case_id: int
    sha256: str
    format: str
    width: int
    height: int
    byte_size: int
    taken_on: date | None
    created_at: datetime
    image_url: str
    faces: list[FaceOut]

    @classmethod
    def of(cls, photo: PhotoRow, faces: list[FaceRow]) -> PhotoOut:
        return cls(
            id=photo.id,
            case_id=photo.case_id,
            sha256=photo.sha256,
            format=photo.format,
            width=photo.width,
            height=photo.height,
            byte_size=photo.byte_size,
            taken_on=photo.taken_on,
            created_at=photo.created_at,
            image_url=f"/api/v1/photos/{photo.id}/image",
            faces=[FaceOut.of(f) for f in faces],
        )


class FlagOut(BaseModel):
    """A warning, with the facts that raised it: ``sex_differs``, ``age_implausible``,
    ``found_before_missing``, ``photo_age_gap``, ``face_chosen_automatically`` (an import
    chose this face among several in its photo; facts ``side``, ``choice``) or
    ``no_longer_proposed`` (a pending candidate that today's matching rules would not propose,
    ``since`` when)."""

    model_config = ConfigDict(json_schema_extra=examples(FLAG_EXAMPLE))

    code: str
    facts: dict[str, Any]


class ExplanationOut(BaseModel):
    """Why the candidate is in the list, as facts: its rank in the search that proposed it, the
    distance, the normalised score and its flags' codes."""

    model_config = ConfigDict(json_schema_extra=examples(EXPLANATION_EXAMPLE))

    rank: int | None = Field(
        description="1 for the nearest case in the search that proposed (or last updated) the "
        "candidate; null when unknown (candidates proposed before ranks were kept)."
    )
    distance: float = Field(
        description="L2 distance between the two faces' embeddings in the model's space: "
        "smaller is closer (the same as the candidate's `distance`)."
    )
    score: float | None = Field(
        description="How far the candidate stands out from the probe's other near faces, in "
        "standard deviations (higher stands out more); null when unknown (the search had too "
        "few other faces to compare with, or the candidate was proposed before scores existed)."
    )
    flags: list[str] = Field(description="The codes of the candidate's `flags`.")


class DecisionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra=examples(DECISION_EXAMPLE))

    from_status: str
    to_status: str
    actor: str
    note: str | None
    found_face_id: int
    missing_face_id: int
    at: datetime
    id: int = Field(description="The decision's id: what an undo names.")
    undoes_id: int | None = Field(
        None, description="For an undo, the decision it undid (reunite.undo); else null."
    )


SIMILARITY_BASIS_DESCRIPTION = (
    "What similarity rests on. 'search': the search fit, from the distance and the normalised "
    "score against the probe's cohort: the estimated chance. 'pair': the pair fit, from the "
    "distance alone, used when the search had no cohort (fewer than 30 cases of the other "
    "kind) or the calibration has no search fit: near 1 for every pair within tolerance, so "
    "it is not a chance among the gallery and the staff pages show none. 'linear': no "
    "calibration is loaded; similarity is 1 - distance / 1.2, not a probability."
)


class CandidateOut(BaseModel):
    """A found case paired with a missing case, for a person to review."""

    model_config = ConfigDict(json_schema_extra=examples(CANDIDATE_EXAMPLE))

    id: int
    found_case_id: int
    missing_case_id: int
    found_face_id: int
    missing_face_id: int
    distance: float = Field(description="L2 distance between the two faces' embeddings.")
    similarity: float = Field(
        description="Estimated chance that this candidate is the person: calibrated on 1:N "
        "searches from the distance and the normalised score where the search has one, else "
        "on balanced pairs from the distance alone (docs/matching.md). Read it with "
        "similarity_basis: only 'search' is such a chance."
    )
    similarity_basis: SimilarityBasis = Field(
        description=SIMILARITY_BASIS_DESCRIPTION,
    )
    status: str
    flags: list[FlagOut]
    explanation: ExplanationOut
    decisions: list[DecisionOut] = Field(description="Oldest first.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: CandidateView) -> CandidateOut:
        c = view.candidate
        return cls(
            id=c.id,
            found_case_id=c.found_case_id,
            missing_case_id=c.missing_case_id,
            found_face_id=c.found_face_id,
            missing_face_id=c.missing_face_id,
            distance=c.distance,
            similarity=view.similarity,
            similarity_basis=view.similarity_basis,
            status=c.status,
            flags=[FlagOut(code=f.code, facts=f.facts) for f in view.flags],
            explanation=ExplanationOut(**view.explanation.as_dict()),
            decisions=[DecisionOut.model_validate(d) for d in view.decisions],
            created_at=c.created_at,
            updated_at=c.updated_at,
        )


class CandidateDetail(CandidateOut):
    """A candidate with the facts of both cases."""

    model_config = ConfigDict(json_schema_extra=examples(CANDIDATE_DETAIL_EXAMPLE))

    found_case: CaseOut
    missing_case: CaseOut

    @classmethod
    def of(cls, view: CandidateView, principal: Principal | None = None) -> CandidateDetail:
        return cls(
            **CandidateOut.of(view).model_dump(),
            found_case=case_out(view.found, principal),
            missing_case=case_out(view.missing, principal),
        )


class CandidatePage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra=examples(
            {"items": [CANDIDATE_DETAIL_EXAMPLE], "total": 1, "next_cursor": None}
        )
    )

    items: list[CandidateDetail]
    total: int = Field(description="Candidates matching the filters, all pages together.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: done.")


class DecisionIn(BaseModel):
    """``confirmed`` or ``rejected`` (staff), or ``pending`` to reopen (admin, note = reason)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"status": "confirmed", "note": "The family recognised him on a video call."},
            {"status": "pending", "note": "Confirmed by mistake: wrong found case."},
        ),
    )

    status: Literal["confirmed", "rejected", "pending"]
    note: str | None = Field(None, max_length=2000)


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra=examples(AUDIT_EVENT_EXAMPLE))

    id: int
    at: datetime
    actor: str
    action: str
    case_id: int | None
    details: dict[str, Any]


class AuditPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra=examples({"items": [AUDIT_EVENT_EXAMPLE], "next_before_id": 7781})
    )

    items: list[AuditEventOut]
    next_before_id: int | None = Field(description="Pass as before_id for the next page.")


class EnrollmentOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra=examples(
            {"created": True, "photo": PHOTO_EXAMPLE, "new_candidates": [CANDIDATE_EXAMPLE]}
        )
    )

    created: bool = Field(
        description="False if these exact bytes were already a photo of the case."
    )
    photo: PhotoOut
    new_candidates: list[CandidateOut]

    @classmethod
    def of(cls, enrollment: Enrollment) -> EnrollmentOut:
        return cls(
            created=enrollment.created,
            photo=PhotoOut.of(enrollment.photo, enrollment.faces),
            new_candidates=[CandidateOut.of(c) for c in enrollment.new_candidates],
        )


class RankedCaseOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(RANKED_CASE_EXAMPLE))

    case: CaseOut
    face_id: int = Field(description="The case's face closest to the probe face.")
    distance: float = Field(description="L2 distance from the probe face to the case.")
    similarity: float = Field(
        description="Estimated chance that this case is the person in the photo (as a "
        "candidate's similarity; docs/matching.md)."
    )
    similarity_basis: SimilarityBasis = Field(description=SIMILARITY_BASIS_DESCRIPTION)
    crop_url: str


class SearchFaceOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(SEARCH_FACE_EXAMPLE))

    box: BoxOut
    face_width_px: int
    sharpness: float
    candidates: list[RankedCaseOut]


class SearchOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "kinds": ["missing", "found"],
                "k": 10,
                "tolerance": 0.6,
                "faces": [SEARCH_FACE_EXAMPLE],
            }
        )
    )

    kinds: list[str]
    k: int
    tolerance: float
    faces: list[SearchFaceOut]

    @classmethod
    def of(
        cls,
        results: list[FaceResult],
        *,
        kinds: list[str],
        k: int,
        tolerance: float,
        principal: Principal | None = None,
    ) -> SearchOut:
        return cls(
            kinds=kinds,
            k=k,
            tolerance=tolerance,
            faces=[
                SearchFaceOut(
                    box=BoxOut(**r.face.box._asdict()),
                    face_width_px=r.face.face_width_px,
                    sharpness=r.face.sharpness,
                    candidates=[
                        RankedCaseOut(
                            case=case_out(rc.case, principal),
                            face_id=rc.match.face_id,
                            distance=rc.match.distance,
                            similarity=rc.similarity,
                            similarity_basis=rc.similarity_basis,
                            crop_url=f"/api/v1/faces/{rc.match.face_id}/crop",
                        )
                        for rc in r.ranked
                    ],
                )
                for r in results
            ],
        )


class WebhookIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"url": "https://police.example/hooks"}]}
    )

    url: str = Field(
        min_length=8,
        max_length=2000,
        description="Where events are POSTed: an http(s) URL with a host name, and no user name "
        "or password (the service checks this: 422 `invalid_field` otherwise).",
        # Documented only: the service checks the URL, and says precisely what is wrong with it.
        json_schema_extra={"format": "uri", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"},
    )


class WebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra=examples(WEBHOOK_EXAMPLE))

    id: int
    agency: str
    url: str
    active: bool
    created_at: datetime


class WebhookCreated(WebhookOut):
    model_config = ConfigDict(
        json_schema_extra=examples(
            WEBHOOK_EXAMPLE | {"secret": "whsec_TgOpNsIsDWE6bGwEYOM1j5FqnxGznxKcg6FN4eG8Jas"}
        )
    )

    secret: str = Field(description="Signs every event (HMAC-SHA256). Shown only this once.")


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra=examples(DELIVERY_EXAMPLE))

    id: int
    webhook_id: int
    event_id: str
    type: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra=examples({"items": [DELIVERY_EXAMPLE], "next_before_id": None})
    )

    items: list[DeliveryOut]
    next_before_id: int | None
