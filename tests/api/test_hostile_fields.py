"""Hostile case fields on the three case endpoints (POST /cases, PUT
/agencies/{agency}/cases/{external_ref}, PATCH /cases/{id}): unparseable JSON, wrong types,
very long strings, unicode (Chinese names included) and path-like external references. Each
gets its right answer or a clean 4xx problem with a documented code, never a 500."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
import sqlalchemy
from fastapi.testclient import TestClient

from reunite.app import create_app
from reunite.config import Settings
from tests.conftest import key_headers, ready_client, settings_in, store_database
from tests.hostile import assert_refused, stored
from tests.server import Server

API = "/api/v1"
JSON = {"content-type": "application/json"}
METHODS = ("POST", "PUT", "PATCH")
UNLIMITED = {"rate_limit_burst": 100_000}
"""Some tests here send more requests than one key's burst allows."""


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return settings_in(tmp_path, database_url=database_url, **UNLIMITED)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared(request, tmp_path_factory, finder) -> Iterator[tuple[TestClient, Settings]]:
    """One app per store for the many refusals (each test checks that it stored nothing)."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(store_database(request.param))
        directory = tmp_path_factory.mktemp("refusals")
        settings = settings_in(directory, database_url=url, **UNLIMITED)
        client = ready_client(create_app(settings, finder=finder))
        stack.callback(client.__exit__, None, None, None)
        client.headers.update(key_headers(client))
        yield client, settings


def send(client, method: str, body: bytes | Any, ref: str = "R-1"):
    """``body`` (raw bytes, or an object sent as JSON) to one of the three case endpoints.

    POST and PUT create a missing case (PUT as agency SH-PSB's ``ref``); PATCH changes a
    missing case made for it."""
    if method == "POST":
        url = f"{API}/cases"
    elif method == "PUT":
        url = f"{API}/agencies/SH-PSB/cases/{quote(ref, safe='')}"
    else:
        case = client.post(f"{API}/cases", json={"kind": "missing", "agency": "SH-PSB"})
        url = f"{API}/cases/{case.json()['id']}"
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()  # ASCII with \u escapes: lone surrogates, NaN too
    return client.request(method, url, content=body, headers=JSON)


def whole(method: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A whole case record for POST and PUT; PATCH sends only the fields."""
    return fields if method == "PATCH" else {"kind": "missing", **fields}


# ------------------------------------------------------------------ bodies that are not JSON

UNPARSEABLE = {
    "not-json": (b"{kind: missing", 422, "invalid_request"),
    "cut-short": (b'{"kind": "miss', 422, "invalid_request"),
    "empty": (b"", 422, "invalid_request"),
    "null": (b"null", 422, "invalid_request"),
    "a-list": (b'["kind", "missing"]', 422, "invalid_request"),
    "a-string": (b'"missing"', 422, "invalid_request"),
    # The JSON parser itself gives up on these three (FastAPI answers 400).
    "not-utf8": (b'{"kind": "missing", "name": "\xff\xfe"}', 400, "bad_request"),
    "nested-100000-deep": (b"[" * 100_000 + b"]" * 100_000, 400, "bad_request"),
    "5000-digit-number": (b'{"birth_year_min": ' + b"9" * 5000 + b"}", 400, "bad_request"),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", list(UNPARSEABLE))
def test_bodies_that_are_not_a_json_object_are_refused(shared, method, name):
    client, settings = shared
    body, status, code = UNPARSEABLE[name]
    before = stored(settings)
    assert_refused(send(client, method, body), status, code)
    after = stored(settings)
    assert after["cases"] == before["cases"] + (method == "PATCH")  # PATCH's own case only


# -------------------------------------------------------------------------- wrong values

R, F = "invalid_request", "invalid_field"

WRONG = [
    # (fields, the code from POST, PUT and PATCH). What a schema refuses is invalid_request;
    # what the service refuses (PUT's and PATCH's looser schemas let more through) is
    # invalid_field. None: not sent (PUT takes the agency and reference from its path).
    ({"kind": 1}, R, R, R),
    ({"name": 123}, R, R, R),
    ({"name": ["王秀英"]}, R, R, R),
    ({"name": {"zh": "王秀英"}}, R, R, R),
    ({"name": "\ud800"}, R, R, F),  # a lone surrogate
    ({"name": "a\x00b"}, R, F, F),
    ({"sex": "x"}, R, R, F),
    ({"sex": None}, R, R, F),
    ({"birth_year_min": "nineteen"}, R, R, R),
    ({"birth_year_min": 1980.5}, R, R, R),
    ({"birth_year_min": float("nan")}, R, R, R),
    ({"birth_year_min": 10**30}, R, R, F),
    ({"birth_year_min": True}, R, R, F),
    ({"birth_year_min": 1990, "birth_year_max": 1980}, R, F, F),
    ({"date_missing": 20240101}, R, R, R),
    ({"date_missing": "2024-02-30"}, R, R, R),
    ({"date_missing": "0001-01-01"}, R, F, F),
    ({"date_missing": "9999-12-31"}, R, F, F),
    ({"status": 5}, R, R, R),
    ({"unknown_field": 1}, R, R, R),
    ({"agency": "../etc"}, R, None, F),
    ({"agency": "上海公安"}, R, None, F),
    ({"name": "x" * 201}, R, R, F),
    ({"name": "王" * 201}, R, R, F),
    ({"place": "x" * 501}, R, R, F),
    ({"contact": "x" * 501}, R, R, F),
    ({"description": "x" * 5001}, R, R, F),
    ({"agency": "A" * 65, "external_ref": "x"}, R, None, F),
    ({"agency": "A", "external_ref": "x" * 129}, R, None, F),
]


@pytest.mark.parametrize(
    ("method", "fields", "code"),
    [
        pytest.param(method, fields, code, id=f"{method}-{str(fields)[:40]}")
        for fields, *codes in WRONG
        for method, code in zip(METHODS, codes, strict=True)
        if code is not None
    ],
)
def test_wrong_types_and_values_are_422_naming_the_field(shared, method, fields, code):
    client, settings = shared
    before = stored(settings)
    body = assert_refused(send(client, method, whole(method, fields)), 422, code)
    errors = body.get("errors", [])
    assert all(set(e) == {"field", "message"} for e in errors)  # what was sent is not echoed
    named = {(e["field"] or "").removeprefix("body.") for e in errors}
    assert named & set(fields) or named <= {"", "body"}, errors  # the field, or the whole
    assert stored(settings)["cases"] == before["cases"] + (method == "PATCH")


def test_a_body_over_the_json_limit_is_413_on_every_endpoint(client):
    for method in METHODS:
        response = send(client, method, whole(method, {"description": "x" * 2_000_000}))
        assert_refused(response, 413, "request_too_large")


def test_the_longest_allowed_values_are_stored_whole(client):
    longest = {
        "name": "王" * 200,  # characters, not bytes: 600 bytes of UTF-8
        "place": "上" * 500,
        "contact": "x" * 500,
        "description": "秀" * 5000,
        "agency": "A" * 64,
        "external_ref": "号" * 128,
    }
    created = client.post(f"{API}/cases", json={"kind": "missing", **longest})
    assert created.status_code == 201, created.text
    assert {k: created.json()[k] for k in longest} == longest
    put = client.put(f"{API}/agencies/{'A' * 64}/cases/{quote('号' * 128)}", json=whole("PUT", {}))
    assert put.status_code == 200 and put.json()["id"] == created.json()["id"]
    too_long = client.put(f"{API}/agencies/A/cases/{quote('号' * 129)}", json=whole("PUT", {}))
    assert_refused(too_long, 422, "invalid_request")


def test_duplicate_keys_the_last_one_wins(client):
    raw = '{"kind": "found", "kind": "missing", "name": "a", "name": "王秀英"}'.encode()
    created = send(client, "POST", raw)
    assert created.status_code == 201, created.text
    assert (created.json()["kind"], created.json()["name"]) == ("missing", "王秀英")


# ---------------------------------------------------------------------------------- unicode

NAMES = [
    "王秀英",
    "欧阳娜娜",
    "José",  # composed é
    "Jose\u0301",  # decomposed: stored as sent, not normalized
    "Ngô Bảo Châu",
    "محمد",
    "👩\u200d👧 family",
    "a\u200bb",  # a zero-width space inside
    "𠀋𡈽𡌛",  # outside the Basic Multilingual Plane
]


@pytest.mark.parametrize("name", NAMES)
def test_unicode_names_are_stored_and_returned_intact(client, settings, name):
    facts = {
        "name": name,
        "place": "上海市浦东新区",
        "description": f"{name}，六十岁，穿蓝色外套。",
    }
    created = client.post(f"{API}/cases", json={"kind": "missing", **facts})
    assert created.status_code == 201, created.text
    case_id = created.json()["id"]
    put = client.put(
        f"{API}/agencies/SH-PSB/cases/{quote(name + '-2024')}", json={"kind": "missing", **facts}
    )
    assert put.status_code == 201 and put.json()["external_ref"] == f"{name}-2024"
    patched = client.patch(f"{API}/cases/{put.json()['id']}", json={"name": name + name})
    assert patched.json()["name"] == name + name
    for got in (created.json(), client.get(f"{API}/cases/{case_id}").json()):
        assert {k: got[k] for k in facts} == facts
    listed = client.get(f"{API}/cases").json()["items"]
    assert [c["name"] for c in listed] == [name, name + name]
    engine = sqlalchemy.create_engine(settings.resolved_database_url)
    with engine.connect() as db:
        kept = db.scalar(sqlalchemy.text("SELECT name FROM cases WHERE id = :id"), {"id": case_id})
    engine.dispose()
    assert kept == name  # the very code points


def test_surrounding_whitespace_is_trimmed_and_blank_means_unknown(client):
    created = client.post(
        f"{API}/cases", json={"kind": "missing", "name": "\u3000王秀英 \t", "place": "   "}
    )
    assert created.status_code == 201, created.text
    assert (created.json()["name"], created.json()["place"]) == ("王秀英", None)


# ---------------------------------------------------------------- path-like external refs

PATH_LIKE = [
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..\\..\\windows\\win.ini",
    "/etc/passwd",
    "~/.ssh/id_rsa",
    "file:///etc/passwd",
    "C:\\Windows\\win.ini",
    "..",
    ".",
    "a?b#c",
    "a\nb",
]
"""External references that look like paths or URLs: opaque strings to reunite."""

FILE_EVENTS = frozenset(
    {"open", "os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.listdir", "os.scandir"}
    | {"os.symlink", "os.link", "os.truncate", "os.chmod", "shutil.copyfile", "shutil.rmtree"}
)
MARKERS = ("passwd", "win.ini", "id_rsa", ".ssh", "windows")


class FileWatch:
    """Records file-system calls this process makes (``sys.addaudithook``) whose path contains
    one of ``MARKERS``, while ``watching`` is true."""

    def __init__(self) -> None:
        self.watching = False
        self.seen: list[tuple[str, str]] = []
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self.watching and event in FILE_EVENTS and args:
            path = str(args[0]).lower()
            if any(marker in path for marker in MARKERS):
                self.seen.append((event, path))


_watch: list[FileWatch] = []


@pytest.fixture
def file_watch() -> Iterator[FileWatch]:
    if not _watch:
        _watch.append(FileWatch())  # an audit hook cannot be removed: one per session
    watch = _watch[0]
    watch.seen.clear()
    watch.watching = True
    try:
        yield watch
    finally:
        watch.watching = False


def in_path(ref: str) -> str:
    """``ref`` percent-encoded as one path segment, dots too (else ``..`` is resolved by the
    client before it is sent)."""
    return quote(ref, safe="").replace(".", "%2E")


def tree(root: Path) -> set[str]:
    """The files under ``root``."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_path_like_external_refs_are_opaque_and_touch_no_file(client, tmp_path, file_watch):
    files_before = tree(tmp_path)
    for i, ref in enumerate(PATH_LIKE):
        agency = f"A{i}"
        created = client.post(
            f"{API}/cases", json={"kind": "missing", "agency": agency, "external_ref": ref}
        )
        assert created.status_code == 201, created.text
        assert created.json()["external_ref"] == ref
        assert client.get(f"{API}/cases/{created.json()['id']}").json()["external_ref"] == ref
        again = client.post(
            f"{API}/cases", json={"kind": "missing", "agency": agency, "external_ref": ref}
        )
        assert assert_refused(again, 409, "conflict")["case_id"] == created.json()["id"]

        if "%" not in ref:  # (the test client decodes a path twice; see the next test)
            put = client.put(f"{API}/agencies/{agency}/cases/{in_path(ref)}", json=whole("PUT", {}))
            if "/" in ref:  # the server decodes %2F before routing: no such route
                assert_refused(put, 404, "not_found")
            else:  # the same case, found again by its reference
                assert put.status_code == 200, put.text
                assert put.json()["id"] == created.json()["id"]

        other = client.post(f"{API}/cases", json={"kind": "missing", "agency": agency}).json()
        patched = client.patch(f"{API}/cases/{other['id']}", json={"external_ref": ref + "-2"})
        assert patched.status_code == 200 and patched.json()["external_ref"] == ref + "-2"

    assert file_watch.seen == []
    new_files = tree(tmp_path) - files_before
    assert all(f.startswith(("data", "index")) for f in new_files), new_files
    assert not (tmp_path / "data" / "photos").exists() or not tree(tmp_path / "data" / "photos")


UNUSABLE_IN_PATH = [
    # (the reference as sent in the path, status, code)
    ("a%00b", 422, "invalid_field"),
    ("%00", 422, "invalid_field"),
    ("%20%20", 422, "invalid_field"),
    # Not UTF-8: the server would decode each to U+FFFD, so different references
    # (GBK-encoded Chinese, say) would all name the same case.
    ("%FF", 422, "invalid_request"),
    ("%C0%AE%C0%AE", 422, "invalid_request"),
    ("%CD%F5%D0%E3%D3%A2", 422, "invalid_request"),  # 王秀英 in GBK
]


@pytest.mark.parametrize(("raw_ref", "status", "code"), UNUSABLE_IN_PATH)
def test_unusable_external_refs_in_the_path_are_refused(client, settings, raw_ref, status, code):
    response = client.put(f"{API}/agencies/SH-PSB/cases/{raw_ref}", json={"kind": "missing"})
    assert_refused(response, status, code)
    assert stored(settings)["cases"] == 0


def test_nul_bytes_in_refs_and_agencies_are_refused_everywhere(client):
    assert_refused(
        client.post(
            f"{API}/cases", json={"kind": "missing", "agency": "A", "external_ref": "x\x00y"}
        ),
        422,
        "invalid_request",
    )
    assert_refused(
        client.put(f"{API}/agencies/A%00/cases/x", json={"kind": "missing"}),
        422,
        "invalid_request",
    )
    case = client.post(f"{API}/cases", json={"kind": "missing", "agency": "A"}).json()
    assert_refused(
        client.patch(f"{API}/cases/{case['id']}", json={"external_ref": "\x00"}),
        422,
        "invalid_field",
    )


def test_a_padded_reference_in_the_path_names_the_same_case(client):
    first = client.put(f"{API}/agencies/SH-PSB/cases/%20R-7%20", json={"kind": "missing"})
    assert first.status_code == 201 and first.json()["external_ref"] == "R-7"
    for path_ref in ("%20R-7%20", "R-7", "%09R-7"):
        again = client.put(f"{API}/agencies/SH-PSB/cases/{path_ref}", json={"kind": "missing"})
        assert again.status_code == 200, again.text
        assert again.json()["id"] == first.json()["id"]


def test_refs_in_the_path_of_a_real_server(tmp_path):
    """The PUT path as a real server decodes it (once; the test client decodes it twice)."""
    server = Server(tmp_path, REUNITE_RATE_LIMIT_BURST="100000")
    try:
        with httpx2.Client(base_url=f"{server.url}{API}", headers=server.auth) as api:
            for i, ref in enumerate(PATH_LIKE):
                url = f"/agencies/A{i}/cases/{in_path(ref)}"
                put = api.put(url, json=whole("PUT", {}))
                if "/" in ref:
                    assert_refused(put, 404, "not_found")
                    continue
                assert put.status_code == 201 and put.json()["external_ref"] == ref, put.text
                again = api.put(url, json=whole("PUT", {"name": "王秀英"}))
                assert again.status_code == 200 and again.json()["id"] == put.json()["id"]
            for raw_ref, status, code in UNUSABLE_IN_PATH:
                put = api.put(f"/agencies/B/cases/{raw_ref}", json=whole("PUT", {}))
                assert_refused(put, status, code)
            assert api.get("/cases", params={"agency": "B"}).json()["total"] == 0
    finally:
        server.stop()
    assert all(f.startswith(("data/", "index/", "server-")) for f in tree(tmp_path))
    assert not any(f.startswith("data/photos/") for f in tree(tmp_path))


# ------------------------------------------- NUL characters and out-of-range ids, anywhere

BIG_ID = 3_000_000_000
"""Over 2**31 - 1, the largest id PostgreSQL's integer columns hold (SQLite's hold 2**63 - 1)."""

ANYWHERE = [
    # (method, path, JSON body, the answer on SQLite); on PostgreSQL each is 422 invalid_field.
    ("GET", "/cases?agency=%00", None, 200),
    ("GET", "/cases?agency=SH-PSB%00", None, 200),
    ("GET", "/audit?action=case.create%00", None, 200),
    ("GET", "/audit?actor=admin%00", None, 200),
    ("GET", f"/audit?case_id={BIG_ID}", None, 200),
    ("GET", f"/cases/{BIG_ID}", None, 404),
    ("GET", f"/cases/{2**63 - 1}", None, 404),
    ("GET", f"/cases/{BIG_ID}/photos", None, 404),
    ("GET", f"/photos/{BIG_ID}/image", None, 404),
    ("GET", f"/faces/{BIG_ID}/crop", None, 404),
    ("GET", f"/candidates/{BIG_ID}", None, 404),
    ("PATCH", f"/cases/{BIG_ID}", {"name": "王秀英"}, 404),
    ("DELETE", f"/cases/{BIG_ID}?reason=entered_in_error", None, 404),
    ("POST", f"/candidates/{BIG_ID}/decisions", {"status": "confirmed"}, 404),
    ("POST", "/session", {"username": "admin\x00", "password": "x"}, 401),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "on_sqlite"), ANYWHERE, ids=[f"{m} {p}" for m, p, *_ in ANYWHERE]
)
def test_nul_characters_and_huge_ids_are_4xx_on_every_store(
    client, settings, method, path, body, on_sqlite
):
    response = client.request(method, f"{API}{path}", json=body)
    if settings.database_url:  # PostgreSQL cannot hold the value: refused, not a 500
        assert_refused(response, 422, "invalid_field")
    elif on_sqlite == 200:
        assert response.status_code == 200, response.text
    else:
        assert_refused(response, on_sqlite, {404: "not_found", 401: "not_authenticated"}[on_sqlite])
