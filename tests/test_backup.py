"""Backup and restore: real photos enrolled, a backup (folder or .tar), a restore into a fresh
data folder and database, and the service there holds the same cases, photos, faces,
candidates and files, and finds the same cases. On SQLite and PostgreSQL (pg_dump and
pg_restore; the PostgreSQL runs skip without the test server)."""

import hashlib
import json
import stat
import tarfile
from contextlib import ExitStack

import pytest
from sqlalchemy import select

from reunite import accounts, errors
from reunite.backup import backup, restore
from reunite.cli import main
from reunite.service import Reunite
from reunite.store import CandidateDecisionRow, CandidateRow, CaseRow, FaceRow, PhotoRow, UserRow
from tests.conftest import postgres_database, settings_in

ACTOR = "test"


def enrolled_world(service, sample):
    """Two missing people and a found one who matches the first, confirmed; an account."""
    missing = service.create_case({"kind": "missing", "name": "李建国"}, actor=ACTOR)
    service.enroll_photo(missing.id, sample("obama.jpg"), actor=ACTOR)
    service.enroll_photo(missing.id, sample("obama-1080p.jpg"), actor=ACTOR)
    other = service.create_case({"kind": "missing", "name": "Joe"}, actor=ACTOR)
    service.enroll_photo(other.id, sample("biden.jpg"), actor=ACTOR)
    found = service.create_case({"kind": "found", "place": "北京站"}, actor=ACTOR)
    [view] = service.enroll_photo(found.id, sample("obama2.jpg"), actor=ACTOR).new_candidates
    service.decide(view.candidate.id, "confirmed", actor=ACTOR, role="staff", note="visit")
    accounts.create_user(service.store, "anna", "correct horse battery", "staff", actor=ACTOR)


def state_of(service):
    """Everything the store holds that a restore must bring back, as plain values."""
    with service.store.transaction() as session:

        def rows(model, *columns):
            return [
                tuple(getattr(r, c) for c in columns)
                for r in session.scalars(select(model).order_by(model.id))
            ]

        return {
            "cases": rows(CaseRow, "id", "kind", "name", "place", "status", "updated_at"),
            "photos": rows(PhotoRow, "id", "case_id", "sha256", "taken_on"),
            "faces": rows(FaceRow, "id", "case_id", "embedding", "model"),
            "candidates": rows(CandidateRow, "id", "found_case_id", "missing_case_id", "distance"),
            "decisions": rows(CandidateDecisionRow, "id", "candidate_id", "to_status", "note"),
            "users": rows(UserRow, "id", "username", "password_hash"),
        }


def searched(service, sample):
    return [
        [(r.case.id, round(r.match.distance, 6)) for r in result.ranked]
        for result in service.search_photo(sample("obama_and_biden.jpg"), actor=ACTOR)
    ]


def photo_files(settings):
    return {
        path.relative_to(settings.photos_dir).as_posix(): hashlib.sha256(
            path.read_bytes()
        ).hexdigest()
        for path in settings.photos_dir.rglob("*")
        if path.is_file()
    }


@pytest.fixture
def target_url(database_url):
    """A second, empty store of the same kind to restore into."""
    if database_url is None:
        yield None
        return
    with postgres_database() as url:
        yield url


@pytest.mark.parametrize("form", ["folder", "tar"])
def test_a_backup_restored_on_a_new_machine_holds_the_same_store(
    tmp_path, finder, sample, database_url, target_url, form
):
    source = settings_in(tmp_path / "old", database_url=database_url)
    with Reunite.open(source, finder=finder) as service:
        enrolled_world(service, sample)
        service.face_crop(1, actor=ACTOR)  # crops are not backed up; made again on view
        before, found_before = state_of(service), searched(service, sample)
    destination = tmp_path / ("backup.tar" if form == "tar" else "backup")
    manifest = backup(source, destination)

    assert manifest["format"] == "reunite-backup" and manifest["version"] == 1
    assert manifest["database"]["kind"] == ("sqlite" if database_url is None else "postgresql")
    assert manifest["database"]["revision"]
    counts = manifest["counts"]
    assert (counts["cases"], counts["photos"], counts["faces"], counts["candidates"]) == (
        3,
        4,
        4,
        1,
    )
    assert counts["photo_files"] == 4 and manifest["missing_photos"] == []
    assert {"index/manifest.json", "index/missing.faiss", "index/found.faiss"} <= set(
        manifest["files"]
    )
    assert not any(name.startswith("crops/") for name in manifest["files"])
    mode = stat.S_IMODE(destination.stat().st_mode)
    assert mode & 0o077 == 0, oct(mode)  # the owner's only
    if form == "tar":
        with tarfile.open(destination) as archive:
            assert archive.getnames()[0] == "manifest.json"

    target = settings_in(tmp_path / "new", database_url=target_url)
    target.index_dir.mkdir(parents=True)
    (target.index_dir / "missing.0.faiss").write_bytes(b"a part of some other index")
    report = restore(target, destination)
    assert report["counts"]["cases"] == 3 and report["counts"]["photo_files"] == 4
    assert report["index"]["counts"] == {"missing": 3, "found": 1}
    assert report["index"]["how"] == "loaded"  # nothing saved since: the restore removed it
    assert sorted(p.name for p in target.index_dir.glob("*.faiss")) == [
        "found.faiss",
        "missing.faiss",
    ]
    with Reunite.open(target, finder=finder) as restored:
        assert state_of(restored) == before
        assert searched(restored, sample) == found_before
        assert (
            accounts.signed_in_user(restored.store, "anna", "correct horse battery").username
            == "anna"
        )
        assert restored.face_crop(1, actor=ACTOR)[:2] == b"\xff\xd8"
    assert photo_files(target) == photo_files(source)

    with pytest.raises(errors.Conflict, match="--force"):
        restore(target, destination)
    with Reunite.open(target, finder=finder) as restored:  # a change the forced restore undoes
        restored.delete_case(1, actor=ACTOR, reason="entered_in_error")
    restore(target, destination, force=True)
    with Reunite.open(target, finder=finder) as restored:
        assert state_of(restored) == before
    assert photo_files(target) == photo_files(source)


