"""The library end to end: real photos, real dlib, real FAISS, real SQLite."""

import logging

import numpy as np
import pytest

from reunite import errors
from reunite.faces import MODEL_NAME
from reunite.index import FaceIndex, read_manifest
from reunite.service import Reunite
from reunite.store import AuditEvent, Candidate
from tests.conftest import settings_in

ACTOR = "test"


def new_case(service: Reunite, kind: str, **facts):
    return service.create_case({"kind": kind, **facts}, actor=ACTOR)


@pytest.mark.parametrize("first_kind", ["missing", "found"])
def test_matching_is_two_way(service, sample, first_kind):
    second_kind = "found" if first_kind == "missing" else "missing"
    first = new_case(service, first_kind)
    assert service.enroll_photo(first.id, sample("obama.jpg"), actor=ACTOR).new_candidates == []
    second = new_case(service, second_kind)
    enrollment = service.enroll_photo(second.id, sample("obama2.jpg"), actor=ACTOR)
    [view] = enrollment.new_candidates
    candidate = view.candidate
    found, missing = (first, second) if first_kind == "found" else (second, first)
    assert (candidate.found_case_id, candidate.missing_case_id) == (found.id, missing.id)
    assert candidate.status == "pending" and candidate.distance < 0.6
    assert [v.candidate.id for v in service.candidates(first.id)] == [candidate.id]


@pytest.mark.parametrize("scoring", ["mean", "closest"])
def test_a_case_with_several_photos_scores_by_its_template(tmp_path, finder, sample, scoring):
    with Reunite.open(settings_in(tmp_path, case_scoring=scoring), finder=finder) as service:
        missing = new_case(service, "missing")
        service.enroll_photo(missing.id, sample("obama.jpg"), actor=ACTOR)
        service.enroll_photo(missing.id, sample("obama3.jpg"), actor=ACTOR)
        [result] = service.search_photo(sample("obama2.jpg"), actor=ACTOR)
        [ranked] = result.ranked
        faces = [f for _, fs in service.photos(missing.id) for f in fs]
    assert ranked.case.id == missing.id
    probe = result.face.embedding.astype(np.float64)
    distances = {f.id: float(np.linalg.norm(f.vector - probe)) for f in faces}
    assert ranked.match.face_id == min(distances, key=distances.__getitem__)
    template = np.mean([f.vector for f in faces], axis=0)
    expected = (
        float(np.linalg.norm(template - probe)) if scoring == "mean" else min(distances.values())
    )
    assert ranked.match.distance == pytest.approx(expected, abs=1e-5)


def test_a_closer_photo_improves_an_existing_candidate_without_duplicating_it(service, sample):
    missing = new_case(service, "missing")
    service.enroll_photo(missing.id, sample("obama3.jpg"), actor=ACTOR)
    found = new_case(service, "found")
    [first] = service.enroll_photo(found.id, sample("obama2.jpg"), actor=ACTOR).new_candidates
    first_distance = first.candidate.distance
    second = service.enroll_photo(missing.id, sample("obama.jpg"), actor=ACTOR)
    assert second.new_candidates == []
    [only] = service.candidates(found.id)
    assert only.candidate.id == first.candidate.id
    assert only.candidate.distance < first_distance
    assert only.candidate.missing_face_id == second.faces[0].id


def test_reenrolling_the_same_photo_changes_nothing(service, sample):
    missing = new_case(service, "missing")
    service.enroll_photo(missing.id, sample("obama.jpg"), actor=ACTOR)
    found = new_case(service, "found")
    first = service.enroll_photo(found.id, sample("obama2.jpg"), actor=ACTOR)
    again = service.enroll_photo(found.id, sample("obama2.jpg"), actor=ACTOR)
    assert first.created and not again.created
    assert again.photo.id == first.photo.id and again.new_candidates == []
    assert len(service.photos(found.id)) == 1
    assert len(service.candidates(found.id)) == 1
    assert service.index.count() == 2


def test_a_different_person_is_not_a_candidate(service, sample):
    missing = new_case(service, "missing")
    service.enroll_photo(missing.id, sample("obama.jpg"), actor=ACTOR)
    found = new_case(service, "found")
    assert service.enroll_photo(found.id, sample("biden.jpg"), actor=ACTOR).new_candidates == []


