"""The live index: restarts, rebuilds, catch-up, failed saves, approximate kinds, and servers
sharing a store."""

import logging

import pytest

from reunite.faces import MODEL_NAME
from reunite.index import FaceIndex, read_manifest
from reunite.service import Reunite
from tests.conftest import ACTOR, add_synthetic_faces, new_case, settings_in


def enroll_pair(service: Reunite, sample) -> tuple[int, int]:
    missing = new_case(service, "missing")
    service.enroll_photo(missing.id, sample("obama.jpg"), actor=ACTOR)
    found = new_case(service, "found")
    service.enroll_photo(found.id, sample("biden.jpg"), actor=ACTOR)
    return missing.id, found.id


def test_the_index_survives_a_restart(settings, finder, sample):
    with Reunite.open(settings, finder=finder) as service:
        missing_id, _ = enroll_pair(service, sample)
    # A save cut off half-way by a kill leaves a temporary file: the next start deletes it.
    unfinished = settings.index_dir / ".missing.faiss.k1ll3d.tmp"
    unfinished.write_bytes(b"half of an index file")
    with Reunite.open(settings, finder=finder) as service:
        assert service.index_report.how == "loaded"
        assert service.index_report.counts == {"missing": 1, "found": 1}
        [result] = service.search_photo(sample("obama2.jpg"), actor=ACTOR)
        assert [r.case.id for r in result.ranked] == [missing_id]
    assert not unfinished.exists()


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_the_index_is_rebuilt_when_its_files_are_deleted_or_corrupted(
    settings, finder, sample, damage, caplog
):
    with Reunite.open(settings, finder=finder) as service:
        missing_id, _ = enroll_pair(service, sample)
    for path in settings.index_dir.glob("*.faiss"):
        if damage == "delete":
            path.unlink()
        else:
            path.write_bytes(b"\x00garbage" + path.read_bytes()[9:])
    with caplog.at_level(logging.WARNING), Reunite.open(settings, finder=finder) as service:
        assert service.index_report.how == "rebuilt"
        assert service.index_report.counts == {"missing": 1, "found": 1}
        [result] = service.search_photo(sample("obama2.jpg"), actor=ACTOR)
        assert [r.case.id for r in result.ranked] == [missing_id]
    assert "rebuilding from the store" in caplog.text
    FaceIndex.load(settings.index_dir, model=MODEL_NAME, dim=128)  # saved again, whole


def test_an_index_behind_the_store_catches_up(tmp_path, finder, sample):
    settings = settings_in(tmp_path, index_save_every=10_000)  # never saved before close
    with Reunite.open(settings, finder=finder) as service:
        enroll_pair(service, sample)
    stale_manifest = (settings.index_dir / "manifest.json").read_bytes()
    stale_files = {p: p.read_bytes() for p in settings.index_dir.glob("*.faiss")}
    with Reunite.open(settings, finder=finder) as service:
        third = new_case(service, "found")
        service.enroll_photo(third.id, sample("obama2.jpg"), actor=ACTOR)
        service.delete_case(1, actor=ACTOR, reason="entered_in_error")
    # As if the process had been killed before saving: put the older index files back.
    (settings.index_dir / "manifest.json").write_bytes(stale_manifest)
    for path, data in stale_files.items():
        path.write_bytes(data)
    with Reunite.open(settings, finder=finder) as service:
        assert service.index_report.how == "caught_up"
        assert service.index_report.counts == {"missing": 0, "found": 2}
    with Reunite.open(settings, finder=finder) as service:
        assert service.index_report.how == "loaded"  # the caught-up index was saved


def test_a_failed_index_save_does_not_fail_the_enrollment(tmp_path, finder, sample, caplog):
    import shutil

    settings = settings_in(tmp_path, index_save_every=1)
    service = Reunite.open(settings, finder=finder)
    shutil.rmtree(settings.index_dir)
    settings.index_dir.write_text("a file where the index directory should be: saves fail")
    with caplog.at_level(logging.ERROR):
        case = new_case(service, "missing")
        enrolled = service.enroll_photo(case.id, sample("obama.jpg"), actor=ACTOR)
        assert enrolled.created and service.index.count("missing") == 1
        service.close()
    assert "saving failed" in caplog.text and "at shutdown failed" in caplog.text


