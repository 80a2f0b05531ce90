"""Review through the HTTP API: sessions, every candidate transition, flags, the audit log."""

import pytest

from reunite.accounts import create_user, disable_user
from reunite.store import CandidateRow
from tests.api.test_routes import API, assert_problem, create, upload

PASSWORD = "correct horse battery"
NO_KEY = {"Authorization": ""}  # the client sends an admin key unless told otherwise


@pytest.fixture
def accounts(client):
    service = client.app.state.service
    create_user(service.store, "staff1", PASSWORD, "staff", actor="test")
    create_user(service.store, "admin1", PASSWORD, "admin", actor="test")


def sign_in(client, username):
    response = client.post(f"{API}/session", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"X-CSRF-Token": response.json()["csrf_token"], **NO_KEY}


def decide(client, headers, candidate_id, status, note=None):
    return client.post(
        f"{API}/candidates/{candidate_id}/decisions",
        json={"status": status, "note": note},
        headers=headers,
    )


@pytest.fixture
def candidate(client, sample, accounts):
    missing = create(
        client, "missing", sex="male", birth_date="1961-08-04", date_missing="2024-03-01"
    )
    upload(client, missing["id"], sample("obama.jpg"))
    found = create(
        client,
        "found",
        sex="male",
        birth_year_min=1955,
        birth_year_max=1965,
        date_found="2024-03-05",
    )
    [made] = upload(client, found["id"], sample("obama2.jpg")).json()["new_candidates"]
    return made


def case_status(client, case_id):
    return client.get(f"{API}/cases/{case_id}").json()["status"]


def test_sign_in_and_out(client, accounts):
    assert_problem(
        client.post(f"{API}/session", json={"username": "staff1", "password": "wrong password"}),
        401,
        "not_authenticated",
    )
    assert_problem(
        client.post(f"{API}/session", json={"username": "nobody", "password": PASSWORD}),
        401,
        "not_authenticated",
    )
    assert_problem(client.get(f"{API}/session", headers=NO_KEY), 401, "not_authenticated")
    staff = sign_in(client, "staff1")
    assert client.get(f"{API}/session", headers=staff).json()["role"] == "staff"
    assert client.delete(f"{API}/session").status_code == 204
    assert_problem(client.get(f"{API}/candidates", headers=NO_KEY), 401, "not_authenticated")


def test_the_session_cookie_is_http_only_and_same_site(client, accounts):
    response = client.post(f"{API}/session", json={"username": "staff1", "password": PASSWORD})
    cookie = response.headers["set-cookie"].lower()
    assert "reunite_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie


def test_confirm_marks_both_cases_matched_and_admin_can_reopen(client, candidate):
    staff = sign_in(client, "staff1")
    queue = client.get(f"{API}/candidates").json()
    assert [c["id"] for c in queue["items"]] == [candidate["id"]]
    assert queue["items"][0]["found_case"]["id"] == candidate["found_case_id"]

    confirmed = decide(client, staff, candidate["id"], "confirmed", "same scar on the left hand")
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert body["status"] == "confirmed"
    [decision] = body["decisions"]
    assert decision["actor"] == "user:staff1" and decision["note"] == "same scar on the left hand"
    assert (decision["from_status"], decision["to_status"]) == ("pending", "confirmed")
    assert case_status(client, candidate["found_case_id"]) == "matched"
    assert case_status(client, candidate["missing_case_id"]) == "matched"
    assert client.get(f"{API}/candidates").json()["items"] == []

    assert_problem(decide(client, staff, candidate["id"], "rejected"), 409, "conflict")
    assert_problem(decide(client, staff, candidate["id"], "pending", "why"), 403, "forbidden")

    admin = sign_in(client, "admin1")
    assert_problem(decide(client, admin, candidate["id"], "pending"), 422, "invalid_field")
    reopened = decide(client, admin, candidate["id"], "pending", "DNA test was negative")
    assert reopened.status_code == 200 and reopened.json()["status"] == "pending"
    assert len(reopened.json()["decisions"]) == 2
    assert case_status(client, candidate["found_case_id"]) == "open"
    assert case_status(client, candidate["missing_case_id"]) == "open"


