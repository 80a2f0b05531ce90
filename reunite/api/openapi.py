"""The published OpenAPI document: every response declared, every error in the one shape it has.

FastAPI documents the success responses from the endpoint signatures. This module completes the
document once, when it is first asked for:

- every operation lists the error statuses it can answer, all ``application/problem+json`` with
  the ``Problem`` schema: 422, 500 and 503 everywhere; 401, 403 and 429 where a key or session
  is needed; 400 (unparseable body) and 413 (body too large) where there is a request body; and
  the specific ones each endpoint lists;
- operations that answer two success statuses declare both (``PUT`` of an agency's case: 200 or
  201; adding a photo: 201 or 200 for the same bytes again);
- binary and text responses have a schema, uploaded files are ``format: binary``, and models
  made elsewhere have examples;
- operation ids are the endpoint names (``create_case``), so generated clients read well;
- the two ways to authenticate: an API key, or a staff session cookie.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from reunite.api import schemas as api_schemas
from reunite.api.auth import SESSION_COOKIE
from reunite.api.errors import PROBLEM_MEDIA_TYPE, Problem
from reunite.api.schemas import CASE_RECORD_EXAMPLE

API_DESCRIPTION = """\
Machine clients (police systems) authenticate with an API key: `Authorization: Bearer rk_...`
(made with `reunite keys create`). Staff may use a session instead (`POST /api/v1/session`).
Errors are RFC 9457 problem details (`application/problem+json`) with a stable `code`.
List endpoints page with `cursor`/`next_cursor` and filter with `updated_since` for sync.
"""
"""The API's description at the top of the OpenAPI document."""

Access = Literal["key", "session", "public"]

COMMON_ERRORS = {
    422: "The request is malformed or a field is invalid (`invalid_request`, `invalid_field`, "
    "or an image that cannot be used: `no_face_found`, `multiple_faces`, ...)",
    500: "Unexpected error (logged)",
    503: "Starting up (index loading), too busy, the photo store is unreachable "
    "(`photo_store_unavailable`: photos cannot be added or viewed), or the database is "
    "(`store_unavailable`: nothing was done); see Retry-After",
}
ACCESS_ERRORS: dict[Access, dict[int, str]] = {
    "key": {
        401: "No valid API key or session",
        403: "The caller's role or agency does not allow this (or the CSRF token is missing)",
        429: "Rate limit reached; see Retry-After",
    },
    "session": {401: "Not signed in"},
    "public": {},
}
BODY_ERRORS = {
    400: "The body cannot be parsed (not JSON, or broken multipart form data)",
    413: "The request body is larger than allowed",
}
SECURITY: dict[Access, list[dict[str, list[str]]]] = {
    "key": [{"ApiKey": []}, {"StaffSession": []}],
    "session": [{"StaffSession": []}],
    "public": [],
}
SESSION_OPERATIONS = {("get", "/api/v1/session")}
"""Operations for a signed-in person only. The others without an API key are public."""
OTHER_ERRORS: dict[tuple[str, str], dict[int, str]] = {
    ("post", "/api/v1/session"): {
        429: "Too many sign-in attempts from this address or for this user; see Retry-After"
    },
}
"""Errors of public operations that the rules above do not give them."""

ALSO_ANSWERS: dict[tuple[str, str], dict[str, str]] = {
    ("put", "/api/v1/agencies/{agency}/cases/{external_ref}"): {
        "200": "The case existed: updated, or unchanged if the record is the same",
        "201": "The case was created (the agency had no case with this reference)",
    },
    ("post", "/api/v1/cases/{case_id}/photos"): {
        "201": "The photo was added",
        "200": "These exact bytes were already a photo of the case: nothing changed "
        "(`created` is false)",
    },
}
"""Operations that answer more than one success status, all with the same body."""

PHOTO_PLACEHOLDER = "(the bytes of a JPEG, PNG or WebP photo)"
SCHEMA_EXAMPLES: dict[str, list[dict[str, Any]]] = {
    "CaseFields": [
        {
            **CASE_RECORD_EXAMPLE,
            "agency": "SH-PSB",
            "external_ref": "2024-0042",
            "contact": "138-0000-0000",
        },
        {"kind": "found", "sex": "male", "date_found": "2024-03-02", "place": "上海市救助管理站"},
    ],
    "Credentials": [{"username": "wang.fang", "password": "correct horse battery staple"}],
    "SessionOut": [
        {
            "user_id": 7,
            "username": "wang.fang",
            "role": "staff",
            "csrf_token": "q3V9mJ0rXkq1cT6f3yZ8bW2nL5sH4dA7eG0uI9oP1xY",
        }
    ],
    "Body_add_photo": [{"file": PHOTO_PLACEHOLDER, "taken_on": "2024-03-02"}],
    "Body_search": [{"file": PHOTO_PLACEHOLDER, "kind": "missing", "k": 5}],
}
"""Examples for schemas whose models are defined outside ``reunite.api.schemas``."""