def test_a_large_kind_gets_an_approximate_index_that_survives_a_restart(tmp_path, finder, caplog):
    from reunite.index import read_manifest
    from tests.test_index import clustered_faces

    settings = settings_in(tmp_path, approximate_min_faces=10_000)
    vectors = clustered_faces(4000, 5, seed=7)
    with Reunite.open(settings, finder=finder) as service:
        add_synthetic_faces(service, new_case(service, "missing"), vectors)
        with caplog.at_level(logging.INFO):
            service.rebuild_index()
        assert service.index.params["missing"]["type"] == "hnsw"
        assert service.index.params["found"] == {"type": "flat"}
        assert "hnsw" in caplog.text
    manifest = read_manifest(settings.index_dir)
    assert manifest.params["missing"]["recall_at_10"] >= 0.99
    with Reunite.open(settings, finder=finder) as service:
        assert service.index_report.how == "loaded"
        assert service.index.params["missing"] == manifest.params["missing"]
        assert service.index.count("missing") == 20000


def ranked_ids(service: Reunite, data: bytes) -> list[int]:
    [result] = service.search_photo(data, actor=ACTOR)
    return [r.case.id for r in result.ranked]


def test_servers_sharing_a_store_match_each_others_faces_and_sync(settings, finder, sample):
    """Two services on one store and index folder stand in for two API worker processes:
    each has its own index, and neither is told about the other's writes."""
    with (
        Reunite.open(settings, finder=finder) as one,
        Reunite.open(settings, finder=finder) as two,
    ):
        missing = new_case(one, "missing")
        one.enroll_photo(missing.id, sample("obama.jpg"), actor=ACTOR)
        assert ranked_ids(two, sample("obama2.jpg")) == []  # not synced yet

        # Enrolling pulls the other process's faces first: the pair is never missed.
        found = new_case(two, "found")
        enrollment = two.enroll_photo(found.id, sample("obama2.jpg"), actor=ACTOR)
        assert [v.candidate.missing_case_id for v in enrollment.new_candidates] == [missing.id]

        assert one.sync_index() == (1, 0)  # the found face arrives in the first process
        assert two.sync_index() == (0, 0)  # already pulled while enrolling
        assert one.index.count() == two.index.count() == 2

        one.delete_case(missing.id, actor=ACTOR, reason="entered_in_error")
        assert two.index.count("missing") == 1
        assert two.sync_index() == (0, 1)
        assert two.index.count("missing") == 0
        assert one.index.count() == two.index.count() == 1


def test_a_rebuilt_index_is_adopted_by_running_servers_without_losing_enrollments(
    settings, finder, sample, caplog
):
    with (
        Reunite.open(settings, finder=finder) as server,
        Reunite.open(settings, finder=finder, load_index=False) as reindexer,
    ):
        first = new_case(server, "missing")
        server.enroll_photo(first.id, sample("obama.jpg"), actor=ACTOR)
        old_build = server.index.build_id

        reindexer.rebuild_index()
        # The server enrolls while it still searches its old build...
        second = new_case(server, "missing")
        server.enroll_photo(second.id, sample("biden.jpg"), actor=ACTOR)
        server.save_index()  # ... and does not save over the newer build,
        assert read_manifest(settings.index_dir).build_id == reindexer.index.build_id

        with caplog.at_level(logging.INFO):
            server.sync_index()  # ... then adopts it, caught up with the store.
        assert "adopted build" in caplog.text
        assert server.index.build_id == reindexer.index.build_id != old_build
        assert ranked_ids(server, sample("obama2.jpg")) == [first.id]
        assert server.index.count("missing") == 2
        assert sorted(server.index.face_ids("missing")) == sorted(
            f.id for c in (first, second) for _, faces in server.photos(c.id) for f in faces
        )
    with Reunite.open(settings, finder=finder) as restarted:
        assert restarted.index_report.how in {"loaded", "caught_up"}
        assert restarted.index.count("missing") == 2
