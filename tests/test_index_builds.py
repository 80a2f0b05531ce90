"""Index builds published through a real SeaweedFS bucket (``reunite.index_builds``): a server
with an index folder of its own fetches a newer build, checked against its checksums, and
adopts it caught up with the store; a damaged build is refused and an object store that is down
leaves the index as it was; old builds are deleted, the last few kept."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from reunite.config import Settings
from reunite.errors import Conflict
from reunite.index import read_manifest
from reunite.index_builds import INDEX_BUILDS, KEPT_BUILDS, POINTER_NAME, PublishedBuilds
from reunite.index_files import DirectoryLock
from reunite.photo_files import photo_files_of
from reunite.service import Reunite
from tests.conftest import add_synthetic_faces, new_case
from tests.objectstore import BUCKET, CREDENTIALS, ObjectStore
from tests.server import free_port, settings_env
from tests.test_s3_photos import bucket_settings


def machine(folder: Path, endpoint_url: str, prefix: str, database: Path) -> Settings:
    """A server's settings: data and index folders of its own, one shared store and bucket."""
    settings = bucket_settings(folder, endpoint_url, prefix)
    return settings.model_copy(update={"database_url": f"sqlite:///{database}"})


def published(service: Reunite) -> str:
    """Rebuild the index from the store and publish it, as ``reunite reindex`` does."""
    service.rebuild_index("flat")
    builds = PublishedBuilds.of(service.settings)
    assert builds is not None
    return builds.publish(service.settings.index_dir, service.live.index_lock).build_id


def build_folders(store: ObjectStore, prefix: str) -> set[str]:
    """The builds with a file in the bucket: keys ``prefix/index-builds/<build>/<file>``. A
    key ending in ``/`` is a folder entry, which SeaweedFS may list for a moment after the
    folder's last file is deleted: no file of a build."""
    return {
        key.split("/")[2]
        for key in store.keys(prefix)
        if key.count("/") == 3 and not key.endswith("/")
    }