def test_reject_and_the_refused_transitions(client, candidate):
    staff = sign_in(client, "staff1")
    assert_problem(decide(client, staff, candidate["id"], "pending", "x"), 409, "conflict")
    assert decide(client, staff, candidate["id"], "rejected").json()["status"] == "rejected"
    assert case_status(client, candidate["found_case_id"]) == "open"
    assert_problem(decide(client, staff, candidate["id"], "confirmed"), 409, "conflict")
    assert_problem(decide(client, staff, candidate["id"], "rejected"), 409, "conflict")
    admin = sign_in(client, "admin1")
    assert decide(client, admin, candidate["id"], "pending", "wrong click").status_code == 200
    assert decide(client, admin, candidate["id"], "confirmed").status_code == 200
    assert_problem(decide(client, admin, 999999, "confirmed"), 404, "not_found")
    assert_problem(
        client.post(
            f"{API}/candidates/{candidate['id']}/decisions", json={"status": "maybe"}, headers=admin
        ),
        422,
        "invalid_request",
    )


def test_decisions_need_a_session_and_its_csrf_token(client, candidate):
    assert_problem(decide(client, NO_KEY, candidate["id"], "confirmed"), 401, "not_authenticated")
    sign_in(client, "staff1")
    assert_problem(decide(client, NO_KEY, candidate["id"], "confirmed"), 403, "forbidden")
    wrong = {"X-CSRF-Token": "not-the-token", **NO_KEY}
    assert_problem(decide(client, wrong, candidate["id"], "confirmed"), 403, "forbidden")
    assert client.get(f"{API}/candidates/{candidate['id']}").json()["status"] == "pending"


def test_a_rejected_pair_comes_back_only_with_new_faces(client, candidate, sample):
    staff = sign_in(client, "staff1")
    decide(client, staff, candidate["id"], "rejected")
    again = upload(client, candidate["found_case_id"], sample("obama2.jpg"))
    assert again.status_code == 200 and again.json()["new_candidates"] == []
    searched = client.post(
        f"{API}/search", files={"file": ("p.jpg", sample("obama2.jpg"), "image/jpeg")}
    )
    assert searched.status_code == 200
    assert client.get(f"{API}/candidates/{candidate['id']}").json()["status"] == "rejected"

    newer = upload(client, candidate["found_case_id"], sample("obama3.jpg"))
    [back] = newer.json()["new_candidates"]
    assert back["id"] == candidate["id"] and back["status"] == "pending"
    assert back["found_face_id"] == newer.json()["photo"]["faces"][0]["id"]
    assert back["decisions"][-1]["actor"] == "system"


def test_flags_warn_without_hiding(client, sample, accounts):
    missing = create(
        client, "missing", sex="female", birth_date="1995-01-01", date_missing="2024-06-01"
    )
    upload(client, missing["id"], sample("obama.jpg"))
    found = create(
        client,
        "found",
        sex="male",
        birth_year_min=1950,
        birth_year_max=1960,
        date_found="2024-01-10",
    )
    [flagged] = upload(client, found["id"], sample("obama2.jpg")).json()["new_candidates"]
    assert [f["code"] for f in flagged["flags"]] == [
        "sex_differs",
        "age_implausible",
        "found_before_missing",
    ]
    assert flagged["flags"][2]["facts"]["days"] == 143
    sign_in(client, "staff1")
    assert client.get(f"{API}/candidates").json()["total"] == 1  # still in the queue


def explained(client, candidate_id, rank, score):
    """The stored candidate with ``rank`` and ``score`` where the proposal left them empty (the
    matching fills them; this sets up a known value, through the store)."""
    with client.app.state.service.store.transaction() as session:
        row = session.get_one(CandidateRow, candidate_id)
        row.rank = rank if row.rank is None else row.rank
        row.score = score if row.score is None else row.score
        return {"rank": row.rank, "distance": row.distance, "score": row.score}


