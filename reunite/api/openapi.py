"""The published OpenAPI document: every error response declared, in the one shape it has.

FastAPI documents the success responses from the endpoint signatures. This module adds, for
every operation, the error statuses it can answer (401, 403, 422, 429, 500, 503, and the
specific ones each endpoint lists), all as ``application/problem+json`` with the ``Problem``
schema, and the two ways to authenticate (an API key, or a staff session cookie).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from reunite.api.auth import SESSION_COOKIE
from reunite.api.errors import PROBLEM_MEDIA_TYPE
from reunite.api.schemas import Problem

COMMON_ERRORS = {
    401: "No valid API key or session",
    403: "The caller's role or agency does not allow this (or the CSRF token is missing)",
    422: "The request is malformed or a field is invalid",
    429: "Rate limit reached; see Retry-After",
    500: "Unexpected error (logged)",
    503: "Starting up (index loading); see Retry-After",
}
PUBLIC_PATHS = {"/healthz", "/api/v1/session"}


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that completes the error responses (built once)."""

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
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
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
    problem_content = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            public = path in PUBLIC_PATHS
            for status, description in COMMON_ERRORS.items():
                if public and status in (401, 403):
                    continue
                responses.setdefault(str(status), {"description": description})
            for status, response in responses.items():
                if int(status) >= 400:
                    response["content"] = problem_content
            if path.startswith("/api/v1") and not public:
                operation["security"] = [{"ApiKey": []}, {"StaffSession": []}]
