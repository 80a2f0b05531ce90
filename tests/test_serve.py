"""``reunite serve`` as a real process: it serves, keeps what it accepted across a restart."""

import contextlib
import json
import re
import subprocess
import sys
import time

import httpx2
import pytest

from reunite.calibration import Calibration, linear_similarity
from reunite.config import SHIPPED_CALIBRATION_PATH
from tests.conftest import PROJECT_ROOT
from tests.server import Server, free_port, settings_env, store_env


def test_serve_enroll_restart_and_find_again(tmp_path, sample):
    server = Server(tmp_path)
    try:
        api = f"{server.url}/api/v1"
        case = httpx2.post(f"{api}/cases", json={"kind": "missing"}, headers=server.auth).json()
        files = {"file": ("obama.jpg", sample("obama.jpg"), "image/jpeg")}
        enrolled = httpx2.post(
            f"{api}/cases/{case['id']}/photos", files=files, timeout=60, headers=server.auth
        )
        assert enrolled.status_code == 201, enrolled.text
    finally:
        first_log = server.stop()
    assert "rebuilding from the store" in first_log  # a fresh machine has no index yet

    server = Server(tmp_path)
    try:
        files = {"file": ("obama2.jpg", sample("obama2.jpg"), "image/jpeg")}
        found = httpx2.post(
            f"{server.url}/api/v1/search", files=files, timeout=60, headers=server.auth
        ).json()
        assert [c["case"]["id"] for c in found["faces"][0]["candidates"]] == [case["id"]]
    finally:
        second_log = server.stop()
    assert "index ready (loaded" in second_log


def test_concurrent_searches_do_not_crash_the_server(tmp_path, faces_dir):
    # dlib's shared detector and networks are not thread-safe: without reunite.faces.DLIB_LOCK
    # this crashed the process ("munmap_chunk(): invalid pointer") within a few requests.
    from concurrent.futures import ThreadPoolExecutor

    photos = [p.read_bytes() for p in sorted((faces_dir / "samples").glob("*.jpg"))][:8]
    server = Server(tmp_path)
    try:

        def search(photo: bytes) -> int:
            return httpx2.post(
                f"{server.url}/api/v1/search",
                headers=server.auth,
                timeout=120,
                files={"file": ("p.jpg", photo, "image/jpeg")},
            ).status_code

        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(search, photos * 3))
        assert statuses == [200] * len(statuses)
        assert httpx2.get(f"{server.url}/healthz").status_code == 200
    finally:
        log = server.stop()
    assert "invalid pointer" not in log


def enrolled(server: Server, sample, kind: str, photo: str) -> dict:
    """A new case of ``kind`` with ``photo`` enrolled through the API: the enrollment's body
    (``case_id`` added). A new connection each time, so requests spread over the workers."""
    api = f"{server.url}/api/v1"
    case = httpx2.post(f"{api}/cases", json={"kind": kind}, headers=server.auth).json()
    files = {"file": (photo, sample(photo), "image/jpeg")}
    done = httpx2.post(
        f"{api}/cases/{case['id']}/photos", files=files, timeout=60, headers=server.auth
    )
    assert done.status_code == 201, done.text
    return done.json() | {"case_id": int(case["id"])}


def searched(server: Server, sample, photo: str) -> set[int]:
    """The ids of the cases a search for ``photo`` lists, over all its faces."""
    files = {"file": (photo, sample(photo), "image/jpeg")}
    found = httpx2.post(f"{server.url}/api/v1/search", files=files, timeout=60, headers=server.auth)
    assert found.status_code == 200, found.text
    return {c["case"]["id"] for face in found.json()["faces"] for c in face["candidates"]}


