"""The published contract: the OpenAPI document is complete, the live server keeps to it
(Schemathesis), and a client generated from it (openapi-python-client) works against it."""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import jsonschema_rs
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import StopReason, events, from_schema

from reunite import __version__
from tests.server import Server

API = "/api/v1"
PROBLEM = "application/problem+json"
PROBLEM_CONTENT = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
OPERATIONS_PATHS = {"/healthz", "/readyz", "/metrics"}
"""The only paths outside /api/v1: probes and metrics, where their tools look for them."""

CONFORMANCE_CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
UNLIMITED = {
    "REUNITE_RATE_LIMIT_PER_MINUTE": "1000000",
    "REUNITE_RATE_LIMIT_BURST": "1000000",
    "REUNITE_SIGN_IN_ATTEMPTS_PER_MINUTE": "1000000",
}
"""Schemathesis sends a few thousand requests with one key: rate limits would answer most."""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """``reunite serve`` (real dlib) with an admin key, rate limits out of the way."""
    live = Server(tmp_path, **UNLIMITED)
    try:
        yield live
    finally:
        live.stop()


def seed(server: Server, sample) -> None:
    """A missing case with a photo of Obama, a found case with another (so a candidate), to give
    the generated ids real rows to hit (they are small: 1 and 2)."""
    ids: dict[str, int] = {}
    with httpx2.Client(base_url=server.url, headers=server.auth, timeout=60) as http:
        for kind, photo in (("missing", "obama.jpg"), ("found", "obama2.jpg")):
            case = http.post(f"{API}/cases", json={"kind": kind, "sex": "male"})
            assert case.status_code == 201, case.text
            ids[kind] = case.json()["id"]
            upload = http.post(
                f"{API}/cases/{ids[kind]}/photos", files={"file": (photo, sample(photo))}
            )
            assert upload.status_code == 201, upload.text
        [_candidate] = http.get(f"{API}/cases/{ids['found']}/candidates").json()


# ------------------------------------------------------------------------------ schemathesis


def test_the_live_server_keeps_to_its_document(server: Server, sample) -> None:
    """Every operation, through Schemathesis' phases (examples, coverage, fuzzing, stateful), with
    an admin key: no 5xx, and every status, content type, body and header as documented.

    Bounded (25 generated cases an operation, stateful runs of 20 steps, derandomized) so it runs
    in well under a minute; uploads are random bytes, refused before dlib sees them."""
    seed(server, sample)
    config = SchemathesisConfig.from_dict(
        {
            "seed": 20240220,
            "base-url": server.url,
            "headers": server.auth,
            "cache": {"enabled": False},  # writes nothing in the working tree
            "generation": {"max-examples": 25, "deterministic": True, "database": "none"},
            "phases": {"stateful": {"max-steps": 20}},
            "checks": {"enabled": False} | {name: {"enabled": True} for name in CONFORMANCE_CHECKS},
        }
    )
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=config)
    failures: dict[tuple[str, str, str], str] = {}
    answered: Counter[tuple[str, int]] = Counter()
    finished = None
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for case_id, interaction in recorder.interactions.items():
                if interaction.response is not None and case_id in recorder.cases:
                    label = recorder.cases[case_id].value.operation.label
                    answered[(label, interaction.response.status_code)] += 1
            for checks in recorder.checks.values():
                for check in checks:
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        key = (recorder.label, check.name, failure.title)
                        failures.setdefault(
                            key, f"{failure.message}\n{check.failure_info.code_sample}"
                        )
        elif isinstance(event, events.NonFatalError):
            failures[(event.label, "error", type(event.value).__name__)] = str(event.value)
        elif isinstance(event, events.FatalError):
            raise event.exception
        elif isinstance(event, events.EngineFinished):
            finished = event
    assert finished is not None and finished.stop_reason == StopReason.COMPLETED
    report = "\n\n".join(f"{' | '.join(key)}\n{detail}" for key, detail in failures.items())
    assert not failures, f"{len(failures)} conformance failures:\n\n{report}"

    labels = {
        f"{method.upper()} {path}"
        for path, ops in schema.raw_schema["paths"].items()
        for method in ops
    }
    assert labels <= {label for label, _ in answered}, "operations Schemathesis did not call"
    assert not [key for key in answered if key[1] >= 500]
    for read in (
        "GET /api/v1/cases/{case_id}",
        "GET /api/v1/cases/{case_id}/photos",
        "GET /api/v1/cases/{case_id}/candidates",
        "GET /api/v1/candidates/{candidate_id}",
        "GET /api/v1/photos/{photo_id}/image",
        "GET /api/v1/faces/{face_id}/crop",
    ):
        assert answered[(read, 200)] > 0, f"{read} never found a row"