def test_search_returns_candidates_per_face_and_stores_only_an_audit_record(service, sample):
    obama, biden = new_case(service, "missing"), new_case(service, "found")
    service.enroll_photo(obama.id, sample("obama.jpg"), actor=ACTOR)
    service.enroll_photo(biden.id, sample("biden.jpg"), actor=ACTOR)
    with service.store.transaction() as session:
        before = session.query(Candidate).count()
    results = service.search_photo(sample("obama_and_biden.jpg"), actor="searcher")
    matched = {r.ranked[0].case.id for r in results if r.ranked}
    assert matched == {obama.id, biden.id}
    only_missing = service.search_photo(
        sample("obama_and_biden.jpg"), actor="searcher", kinds=["missing"]
    )
    assert {r.ranked[0].case.id for r in only_missing if r.ranked} == {obama.id}
    with service.store.transaction() as session:
        assert session.query(Candidate).count() == before
        audit = session.query(AuditEvent).filter_by(action="search", actor="searcher").all()
    assert len(audit) == 2
    assert sorted(i for ids in audit[0].details["results"] for i in ids) == sorted(
        [obama.id, biden.id]
    )


def test_deleting_a_case_removes_its_faces_from_search(service, sample, settings):
    missing = new_case(service, "missing")
    service.enroll_photo(missing.id, sample("obama.jpg"), actor=ACTOR)
    found = new_case(service, "found")
    service.enroll_photo(found.id, sample("obama2.jpg"), actor=ACTOR)
    [(photo, _)] = service.photos(missing.id)
    photo_files_before = set(settings.photos_dir.rglob("*.jpg"))
    service.delete_case(missing.id, actor=ACTOR, reason="entered_in_error")
    [result] = service.search_photo(sample("obama.jpg"), actor=ACTOR, kinds=["missing"])
    assert result.ranked == []
    assert service.candidates(found.id) == []
    with pytest.raises(errors.NotFound):
        service.case(missing.id)
    gone = photo_files_before - set(settings.photos_dir.rglob("*.jpg"))
    assert [p.name for p in gone] == [f"{photo.sha256}.jpg"]
    assert service.index.count() == 1


def test_closed_cases_get_no_new_candidates(service, sample):
    missing = new_case(service, "missing")
    service.enroll_photo(missing.id, sample("obama.jpg"), actor=ACTOR)
    service.update_case(missing.id, {"status": "closed"}, actor=ACTOR)
    found = new_case(service, "found")
    assert service.enroll_photo(found.id, sample("obama2.jpg"), actor=ACTOR).new_candidates == []


def test_a_photo_with_two_faces_needs_a_choice(service, sample):
    case = new_case(service, "found")
    with pytest.raises(errors.MultipleFaces) as raised:
        service.enroll_photo(case.id, sample("two_people.jpg"), actor=ACTOR)
    boxes = raised.value.details["boxes"]
    assert [b["index"] for b in boxes] == [0, 1] and boxes[0]["left"] < boxes[1]["left"]
    with pytest.raises(errors.InvalidField):
        service.enroll_photo(case.id, sample("two_people.jpg"), actor=ACTOR, face_index=2)
    enrollment = service.enroll_photo(case.id, sample("two_people.jpg"), actor=ACTOR, face_index=1)
    assert enrollment.faces[0].left == boxes[1]["left"]


def test_case_facts_are_validated():
    from reunite.store import validated_case_fields

    with pytest.raises(errors.InvalidField, match="agency"):
        validated_case_fields({"kind": "missing", "external_ref": "X1"})
    with pytest.raises(errors.InvalidField, match="date_found"):
        validated_case_fields({"kind": "missing", "date_found": "2020-01-01"})
    with pytest.raises(errors.InvalidField, match="birth_year_min"):
        validated_case_fields({"kind": "found", "birth_year_min": 1990, "birth_year_max": 1980})
    with pytest.raises(errors.InvalidField, match="kind"):
        validated_case_fields({"kind": "lost"})


def test_external_refs_are_unique_per_agency(service):
    new_case(service, "missing", agency="SH-PSB", external_ref="2024-001")
    new_case(service, "missing", agency="BJ-PSB", external_ref="2024-001")
    with pytest.raises(errors.Conflict):
        new_case(service, "missing", agency="SH-PSB", external_ref="2024-001")


# ------------------------------------------------------------------------------ the index


def enroll_pair(service: Reunite, sample) -> tuple[int, int]:
    missing = new_case(service, "missing")
    service.enroll_photo(missing.id, sample("obama.jpg"), actor=ACTOR)
    found = new_case(service, "found")
    service.enroll_photo(found.id, sample("biden.jpg"), actor=ACTOR)
    return missing.id, found.id


