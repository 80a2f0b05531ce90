"""Keys, roles and agency scoping on every endpoint; rate limits; idempotent sync."""

from datetime import UTC, datetime, timedelta

import pytest

from reunite import accounts, webhooks
from tests.api.test_routes import API, assert_problem, create, upload
from tests.conftest import key_headers, ready_client, settings_in

ALLOWED = {200, 201, 204}


@pytest.fixture
def world(client, sample):
    """Two agencies' missing cases, a found case, a candidate, and a key for each role."""
    admin = dict(client.headers)
    ma = create(client, "missing", agency="SH-PSB", external_ref="SH-1", name="李建国")
    ma_photo = upload(client, ma["id"], sample("obama.jpg")).json()["photo"]
    mb = create(client, "missing", agency="BJ-PSB", external_ref="BJ-1", name="王芳")
    found = create(client, "found", place="上海市救助管理站")
    enrolled = upload(client, found["id"], sample("obama2.jpg")).json()
    [candidate] = enrolled["new_candidates"]
    client.headers.pop("Authorization")
    return {
        "keys": {
            "admin": admin,
            "staff": key_headers(client, "staff"),
            "police_sh": key_headers(client, "police", "SH-PSB"),
            "police_bj": key_headers(client, "police", "BJ-PSB"),
            "anonymous": {},
        },
        "ma": ma,
        "mb": mb,
        "found": found,
        "candidate": candidate,
        "ma_photo": ma_photo["id"],
        "ma_face": ma_photo["faces"][0]["id"],
        "found_face": enrolled["photo"]["faces"][0]["id"],
    }


ROLES = ("admin", "staff", "police_sh", "police_bj", "anonymous")


def table(w):
    """(method, path, request kwargs, expected status for admin, staff, police_sh, police_bj,
    anonymous); "ok" means any 2xx."""
    ma, mb, found, cand = w["ma"]["id"], w["mb"]["id"], w["found"]["id"], w["candidate"]["id"]
    return [
        ("POST", "/cases", {"json": {"kind": "found"}}, ("ok", "ok", 403, 403, 401)),
        (
            "POST",
            "/cases",
            {"json": {"kind": "missing", "agency": "SH-PSB"}},
            ("ok", 403, "ok", 403, 401),
        ),
        ("GET", "/cases", {}, ("ok", "ok", "ok", "ok", 401)),
        ("GET", f"/cases/{ma}", {}, ("ok", "ok", "ok", 404, 401)),
        ("GET", f"/cases/{found}", {}, ("ok", "ok", 404, 404, 401)),
        ("PATCH", f"/cases/{ma}", {"json": {"place": "杭州"}}, ("ok", 403, "ok", 404, 401)),
        ("PATCH", f"/cases/{found}", {"json": {"place": "上海"}}, ("ok", "ok", 404, 404, 401)),
        (
            "DELETE",
            f"/cases/{mb}",
            {"params": {"reason": "subject_request"}},
            (None, 403, 404, None, 401),
        ),
        ("GET", f"/cases/{ma}/photos", {}, ("ok", "ok", "ok", 404, 401)),
        ("GET", f"/cases/{ma}/candidates", {}, ("ok", "ok", "ok", 404, 401)),
        ("POST", f"/cases/{ma}/photos", "again", ("ok", 403, "ok", 404, 401)),
        ("POST", "/search", "search", ("ok", "ok", "ok", "ok", 401)),
        ("GET", f"/photos/{w['ma_photo']}/image", {}, ("ok", "ok", "ok", 404, 401)),
        ("GET", f"/faces/{w['ma_face']}/crop", {}, ("ok", "ok", "ok", 404, 401)),
        ("GET", f"/faces/{w['found_face']}/crop", {}, ("ok", "ok", "ok", "ok", 401)),
        ("GET", "/candidates", {}, ("ok", "ok", "ok", "ok", 401)),
        ("GET", f"/candidates/{cand}", {}, ("ok", "ok", "ok", 404, 401)),
        (
            "POST",
            f"/candidates/{cand}/decisions",
            {"json": {"status": "pending", "note": "x"}},
            (409, 409, 403, 403, 401),
        ),
        ("GET", "/audit", {}, ("ok", 403, 403, 403, 401)),
        (
            "PUT",
            "/agencies/SH-PSB/cases/SH-9",
            {"json": {"kind": "missing"}},
            ("ok", 403, "ok", 403, 401),
        ),
        (
            "POST",
            "/agencies/SH-PSB/webhooks",
            {"json": {"url": "https://hooks.psb.example/in"}},
            ("ok", 403, "ok", 403, 401),
        ),
        ("GET", "/agencies/SH-PSB/webhooks", {}, ("ok", 403, "ok", 403, 401)),
        ("GET", "/webhook-deliveries", {}, ("ok", 403, 403, 403, 401)),
        ("POST", "/webhook-deliveries/999/retry", {}, (404, 403, 403, 403, 401)),
        ("GET", "/session", {}, (401, 401, 401, 401, 401)),  # keys have no session
        ("GET", "//readyz", {}, ("ok", "ok", "ok", "ok", 401)),
        ("GET", "//metrics", {}, ("ok", 403, 403, 403, 401)),
        ("GET", "//healthz", {}, ("ok", "ok", "ok", "ok", "ok")),
    ]


