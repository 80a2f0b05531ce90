"""Retention: closed cases lose their photos, crops and embeddings after REUNITE_RETENTION_DAYS,
and keep their record, candidates and decisions. Real photos, dlib, FAISS and SQLite."""

import hashlib
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from reunite import errors
from reunite.cli import main
from reunite.privacy import ERASED
from reunite.reembedding import reembed_faces
from reunite.service import Reunite
from reunite.store import AuditEventRow, CaseRow, FaceRow, photo_file_name, utc_now
from tests.conftest import settings_in

ACTOR = "test"


def new_case(service, kind, photo, **facts):
    case = service.create_case({"kind": kind, **facts}, actor=ACTOR)
    enrolled = service.enroll_photo(case.id, photo, actor=ACTOR)
    service.face_crop(enrolled.faces[0].id, actor=ACTOR)  # a view keeps a crop on disk
    return case, enrolled


def closed_long_ago(service, case_id, days):
    """Mark a case closed ``days`` ago, as a deployment running since then would hold it: the
    audit event that closed it, dated then."""
    then = utc_now() - timedelta(days=days)
    with service.store.transaction() as session:
        session.execute(
            update(CaseRow).where(CaseRow.id == case_id).values(status="closed", updated_at=then)
        )
        session.add(
            AuditEventRow(
                actor=ACTOR,
                action="case.status",
                case_id=case_id,
                at=then,
                details={"old": "matched", "new": "closed"},
            )
        )


def files_under(*folders):
    """Every file under the folders, with a hash of its bytes (not SQLite's shared-memory
    index, which readers write too)."""
    return {
        str(path): hashlib.sha256(path.read_bytes()).hexdigest()
        for folder in folders
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != ".lock" and not path.name.endswith("-shm")
    }


def table_counts(service):
    with service.store.transaction() as session:
        return {
            table: session.scalar(select(func.count()).select_from(model))
            for table, model in (("cases", CaseRow), ("faces", FaceRow), ("audit", AuditEventRow))
        }


@pytest.fixture
def world(tmp_path, finder, sample, database_url):
    """A missing case matched with a found one and closed 400 days ago; a case closed today; an
    open case. On SQLite and on PostgreSQL."""
    settings = settings_in(tmp_path, retention_days=365, database_url=database_url)
    with Reunite.open(settings, finder=finder) as service:
        old, old_photo = new_case(service, "missing", sample("obama.jpg"), name="李建国")
        found, found_photo = new_case(service, "found", sample("obama2.jpg"))
        [candidate] = found_photo.new_candidates
        service.decide(candidate.candidate.id, "confirmed", actor=ACTOR, role="staff", note="DNA")
        recent, _ = new_case(service, "missing", sample("biden.jpg"))
        service.update_case(recent.id, {"status": "closed"}, actor=ACTOR)
        open_case, _ = new_case(service, "missing", sample("rose_leslie1.jpg"))
        closed_long_ago(service, old.id, days=400)
        yield {
            "settings": settings,
            "service": service,
            "old": old.id,
            "old_photo": old_photo,
            "found": found.id,
            "recent": recent.id,
            "open": open_case.id,
            "candidate": candidate.candidate.id,
        }