def test_every_candidate_answer_explains_the_candidate(client, sample, accounts):
    missing = create(client, "missing", sex="female", date_missing="2024-03-01")
    upload(client, missing["id"], sample("obama.jpg"))
    found = create(client, "found", sex="male", date_found="2024-03-05")
    [proposed] = upload(client, found["id"], sample("obama2.jpg")).json()["new_candidates"]
    assert set(proposed["explanation"]) == {"rank", "distance", "score", "flags"}
    assert proposed["explanation"]["distance"] == proposed["distance"] < 0.6
    assert proposed["explanation"]["flags"] == ["sex_differs"]
    assert proposed["explanation"]["rank"] in (None, 1)  # the only case of its kind: nearest

    stored = explained(client, proposed["id"], rank=1, score=3.2)
    expected = stored | {"flags": ["sex_differs"]}
    assert stored["rank"] == 1
    staff = sign_in(client, "staff1")
    answers = [
        client.get(f"{API}/cases/{found['id']}/candidates").json()[0],
        client.get(f"{API}/cases/{missing['id']}/candidates").json()[0],
        client.get(f"{API}/candidates").json()["items"][0],
        client.get(f"{API}/candidates/{proposed['id']}").json(),
        decide(client, staff, proposed["id"], "confirmed").json(),
    ]
    for answer in answers:
        assert answer["explanation"] == expected
        assert answer["distance"] == stored["distance"]  # every field it had is still there
        assert 0 <= answer["similarity"] <= 1 and answer["flags"][0]["code"] == "sex_differs"

    with client.app.state.service.store.transaction() as session:  # proposed before scores
        row = session.get_one(CandidateRow, proposed["id"])
        row.rank = row.score = None
    old = client.get(f"{API}/candidates/{proposed['id']}").json()["explanation"]
    assert old == expected | {"rank": None, "score": None}


def test_case_status_changes_follow_the_rules(client, candidate):
    found_id = candidate["found_case_id"]
    assert_problem(
        client.patch(f"{API}/cases/{found_id}", json={"status": "matched"}), 409, "conflict"
    )
    staff = sign_in(client, "staff1")
    decide(client, staff, candidate["id"], "confirmed")
    assert client.patch(f"{API}/cases/{found_id}", json={"status": "closed"}).status_code == 200
    assert client.patch(f"{API}/cases/{found_id}", json={"status": "open"}).status_code == 200


def test_the_audit_log_records_every_action_and_only_admins_read_it(client, candidate, sample):
    staff = sign_in(client, "staff1")
    assert_problem(client.get(f"{API}/audit", headers=staff), 403, "forbidden")
    decide(client, staff, candidate["id"], "confirmed", "family visit booked")
    client.get(f"{API}/faces/{candidate['found_face_id']}/crop")
    client.post(f"{API}/search", files={"file": ("p.jpg", sample("biden.jpg"), "image/jpeg")})
    client.patch(f"{API}/cases/{candidate['found_case_id']}", json={"status": "closed"})
    client.delete(
        f"{API}/cases/{candidate['missing_case_id']}", params={"reason": "subject_request"}
    )

    sign_in(client, "admin1")
    events = client.get(f"{API}/audit", params={"limit": 1000}).json()["items"]
    actions = [e["action"] for e in reversed(events)]
    for action in (
        "user.create",
        "case.create",
        "photo.enroll",
        "user.sign_in",
        "candidate.decision",
        "case.status",
        "face.view",
        "search",
        "case.delete",
    ):
        assert action in actions, action
    decision = next(e for e in events if e["action"] == "candidate.decision")
    assert decision["actor"] == "user:staff1"
    assert decision["details"]["candidate_id"] == candidate["id"]
    text = str(events)
    assert "family visit booked" not in text  # notes live with the decision, not in the log

    only = client.get(f"{API}/audit", params={"action": "case.status"}).json()["items"]
    assert only and {e["action"] for e in only} == {"case.status"}
    by_case = client.get(f"{API}/audit", params={"case_id": candidate["missing_case_id"]}).json()
    assert {e["case_id"] for e in by_case["items"]} == {candidate["missing_case_id"]}
    page = client.get(f"{API}/audit", params={"limit": 2}).json()
    older = client.get(f"{API}/audit", params={"limit": 2, "before_id": page["next_before_id"]})
    assert [e["id"] for e in older.json()["items"]] == [e["id"] for e in events[2:4]]