def test_a_published_build_is_fetched_checked_and_adopted_by_a_server_of_its_own(
    tmp_path,
    object_store: ObjectStore,
    credentials,
    finder,
    caplog,
):
    prefix = f"builds-{uuid.uuid4().hex[:8]}"
    database = tmp_path / "store.db"
    rng = np.random.default_rng(7)
    with Reunite.open(
        machine(tmp_path / "reindex", object_store.endpoint_url, prefix, database), finder=finder
    ) as builder:
        add_synthetic_faces(builder, new_case(builder, "missing"), rng.normal(size=(20, 128)))
        first = published(builder)
        keys = object_store.keys(prefix)
        assert f"{prefix}/{POINTER_NAME}" in keys
        assert {
            f"{prefix}/index-builds/{first}/{n}" for n in ("manifest.json", "missing.faiss")
        } < set(keys)
        # Builds are not photos, nor is a folder entry (AWS lists one made by hand; SeaweedFS
        # lists a folder for a while after its last object is deleted).
        object_store.client.put_object(Bucket=BUCKET, Key=f"{prefix}/by-hand/", Body=b"")
        assert photo_files_of(builder.settings).names() == []

        # A server with an empty index folder of its own starts from the published build,
        # caught up with a face added after it.
        late = rng.normal(size=(1, 128))
        add_synthetic_faces(builder, new_case(builder, "found"), late)
        server = machine(tmp_path / "server", object_store.endpoint_url, prefix, database)
        with Reunite.open(server, finder=finder) as service:
            assert service.index.build_id == first
            assert service.index_report.how == "caught_up"
            assert service.index.count() == 21
            assert read_manifest(server.index_dir).build_id == first

            # A newer build is adopted at the next sync, without a restart.
            second = published(builder)
            service.sync_index()
            assert service.index.build_id == second and service.index.count() == 21
            assert not list(server.index_dir.glob(".incoming-*"))

            # A damaged one is refused with a log line, never adopted.
            third = published(builder)
            object_store.client.put_object(
                Bucket=BUCKET, Key=f"{prefix}/index-builds/{third}/missing.faiss", Body=b"junk"
            )
            with caplog.at_level(logging.ERROR, logger="reunite.live_index"):
                service.sync_index()
            assert service.index.build_id == second
            assert read_manifest(server.index_dir).build_id == second
            assert f"missing.faiss of build {third}" in caplog.text and "refused" in caplog.text
            assert not list(server.index_dir.glob(".incoming-*"))
            hits = service.index.search("missing", rng.normal(size=128).astype(np.float32), 3)
            assert len(hits) == 3

        # A build started earlier never replaces a newer one already published.
        other = machine(tmp_path / "reindex-2", object_store.endpoint_url, prefix, database)
        with Reunite.open(other, finder=finder) as slower:
            slower.rebuild_index("flat")
            newer = published(builder)
            builds = PublishedBuilds.of(other)
            assert builds is not None
            with pytest.raises(Conflict, match=f"newer index build \\({newer}"):
                builds.publish(other.index_dir, slower.live.index_lock)
            assert builds.current().build_id == newer

        # Only the last few builds stay in the bucket.
        for _ in range(KEPT_BUILDS):
            newest = published(builder)
        pointer = json.loads(
            object_store.client.get_object(Bucket=BUCKET, Key=f"{prefix}/{POINTER_NAME}")[
                "Body"
            ].read()
        )
        assert pointer["build_id"] == newest and len(pointer["kept"]) == KEPT_BUILDS
        left = object_store.keys(f"{prefix}/{INDEX_BUILDS}")
        assert build_folders(object_store, prefix) == set(pointer["kept"]), left

        # A build with a file missing (deleted by hand, or by a lifecycle rule) is refused too:
        # a server starting with an empty folder says why, builds its own and is ready.
        fourth = published(builder)
        object_store.client.delete_object(
            Bucket=BUCKET, Key=f"{prefix}/index-builds/{fourth}/missing.faiss"
        )
        fresh = machine(tmp_path / "fresh", object_store.endpoint_url, prefix, database)
        with (
            caplog.at_level(logging.ERROR, logger="reunite.live_index"),
            Reunite.open(fresh, finder=finder) as service,
        ):
            assert service.ready and service.index.count() == 21
            assert service.index.build_id != fourth
        assert f"missing.faiss of build {fourth} is missing" in caplog.text
        assert not list(fresh.index_dir.glob(".incoming-*"))


def test_with_the_object_store_down_a_server_keeps_its_index_and_says_so(
    tmp_path,
    object_store: ObjectStore,
    credentials,
    finder,
    caplog,
):
    prefix = f"down-{uuid.uuid4().hex[:8]}"
    database = tmp_path / "store.db"
    up = machine(tmp_path / "server", object_store.endpoint_url, prefix, database)
    with Reunite.open(up, finder=finder) as service:
        add_synthetic_faces(service, new_case(service, "missing"), np.eye(4, 128))
        build = published(service)
    down = up.model_copy(
        update={"s3_endpoint_url": f"http://127.0.0.1:{free_port()}", "s3_timeout_s": 1}
    )
    with caplog.at_level(logging.WARNING), Reunite.open(down, finder=finder) as service:
        assert service.index.build_id == build and service.index.count() == 4
        add_synthetic_faces(service, new_case(service, "missing"), np.eye(1, 128, 5))
        assert service.sync_index() == (1, 0)  # the store's changes still arrive
        assert service.index.search("missing", np.eye(1, 128, 5)[0].astype(np.float32), 1)
    assert "keeping the current index" in caplog.text and "could not look for index builds" in (
        caplog.text
    )


def test_reindex_says_in_one_line_when_it_cannot_publish(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "reunite.cli", "reindex", "--skip-reembed"],
        capture_output=True,
        text=True,
        env=settings_env(
            tmp_path,
            REUNITE_PHOTO_STORE=f"s3://{BUCKET}/unreachable",
            REUNITE_S3_ENDPOINT_URL=closed,
            REUNITE_S3_TIMEOUT_S="1",
            **CREDENTIALS,
        ),
    )
    assert done.returncode == 10, done.stderr
    [line] = [x for x in done.stderr.splitlines() if x.startswith("error")]
    assert f"photo store s3://{BUCKET}/unreachable" in line and "reindex --skip-reembed" in line
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert read_manifest(tmp_path / "index").build_id  # saved here all the same


