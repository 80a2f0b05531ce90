"""Requests that race: a real server with two worker processes, and threads that send at the
same moment (each on its own connection, so the requests spread over both processes and race
across processes as well as threads). Parallel enrollments into one case, parallel decisions
on one candidate and parallel PUTs of one reference leave consistent data: no duplicate
photos, faces or candidates, exactly one decision wins and the others get 409."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest

from reunite.config import Settings
from tests.conftest import settings_in, store_database
from tests.hostile import assert_refused, logged_statuses, stored
from tests.server import UNLIMITED_RATE, Server, cli, store_env

API = "/api/v1"
ROUNDS = 3


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Each test here runs on both stores: their locks differ (PostgreSQL: row locks)."""
    with store_database(request.param) as url:
        yield url


@pytest.fixture(scope="module")
def env(database_url: str | None) -> dict[str, str]:
    return store_env(database_url) | UNLIMITED_RATE


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Path:
    return tmp_path_factory.mktemp("races")


@pytest.fixture(scope="module")
def settings(workdir: Path, database_url: str | None) -> Settings:
    return settings_in(workdir, database_url=database_url)


@pytest.fixture(scope="module")
def server(workdir: Path, env: dict[str, str]) -> Iterator[Server]:
    live = Server(workdir, REUNITE_WORKERS="2", REUNITE_INDEX_SYNC_INTERVAL_S="0.5", **env)
    try:
        live.wait_until_workers_ready()
        yield live
    finally:
        log = live.stop()
    assert "Traceback" not in log


@pytest.fixture(scope="module")
def staff_keys(server: Server, workdir: Path, env: dict[str, str]) -> list[dict[str, str]]:
    """Two staff members' keys."""
    keys = [cli(workdir, "keys", "create", "--role", "staff", **env).strip() for _ in range(2)]
    return [{"Authorization": f"Bearer {key}"} for key in keys]


@pytest.fixture
def api(server: Server) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=f"{server.url}{API}", headers=server.auth, timeout=120) as client:
        yield client
    statuses = logged_statuses(server.log_path.read_text())
    assert statuses and max(statuses) < 500


def at_once(
    server: Server,
    requests: list[Callable[[httpx2.Client], httpx2.Response]],
    headers: list[dict[str, str]] | None = None,
) -> list[httpx2.Response]:
    """Send each request from its own thread and connection, all released at the same moment."""
    start = threading.Barrier(len(requests))

    def send(i: int) -> httpx2.Response:
        auth = headers[i] if headers else server.auth
        with httpx2.Client(base_url=f"{server.url}{API}", headers=auth, timeout=120) as http:
            http.get("/cases", params={"limit": 1})  # connected (and the key checked) first
            start.wait()
            return requests[i](http)

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(send, range(len(requests))))


def new_case(api: httpx2.Client, kind: str, photo: bytes | None = None) -> int:
    case = api.post("/cases", json={"kind": kind})
    assert case.status_code == 201, case.text
    if photo is not None:
        done = api.post(f"/cases/{case.json()['id']}/photos", files={"file": ("p.jpg", photo)})
        assert done.status_code == 201, done.text
    return int(case.json()["id"])


def enroll(case_id: int, photo: bytes) -> Callable[[httpx2.Client], httpx2.Response]:
    return lambda http: http.post(f"/cases/{case_id}/photos", files={"file": ("p.jpg", photo)})


def index_agrees_with_the_store(server: Server, settings: Settings) -> None:
    """Every worker's index holds exactly the faces in the store (none twice, none missing)."""
    faces = stored(settings)["faces"]
    deadline = time.monotonic() + 15
    while True:
        counts = [
            httpx2.get(f"{server.url}/readyz", headers=server.auth).json()["index_faces"]
            for _ in range(10)
        ]
        if set(counts) == {faces}:
            return
        assert time.monotonic() < deadline, f"index faces {counts}, store {faces}"
        time.sleep(0.3)


def test_the_same_photo_sent_at_once_is_one_photo(server, api, settings, sample):
    missing = new_case(api, "missing", sample("obama.jpg"))
    for _ in range(ROUNDS):
        found = new_case(api, "found")
        before = stored(settings)
        answers = at_once(server, [enroll(found, sample("obama2.jpg"))] * 6)
        assert sorted(a.status_code for a in answers) == [200] * 5 + [201], [
            a.text for a in answers
        ]
        assert len({a.json()["photo"]["id"] for a in answers}) == 1
        [created] = [a.json() for a in answers if a.status_code == 201]
        assert missing in [c["missing_case_id"] for c in created["new_candidates"]]
        assert all(a.json()["new_candidates"] == [] for a in answers if a.status_code == 200)
        listed = api.get(f"/cases/{found}/candidates").json()
        assert [c["id"] for c in listed] == [c["id"] for c in created["new_candidates"]]
        after = stored(settings)
        assert {k: after[k] - before[k] for k in ("photos", "faces", "candidates")} == {
            "photos": 1,
            "faces": 1,
            "candidates": 1,
        }
        assert len(api.get(f"/cases/{found}/photos").json()) == 1
    index_agrees_with_the_store(server, settings)