def test_nothing_can_change_the_audit_log(client, candidate):
    admin = sign_in(client, "admin1")
    before = client.get(f"{API}/audit", params={"limit": 1000}).json()["items"]
    event_id = before[0]["id"]
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        for path in (f"{API}/audit", f"{API}/audit/{event_id}"):
            response = client.request(method, path, json={"actor": "x"}, headers=admin)
            assert response.status_code in (404, 405), (method, path)
    after = client.get(f"{API}/audit", params={"limit": 1000}).json()["items"]
    assert [e for e in after if e["id"] <= event_id] == [e for e in before if e["id"] <= event_id]


def test_the_database_refuses_to_rewrite_the_audit_log(client, candidate):
    from sqlalchemy import delete, update

    from reunite.errors import Conflict
    from reunite.store import AuditEventRow

    store = client.app.state.service.store
    with pytest.raises(Conflict), store.transaction() as session:
        session.execute(update(AuditEventRow).values(actor="someone else"))
    with pytest.raises(Conflict), store.transaction() as session:
        session.execute(delete(AuditEventRow))


def test_two_people_deciding_at_once_one_wins(client, candidate):
    from concurrent.futures import ThreadPoolExecutor

    service = client.app.state.service

    def decide_as(status: str) -> str:
        try:
            service.decide(candidate["id"], status, actor=f"user:{status}", role="staff")
            return "ok"
        except Exception as exc:
            return type(exc).__name__

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(decide_as, ["confirmed", "rejected"] * 8))
    assert outcomes.count("ok") == 1 and outcomes.count("Conflict") == 15
    [view] = service.candidates(candidate["found_case_id"])
    assert len(view.decisions) == 1 and view.decisions[0].to_status == view.candidate.status


def test_no_decisions_on_a_closed_case_and_one_match_per_case(client, candidate, sample):
    staff = sign_in(client, "staff1")
    client.patch(f"{API}/cases/{candidate['missing_case_id']}", json={"status": "closed"})
    assert client.get(f"{API}/candidates").json()["items"] == []  # left the queue
    assert_problem(decide(client, staff, candidate["id"], "confirmed"), 409, "conflict")
    client.patch(f"{API}/cases/{candidate['missing_case_id']}", json={"status": "open"})
    assert decide(client, staff, candidate["id"], "confirmed").status_code == 200

    other_found = create(client, "found")
    [second] = upload(client, other_found["id"], sample("obama3.jpg")).json()["new_candidates"]
    assert second["missing_case_id"] == candidate["missing_case_id"]
    refused = decide(client, staff, second["id"], "confirmed")
    assert_problem(refused, 409, "conflict")
    assert "already matched" in refused.json()["detail"]
    assert decide(client, staff, second["id"], "rejected").status_code == 200
    admin = sign_in(client, "admin1")
    client.patch(f"{API}/cases/{candidate['found_case_id']}", json={"status": "closed"})
    assert_problem(decide(client, admin, candidate["id"], "pending", "undo"), 409, "conflict")


def test_reopening_a_case_does_not_bring_back_a_rejected_pair(client, sample, accounts):
    missing = create(client, "missing")
    upload(client, missing["id"], sample("obama.jpg"))
    upload(client, missing["id"], sample("obama3.jpg"))
    found = create(client, "found")
    [made] = upload(client, found["id"], sample("obama2.jpg")).json()["new_candidates"]
    staff = sign_in(client, "staff1")
    decide(client, staff, made["id"], "rejected", "DNA negative")
    client.patch(f"{API}/cases/{missing['id']}", json={"status": "closed"})
    client.patch(f"{API}/cases/{missing['id']}", json={"status": "open"})
    again = client.get(f"{API}/candidates/{made['id']}").json()
    assert again["status"] == "rejected" and len(again["decisions"]) == 1
    # A photo taken after the rejection is new evidence: the pair is proposed again.
    newer = upload(client, found["id"], sample("obama_small.jpg")).json()
    [back] = newer["new_candidates"]
    assert back["id"] == made["id"] and back["status"] == "pending"


