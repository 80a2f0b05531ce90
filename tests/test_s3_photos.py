"""Photo files in an S3-compatible bucket (``REUNITE_PHOTO_STORE=s3://...``), against a real
SeaweedFS server: enrollment writes objects named by the photo's SHA-256, views read them,
erasure deletes them, backups copy them out and restores put them back; with the object store
down, enrollments and photo views answer 503 with a message and searches keep working."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import httpx2

from reunite.app import create_app
from reunite.backup import backup, restore
from reunite.config import Settings
from reunite.reembedding import reembed_faces
from tests.api.test_routes import API, assert_problem, create, upload
from tests.conftest import key_headers, ready_client, settings_in
from tests.objectstore import BUCKET, CREDENTIALS, ObjectStore
from tests.server import Server, free_port


def bucket_settings(folder: Path, endpoint_url: str, prefix: str) -> Settings:
    return settings_in(
        folder,
        photo_store=f"s3://{BUCKET}/{prefix}",
        s3_endpoint_url=endpoint_url,
        s3_timeout_s=2,
    )


def opened(settings: Settings, finder):  # type: ignore[no-untyped-def]
    client = ready_client(create_app(settings, finder=finder))
    client.headers.update(key_headers(client))
    return client


def search(client, data: bytes) -> httpx2.Response:
    return client.post(f"{API}/search", files={"file": ("s.jpg", data, "image/jpeg")})


def test_photos_live_in_the_bucket_from_enrollment_to_erasure(
    tmp_path, object_store: ObjectStore, credentials, finder, sample
):
    prefix = f"photos-{uuid.uuid4().hex[:8]}"
    settings = bucket_settings(tmp_path / "a", object_store.endpoint_url, prefix)
    client = opened(settings, finder)
    try:
        missing = create(client, "missing")
        enrolled = upload(client, missing["id"], sample("obama.jpg"))
        assert enrolled.status_code == 201, enrolled.text
        photo = enrolled.json()["photo"]
        sha256 = hashlib.sha256(sample("obama.jpg")).hexdigest()
        assert photo["sha256"] == sha256
        assert object_store.keys(prefix) == [f"{prefix}/{sha256[:2]}/{sha256}.jpg"]
        assert not (settings.data_dir / "photos").exists()
        found = create(client, "found")
        assert upload(client, found["id"], sample("obama2.jpg")).status_code == 201
        assert len(object_store.keys(prefix)) == 2

        image = client.get(f"{API}/photos/{photo['id']}/image")
        assert image.status_code == 200 and image.content == sample("obama.jpg")
        face_id = photo["faces"][0]["id"]
        crop = client.get(f"{API}/faces/{face_id}/crop")
        assert crop.status_code == 200 and crop.content[:2] == b"\xff\xd8"
        assert (settings.data_dir / "crops" / f"{face_id}.jpg").is_file()  # cached locally

        manifest = backup(settings, tmp_path / "backup")
        assert sorted(n for n in manifest["files"] if n.startswith("photos/")) == sorted(
            "photos/" + key.removeprefix(f"{prefix}/") for key in object_store.keys(prefix)
        )
        restored_prefix = f"restored-{uuid.uuid4().hex[:8]}"
        target = bucket_settings(tmp_path / "b", object_store.endpoint_url, restored_prefix)
        report = restore(target, tmp_path / "backup")
        assert report["counts"]["photo_files"] == 2 and report["counts"]["photos"] == 2
        assert [
            k.removeprefix(f"{restored_prefix}/") for k in object_store.keys(restored_prefix)
        ] == [k.removeprefix(f"{prefix}/") for k in object_store.keys(prefix)]
        again = opened(target, finder)
        try:
            assert again.get(f"{API}/photos/{photo['id']}/image").content == sample("obama.jpg")
        finally:
            again.__exit__(None, None, None)

        # Re-embedding workers (other processes) read the photos from the bucket too.
        report = reembed_faces(client.app.state.service, everything=True, workers=2)
        assert (report.total, report.reembedded, report.failed) == (2, 2, [])

        erased = client.delete(f"{API}/cases/{missing['id']}", params={"reason": "subject_request"})
        assert erased.status_code in (200, 204), erased.text
        assert f"{prefix}/{sha256[:2]}/{sha256}.jpg" not in object_store.keys(prefix)
        assert len(object_store.keys(prefix)) == 1  # the found case's photo stays
        assert not (settings.data_dir / "crops" / f"{face_id}.jpg").exists()
    finally:
        client.__exit__(None, None, None)


def test_with_the_object_store_down_photos_are_refused_and_searches_work(
    tmp_path, object_store: ObjectStore, credentials, finder, sample
):
    prefix = f"down-{uuid.uuid4().hex[:8]}"
    up = bucket_settings(tmp_path, object_store.endpoint_url, prefix)
    client = opened(up, finder)
    try:
        case = create(client, "missing")
        photo = upload(client, case["id"], sample("obama.jpg")).json()["photo"]
    finally:
        client.__exit__(None, None, None)
    # The same store and data folder, its object store now unreachable (nothing listens there).
    down = up.model_copy(update={"s3_endpoint_url": f"http://127.0.0.1:{free_port()}"})
    client = opened(down, finder)
    try:
        refused = assert_problem(
            upload(client, case["id"], sample("obama2.jpg")), 503, "photo_store_unavailable"
        )
        assert (
            f"s3://{BUCKET}/{prefix}" in refused["detail"]
            and "Searches still work" in (refused["detail"])
        )
        assert "Retry-After" in client.get(f"{API}/photos/{photo['id']}/image").headers
        assert_problem(
            client.get(f"{API}/photos/{photo['id']}/image"), 503, "photo_store_unavailable"
        )
        face_id = photo["faces"][0]["id"]
        assert_problem(client.get(f"{API}/faces/{face_id}/crop"), 503, "photo_store_unavailable")
        found = search(client, sample("obama3.jpg"))
        assert found.status_code == 200, found.text
        assert case["id"] in {
            c["case"]["id"] for f in found.json()["faces"] for c in f["candidates"]
        }
        assert len(client.get(f"{API}/cases/{case['id']}/photos").json()) == 1  # nothing added
        # An erasure stands without the object store; the object it could not delete is left
        # (and named in the log, for an operator to delete).
        erased = client.delete(f"{API}/cases/{case['id']}", params={"reason": "subject_request"})
        assert erased.status_code in (200, 204), erased.text
        assert client.get(f"{API}/cases/{case['id']}").status_code == 404
        assert len(object_store.keys(prefix)) == 1
    finally:
        client.__exit__(None, None, None)


def test_reunite_serve_refuses_enrollments_when_its_bucket_is_unreachable(tmp_path, sample):
    closed = f"http://127.0.0.1:{free_port()}"
    server = Server(
        tmp_path,
        REUNITE_PHOTO_STORE=f"s3://{BUCKET}/serve",
        REUNITE_S3_ENDPOINT_URL=closed,
        REUNITE_S3_TIMEOUT_S="1",
        **CREDENTIALS,
    )
    try:
        case = httpx2.post(
            f"{server.url}{API}/cases", json={"kind": "missing"}, headers=server.auth
        )
        assert case.status_code == 201, case.text
        files = {"file": ("p.jpg", sample("obama.jpg"), "image/jpeg")}
        refused = httpx2.post(
            f"{server.url}{API}/cases/{case.json()['id']}/photos",
            files=files,
            headers=server.auth,
            timeout=30,
        )
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "photo_store_unavailable"
        found = httpx2.post(
            f"{server.url}{API}/search", files=files, headers=server.auth, timeout=30
        )
        assert found.status_code == 200, found.text
    finally:
        log = server.stop()
    assert "Traceback" not in log and CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in log