# ---------------------------------------------------------------------------- generated client

GENERATOR_CONFIG = """\
post_hooks: []
content_type_overrides:
  image/jpeg: application/octet-stream
  image/png: application/octet-stream
  image/webp: application/octet-stream
"""
"""No formatter run on the output; images read as bytes (the generator knows only
application/octet-stream by name)."""


@pytest.fixture
def generated_client(tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The package openapi-python-client generates from the live server's document, imported."""
    document = tmp_path / "openapi.json"
    document.write_bytes(httpx2.get(f"{server.url}/openapi.json").content)
    (tmp_path / "generator.yaml").write_text(GENERATOR_CONFIG)
    generated = tmp_path / "generated"
    generated.mkdir()
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "openapi-python-client"),
            "generate",
            "--path",
            str(document),
            "--output-path",
            str(generated / "reunite_client"),
            "--meta",
            "none",
            "--config",
            str(tmp_path / "generator.yaml"),
            "--fail-on-warning",  # every operation and response of the document is usable
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    monkeypatch.syspath_prepend(str(generated))
    try:
        yield importlib.import_module("reunite_client")
    finally:
        for name in [m for m in sys.modules if m.split(".")[0] == "reunite_client"]:
            del sys.modules[name]


def test_a_generated_client_enrolls_two_cases_and_reads_their_candidate(
    server: Server, generated_client: Any, sample
) -> None:
    """Create a missing case and a found case, add a photo to each, read the found case's
    candidates: everything through the generated client, as an agency's developer would."""

    def module(name: str) -> Any:
        return importlib.import_module(f"reunite_client.{name}")

    models, types = module("models"), module("types")
    create_case = module("api.cases.create_case")
    add_photo = module("api.photos.add_photo")
    list_case_candidates = module("api.review.list_case_candidates")
    token = server.auth["Authorization"].removeprefix("Bearer ")
    client = generated_client.AuthenticatedClient(base_url=server.url, token=token, timeout=60)

    with client:
        cases = {}
        for kind, photo in (("missing", "obama.jpg"), ("found", "obama2.jpg")):
            case = create_case.sync(
                client=client,
                body=models.CaseFields(
                    kind=models.CaseFieldsKind(kind), sex=models.CaseFieldsSex.MALE
                ),
            )
            assert isinstance(case, models.CaseOut), case
            assert case.kind.value == kind and case.status.value == "open"
            cases[kind] = case.id
            upload = add_photo.sync_detailed(
                case_id=case.id,
                client=client,
                body=models.BodyAddPhoto(
                    file=types.File(
                        payload=io.BytesIO(sample(photo)), file_name=photo, mime_type="image/jpeg"
                    )
                ),
            )
            assert upload.status_code == 201, upload.content
            enrollment = upload.parsed
            assert isinstance(enrollment, models.EnrollmentOut) and enrollment.created
            [face] = enrollment.photo.faces
            assert face.case_id == case.id

        candidates = list_case_candidates.sync(case_id=cases["found"], client=client)
        assert isinstance(candidates, list), candidates
        [candidate] = candidates
        assert isinstance(candidate, models.CandidateDetail)
        assert (candidate.found_case_id, candidate.missing_case_id) == (
            cases["found"],
            cases["missing"],
        )
        assert candidate.found_case.id == cases["found"]
        assert candidate.missing_case.id == cases["missing"]
        assert candidate.distance < 0.6 and candidate.status == "pending"

        missing = list_case_candidates.sync(case_id=999_999, client=client)
        assert isinstance(missing, models.Problem) and missing.code == "not_found"