def test_every_role_against_every_endpoint(client, world, sample):
    mismatches = []
    for method, path, kwargs, expected in table(world):
        url = path[1:] if path.startswith("//") else f"{API}{path}"
        for role, want in zip(ROLES, expected, strict=True):
            if want is None:
                continue
            if kwargs == "again":
                request = {"files": {"file": ("o.jpg", sample("obama.jpg"), "image/jpeg")}}
            elif kwargs == "search":
                request = {"files": {"file": ("b.jpg", sample("biden.jpg"), "image/jpeg")}}
            else:
                request = kwargs
            response = client.request(method, url, headers=world["keys"][role], **request)
            got = response.status_code
            if (want == "ok" and got not in ALLOWED) or (want != "ok" and got != want):
                mismatches.append(f"{role:10} {method:6} {path}: {got}, expected {want}")
            if got >= 400:
                assert response.headers["content-type"] == "application/problem+json"
    assert not mismatches, "\n".join(mismatches)


def test_another_agencys_case_looks_exactly_like_no_case(client, world):
    police = world["keys"]["police_bj"]
    hidden = client.get(f"{API}/cases/{world['ma']['id']}", headers=police).json()
    absent = client.get(f"{API}/cases/999999", headers=police).json()
    assert hidden["code"] == absent["code"] == "not_found"
    assert hidden["detail"].replace(str(world["ma"]["id"]), "N") == absent["detail"].replace(
        "999999", "N"
    )


def test_police_see_other_agencies_cases_only_as_a_candidate_shows(client, world, sample):
    police = world["keys"]["police_sh"]
    [candidate] = client.get(f"{API}/candidates", headers=police).json()["items"]
    assert candidate["missing_case"]["name"] == "李建国"  # their own case, whole
    other = candidate["found_case"]
    assert other["redacted"] and other["place"] == "上海市救助管理站"
    assert other["name"] is None and other["contact"] is None and other["external_ref"] is None
    listed = client.get(f"{API}/cases", headers=police).json()["items"]
    assert {c["agency"] for c in listed} == {"SH-PSB"}
    assert client.get(f"{API}/candidates", headers=world["keys"]["police_bj"]).json()["items"] == []
    searched = client.post(
        f"{API}/search",
        headers=world["keys"]["police_bj"],
        files={"file": ("o.jpg", sample("obama2.jpg"), "image/jpeg")},
    ).json()
    shown = searched["faces"][0]["candidates"]
    assert shown and all(c["case"]["redacted"] and c["case"]["name"] is None for c in shown)