def test_a_damaged_backup_is_refused_and_changes_nothing(tmp_path, finder, sample):
    source = settings_in(tmp_path / "old")
    with Reunite.open(source, finder=finder) as service:
        enrolled_world(service, sample)
    folder = tmp_path / "backup"
    backup(source, folder)
    with pytest.raises(errors.Conflict, match="exists"):
        backup(source, folder)
    [photo] = [p for p in (folder / "photos").rglob("*.jpg")][:1]
    photo.write_bytes(photo.read_bytes()[:-1] + b"\x00")
    target = settings_in(tmp_path / "new")
    with pytest.raises(errors.InvalidInput, match="SHA-256"):
        restore(target, folder)
    assert not (target.data_dir / "reunite.db").exists()
    (tmp_path / "not-a-backup").mkdir()
    with pytest.raises(errors.InvalidInput, match="not a backup"):
        restore(target, tmp_path / "not-a-backup")


def test_a_backup_taken_during_a_write_holds_what_was_committed(tmp_path, finder, sample):
    settings = settings_in(tmp_path / "old")
    with Reunite.open(settings, finder=finder) as service:
        enrolled_world(service, sample)
        with ExitStack() as stack:  # another writer, mid-transaction, while the backup runs
            session = stack.enter_context(service.store.transaction())
            session.add(CaseRow(kind="missing", name="uncommitted"))
            session.flush()
            backup(settings, tmp_path / "backup")
            session.rollback()
    target = settings_in(tmp_path / "new")
    restore(target, tmp_path / "backup")
    with Reunite.open(target, finder=finder, load_index=False) as restored:
        cases = sorted(restored.cases().items, key=lambda c: c.id)
        assert [c.name for c in cases] == ["李建国", "Joe", None]


def test_reunite_backup_and_restore_on_the_command_line(
    tmp_path, finder, sample, monkeypatch, capsys
):
    source = settings_in(tmp_path / "old")
    with Reunite.open(source, finder=finder) as service:
        enrolled_world(service, sample)
    monkeypatch.setenv("REUNITE_DATA_DIR", str(source.data_dir))
    monkeypatch.setenv("REUNITE_INDEX_DIR", str(source.index_dir))
    archive = tmp_path / "nightly.tar"
    assert main(["backup", str(archive)]) == 0
    written = json.loads(capsys.readouterr().out)
    assert written["counts"]["cases"] == 3 and written["missing_photos"] == 0
    assert written["bytes"] > 0 and written["destination"] == str(archive)
    assert main(["backup", str(archive)]) == 5  # never over an existing backup

    target = settings_in(tmp_path / "new")
    monkeypatch.setenv("REUNITE_DATA_DIR", str(target.data_dir))
    monkeypatch.setenv("REUNITE_INDEX_DIR", str(target.index_dir))
    assert main(["restore", str(archive)]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["faces"] == 4
    assert main(["restore", str(archive)]) == 5
    assert "--force" in capsys.readouterr().err
    assert main(["restore", "--force", str(archive)]) == 0
    assert (target.data_dir / "reunite.db").is_file() and (target.data_dir / "photos").is_dir()
    assert not (target.data_dir / "secret_key").exists()  # not in a backup: sessions end


def test_an_index_held_in_parts_is_backed_up_whole_and_restored_over_another_layout(
    tmp_path, finder, sample
):
    source = settings_in(tmp_path / "old")
    with Reunite.open(source, finder=finder) as service:
        enrolled_world(service, sample)
        service.index.optimize("missing", min_faces=0, parts=2)  # as a large kind would be
        service.index.save(source.index_dir)
    manifest = backup(source, tmp_path / "backup")
    assert {"index/missing.0.faiss", "index/missing.1.faiss", "index/found.faiss"} <= set(
        manifest["files"]
    )
    target = settings_in(tmp_path / "new")
    target.index_dir.mkdir(parents=True)
    (target.index_dir / "missing.7.faiss").write_bytes(b"a part of some other layout")
    report = restore(target, tmp_path / "backup")
    assert report["index"]["how"] == "loaded"  # the parts load, and agree with the store
    # Three faces are below the approximate threshold: the restored service made the kind
    # exact again and saved it, and no file of either earlier layout is left.
    assert sorted(p.name for p in target.index_dir.glob("*.faiss")) == [
        "found.faiss",
        "missing.faiss",
    ]
