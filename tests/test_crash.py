"""Nothing acknowledged is lost when the server is killed (SIGKILL) in the middle of a stream
of enrollments from concurrent clients; nothing half-written is visible afterwards; the index
agrees with the store. On SQLite and on PostgreSQL."""

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
from sqlalchemy import func, select

from reunite.faces import MODEL_NAME
from reunite.index import FaceIndex
from reunite.store import FaceRow, PhotoRow, Store
from tests.conftest import settings_in
from tests.server import UNLIMITED_RATE, Server, store_env

CLIENTS = 8
PHOTOS = 240
KILL_AFTER_ACKNOWLEDGED = 100


def lfw_photos(faces_dir: Path, n: int) -> list[bytes]:
    """The first photo of each of the first ``n`` LFW people (distinct people, mostly one face)."""
    people = sorted(d for d in (faces_dir / "lfw").iterdir() if d.is_dir() and d.name != "protocol")
    return [sorted(d.glob("*.jpg"))[0].read_bytes() for d in people[:n]]


def test_acknowledged_enrollments_survive_a_sigkill(tmp_path, faces_dir, database_url):
    env = store_env(database_url) | UNLIMITED_RATE
    photos = lfw_photos(faces_dir, PHOTOS)
    server = Server(tmp_path, REUNITE_WORKERS="2", **env)
    api = f"{server.url}/api/v1"
    acknowledged: dict[int, tuple[int, str]] = {}  # case id -> (photo id, sha256)
    refused: list[int] = []
    attempted = [0]
    lock = threading.Lock()
    killed = threading.Event()

    def enroll(photo: bytes) -> None:
        if killed.is_set():
            return
        with lock:
            attempted[0] += 1
        try:
            with httpx2.Client(headers=server.auth, timeout=60) as http:
                case = http.post(f"{api}/cases", json={"kind": "missing"})
                files = {"file": ("p.jpg", photo, "image/jpeg")}
                done = http.post(f"{api}/cases/{case.json()['id']}/photos", files=files)
        except httpx2.TransportError:
            return  # in flight when the server died: not acknowledged
        with lock:
            if done.status_code == 201:
                acknowledged[case.json()["id"]] = (
                    done.json()["photo"]["id"],
                    hashlib.sha256(photo).hexdigest(),
                )
            else:
                assert done.status_code == 422, done.text  # no face, or several
                refused.append(done.status_code)

    def killer() -> None:
        while len(acknowledged) < KILL_AFTER_ACKNOWLEDGED:
            time.sleep(0.01)
        killed.set()
        server.kill()

    watcher = threading.Thread(target=killer)
    watcher.start()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(enroll, photos))
    watcher.join(timeout=300)
    assert killed.is_set(), "every photo was enrolled before the kill: send more"
    sent = len(acknowledged) + len(refused)

    restarted = Server(tmp_path, **env)
    try:
        with httpx2.Client(
            base_url=f"{restarted.url}/api/v1", headers=restarted.auth, timeout=60
        ) as http:
            for case_id, (photo_id, _) in acknowledged.items():
                listed = http.get(f"/cases/{case_id}/photos")
                assert listed.status_code == 200, listed.text
                assert [p["id"] for p in listed.json()] == [photo_id]
            for case_id, (_, sha) in list(acknowledged.items())[::10]:
                photo = next(p for p in photos if hashlib.sha256(p).hexdigest() == sha)
                found = http.post("/search", files={"file": ("p.jpg", photo, "image/jpeg")})
                ranked = [c["case"]["id"] for c in found.json()["faces"][0]["candidates"]]
                assert ranked[0] == case_id
            index_faces = http.get(f"{restarted.url}/readyz").json()["index_faces"]
    finally:
        restarted.stop()

    settings = settings_in(tmp_path, database_url=database_url)
    store = Store(settings.resolved_database_url)
    try:
        with store.transaction() as session:
            photo_rows = session.scalars(select(PhotoRow)).all()
            face_ids = set(session.scalars(select(FaceRow.id).where(FaceRow.model == MODEL_NAME)))
            faces_per_photo = dict(
                session.execute(
                    select(FaceRow.photo_id, func.count()).group_by(FaceRow.photo_id)
                ).all()
            )
    finally:
        store.close()
    # Nothing half-written: every stored photo has its one face and its file.
    for photo in photo_rows:
        assert faces_per_photo.get(photo.id) == 1
        assert list((settings.photos_dir / photo.sha256[:2]).glob(f"{photo.sha256}.*"))
    assert len(face_ids) == len(photo_rows) == index_faces
    saved, _ = FaceIndex.load(settings.index_dir, model=MODEL_NAME, dim=128)
    assert set(saved.face_ids("missing").tolist()) == face_ids
    print(
        f"\ncrash test ({'postgresql' if database_url else 'sqlite'}): {attempted[0]} sent, "
        f"{sent} answered before the kill, {len(acknowledged)} acknowledged, "
        f"{len(photo_rows)} stored after restart "
        f"(acknowledged and found: {len(acknowledged)}; stored but unacknowledged, in flight at "
        f"the kill: {len(photo_rows) - len(acknowledged)})"
    )
    assert len(photo_rows) >= len(acknowledged)