def test_the_index_survives_a_restart(settings, finder, sample):
    with Reunite.open(settings, finder=finder) as service:
        missing_id, _ = enroll_pair(service, sample)
    with Reunite.open(settings, finder=finder) as service:
        assert service.index_report.how == "loaded"
        assert service.index_report.counts == {"missing": 1, "found": 1}
        [result] = service.search_photo(sample("obama2.jpg"), actor=ACTOR)
        assert [r.case.id for r in result.ranked] == [missing_id]


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


# ------------------------------------------------------------------- 1:N on real LFW people


def central_face_index(service: Reunite, finder, data: bytes) -> int | None:
    """Which face of an LFW photo is its subject: the one nearest the image centre."""
    from reunite.imaging import decoded_image

    pixels = decoded_image(data, max_bytes=10**8, max_pixels=10**8).pixels
    faces = finder(pixels, service.pipeline)
    if not faces:
        return None
    centre = np.array(pixels.shape[:2]) / 2
    offsets = [
        np.hypot(
            (f.box.top + f.box.bottom) / 2 - centre[0], (f.box.left + f.box.right) / 2 - centre[1]
        )
        for f in faces
    ]
    return int(np.argmin(offsets))


def test_an_lfw_person_is_ranked_first_among_200_other_people(tmp_path, finder, faces_dir):
    lfw = faces_dir / "lfw"
    if not lfw.is_dir():
        pytest.skip("LFW not found")
    people = sorted(p for p in lfw.iterdir() if p.is_dir() and p.name != "protocol")
    subject = next(p for p in people if len(list(p.glob("*.jpg"))) >= 4)
    *gallery_photos, probe = sorted(subject.glob("*.jpg"))[:4]
    others = [p for p in people if p != subject]
    with Reunite.open(settings_in(tmp_path), finder=finder) as service:
        target = new_case(service, "missing")
        for photo in gallery_photos:
            data = photo.read_bytes()
            service.enroll_photo(
                target.id, data, actor=ACTOR, face_index=central_face_index(service, finder, data)
            )
        enrolled_others = 0
        for person in others:
            data = sorted(person.glob("*.jpg"))[0].read_bytes()
            chosen = central_face_index(service, finder, data)
            if chosen is None:
                continue
            case = new_case(service, "missing")
            service.enroll_photo(case.id, data, actor=ACTOR, face_index=chosen)
            enrolled_others += 1
            if enrolled_others == 200:
                break
        assert service.index.count("missing") == 203
        results = service.search_photo(probe.read_bytes(), actor=ACTOR, kinds=["missing"], k=10)
        probe_result = min(
            results, key=lambda r: abs((r.face.box.left + r.face.box.right) / 2 - 125)
        )
        assert probe_result.ranked[0].case.id == target.id


# --------------------------------------------------------- ids, races and failures (review)


def test_ids_are_never_reused_after_a_delete(service, sample):
    first = new_case(service, "missing")
    enrolled = service.enroll_photo(first.id, sample("obama.jpg"), actor=ACTOR)
    service.delete_case(first.id, actor=ACTOR, reason="entered_in_error")
    second = new_case(service, "found")
    again = service.enroll_photo(second.id, sample("biden.jpg"), actor=ACTOR)
    assert second.id > first.id
    assert again.photo.id > enrolled.photo.id and again.faces[0].id > enrolled.faces[0].id


def test_a_reopened_case_is_matched_again(service, sample):
    missing = new_case(service, "missing")
    service.enroll_photo(missing.id, sample("obama.jpg"), actor=ACTOR)
    service.update_case(missing.id, {"status": "closed"}, actor=ACTOR)
    found = new_case(service, "found")
    assert service.enroll_photo(found.id, sample("obama2.jpg"), actor=ACTOR).new_candidates == []
    service.update_case(missing.id, {"status": "open"}, actor=ACTOR)
    [view] = service.candidates(found.id)
    assert (view.candidate.missing_case_id, view.candidate.status) == (missing.id, "pending")


def test_the_same_photo_with_another_face_is_a_conflict(service, sample):
    case = new_case(service, "found")
    first = service.enroll_photo(case.id, sample("two_people.jpg"), actor=ACTOR, face_index=0)
    assert not service.enroll_photo(case.id, sample("two_people.jpg"), actor=ACTOR).created
    same = service.enroll_photo(case.id, sample("two_people.jpg"), actor=ACTOR, face_index=0)
    assert not same.created and same.photo.id == first.photo.id
    with pytest.raises(errors.Conflict):
        service.enroll_photo(case.id, sample("two_people.jpg"), actor=ACTOR, face_index=1)