RESPONSE_EXAMPLES: dict[tuple[str, str], Any] = {("get", "/healthz"): {"status": "ok"}}
"""Examples for success responses whose schema is not a named model."""


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that completes the document (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        completed_document(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def completed_document(schema: dict[str, Any]) -> None:
    """Complete ``schema`` (a FastAPI OpenAPI document) in place; see the module docstring."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem_schema.pop("$defs", {}))
    schemas["Problem"] = problem_schema
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemes = components.setdefault("securitySchemes", {})
    schemes["StaffSession"] = {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "A staff session (POST /api/v1/session); writes also need X-CSRF-Token.",
    }
    operations = [
        (path, method, operation)
        for path, by_method in schema.get("paths", {}).items()
        for method, operation in by_method.items()
    ]
    names = [_endpoint_name(path, method, operation) for path, method, operation in operations]
    for (path, method, operation), name in zip(operations, names, strict=True):
        if name is not None and names.count(name) == 1:
            _rename_operation(schemas, operation, name)
        _complete_responses(path, method, operation)
    _mark_files(schemas)
    _restore_examples(schemas)
    for key, extra in ALSO_ANSWERS.items():
        _declare_other_successes(schema["paths"][key[1]][key[0]], extra)
    for name, examples in SCHEMA_EXAMPLES.items():
        if name in schemas:
            schemas[name].setdefault("examples", examples)


def _access(path: str, method: str, operation: dict[str, Any]) -> Access:
    """Who may call: FastAPI marks the operations that take an API key (``auth.principal``)."""
    if operation.get("security"):
        return "key"
    return "session" if (method, path) in SESSION_OPERATIONS else "public"


def _complete_responses(path: str, method: str, operation: dict[str, Any]) -> None:
    access = _access(path, method, operation)
    responses: dict[str, Any] = operation.setdefault("responses", {})
    errors = dict(COMMON_ERRORS) | ACCESS_ERRORS[access] | OTHER_ERRORS.get((method, path), {})
    if "requestBody" in operation:
        errors |= BODY_ERRORS
    for code, description in errors.items():
        error = responses.setdefault(str(code), {"description": description})
        if error.get("description") == "Validation Error":  # FastAPI's, for its own shape
            error["description"] = description
    example = RESPONSE_EXAMPLES.get((method, path))
    for status, response in responses.items():
        if int(status) >= 400:
            response["content"] = {
                PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
            }
            continue
        _describe_content(response.get("content", {}))
        if example is not None:
            for media in response.get("content", {}).values():
                media.get("schema", {}).setdefault("examples", [example])
    if SECURITY[access]:
        operation["security"] = SECURITY[access]
    else:
        operation.pop("security", None)


def _describe_content(content: dict[str, Any]) -> None:
    """Give images and text a schema (FastAPI leaves them without one)."""
    for media_type, media in content.items():
        if "schema" in media:
            continue
        if media_type.startswith("image/"):
            media["schema"] = {"type": "string", "format": "binary"}
        elif media_type.startswith("text/"):
            media["schema"] = {"type": "string"}


def _declare_other_successes(operation: dict[str, Any], extra: dict[str, str]) -> None:
    responses = operation["responses"]
    [content] = [r["content"] for s, r in responses.items() if s.startswith("2") and "content" in r]
    for status, description in extra.items():
        response = responses.setdefault(status, {})
        response["description"] = description
        response.setdefault("content", content)


def _endpoint_name(path: str, method: str, operation: dict[str, Any]) -> str | None:
    """The endpoint's name, from the operation id FastAPI made of it (``create_case`` from
    ``create_case_api_v1_cases_post``); None if the endpoint chose its own id."""
    generated = operation.get("operationId", "")
    suffix = re.sub(r"\W", "_", path) + "_" + method
    if not generated.endswith(suffix) or len(generated) == len(suffix):
        return None
    return str(generated[: -len(suffix)])


def _rename_operation(schemas: dict[str, Any], operation: dict[str, Any], name: str) -> None:
    """Name the operation, and its form body schema (``Body_<operation id>``), after ``name``."""
    generated = operation["operationId"]
    operation["operationId"] = name
    for media in operation.get("requestBody", {}).get("content", {}).values():
        old = f"Body_{generated}"
        if media.get("schema", {}).get("$ref") == f"#/components/schemas/{old}" and old in schemas:
            new = f"Body_{name}"
            schemas[new] = schemas.pop(old) | {"title": new}
            media["schema"]["$ref"] = f"#/components/schemas/{new}"


def _restore_examples(schemas: dict[str, Any]) -> None:
    """Put back the examples' null members, which FastAPI drops from the whole document
    (``exclude_none``): an example without them would not match its own schema."""
    for model in vars(api_schemas).values():
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        extra = model.model_config.get("json_schema_extra")
        schema = schemas.get(model.__name__)
        if schema is not None and isinstance(extra, dict) and "examples" in extra:
            schema["examples"] = extra["examples"]


def _mark_files(schemas: dict[str, Any]) -> None:
    """Mark uploaded files ``format: binary`` too: FastAPI says ``contentMediaType`` only (right
    for OpenAPI 3.1), which client generators do not all read as a file yet."""
    for schema in schemas.values():
        for field in schema.get("properties", {}).values():
            if field.get("type") == "string" and "contentMediaType" in field:
                field.setdefault("format", "binary")
