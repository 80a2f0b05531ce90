"""Response bodies of the HTTP API (request bodies reuse ``reunite.store.CaseFields``)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from reunite.faces import similarity as similarity_of
from reunite.service import Enrollment, FaceResult
from reunite.store import Candidate, Case, CaseFields, Photo
from reunite.store import Face as FaceRow


class CaseOut(CaseFields):
    model_config = ConfigDict(from_attributes=True, extra="ignore")

    id: int
    created_at: datetime
    updated_at: datetime


class CaseUpdate(BaseModel):
    """Facts to change; fields left out keep their values. ``kind`` cannot change."""

    model_config = ConfigDict(extra="forbid")

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
    items: list[CaseOut]
    total: int
    limit: int
    offset: int


class BoxOut(BaseModel):
    """Pixels of the upright original photo."""

    top: int
    right: int
    bottom: int
    left: int


class FaceOut(BaseModel):
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
    def of(cls, photo: Photo, faces: list[FaceRow]) -> PhotoOut:
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


class CandidateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    found_case_id: int
    missing_case_id: int
    found_face_id: int
    missing_face_id: int
    distance: float = Field(description="L2 distance between the two faces' embeddings.")
    similarity: float = Field(description="clip(1 - distance / 1.2, 0, 1); uncalibrated.")
    status: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, candidate: Candidate) -> CandidateOut:
        return cls.model_validate(
            {
                **{k: getattr(candidate, k) for k in cls.model_fields if k != "similarity"},
                "similarity": similarity_of(candidate.distance),
            }
        )


class EnrollmentOut(BaseModel):
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
    case: CaseOut
    face_id: int = Field(description="The case's face closest to the probe face.")
    distance: float
    similarity: float
    crop_url: str


class SearchFaceOut(BaseModel):
    box: BoxOut
    face_width_px: int
    sharpness: float
    candidates: list[RankedCaseOut]


class SearchOut(BaseModel):
    kinds: list[str]
    k: int
    tolerance: float
    faces: list[SearchFaceOut]

    @classmethod
    def of(
        cls, results: list[FaceResult], *, kinds: list[str], k: int, tolerance: float
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
                            case=CaseOut.model_validate(rc.case),
                            face_id=rc.match.face_id,
                            distance=rc.match.distance,
                            similarity=rc.match.similarity,
                            crop_url=f"/api/v1/faces/{rc.match.face_id}/crop",
                        )
                        for rc in r.ranked
                    ],
                )
                for r in results
            ],
        )


def case_out(case: Case) -> CaseOut:
    return CaseOut.model_validate(case)