@pytest.mark.parametrize("taken_on", ["1850-01-01", "2999-01-01"])
def test_implausible_photo_dates_are_refused(service, sample, taken_on):
    from datetime import date

    case = new_case(service, "missing")
    with pytest.raises(errors.InvalidField, match="taken_on"):
        service.enroll_photo(
            case.id, sample("obama.jpg"), actor=ACTOR, taken_on=date.fromisoformat(taken_on)
        )
    assert service.photos(case.id) == []


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


def test_racing_creates_of_one_external_ref_make_one_case(service):
    from concurrent.futures import ThreadPoolExecutor

    def create(_: int) -> str:
        try:
            new_case(service, "missing", agency="SH-PSB", external_ref="RACE-1")
            return "created"
        except errors.Conflict:
            return "conflict"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(create, range(32)))
    assert outcomes.count("created") == 1 and outcomes.count("conflict") == 31


def test_searching_while_cases_are_deleted_never_fails(service, sample):
    from concurrent.futures import ThreadPoolExecutor

    cases = [new_case(service, "missing") for _ in range(12)]
    for case in cases:
        service.enroll_photo(case.id, sample("obama.jpg"), actor=ACTOR)
    with ThreadPoolExecutor(4) as pool:
        searches = [
            pool.submit(service.search_photo, sample("obama2.jpg"), actor=ACTOR) for _ in range(12)
        ]
        deletes = [
            pool.submit(service.delete_case, c.id, actor=ACTOR, reason="duplicate") for c in cases
        ]
        for future in searches + deletes:
            future.result()  # raises if any of them failed
    assert service.index.count() == 0


def test_cross_age_pairs_are_kept_up_to_the_wider_tolerance(tmp_path, finder, sample):
    from datetime import date

    # Same-age tolerance 0.3 would drop obama/obama2 (0.35); 0.5 is allowed across 10+ years.
    settings = settings_in(tmp_path, tolerance=0.3, cross_age_tolerance=0.5)
    with Reunite.open(settings, finder=finder) as service:
        child = new_case(service, "missing", birth_date="1961-08-04")
        service.enroll_photo(child.id, sample("obama.jpg"), actor=ACTOR, taken_on=date(1971, 6, 1))
        adult = new_case(service, "found", birth_year_min=1955, birth_year_max=1965)
        [view] = service.enroll_photo(
            adult.id, sample("obama2.jpg"), actor=ACTOR, taken_on=date(2024, 3, 5)
        ).new_candidates
        assert view.candidate.distance > 0.3
        assert [f.code for f in view.flags] == ["photo_age_gap"]
        assert view.flags[0].facts["gap_years"] == 49  # aged 10 in 1971; 59-69 in 2024
        undated = new_case(service, "found", birth_year_min=1955, birth_year_max=1965)
        assert (
            service.enroll_photo(undated.id, sample("obama3.jpg"), actor=ACTOR).new_candidates == []
        )


def test_a_large_kind_gets_an_approximate_index_that_survives_a_restart(tmp_path, finder, caplog):
    from reunite.faces import MODEL_NAME
    from reunite.index import read_manifest
    from reunite.store import Face as FaceRow
    from reunite.store import Photo, embedding_bytes
    from tests.test_index import clustered_faces

    settings = settings_in(tmp_path, approximate_min_faces=10_000)
    vectors = clustered_faces(4000, 5, seed=7)
    with Reunite.open(settings, finder=finder) as service:
        case = new_case(service, "missing")
        with service.store.transaction() as session:
            photo = Photo(
                case_id=case.id, sha256="0" * 64, format="JPEG", width=1, height=1, byte_size=1
            )
            session.add(photo)
            session.flush()
            session.add_all(
                FaceRow(
                    photo_id=photo.id,
                    case_id=case.id,
                    kind="missing",
                    top=0,
                    right=1,
                    bottom=1,
                    left=0,
                    embedding=embedding_bytes(vector),
                    model=MODEL_NAME,
                    pipeline="synthetic",
                    face_width_px=1,
                    sharpness=0.0,
                )
                for vector in vectors
            )
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


def test_face_crops_are_kept_and_go_with_their_case(service, sample, settings):
    case = new_case(service, "missing")
    face = service.enroll_photo(case.id, sample("obama.jpg"), actor=ACTOR).faces[0]
    first = service.face_crop(face.id, actor=ACTOR)
    kept = settings.data_dir / "crops" / f"{face.id}.jpg"
    assert kept.read_bytes() == first == service.face_crop(face.id, actor=ACTOR)
    service.delete_case(case.id, actor=ACTOR, reason="entered_in_error")
    assert not kept.exists()


# ------------------------------------------------------- several processes sharing one store


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
