"""Erasure through the API: a case erased with a reason leaves no photo, crop, face, name or
embedding behind (files, database file, index files), and the audit log keeps only that it
happened."""

import json

from sqlalchemy import select

from reunite.store import AuditEventRow, OutboxEventRow, photo_file_name
from tests.api.test_routes import API, assert_problem, create, upload

NAME = "Erasable Zhangsan"
CONTACT = "+86 139 0000 4321"


def search_missing(client, data):
    found = client.post(
        f"{API}/search",
        files={"file": ("s.jpg", data, "image/jpeg")},
        data={"kind": "missing"},
    )
    assert found.status_code == 200, found.text
    return {c["case"]["id"] for face in found.json()["faces"] for c in face["candidates"]}


def stored_bytes(settings):
    """Every byte of the SQLite store on disk: the database file and its write-ahead log."""
    data_dir = settings.data_dir
    return b"".join(
        path.read_bytes()
        for path in (data_dir / "reunite.db", data_dir / "reunite.db-wal")
        if path.exists()
    )


def test_an_erased_case_leaves_no_trace_but_the_fact(client, sample, settings):
    service = client.app.state.service
    client.post(f"{API}/agencies/SH-PSB/webhooks", json={"url": "https://receiver.example/h"})
    missing = create(
        client, "missing", name=NAME, contact=CONTACT, agency="SH-PSB", external_ref="E-1"
    )
    enrolled = upload(client, missing["id"], sample("obama.jpg")).json()
    photo_id, face_id = enrolled["photo"]["id"], enrolled["photo"]["faces"][0]["id"]
    found = create(client, "found", place="North Shelter")
    [candidate] = upload(client, found["id"], sample("obama2.jpg")).json()["new_candidates"]
    found_face_id = candidate["found_face_id"]
    for face in (face_id, found_face_id):  # views keep crops on disk
        assert client.get(f"{API}/faces/{face}/crop").status_code == 200
    assert client.get(f"{API}/photos/{photo_id}/image").status_code == 200
    photo_file = settings.photos_dir / photo_file_name(enrolled["photo"]["sha256"], "JPEG")
    crop_files = [settings.data_dir / "crops" / f"{i}.jpg" for i in (face_id, found_face_id)]
    assert photo_file.exists() and all(c.exists() for c in crop_files)
    embedding = service.face(face_id).embedding
    assert missing["id"] in search_missing(client, sample("obama3.jpg"))

    case_url = f"{API}/cases/{missing['id']}"
    refused = assert_problem(client.delete(case_url), 422, "invalid_request")
    assert refused["errors"][0]["field"] == "query.reason"
    assert_problem(client.delete(case_url, params={"reason": "because"}), 422, "invalid_request")
    assert client.get(case_url).status_code == 200  # a refusal erased nothing
    erased = client.delete(case_url, params={"reason": "subject_request"})
    assert erased.status_code == 204, erased.text

    assert missing["id"] not in search_missing(client, sample("obama3.jpg"))
    assert_problem(client.get(case_url), 404, "not_found")
    assert_problem(client.get(f"{API}/photos/{photo_id}/image"), 404, "not_found")
    assert_problem(client.get(f"{API}/faces/{face_id}/crop"), 404, "not_found")
    assert client.get(f"{API}/cases/{found['id']}/candidates").json() == []
    assert not photo_file.exists() and not crop_files[0].exists()
    assert crop_files[1].exists()  # the found case's own crop stays
    assert service.index.count() == 1

    [event] = [
        e
        for e in client.get(f"{API}/audit", params={"case_id": missing["id"]}).json()["items"]
        if e["action"] == "case.delete"
    ]
    assert event["actor"].startswith("key:")
    assert event["details"] == {
        "reason": "subject_request",
        "photos": 1,
        "faces": 1,
        "candidates": 1,
    }
    with service.store.transaction() as session:
        audit = [
            json.dumps(e.details, ensure_ascii=False)
            for e in session.scalars(select(AuditEventRow))
        ]
        outbox = [
            json.dumps(e.payload, ensure_ascii=False)
            for e in session.scalars(select(OutboxEventRow))
        ]
    assert any('"candidate.deleted"' in p for p in outbox)  # the agency is told, by ids
    for row in audit + outbox:
        assert NAME not in row and CONTACT not in row and "North Shelter" not in row

    # Nothing of the case lingers in the files: database and write-ahead log (SQLite; PostgreSQL
    # keeps dead rows until VACUUM), index.
    if settings.database_url is None:
        on_disk = stored_bytes(settings)
        assert on_disk.startswith(b"SQLite format 3")
        assert b"Erasable" not in on_disk and CONTACT.encode() not in on_disk
        assert embedding not in on_disk
    for index_file in settings.index_dir.glob("*.faiss"):
        assert embedding not in index_file.read_bytes()
