"""Every file of the hostile corpus (tests/hostile.py), sent as a case photo and as a search
photo: the right answer or a clean 4xx problem with a documented code, never a 500; nothing
stored on refusal; the server serving on afterwards. Through the real app, then once more
against a real server process, whose memory must stay bounded."""

from __future__ import annotations

import time
from pathlib import Path

import httpx2
import pytest

from reunite.config import Settings
from tests import hostile
from tests.conftest import settings_in
from tests.hostile import ACCEPTED, CORPUS, Specimen, assert_refused, stored
from tests.server import Server

API = "/api/v1"
PIXEL_LIMIT = 8_000_000
"""REUNITE_MAX_PIXELS for the app tests, so the huge photo stays quick (the real server run
below keeps the default, 40 MP)."""


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return settings_in(tmp_path, database_url=database_url, max_pixels=PIXEL_LIMIT)


def files(data: bytes, name: str = "photo.jpg") -> dict[str, tuple[str, bytes, str]]:
    return {"file": (name, data, "image/jpeg")}  # whatever the bytes are: clients lie


def expected_faces(specimen: Specimen) -> int:
    return 50 if specimen.name == "50-faces" else 1


def check_enrollment(response, specimen: Specimen, missing_id: int) -> None:
    """The answer to enrolling ``specimen`` into a found case, when the missing case
    ``missing_id`` holds the source photo."""
    if specimen.enroll != ACCEPTED:
        body = assert_refused(response, *specimen.enroll)
        if specimen.enroll[1] == "multiple_faces":
            boxes = body["boxes"]
            assert [b["index"] for b in boxes] == list(range(expected_faces(specimen)))
            assert all(b["right"] - b["left"] >= 100 for b in boxes)
        return
    assert response.status_code == 201, response.text
    [face] = response.json()["photo"]["faces"]
    assert face["face_width_px"] > 100
    [candidate] = response.json()["new_candidates"]
    assert candidate["missing_case_id"] == missing_id
    assert candidate["distance"] < specimen.distance, candidate["distance"]


def check_search(response, specimen: Specimen, missing_id: int) -> None:
    """The answer to searching ``specimen``: every face found, each nearest the source."""
    if specimen.search != ACCEPTED:
        assert_refused(response, *specimen.search)
        return
    assert response.status_code == 200, response.text
    faces = response.json()["faces"]
    assert len(faces) == expected_faces(specimen)
    for face in faces:
        matched = [c for c in face["candidates"] if c["case"]["id"] == missing_id]
        assert matched and matched[0]["distance"] < specimen.distance


@pytest.mark.parametrize("specimen", CORPUS, ids=[s.name for s in CORPUS])
def test_each_file_gets_its_answer_from_both_endpoints(client, settings, sample, specimen):
    source = sample(hostile.SOURCE)
    data = specimen.make(source, PIXEL_LIMIT)
    missing = client.post(f"{API}/cases", json={"kind": "missing"}).json()
    assert client.post(f"{API}/cases/{missing['id']}/photos", files=files(source)).is_success
    found = client.post(f"{API}/cases", json={"kind": "found"}).json()
    before = stored(settings)

    enrolled = client.post(f"{API}/cases/{found['id']}/photos", files=files(data))
    check_enrollment(enrolled, specimen, missing["id"])
    after = stored(settings)
    if specimen.refused:
        assert after == before
    else:
        grew = {k: after[k] - before[k] for k in hostile.STORED_TABLES}
        assert grew == {"cases": 0, "photos": 1, "faces": 1, "candidates": 1} | {
            "candidate_decisions": 0
        }
        assert len(after["files"]) == len(before["files"]) + 1

    searched = client.post(f"{API}/search", files=files(data))
    check_search(searched, specimen, missing["id"])
    assert stored(settings) == after  # a search stores nothing (but its audit record)

    assert client.get("/readyz").status_code == 200
    again = client.post(f"{API}/search", files=files(sample("obama2.jpg")))
    assert again.status_code == 200 and again.json()["faces"][0]["candidates"]


def test_the_corpus_names_every_kind_of_file_the_brief_lists():
    assert {s.name for s in CORPUS} >= {
        "zero-bytes",
        "random-bytes",
        "plain-text",
        "html",
        "svg",
        "truncated-jpeg",
        "truncated-png",
        "png-100000x100000",
        "1x1",
        "cmyk-jpeg",
        "png-16bit-rgb",
        "png-16bit-gray",
        "palette-png",
        "grayscale-jpeg",
        "rgba-png",
        "animated-gif",
        "animated-webp",
        "exif-rotated",
        "huge-under-limit",
        "50-faces",
    }
    assert len(hostile.png_bomb()) < 200  # declares 10^10 pixels in a few bytes


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


def test_a_real_server_answers_the_whole_corpus_and_its_memory_stays_bounded(tmp_path, sample):
    settings = settings_in(tmp_path)  # SQLite: the app tests above cover both stores
    limit = settings.max_pixels  # the default, 40 MP: the huge photo is full size here
    source = sample(hostile.SOURCE)
    server = Server(tmp_path)
    try:
        with httpx2.Client(base_url=f"{server.url}{API}", headers=server.auth, timeout=120) as api:
            missing = api.post("/cases", json={"kind": "missing"}).json()
            assert api.post(f"/cases/{missing['id']}/photos", files=files(source)).is_success
            settled = peak_rss_bytes(server.process.pid)  # models loaded, one photo done
            for specimen in CORPUS:
                data = specimen.make(source, limit)
                found = api.post("/cases", json={"kind": "found"}).json()
                before = stored(settings)
                started = time.monotonic()
                enrolled = api.post(f"/cases/{found['id']}/photos", files=files(data))
                check_enrollment(enrolled, specimen, missing["id"])
                if specimen.refused:
                    assert stored(settings) == before, specimen.name
                check_search(api.post("/search", files=files(data)), specimen, missing["id"])
                assert time.monotonic() - started < 60, specimen.name
            peak = peak_rss_bytes(server.process.pid)
            assert server.process.poll() is None
            assert httpx2.get(f"{server.url}/healthz").json() == {"status": "ok"}
            assert api.get("/cases", params={"kind": "found"}).json()["total"] == len(CORPUS)
            again = api.post("/search", files=files(sample("obama2.jpg")))
            assert again.status_code == 200 and again.json()["faces"][0]["candidates"]
    finally:
        log = server.stop()
    print(f"server peak memory: {settled / 2**20:.0f} MiB settled, {peak / 2**20:.0f} MiB after")
    assert peak < 2 * 2**30, f"peak {peak / 2**20:.0f} MiB"
    assert "Traceback" not in log
    statuses = hostile.logged_statuses(log)
    assert len(statuses) >= 2 * len(CORPUS) and max(statuses) < 500