def test_several_worker_processes_share_the_store_and_keep_their_indexes_in_step(
    tmp_path, sample, database_url
):
    server = Server(
        tmp_path,
        REUNITE_WORKERS="2",
        REUNITE_INDEX_SYNC_INTERVAL_S="0.5",
        **store_env(database_url),
    )
    try:
        server.wait_until_workers_ready()

        missing = enrolled(server, sample, "missing", "obama.jpg")["case_id"]
        matched = enrolled(server, sample, "found", "obama2.jpg")
        # Whichever worker enrolled it, the pair is proposed: the other worker's face counts.
        assert [c["missing_case_id"] for c in matched["new_candidates"]] == [missing]
        time.sleep(1.5)  # three sync rounds
        assert all(missing in searched(server, sample, "obama2.jpg") for _ in range(8))

        deleted = httpx2.delete(
            f"{server.url}/api/v1/cases/{missing}",
            params={"reason": "entered_in_error"},
            headers=server.auth,
        )
        assert deleted.status_code == 204, deleted.text
        time.sleep(1.5)
        assert all(missing not in searched(server, sample, "obama2.jpg") for _ in range(8))
    finally:
        log = server.stop()
    assert len(set(re.findall(r"Started server process \[(\d+)\]", log))) == 2


def test_the_server_answers_during_a_reindex_and_adopts_the_new_build(tmp_path, sample):
    server = Server(tmp_path, REUNITE_INDEX_SYNC_INTERVAL_S="0.5")
    try:
        before = enrolled(server, sample, "missing", "obama.jpg")["case_id"]
        job = subprocess.Popen(
            [sys.executable, "-m", "reunite.cli", "reindex", "--all", "--workers", "1"],
            env=settings_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        answered = 0
        during = None
        while job.poll() is None:  # the server keeps answering while the job runs
            assert before in searched(server, sample, "obama2.jpg")
            answered += 1
            if during is None:  # enrolled while the job runs
                during = enrolled(server, sample, "missing", "biden.jpg")["case_id"]
        out, err = job.communicate()
        assert job.returncode == 0, err
        assert answered >= 1
        new_build = json.loads(out)["index"]["build_id"]

        deadline = time.monotonic() + 10
        while new_build not in server.log_path.read_text():
            assert time.monotonic() < deadline, "the server did not adopt the new build"
            time.sleep(0.2)
        assert before in searched(server, sample, "obama2.jpg")
        assert during in searched(server, sample, "biden.jpg")  # not lost by the swap
    finally:
        log = server.stop()
    assert f"adopted build {new_build}" in log


def test_a_server_started_anywhere_uses_the_shipped_calibration(tmp_path, sample):
    # It used to read models/calibration.json relative to its working directory: started
    # elsewhere, it fell back to the linear score (0.73 instead of 1.00 for this pair).
    shipped = Calibration.load(SHIPPED_CALIBRATION_PATH)
    similarities = []
    for name, cwd in (("root", PROJECT_ROOT), ("elsewhere", tmp_path / "empty")):
        cwd.mkdir(exist_ok=True)
        workdir = tmp_path / name
        workdir.mkdir()
        server = Server(workdir, cwd=cwd)
        try:
            enrolled(server, sample, "missing", "obama.jpg")
            [candidate] = enrolled(server, sample, "found", "obama2.jpg")["new_candidates"]
        finally:
            log = server.stop()
        assert f"data in {workdir / 'data'}, index in {workdir / 'index'}" in log
        distance, similarity = candidate["distance"], candidate["similarity"]
        assert similarity == pytest.approx(shipped.similarity(distance))
        assert similarity != pytest.approx(linear_similarity(distance))
        similarities.append(similarity)
    assert similarities[0] == similarities[1]


def test_a_server_started_with_plain_uvicorn_warns_that_it_lacks_the_header_timeout(tmp_path):
    port = free_port()
    log_path = tmp_path / "uvicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "reunite.app:app_from_environment",
                "--port",
                str(port),
            ],
            env=settings_env(tmp_path),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:  # the warning is logged at start-up, before the first answer
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "plain uvicorn did not answer within 60 s"
                with contextlib.suppress(httpx2.TransportError):
                    if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success:
                        break
                time.sleep(0.2)
        finally:
            process.terminate()
            process.wait(timeout=30)
    warnings = [line for line in log_path.read_text().splitlines() if "WARNING" in line]
    assert any(
        "does not use reunite's HTTP protocol" in line
        and "reunite serve" in line
        and "--http reunite.api.connections:HeaderTimeoutH11Protocol" in line
        for line in warnings
    ), warnings