def test_the_audit_log_has_views_updates_and_failed_sign_ins(client, candidate):
    client.get(f"{API}/photos/1/image")
    client.patch(f"{API}/cases/{candidate['found_case_id']}", json={"place": "北京"})
    client.post(f"{API}/session", json={"username": "staff1", "password": "not it at all"})
    client.post(f"{API}/session", json={"username": "no-such-user", "password": "whatever"})
    events = client.get(f"{API}/audit", params={"limit": 1000}).json()["items"]
    by_action = {}
    for event in events:
        by_action.setdefault(event["action"], []).append(event)
    assert by_action["photo.view"][0]["details"]["photo_id"] == 1
    assert by_action["case.update"][0]["details"]["fields"] == ["place"]
    failed = by_action["user.sign_in_failed"]
    assert len(failed) == 2 and {e["details"]["user_id"] for e in failed} == {1, None}
    assert "no-such-user" not in str(events) and "not it at all" not in str(events)
    assert_problem(
        client.get(f"{API}/audit", params={"since": "2024-01-01T00:00:00"}), 422, "invalid_request"
    )


def test_signing_out_ends_the_session_even_for_a_copied_cookie(client, accounts):
    staff = sign_in(client, "staff1")
    copied = client.cookies.get("reunite_session")
    assert client.get(f"{API}/session", headers=staff).status_code == 200
    assert client.delete(f"{API}/session", headers=staff).status_code == 204
    client.cookies.set("reunite_session", copied)
    assert_problem(client.get(f"{API}/session", headers=NO_KEY), 401, "not_authenticated")
    disable_user(client.app.state.service.store, "staff1", actor="test")
    refused = client.post(f"{API}/session", json={"username": "staff1", "password": PASSWORD})
    assert_problem(refused, 401, "not_authenticated")


def test_a_decision_is_undone_by_whoever_made_it_and_no_one_else(client, candidate):
    create_user(client.app.state.service.store, "staff2", PASSWORD, "staff", actor="test")
    staff = sign_in(client, "staff1")
    confirmed = decide(client, staff, candidate["id"], "confirmed").json()
    decision = confirmed["decisions"][-1]
    assert decision["undoes_id"] is None and decision["actor"] == "user:staff1"
    undo = f"{API}/candidates/{candidate['id']}/decisions/{decision['id']}/undo"

    other = sign_in(client, "staff2")
    refused = assert_problem(client.post(undo, headers=other), 409, "undo_refused")
    assert refused["reason"] == "not_yours"
    assert case_status(client, candidate["found_case_id"]) == "matched"

    staff = sign_in(client, "staff1")
    undone = client.post(undo, headers=staff)
    assert undone.status_code == 200, undone.text
    body = undone.json()
    assert body["status"] == "pending" and body["decisions"][-1]["undoes_id"] == decision["id"]
    for case_id in (candidate["found_case_id"], candidate["missing_case_id"]):
        assert case_status(client, case_id) == "open"
    again = assert_problem(client.post(undo, headers=staff), 409, "undo_refused")
    assert again["reason"] == "later_decision"
    assert_problem(
        client.post(f"{API}/candidates/{candidate['id']}/decisions/99999/undo", headers=staff),
        404,
        "not_found",
    )


def test_every_similarity_says_what_it_rests_on(client, candidate, sample):
    """A gallery of two cases has no cohort: the candidate has no score, its similarity is the
    pair fit's (near 1 within tolerance) and every answer says so; without a calibration it is
    the linear score and says that."""
    from reunite.calibration import linear_similarity

    service = client.app.state.service
    assert candidate["explanation"]["score"] is None
    assert candidate["similarity_basis"] == "pair"
    assert candidate["similarity"] == pytest.approx(service.similarity(candidate["distance"]))
    listed = client.get(f"{API}/candidates").json()["items"][0]
    one = client.get(f"{API}/candidates/{candidate['id']}").json()
    assert listed["similarity_basis"] == one["similarity_basis"] == "pair"
    search = client.post(
        f"{API}/search", files={"file": ("p.jpg", sample("obama2.jpg"), "image/jpeg")}
    ).json()
    ranked = search["faces"][0]["candidates"]
    assert ranked and {r["similarity_basis"] for r in ranked} == {"pair"}

    calibration, service.calibration = service.calibration, None
    try:
        linear = client.get(f"{API}/candidates/{candidate['id']}").json()
    finally:
        service.calibration = calibration
    assert linear["similarity_basis"] == "linear"
    assert linear["similarity"] == pytest.approx(linear_similarity(candidate["distance"]))