# -------------------------------------------------------------------------------- document


@pytest.fixture
def document(client) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, by_method in document["paths"].items():
        for method, operation in by_method.items():
            yield path, method, operation


def resolved(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``schema``, or the component it refers to; an array's item schema for an array."""
    if schema.get("type") == "array":
        schema = schema["items"]
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_the_api_is_versioned_under_api_v1(document) -> None:
    paths = set(document["paths"])
    assert paths >= OPERATIONS_PATHS
    assert all(p.startswith(f"{API}/") for p in paths - OPERATIONS_PATHS), paths
    assert document["info"]["version"] == __version__


def test_every_operation_declares_its_errors_as_problems(document) -> None:
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids)) and not [i for i in ids if "api_v1" in i]
    for path, method, operation in operations(document):
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        expected = {"422", "500", "503"}
        security = operation.get("security", [])
        if {"ApiKey": []} in security:  # a key, or a session (with a CSRF token for writes)
            expected |= {"401", "403", "429"}
        elif security:
            assert security == [{"StaffSession": []}], where
            expected |= {"401"}
        if "requestBody" in operation:
            expected |= {"400", "413"}
        assert expected <= set(responses), f"{where} lacks {expected - set(responses)}"
        for status, response in responses.items():
            assert response.get("description"), f"{where} {status}"
            if int(status) >= 400:
                assert response["content"] == PROBLEM_CONTENT, f"{where} {status}"
            elif status == "204":
                assert "content" not in response, where
            else:
                assert response["content"], f"{where} {status}"
                for media_type, media in response["content"].items():
                    assert "schema" in media, f"{where} {status} {media_type}"
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "code", "detail"} <= set(problem["required"])


def test_session_endpoints_declare_who_may_call(document) -> None:
    session = document["paths"][f"{API}/session"]
    assert session["get"]["security"] == [{"StaffSession": []}]
    assert "401" in session["get"]["responses"]
    assert {"401", "429"} <= set(session["post"]["responses"])  # wrong password; guessing
    assert "security" not in session["post"] and "security" not in session["delete"]
    assert "security" not in document["paths"]["/healthz"]["get"]


def test_operations_answering_two_successes_declare_both(document) -> None:
    put = document["paths"][f"{API}/agencies/{{agency}}/cases/{{external_ref}}"]["put"]
    add = document["paths"][f"{API}/cases/{{case_id}}/photos"]["post"]
    for operation, model in ((put, "CaseOut"), (add, "EnrollmentOut")):
        for status in ("200", "201"):
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": f"#/components/schemas/{model}"}


def test_every_body_and_success_response_has_an_example(document) -> None:
    def has_example(media: dict[str, Any]) -> bool:
        return bool(
            media.get("example")
            or media.get("examples")
            or resolved(document, media["schema"]).get("examples")
        )

    missing = []
    for path, method, operation in operations(document):
        for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
            if not has_example(media):
                missing.append(f"{method.upper()} {path} request {media_type}")
        for status, response in operation["responses"].items():
            media = response.get("content", {}).get("application/json")
            if status.startswith("2") and media and not has_example(media):
                missing.append(f"{method.upper()} {path} {status}")
    assert not missing


def test_the_examples_keep_to_their_schemas(document) -> None:
    checked = 0
    for name, schema in document["components"]["schemas"].items():
        validator = jsonschema_rs.Draft202012Validator(
            {"$ref": f"#/components/schemas/{name}", "components": document["components"]},
            validate_formats=True,
        )
        for example in schema.get("examples", []):
            errors = [e.message for e in validator.iter_errors(example)]
            assert not errors, f"{name}: {errors}"
            checked += 1
    assert checked >= 25


def test_the_document_is_served_as_json(client) -> None:
    response = client.get("/openapi.json")
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.content)["openapi"].startswith("3.1")