def test_closed_cases_lose_their_biometrics_after_the_retention_period(world, sample):
    service, settings = world["service"], world["settings"]
    old_face = world["old_photo"].faces[0]
    photo_file = settings.photos_dir / photo_file_name(world["old_photo"].photo.sha256, "JPEG")
    crop_file = settings.data_dir / "crops" / f"{old_face.id}.jpg"
    assert photo_file.exists() and crop_file.exists()
    [result] = service.search_photo(sample("obama3.jpg"), actor=ACTOR, kinds=["missing"])
    assert [r.case.id for r in result.ranked] == []  # a closed case is never a candidate...
    assert service.index.count() == 4  # ...but its face is still held

    before_files = files_under(settings.data_dir, settings.index_dir)
    before_rows = table_counts(service)
    dry = service.purge_expired(actor=ACTOR, dry_run=True)
    assert dry.summary()["cases"] == [
        {
            "case_id": world["old"],
            "closed_at": dry.cases[0].closed_at.isoformat(),
            "photos": 1,
            "faces": 1,
            "crops": 1,
        }
    ]
    assert utc_now() - dry.cases[0].closed_at > timedelta(days=399)
    assert files_under(settings.data_dir, settings.index_dir) == before_files
    assert table_counts(service) == before_rows and service.index.count() == 4

    done = service.purge_expired(actor=ACTOR)
    assert done.summary()["totals"] == {"cases": 1, "photos": 1, "faces": 1, "crops": 1}
    assert not photo_file.exists() and not crop_file.exists()
    assert service.index.count() == 3
    assert service.photos(world["old"]) == []
    with pytest.raises(errors.NotFound):
        service.face_crop(old_face.id, actor=ACTOR)
    with pytest.raises(errors.NotFound):
        service.photo_file(world["old_photo"].photo.id, actor=ACTOR)
    for index_file in settings.index_dir.glob("*.faiss"):
        assert old_face.embedding not in index_file.read_bytes()

    # The record, the candidate and its decision stay; so do the other cases' photos.
    case = service.case(world["old"])
    assert case.name == "李建国" and case.status == "closed"
    [view] = service.candidates(world["old"])
    assert view.candidate.id == world["candidate"] and view.candidate.status == "confirmed"
    assert [d.note for d in view.decisions] == ["DNA"]
    for kept in (world["found"], world["recent"], world["open"]):
        [(photo, _)] = service.photos(kept)
        assert service.photo_file(photo.id, actor=ACTOR)[1]
    [(event)] = service.audit_events(action="case.purge")
    assert event.case_id == world["old"]
    assert event.details == {"reason": "retention", "photos": 1, "faces": 1}

    assert service.purge_expired(actor=ACTOR).cases == []  # nothing left to do
    later = service.purge_expired(actor=ACTOR, now=utc_now() + timedelta(days=366))
    assert [c.case_id for c in later.cases] == [world["recent"]]  # its turn comes


def test_a_purged_case_can_be_reopened_reindexed_and_rebuilt(world, sample):
    service = world["service"]
    service.purge_expired(actor=ACTOR)
    service.update_case(world["old"], {"status": "open"}, actor=ACTOR)  # matched again: nothing
    assert service.case(world["old"]).status == "open"
    report = reembed_faces(service, everything=True, workers=1)
    assert report.total == 3 and not report.failed  # the erased face is left alone
    with service.store.transaction() as session:
        erased = session.scalar(select(FaceRow).where(FaceRow.case_id == world["old"]))
    assert erased is not None and erased.model == ERASED and erased.embedding == b""
    assert service.rebuild_index().counts == {"missing": 2, "found": 1}
    again = service.enroll_photo(world["old"], sample("obama.jpg"), actor=ACTOR)
    assert again.created and service.index.count() == 4


def test_retention_zero_purges_nothing(tmp_path, finder, sample):
    with Reunite.open(settings_in(tmp_path, retention_days=0), finder=finder) as service:
        case, _ = new_case(service, "missing", sample("obama.jpg"))
        closed_long_ago(service, case.id, days=4000)
        report = service.purge_expired(actor=ACTOR)
        assert report.summary() == {
            "dry_run": False,
            "retention_days": 0,
            "cutoff": None,
            "cases": [],
            "totals": {"cases": 0, "photos": 0, "faces": 0, "crops": 0},
        }
        assert len(service.photos(case.id)) == 1


def test_reunite_purge_prints_json_and_dry_run_changes_nothing(world, monkeypatch, capsys):
    settings = world["settings"]
    world["service"].close()
    monkeypatch.setenv("REUNITE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("REUNITE_INDEX_DIR", str(settings.index_dir))
    if settings.database_url:
        monkeypatch.setenv("REUNITE_DATABASE_URL", settings.database_url)
    before = files_under(settings.data_dir, settings.index_dir)
    assert main(["purge", "--dry-run"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] is True and [c["case_id"] for c in dry["cases"]] == [world["old"]]
    assert files_under(settings.data_dir, settings.index_dir) == before

    assert main(["purge"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["dry_run"] is False and done["totals"]["faces"] == 1
    assert done["cases"][0].keys() == {"case_id", "closed_at", "photos", "faces", "crops"}
    assert main(["purge"]) == 0
    assert json.loads(capsys.readouterr().out)["cases"] == []