def test_keys_are_refused_when_wrong_revoked_or_expired(client):
    service = client.app.state.service
    row, key = accounts.create_api_key(service.store, "police", agency="SH-PSB", actor="test")
    bearer = {"Authorization": f"Bearer {key}"}
    assert client.get(f"{API}/cases", headers=bearer).status_code == 200
    for wrong in (key[:-1] + ("A" if key[-1] != "A" else "B"), "rk_nothex_x", "secret"):
        refused = client.get(f"{API}/cases", headers={"Authorization": f"Bearer {wrong}"})
        assert_problem(refused, 401, "not_authenticated")
        assert refused.headers["www-authenticate"].startswith("Bearer")
    accounts.revoke_api_key(service.store, row.prefix, actor="test")
    assert_problem(client.get(f"{API}/cases", headers=bearer), 401, "not_authenticated")
    _, old = accounts.create_api_key(
        service.store,
        "staff",
        agency=None,
        actor="test",
        expires_at=datetime.now(UTC) - timedelta(seconds=1),
    )
    stale = client.get(f"{API}/cases", headers={"Authorization": f"Bearer {old}"})
    assert_problem(stale, 401, "not_authenticated")
    keys = {k.prefix: k for k in accounts.api_keys(service.store)}
    assert keys[row.prefix].revoked_at is not None
    assert all(not hasattr(k, "key") for k in keys.values())  # only hashes are kept