def test_big_files_go_up_in_parts_and_a_newer_build_uploading_meanwhile_is_spared(
    tmp_path,
    object_store: ObjectStore,
    credentials,
    finder,
):
    prefix = f"parts-{uuid.uuid4().hex[:8]}"
    database = tmp_path / "store.db"
    settings = machine(tmp_path / "reindex", object_store.endpoint_url, prefix, database)
    vectors = np.random.default_rng(3).normal(size=(12_000, 128))  # a 6.1 MB index file
    with Reunite.open(settings, finder=finder) as builder:
        add_synthetic_faces(builder, new_case(builder, "missing"), vectors)
        found = PublishedBuilds.of(settings)
        assert found is not None
        builds = PublishedBuilds(found.files, part_bytes=5 << 20)  # S3's smallest part
        lock, folder = builder.live.index_lock, settings.index_dir

        def rebuilt_and_published() -> str:
            builder.rebuild_index("flat")
            return builds.publish(folder, lock).build_id

        first = rebuilt_and_published()
        head = object_store.client.head_object(
            Bucket=BUCKET, Key=f"{prefix}/index-builds/{first}/missing.faiss"
        )
        assert head["ETag"].strip('"').endswith("-2")  # uploaded as two parts
        server = machine(tmp_path / "server", object_store.endpoint_url, prefix, database)
        with Reunite.open(server, finder=finder) as service:  # checked against its SHA-256
            assert service.index.build_id == first and service.index.count() == 12_000

        # Two reindex runs overlap: the one that started first (X) writes its pointer while
        # the later one (Y) has uploaded its files but not yet its pointer. X keeps Y's build.
        pointer_key = f"{prefix}/{POINTER_NAME}"
        pointer_then = object_store.client.get_object(Bucket=BUCKET, Key=pointer_key)["Body"]
        pointer_then = pointer_then.read()
        builder.rebuild_index("flat")
        x_folder = tmp_path / "x"
        shutil.copytree(folder, x_folder, ignore=shutil.ignore_patterns(".lock"))
        y = rebuilt_and_published()
        object_store.client.put_object(Bucket=BUCKET, Key=pointer_key, Body=pointer_then)
        x = builds.publish(x_folder, DirectoryLock(x_folder)).build_id
        assert y in build_folders(object_store, prefix)  # not deleted as an old build
        assert builds.publish(folder, lock).build_id == y  # Y's pointer, written late
        assert builds.current().kept == [y, x, first]
        with pytest.raises(Conflict, match=f"newer index build \\({y}"):
            builds.publish(x_folder, DirectoryLock(x_folder))


def test_a_server_stops_promptly_while_its_index_thread_waits_on_the_object_store(tmp_path):
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    log_path = tmp_path / "server.log"
    with silent, log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "reunite.cli", "serve", "--port", str(free_port())],
            env=settings_env(
                tmp_path,
                REUNITE_PHOTO_STORE=f"s3://{BUCKET}/silent",
                REUNITE_S3_ENDPOINT_URL=f"http://127.0.0.1:{silent.getsockname()[1]}",
                REUNITE_S3_TIMEOUT_S="120",
                **CREDENTIALS,
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while "Application startup complete" not in log_path.read_text():
                assert time.monotonic() < deadline and server.poll() is None, log_path.read_text()
                time.sleep(0.2)
            time.sleep(1)  # the index thread is now waiting for the bucket's answer
            started = time.monotonic()
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)  # uvicorn ends by re-raising the SIGTERM
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    assert time.monotonic() - started < 25  # not the bucket's 2 x 120 s
    text = log_path.read_text()
    assert "stopping without saving it (the next start catches it up" in text
    assert "Application shutdown complete" in text
    assert "Traceback" not in text
