"""API workers that map one saved index: every search answers as one index held in memory."""

import re
import time

import httpx2
import numpy as np
from sqlalchemy import select

from reunite.faces import MODEL_NAME
from reunite.index import KINDS, FaceIndex, read_manifest
from reunite.matching import case_matches
from reunite.service import Reunite
from reunite.store import FaceRow, embedding_vector
from tests.conftest import add_synthetic_faces, new_case, settings_in
from tests.server import Server

PROBES = ("obama2.jpg", "biden.jpg")


def probe_embedding(service: Reunite, finder, data: bytes) -> np.ndarray:
    """The embedding a search computes for the (one) face of a photo."""
    [face] = finder(service.decoded_photo(data).pixels, service.pipeline)
    return np.asarray(face.embedding, dtype=np.float32)


def add_synthetic_cases(service: Reunite, near: np.ndarray, count: int, seed: int) -> None:
    """``count`` missing cases of one face each, at distances 0.1-0.8 from ``near``."""
    rng = np.random.default_rng(seed)
    for distance in np.linspace(0.1, 0.8, count):
        step = rng.normal(size=128)
        vector = (near + distance * step / np.linalg.norm(step)).astype(np.float32)
        add_synthetic_faces(service, new_case(service, "missing"), [vector])


def api_answer(server: Server, sample, photo: str) -> list[tuple[int, int, float]]:
    """(case id, face id, distance) of a search of missing cases, on a new connection (so
    either worker may answer)."""
    found = httpx2.post(
        f"{server.url}/api/v1/search",
        files={"file": (photo, sample(photo), "image/jpeg")},
        data={"kind": "missing", "k": "30", "tolerance": "0.7"},
        headers=server.auth,
        timeout=60,
    )
    assert found.status_code == 200, found.text
    [face] = found.json()["faces"]
    return [(c["case"]["id"], c["face_id"], c["distance"]) for c in face["candidates"]]


def oracle_answer(service: Reunite, embedding: np.ndarray) -> list[tuple[int, int, float]]:
    """The same search over a fresh in-memory index of every face the store holds now."""
    index = FaceIndex(MODEL_NAME)
    with service.store.transaction() as session:
        for kind in KINDS:
            rows = session.execute(
                select(FaceRow.id, FaceRow.embedding).where(
                    FaceRow.kind == kind, FaceRow.model == MODEL_NAME
                )
            ).all()
            if rows:
                vectors = np.vstack([embedding_vector(r.embedding) for r in rows])
                index.add(kind, [r.id for r in rows], vectors)
        settings = service.settings
        matches = case_matches(
            session,
            index,
            embedding,
            "missing",
            k=30,
            tolerance=0.7,
            scoring=settings.case_scoring,
            cohort_size=settings.cohort_size,
        )
    return [(m.case_id, m.face_id, m.distance) for m in matches]


def enroll(server: Server, sample, photo: str) -> int:
    """A new missing case with ``photo`` enrolled through the API; its id."""
    case = httpx2.post(f"{server.url}/api/v1/cases", json={"kind": "missing"}, headers=server.auth)
    answer = httpx2.post(
        f"{server.url}/api/v1/cases/{case.json()['id']}/photos",
        files={"file": (photo, sample(photo), "image/jpeg")},
        headers=server.auth,
        timeout=60,
    )
    assert answer.status_code == 201, answer.text
    return int(case.json()["id"])


def answers_agree_with_the_store(server, sample, finder, settings, probes, erased=()) -> None:
    """After a few sync rounds, every worker answers every probe as the oracle does."""
    time.sleep(1.5)
    with Reunite.open(settings, finder=finder, load_index=False) as store_only:
        for photo, embedding in probes.items():
            want = oracle_answer(store_only, embedding)
            got = [api_answer(server, sample, photo) for _ in range(8)]
            assert all(answer == want for answer in got), (photo, got, want)
            assert len(want) >= 10 and not {c for c, _, _ in want} & set(erased)


def test_two_workers_mapping_one_build_answer_as_one_index_in_memory(tmp_path, sample, finder):
    settings = settings_in(tmp_path)
    with Reunite.open(settings, finder=finder) as service:
        probes = {p: probe_embedding(service, finder, sample(p)) for p in PROBES}
        for seed, embedding in enumerate(probes.values()):
            add_synthetic_cases(service, embedding, 30, seed)
        service.rebuild_index("flat")
    build = read_manifest(settings.index_dir)
    server = Server(
        tmp_path,
        REUNITE_WORKERS="2",
        REUNITE_INDEX_SYNC_INTERVAL_S="0.3",
        REUNITE_INDEX_SAVE_EVERY="100000",  # no save: the changes stay in the workers' deltas
    )
    try:
        server.wait_until_workers_ready()
        before = {p: api_answer(server, sample, p) for p in PROBES}
        # After the build: enrolments (new faces, near both probes) and erasures (faces of the
        # build among the nearest), each through whichever worker takes the request.
        enrolled = [enroll(server, sample, photo) for photo in ("obama.jpg", "obama3.jpg")]
        # The new faces are in the deltas: the workers have not saved (nor adopted a save).
        assert read_manifest(settings.index_dir).saved_at == build.saved_at
        answers_agree_with_the_store(server, sample, finder, settings, probes)
        assert enrolled[0] in {c for c, _, _ in api_answer(server, sample, "obama2.jpg")}
        erased = [before[p][i][0] for p in PROBES for i in (0, 3)] + [enrolled[1]]
        for case_id in erased:
            deleted = httpx2.delete(
                f"{server.url}/api/v1/cases/{case_id}",
                params={"reason": "entered_in_error"},
                headers=server.auth,
            )
            assert deleted.status_code == 204, deleted.text
        # An erasure saves: the worker writes its delta and removals in; the other removes the
        # faces (tombstones), then maps that save.
        answers_agree_with_the_store(server, sample, finder, settings, probes, erased)
        enrolled.append(enroll(server, sample, "biden.jpg"))  # a delta again
        answers_agree_with_the_store(server, sample, finder, settings, probes, erased)
        assert enrolled[2] in {c for c, _, _ in api_answer(server, sample, "biden.jpg")}
    finally:
        log = server.stop()
    assert len(set(re.findall(r"Started server process \[(\d+)\]", log))) == 2
    assert "rebuilding" not in log and log.count("index: ready") == 2
    assert read_manifest(settings.index_dir).build_id == build.build_id