def test_rate_limits_answer_429_with_retry_after(tmp_path, finder):
    from reunite.app import create_app

    app = create_app(
        settings_in(tmp_path, rate_limit_per_minute=60, rate_limit_burst=3), finder=finder
    )
    client = ready_client(app)
    try:
        first, second = key_headers(client), key_headers(client)
        statuses = [client.get(f"{API}/cases", headers=first).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = client.get(f"{API}/cases", headers=first)
        assert_problem(limited, 429, "rate_limited")
        assert 1 <= int(limited.headers["retry-after"]) <= 2
        assert client.get(f"{API}/cases", headers=second).status_code == 200  # per key
    finally:
        client.__exit__(None, None, None)


def test_put_is_idempotent_and_updates_on_change(client):
    police = key_headers(client, "police", "SH-PSB")
    url = f"{API}/agencies/SH-PSB/cases/2024-0042"
    record = {"kind": "missing", "name": "李建国", "sex": "male", "date_missing": "2024-02-20"}
    first = client.put(url, json=record, headers=police)
    assert first.status_code == 201, first.text
    again = client.put(url, json=record, headers=police)
    assert again.status_code == 200 and again.json() == first.json()  # updated_at unchanged
    listed = client.get(f"{API}/cases", params={"agency": "SH-PSB"}, headers=police).json()
    assert listed["total"] == 1
    changed = client.put(url, json={**record, "place": "杭州"}, headers=police)
    assert changed.status_code == 200 and changed.json()["place"] == "杭州"
    assert changed.json()["id"] == first.json()["id"]
    assert changed.json()["updated_at"] > first.json()["updated_at"]
    dropped = client.put(url, json=record, headers=police).json()
    assert dropped["place"] is None  # the body is the whole record
    assert_problem(
        client.put(url, json={**record, "kind": "found"}, headers=police), 403, "forbidden"
    )
    assert_problem(client.put(url, json={"kind": "found"}), 422, "invalid_field")  # admin


def test_sync_by_updated_since_and_cursor(client):
    made = [create(client, "missing", agency="SH-PSB", external_ref=f"S-{i}") for i in range(5)]
    everything, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{API}/cases", params=params).json()
        everything += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert everything == [c["id"] for c in made]  # each once, in order of change
    since = client.patch(f"{API}/cases/{made[1]['id']}", json={"place": "x"}).json()["updated_at"]
    changed = client.get(f"{API}/cases", params={"updated_since": since}).json()["items"]
    assert [c["id"] for c in changed] == [made[1]["id"]]
    naive = client.get(f"{API}/cases", params={"updated_since": "2024-01-01T00:00:00"})
    assert_problem(naive, 422, "invalid_request")  # a time needs its zone


def test_a_chunked_body_over_the_limit_is_refused_as_it_streams(client):
    def chunks():
        yield b'{"kind": "missing", "description": "'
        for _ in range(64):
            yield b"x" * 32_768  # 2 MiB in all, with no Content-Length
        yield b'"}'

    refused = client.post(
        f"{API}/cases", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(refused, 413, "request_too_large")
    assert refused.headers["x-request-id"]
    assert client.get(f"{API}/cases").json()["total"] == 0


def test_sign_in_attempts_are_limited(tmp_path, finder):
    """Three tries a minute here (a token back every 20 s), so a slow machine hashing the
    passwords cannot earn one more try during the test."""
    from reunite.app import create_app

    client = ready_client(
        create_app(settings_in(tmp_path, sign_in_attempts_per_minute=3), finder=finder)
    )
    try:
        service = client.app.state.service
        accounts.create_user(service.store, "staff1", "correct horse battery", "staff", actor="t")
        answers = [
            client.post(f"{API}/session", json={"username": "staff1", "password": f"guess {i}"})
            for i in range(4)
        ]
        assert [a.status_code for a in answers[:3]] == [401] * 3
        assert_problem(answers[3], 429, "rate_limited")
        assert int(answers[3].headers["retry-after"]) >= 1
    finally:
        client.__exit__(None, None, None)


def test_times_must_be_iso_with_a_zone_and_405_says_what_is_allowed(client):
    for value in ("1700000000", "0.5", "2024-01-01T00:00:00"):
        assert_problem(
            client.get(f"{API}/cases", params={"updated_since": value}), 422, "invalid_request"
        )
    assert client.get(f"{API}/cases", params={"updated_since": "2024-01-01T00:00:00Z"}).is_success
    refused = client.delete(f"{API}/cases")
    assert_problem(refused, 405, "method_not_allowed")
    assert refused.headers["allow"] == "GET, POST"  # every method of the path
    options = client.options(f"{API}/cases")
    assert_problem(options, 405, "method_not_allowed")
    assert options.headers["allow"] == "GET, POST"
    one = client.put(f"{API}/cases/1/photos")
    assert one.status_code == 405 and one.headers["allow"] == "GET, POST"


def test_bad_cursors_are_422_never_500(client):
    import base64
    import json as json_module

    def cursor(values):
        return base64.urlsafe_b64encode(json_module.dumps(values).encode()).decode().rstrip("=")

    for path, values in [
        ("/cases", ["2024-01-01T00:00:00+00:00"]),
        ("/cases", ["2024-01-01T00:00:00", 1]),
        ("/cases", [1, 1]),
        ("/candidates", [{"a": 1}, 1]),
        ("/candidates", [0.5]),
        ("/candidates?order=newest", [True]),
        ("/candidates?order=closest", [float("inf"), 1]),
        ("/candidates?order=closest", [0, float("inf"), 1]),
    ]:
        separator = "&" if "?" in path else "?"
        response = client.get(f"{API}{path}{separator}cursor={cursor(values)}")
        assert_problem(response, 422, "invalid_field")


def test_webhook_events_go_only_to_the_missing_cases_agency(client, sample):
    from reunite.store import OutboxEventRow

    service = client.app.state.service
    for agency in ("A-PSB", "B-PSB"):
        webhooks.create_webhook(
            service.store, agency, "https://receiver.example/hook", actor="test"
        )
    missing = create(client, "missing", agency="B-PSB", external_ref="B-1")
    upload(client, missing["id"], sample("obama.jpg"))
    found = create(client, "found", agency="A-PSB", external_ref="fx")  # a center's own ref
    upload(client, found["id"], sample("obama2.jpg"))
    with service.store.transaction() as session:
        events = session.query(OutboxEventRow).all()
        agencies = {
            webhooks.webhooks_of(service.store, "A-PSB")[0].id: "A",
            webhooks.webhooks_of(service.store, "B-PSB")[0].id: "B",
        }
        assert {agencies[e.webhook_id] for e in events} == {"B"}
        assert all(e.payload["case"]["id"] == missing["id"] for e in events)


def test_cases_are_created_open_and_put_keeps_the_status_on_null(client):
    assert_problem(
        client.post(f"{API}/cases", json={"kind": "missing", "status": "matched"}),
        422,
        "invalid_field",
    )
    url = f"{API}/agencies/SH-PSB/cases/N-1"
    assert client.put(url, json={"kind": "missing", "status": "closed"}).status_code == 201
    kept = client.put(url, json={"kind": "missing", "status": None})
    assert kept.status_code == 200 and kept.json()["status"] == "closed"


def test_a_police_key_s_case_gets_its_agency_filled_in(client):
    """As the README says: a police key's new case without ``agency`` is its own agency's, an
    external_ref included; staff (no agency of their own) must name one."""
    police = key_headers(client, "police", "SH-PSB")
    made = client.post(
        f"{API}/cases", json={"kind": "missing", "external_ref": "SH-77"}, headers=police
    )
    assert made.status_code == 201, made.text
    assert made.json()["agency"] == "SH-PSB" and made.json()["external_ref"] == "SH-77"
    refused = client.post(f"{API}/cases", json={"kind": "found", "external_ref": "R-1"})
    body = assert_problem(refused, 422, "invalid_field")
    assert "needs an agency" in body["detail"]


ID_REQUESTS = {
    ("patch", "/api/v1/cases/{case_id}"): {"json": {"place": "杭州"}},
    ("delete", "/api/v1/cases/{case_id}"): {"params": {"reason": "subject_request"}},
    ("post", "/api/v1/candidates/{candidate_id}/decisions"): {"json": {"status": "rejected"}},
}
"""Bodies that pass validation, so the scan reaches the access check (else both are a 422)."""


def test_another_agencys_objects_look_like_none_on_every_route_that_takes_an_id(
    client, world, sample
):
    """Every route of the published API with an id in its path (found in the OpenAPI
    document, so a new route is scanned without being listed), every method: a police key of
    BJ-PSB asking for SH-PSB's case, photo, face, candidate, decision or webhook gets exactly
    the answer it gets for an id that does not exist: no leak, no existence oracle."""
    admin = world["keys"]["admin"]
    cand = world["candidate"]["id"]
    decided = client.post(
        f"{API}/candidates/{cand}/decisions", json={"status": "rejected"}, headers=admin
    ).json()
    hook, _ = webhooks.create_webhook(
        client.app.state.service.store, "SH-PSB", "https://hooks.psb.example/in", actor="t"
    )
    hidden_ids = {
        "case_id": world["ma"]["id"],
        "photo_id": world["ma_photo"],
        "face_id": world["ma_face"],
        "candidate_id": cand,
        "decision_id": decided["decisions"][-1]["id"],
        "webhook_id": hook.id,
        "delivery_id": 1,
        "agency": "BJ-PSB",  # its own agency: the id is what is not its own
        "external_ref": "SH-1",
    }
    absent_ids = {**hidden_ids, **{k: 987654 for k in hidden_ids if k.endswith("_id")}}
    police = world["keys"]["police_bj"]
    scanned, leaks = 0, []
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        if not any(f"{{{name}}}" in path for name in hidden_ids if name.endswith("_id")):
            continue
        for method in operations:
            kwargs = ID_REQUESTS.get((method, path), {})
            if path.endswith("/photos") and method == "post":
                kwargs = {"files": {"file": ("o.jpg", sample("obama.jpg"), "image/jpeg")}}
            answers = [
                client.request(method, path.format(**ids), headers=police, **kwargs)
                for ids in (hidden_ids, absent_ids)
            ]
            scanned += 1
            hidden, absent = (
                (a.status_code, a.json().get("code"), a.json().get("detail", ""))
                if a.headers.get("content-type", "").endswith("json")
                else (a.status_code, None, "")
                for a in answers
            )
            for name, value in hidden_ids.items():
                hidden = (hidden[0], hidden[1], hidden[2].replace(str(value), "N"))
                absent = (absent[0], absent[1], absent[2].replace(str(absent_ids[name]), "N"))
            if hidden != absent or hidden[0] < 400:
                leaks.append(f"{method.upper()} {path}: {hidden} != {absent}")
    assert scanned >= 12, scanned
    assert not leaks, "\n".join(leaks)
