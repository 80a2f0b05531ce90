"""Re-embedding stored faces after a pipeline change: locally, resumed after a kill, on Ray."""

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from reunite.faces import MODEL_NAME
from reunite.index import FaceIndex
from reunite.reembedding import reembed_faces
from reunite.service import Reunite
from reunite.store import FaceRow
from tests.conftest import settings_in
from tests.server import settings_env

ACTOR = "test"
PEOPLE = ["Colin_Powell", "Tony_Blair", "Hugo_Chavez", "Jean_Chretien", "Junichiro_Koizumi"]
OLD = {"upsample_times": 0}
"""The pipeline the faces were first enrolled with; the current one upsamples once."""


@pytest.fixture(scope="module")
def enrolled_store(tmp_path_factory, faces_dir) -> Path:
    """A store with 10 LFW faces (2 photos of 5 people) made by the ``OLD`` pipeline."""
    workdir = tmp_path_factory.mktemp("old-pipeline")
    with Reunite.open(settings_in(workdir, **OLD)) as service:
        for person in PEOPLE:
            case = service.create_case({"kind": "missing"}, actor=ACTOR)
            for path in sorted((faces_dir / "lfw" / person).glob("*.jpg"))[:2]:
                service.enroll_photo(case.id, path.read_bytes(), actor=ACTOR)
    return workdir


def copy_of(store: Path, to: Path) -> Path:
    shutil.copytree(store, to)
    return to


def faces_by_id(workdir: Path) -> dict[int, tuple[str, np.ndarray]]:
    with (
        Reunite.open(settings_in(workdir), load_index=False) as service,
        service.store.transaction() as session,
    ):
        return {f.id: (f.pipeline, f.vector) for f in session.query(FaceRow)}


def saved_index(workdir: Path) -> dict[int, np.ndarray]:
    index, _ = FaceIndex.load(workdir / "index", model=MODEL_NAME, dim=128)
    ids = index.face_ids("missing")
    return {int(i): v for i, v in zip(ids, index._ids_and_vectors("missing")[1], strict=True)}


def test_stale_faces_are_embedded_again_and_a_second_run_does_nothing(enrolled_store, tmp_path):
    workdir = copy_of(enrolled_store, tmp_path / "store")
    before = faces_by_id(workdir)
    with Reunite.open(settings_in(workdir), load_index=False) as service:
        current = service.pipeline.version
        report = reembed_faces(service, workers=2, batch_size=3)
        assert (report.total, report.reembedded, report.failed) == (10, 10, [])
        assert reembed_faces(service, workers=2).total == 0  # nothing made otherwise now
        everything = reembed_faces(service, everything=True, workers=1)
        assert (everything.total, everything.reembedded) == (10, 10)
    after = faces_by_id(workdir)
    assert sorted(after) == sorted(before)  # same ids: candidates keep their faces
    assert {pipeline for pipeline, _ in before.values()} != {current}
    assert {pipeline for pipeline, _ in after.values()} == {current}
    # Same photo: the embedding moves a little with the detector's box, or not at all.
    moved = [np.linalg.norm(vector - before[i][1]) for i, (_, vector) in after.items()]
    assert max(moved) < 0.2 and any(moved)


def test_a_photo_that_cannot_be_read_is_reported_and_the_rest_is_done(enrolled_store, tmp_path):
    workdir = copy_of(enrolled_store, tmp_path / "store")
    victim = sorted((workdir / "data" / "photos").rglob("*.jpg"))[0]
    victim.unlink()
    with Reunite.open(settings_in(workdir), load_index=False) as service:
        report = reembed_faces(service, workers=1)
    assert report.reembedded == 9
    [(face_id, code, _)] = report.failed
    assert code == "unreadable_file" and face_id > 0


def reindex(workdir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reunite.cli", "reindex", *args],
        env=settings_env(workdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def job_cursor(workdir: Path) -> int:
    with sqlite3.connect(workdir / "data" / "reunite.db", timeout=30) as db:
        row = db.execute("SELECT cursor FROM batch_jobs").fetchone()
    return int(row[0]) if row else 0


def test_a_killed_reindex_resumes_and_ends_like_an_uninterrupted_one(enrolled_store, tmp_path):
    interrupted = copy_of(enrolled_store, tmp_path / "interrupted")
    whole = copy_of(enrolled_store, tmp_path / "whole")

    job = reindex(interrupted, "--workers", "1", "--batch-size", "1")
    deadline = time.monotonic() + 120
    while job_cursor(interrupted) == 0:  # killed after its first batch is written
        assert job.poll() is None, job.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)
    job.wait()
    done_before_kill = job_cursor(interrupted)

    resumed = reindex(interrupted, "--workers", "2")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    summary = json.loads(out)
    assert summary["reembed"]["resumed_after_face_id"] == done_before_kill
    assert summary["reembed"]["faces"] < 10  # finished work is not redone

    uninterrupted = reindex(whole, "--workers", "2")
    out, err = uninterrupted.communicate(timeout=300)
    assert uninterrupted.returncode == 0, err
    assert json.loads(out)["reembed"]["reembedded"] == 10

    a, b = faces_by_id(interrupted), faces_by_id(whole)
    assert sorted(a) == sorted(b)
    for face_id in a:
        assert a[face_id][0] == b[face_id][0]
        np.testing.assert_array_equal(a[face_id][1], b[face_id][1])
    index_a, index_b = saved_index(interrupted), saved_index(whole)
    assert sorted(index_a) == sorted(index_b) == sorted(a)
    for face_id, vector in index_a.items():
        np.testing.assert_array_equal(vector, index_b[face_id])
    assert job_cursor(interrupted) == 0  # the finished job left nothing behind


def test_faces_are_embedded_on_a_local_ray_instance_as_they_are_locally(enrolled_store, tmp_path):
    ray = pytest.importorskip("ray")
    local = copy_of(enrolled_store, tmp_path / "local")
    on_ray = copy_of(enrolled_store, tmp_path / "ray")
    with Reunite.open(settings_in(local), load_index=False) as service:
        reembed_faces(service, workers=1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with Reunite.open(settings_in(on_ray), load_index=False) as service:
            report = reembed_faces(service, ray_address="auto", batch_size=4)
    finally:
        ray.shutdown()
    assert (report.reembedded, report.failed) == (10, [])
    a, b = faces_by_id(local), faces_by_id(on_ray)
    for face_id in a:
        assert a[face_id][0] == b[face_id][0]
        np.testing.assert_allclose(a[face_id][1], b[face_id][1], atol=1e-6)