def test_different_photos_sent_at_once_are_all_kept_with_one_candidate(
    server, api, settings, sample
):
    photos = ["obama2.jpg", "obama3.jpg", "obama-1080p.jpg", "obama_small.jpg"]
    missing = new_case(api, "missing", sample("obama.jpg"))
    for _ in range(ROUNDS):
        found = new_case(api, "found")
        answers = at_once(server, [enroll(found, sample(p)) for p in photos])
        assert [a.status_code for a in answers] == [201] * len(photos), [a.text for a in answers]
        listed = api.get(f"/cases/{found}/photos").json()
        assert len(listed) == len(photos) and all(len(p["faces"]) == 1 for p in listed)
        proposed = [c for a in answers for c in a.json()["new_candidates"]]
        pairs = [c["missing_case_id"] for c in proposed]
        assert missing in pairs and len(set(pairs)) == len(pairs)  # each pair proposed once
        candidates = api.get(f"/cases/{found}/candidates").json()
        assert sorted(c["id"] for c in candidates) == sorted(c["id"] for c in proposed)
        face_ids = {f["id"] for p in listed for f in p["faces"]}
        for candidate in candidates:
            first = next(c for c in proposed if c["id"] == candidate["id"])
            assert candidate["distance"] <= first["distance"]  # the closest face counts
            assert candidate["status"] == "pending" and candidate["found_face_id"] in face_ids
    index_agrees_with_the_store(server, settings)


def decide(candidate_id: int, status: str, note: str | None = None):  # type: ignore[no-untyped-def]
    body = {"status": status, **({"note": note} if note else {})}
    return lambda http: http.post(f"/candidates/{candidate_id}/decisions", json=body)


@pytest.mark.parametrize(
    "contest",
    [
        ["confirmed", "confirmed"],
        ["confirmed", "rejected"],
        ["rejected", "rejected"],
        ["confirmed", "rejected", "confirmed", "rejected"],
    ],
    ids=["confirm-confirm", "confirm-reject", "reject-reject", "four-staff"],
)
def test_decisions_at_once_one_wins_the_others_get_409(server, api, staff_keys, sample, contest):
    missing = new_case(api, "missing", sample("obama.jpg"))
    found = new_case(api, "found", sample("obama2.jpg"))
    [candidate] = [
        c for c in api.get(f"/cases/{found}/candidates").json() if c["missing_case_id"] == missing
    ]
    staff = [staff_keys[i % len(staff_keys)] for i in range(len(contest))]
    admins = [server.auth] * 2
    winners: list[str] = []
    for _ in range(ROUNDS):
        answers = at_once(server, [decide(candidate["id"], s) for s in contest], staff)
        [winner] = [i for i, a in enumerate(answers) if a.status_code == 200]
        for i, answer in enumerate(answers):
            if i != winner:  # the same decision twice is no exception: the case has moved on
                body = assert_refused(answer, 409, "conflict")
                assert body.get("current_status") in (None, contest[winner])
        view = api.get(f"/candidates/{candidate['id']}").json()
        assert view["status"] == contest[winner]
        case_status = "matched" if contest[winner] == "confirmed" else "open"
        for case_id in (missing, found):
            assert api.get(f"/cases/{case_id}").json()["status"] == case_status

        reopened = at_once(
            server, [decide(candidate["id"], "pending", note="race test: again")] * 2, admins
        )
        assert sorted(a.status_code for a in reopened) == [200, 409], [a.text for a in reopened]
        assert api.get(f"/candidates/{candidate['id']}").json()["status"] == "pending"
        for case_id in (missing, found):
            assert api.get(f"/cases/{case_id}").json()["status"] == "open"

        winners.append(contest[winner])

    decisions = api.get(f"/candidates/{candidate['id']}").json()["decisions"]
    assert [(d["from_status"], d["to_status"]) for d in decisions] == [
        step for won in winners for step in (("pending", won), (won, "pending"))
    ]  # one decision a round, and one reopening: nothing lost, nothing twice
    pair = [c for c in api.get(f"/cases/{missing}/candidates").json() if c["id"] == candidate["id"]]
    assert len(pair) == 1 and pair[0]["found_case_id"] == found


def put(url: str, record: dict[str, str]) -> Callable[[httpx2.Client], httpx2.Response]:
    return lambda http: http.put(url, json=record)


def test_the_same_put_at_once_makes_one_case(server, api):
    record = {"kind": "missing", "name": "王秀英", "place": "上海"}
    for round_ in range(ROUNDS):
        answers = at_once(server, [put(f"/agencies/SH-PSB/cases/R-{round_}", record)] * 6)
        assert sorted(a.status_code for a in answers) == [200] * 5 + [201], [
            a.text for a in answers
        ]
        assert len({a.json()["id"] for a in answers}) == 1
        listed = api.get("/cases", params={"agency": "SH-PSB"}).json()
        assert listed["total"] == round_ + 1
