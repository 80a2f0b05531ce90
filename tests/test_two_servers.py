"""Two ``reunite serve`` processes that share no folder: each has its own data and index
folders, and they share only a PostgreSQL store and a SeaweedFS bucket (issue 18). Cases
enrolled on one are matched on the other, an erasure on one leaves nothing on either, a
``reunite reindex`` run on a third folder is adopted by both, and a server killed with SIGKILL
loses nothing it acknowledged."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx2

from tests.api.test_routes import API
from tests.conftest import postgres_database
from tests.objectstore import BUCKET, CREDENTIALS, ObjectStore
from tests.server import UNLIMITED_RATE, Server, cli


def call(server: Server, method: str, path: str, **arguments: object) -> httpx2.Response:
    return httpx2.request(
        method, f"{server.url}{API}{path}", headers=server.auth, timeout=60, **arguments
    )


def enrolled(server: Server, kind: str, photo: bytes) -> tuple[int, dict]:
    """A new case of ``kind`` on ``server`` with ``photo`` enrolled: its id and the answer."""
    case = call(server, "POST", "/cases", json={"kind": kind})
    assert case.status_code == 201, case.text
    answer = call(
        server, "POST", f"/cases/{case.json()['id']}/photos", files={"file": ("p.jpg", photo)}
    )
    assert answer.status_code == 201, answer.text
    return int(case.json()["id"]), answer.json()


def hits(server: Server, photo: bytes) -> set[int]:
    """The missing cases a search of ``photo`` on ``server`` finds."""
    found = call(
        server,
        "POST",
        "/search",
        files={"file": ("s.jpg", photo)},
        data={"kind": "missing", "tolerance": "0.7"},
    )
    assert found.status_code == 200, found.text
    return {c["case"]["id"] for face in found.json()["faces"] for c in face["candidates"]}


def eventually(check: Callable[[], bool], what: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.2)


def build_of(server: Server) -> str:
    ready = httpx2.get(f"{server.url}/readyz", headers=server.auth, timeout=10)
    assert ready.status_code == 200, ready.text
    return str(ready.json()["index_build"])


def test_two_servers_sharing_only_postgresql_and_a_bucket(
    tmp_path: Path, object_store: ObjectStore, sample
):
    prefix = f"two-{uuid.uuid4().hex[:8]}"
    with postgres_database() as url:
        shared = {
            "REUNITE_DATABASE_URL": url,
            "REUNITE_PHOTO_STORE": f"s3://{BUCKET}/{prefix}",
            "REUNITE_S3_ENDPOINT_URL": object_store.endpoint_url,
            "REUNITE_INDEX_SYNC_INTERVAL_S": "0.3",
            **CREDENTIALS,
            **UNLIMITED_RATE,
        }
        folders = {name: tmp_path / name for name in ("a", "b", "reindex")}
        for folder in folders.values():
            folder.mkdir()
        servers = [Server(folders["a"], **shared)]
        try:
            servers.append(Server(folders["b"], **shared))
            a, b = servers
            # Enrolled on A, proposed when the found person is enrolled on B.
            missing, _ = enrolled(a, "missing", sample("obama.jpg"))
            found, on_b = enrolled(b, "found", sample("obama2.jpg"))
            assert [c["missing_case_id"] for c in on_b["new_candidates"]] == [missing]
            other, _ = enrolled(b, "missing", sample("biden.jpg"))
            face = call(a, "GET", f"/cases/{missing}/photos").json()[0]["faces"][0]["id"]
            assert call(b, "GET", f"/faces/{face}/crop").status_code == 200
            crop_on_b = folders["b"] / "data" / "crops" / f"{face}.jpg"
            assert crop_on_b.is_file()  # cached on B's own disk
            assert missing in hits(a, sample("obama3.jpg")) & hits(b, sample("obama3.jpg"))

            # Erased on A: no photo object, no crop (B's cache included), no hit on either.
            sha256 = hashlib.sha256(sample("obama.jpg")).hexdigest()
            assert f"{prefix}/{sha256[:2]}/{sha256}.jpg" in object_store.keys(prefix)
            erased = call(a, "DELETE", f"/cases/{missing}", params={"reason": "subject_request"})
            assert erased.status_code == 204, erased.text
            assert f"{prefix}/{sha256[:2]}/{sha256}.jpg" not in object_store.keys(prefix)
            assert call(b, "GET", f"/faces/{face}/crop").status_code == 404
            eventually(lambda: not crop_on_b.exists(), "B drops its cached crop")
            assert not (folders["a"] / "data" / "crops" / f"{face}.jpg").exists()
            for server in (a, b):
                assert missing not in hits(server, sample("obama3.jpg"))
            assert other in hits(b, sample("biden.jpg"))

            # A reindex run beside them, on a folder of its own, is adopted by both.
            summary = json.loads(cli(folders["reindex"], "reindex", "--skip-reembed", **shared))
            build = summary["index"]["build_id"]
            assert summary["index"]["published"] == f"s3://{BUCKET}/{prefix}/index-builds/{build}"
            assert summary["index"]["counts"] == {"missing": 1, "found": 1}
            for server in (a, b):
                eventually(lambda s=server: build_of(s) == build, "the build is adopted")
                assert other in hits(server, sample("biden.jpg"))
            for name in ("a", "b"):
                manifest = json.loads((folders[name] / "index" / "manifest.json").read_text())
                assert manifest["build_id"] == build

            # B acknowledges an enrollment and is killed at once: A finds it, and so does B
            # when it starts again from its own folder.
            late, _ = enrolled(b, "missing", sample("obama3.jpg"))
            b.kill()
            eventually(lambda: late in hits(a, sample("obama.jpg")), "A sees B's enrollment")
            b = servers[1] = Server(folders["b"], **shared)
            assert build_of(b) == build
            assert late in hits(b, sample("obama.jpg")) and other in hits(b, sample("biden.jpg"))
            assert missing not in hits(b, sample("obama.jpg"))
            assert call(b, "GET", f"/cases/{found}").status_code == 200
        finally:
            logs = [s.stop() for s in servers if s.process.poll() is None]
    for log in logs:
        assert "Traceback" not in log and CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in log
