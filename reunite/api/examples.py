"""Examples of the HTTP API's bodies, shown in the OpenAPI document (made-up people and ids)."""

from __future__ import annotations

from typing import Any

AT = "2024-03-02T09:30:00Z"
MISSING_CASE_EXAMPLE: dict[str, Any] = {
    "id": 42,
    "kind": "missing",
    "agency": "SH-PSB",
    "external_ref": "2024-0042",
    "name": "李建国",
    "sex": "male",
    "birth_date": None,
    "birth_year_min": 1960,
    "birth_year_max": 1962,
    "date_missing": "2024-02-20",
    "date_found": None,
    "place": "杭州",
    "description": None,
    "contact": None,
    "status": "open",
    "redacted": False,
    "created_at": "2024-02-21T08:00:00Z",
    "updated_at": "2024-02-21T08:00:00Z",
}
FOUND_CASE_EXAMPLE: dict[str, Any] = {
    "id": 57,
    "kind": "found",
    "agency": None,
    "external_ref": None,
    "name": None,
    "sex": "male",
    "birth_date": None,
    "birth_year_min": 1958,
    "birth_year_max": 1966,
    "date_missing": None,
    "date_found": "2024-03-02",
    "place": "上海市救助管理站",
    "description": "Grey jacket; speaks the Hangzhou dialect.",
    "contact": "021-5555-0100",
    "status": "open",
    "redacted": False,
    "created_at": AT,
    "updated_at": AT,
}
BOX_EXAMPLE: dict[str, Any] = {"top": 290, "right": 438, "bottom": 558, "left": 171}
FACE_EXAMPLE: dict[str, Any] = {
    "id": 311,
    "photo_id": 208,
    "case_id": 57,
    "box": BOX_EXAMPLE,
    "face_width_px": 267,
    "sharpness": 543.7,
    "model": "dlib_face_recognition_resnet_model_v1",
    "pipeline": "dlib_face_recognition_resnet_model_v1/hog-up1-j1",
    "crop_url": "/api/v1/faces/311/crop",
}
PHOTO_EXAMPLE: dict[str, Any] = {
    "id": 208,
    "case_id": 57,
    "sha256": "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6",
    "format": "JPEG",
    "width": 626,
    "height": 1200,
    "byte_size": 184455,
    "taken_on": "2024-03-02",
    "created_at": AT,
    "image_url": "/api/v1/photos/208/image",
    "faces": [FACE_EXAMPLE],
}
FLAG_EXAMPLE: dict[str, Any] = {
    "code": "age_implausible",
    "facts": {
        "on": "2024-03-02",
        "missing_age": [62, 64],
        "apparent_age": [29, 39],
        "gap_years": 23,
    },
}
DECISION_EXAMPLE: dict[str, Any] = {
    "from_status": "pending",
    "to_status": "confirmed",
    "actor": "user:wang.fang",
    "note": "The family recognised him on a video call.",
    "found_face_id": 311,
    "missing_face_id": 120,
    "at": "2024-03-02T11:00:00Z",
    "id": 88,
    "undoes_id": None,
}
EXPLANATION_EXAMPLE: dict[str, Any] = {"rank": 1, "distance": 0.35, "score": 3.2, "flags": []}
CANDIDATE_EXAMPLE: dict[str, Any] = {
    "id": 93,
    "found_case_id": 57,
    "missing_case_id": 42,
    "found_face_id": 311,
    "missing_face_id": 120,
    "distance": 0.35,
    "similarity": 0.98,
    "similarity_basis": "search",
    "status": "pending",
    "flags": [],
    "explanation": EXPLANATION_EXAMPLE,
    "decisions": [],
    "created_at": AT,
    "updated_at": AT,
}
CANDIDATE_DETAIL_EXAMPLE: dict[str, Any] = CANDIDATE_EXAMPLE | {
    "status": "confirmed",
    "decisions": [DECISION_EXAMPLE],
    "updated_at": "2024-03-02T11:00:00Z",
    "found_case": FOUND_CASE_EXAMPLE | {"status": "matched"},
    "missing_case": MISSING_CASE_EXAMPLE | {"status": "matched"},
}
RANKED_CASE_EXAMPLE: dict[str, Any] = {
    "case": MISSING_CASE_EXAMPLE,
    "face_id": 120,
    "distance": 0.33,
    "similarity": 0.985,
    "similarity_basis": "search",
    "crop_url": "/api/v1/faces/120/crop",
}
SEARCH_FACE_EXAMPLE: dict[str, Any] = {
    "box": {"top": 277, "right": 954, "bottom": 598, "left": 633},
    "face_width_px": 321,
    "sharpness": 405.1,
    "candidates": [RANKED_CASE_EXAMPLE],
}
AUDIT_EVENT_EXAMPLE: dict[str, Any] = {
    "id": 7781,
    "at": "2024-03-02T11:00:00Z",
    "actor": "user:wang.fang",
    "action": "candidate.decision",
    "case_id": 57,
    "details": {"candidate_id": 93, "missing_case_id": 42, "old": "pending", "new": "confirmed"},
}
WEBHOOK_EXAMPLE: dict[str, Any] = {
    "id": 3,
    "agency": "SH-PSB",
    "url": "https://police.example/hooks",
    "active": True,
    "created_at": "2024-01-15T02:00:00Z",
}
DELIVERY_EXAMPLE: dict[str, Any] = {
    "id": 1503,
    "webhook_id": 3,
    "event_id": "6f1c2a9e-4b7d-4a35-9d0e-2f9b8c1d7e21",
    "type": "candidate.created",
    "status": "pending",
    "attempts": 2,
    "next_attempt_at": "2024-03-02T09:30:15Z",
    "last_error": "HTTP 503",
    "created_at": AT,
    "delivered_at": None,
}


def examples(*examples: dict[str, Any]) -> dict[str, Any]:
    """``json_schema_extra`` that puts ``examples`` in a model's JSON schema."""
    return {"examples": list(examples)}
