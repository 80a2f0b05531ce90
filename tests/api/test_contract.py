"""The published contract: the OpenAPI document, checked against the live server by Schemathesis
and used through a client generated from it (openapi-python-client)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server import Server

API = "/api/v1"
PROBLEM = "application/problem+json"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
UNLIMITED = {"REUNITE_RATE_LIMIT_PER_MINUTE": "1000000", "REUNITE_RATE_LIMIT_BURST": "1000000"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sample) -> Iterator[Server]:
    """``reunite serve`` with an admin key, rate limits out of the way, and a missing case matched
    by a found one, so the generated ids sometimes name real rows."""
    live = Server(tmp_path_factory.mktemp("contract"), **UNLIMITED)
    try:
        with httpx2.Client(base_url=live.url, headers=live.auth, timeout=60) as http:
            missing = http.post(
                f"{API}/cases",
                json={
                    "kind": "missing",
                    "name": "Barack",
                    "agency": "SH-PSB",
                    "external_ref": "M-1",
                },
            )
            found = http.post(f"{API}/cases", json={"kind": "found", "place": "Shanghai"})
            for case, photo in ((missing, "obama.jpg"), (found, "obama2.jpg")):
                assert case.status_code == 201, case.text
                uploaded = http.post(
                    f"{API}/cases/{case.json()['id']}/photos",
                    files={"file": (photo, sample(photo), "image/jpeg")},
                )
                assert uploaded.status_code == 201, uploaded.text
        yield live
    finally:
        log = live.stop()
        print(log[-20000:])


@pytest.fixture(scope="module")
def live_schema(server: Server):  # type: ignore[no-untyped-def]
    config = SchemathesisConfig.from_dict(
        {
            "seed": 20240220,
            "headers": server.auth,
            "generation": {"max-examples": 10, "deterministic": True, "database": "none"},
        }
    )
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("live_schema")


@schema.parametrize()
def test_the_live_api_conforms_to_its_document(case, server):
    case.call_and_validate(base_url=server.url, checks=CHECKS, timeout=60)
