"""Erasure: a deleted case leaves search, and its ids are never reused."""

import pytest

from reunite import errors
from tests.conftest import ACTOR, new_case


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


def test_ids_are_never_reused_after_a_delete(service, sample):
    first = new_case(service, "missing")
    enrolled = service.enroll_photo(first.id, sample("obama.jpg"), actor=ACTOR)
    service.delete_case(first.id, actor=ACTOR, reason="entered_in_error")
    second = new_case(service, "found")
    again = service.enroll_photo(second.id, sample("biden.jpg"), actor=ACTOR)
    assert second.id > first.id
    assert again.photo.id > enrolled.photo.id and again.faces[0].id > enrolled.faces[0].id


def test_a_start_drops_cached_crops_of_faces_erased_meanwhile(service, sample, settings, finder):
    from reunite.service import Reunite

    case = new_case(service, "missing")
    [face] = service.enroll_photo(case.id, sample("obama.jpg"), actor=ACTOR).faces
    service.face_crop(face.id, actor=ACTOR)
    crops = settings.data_dir / "crops"
    kept = crops / f"{face.id}.jpg"
    gone = crops / f"{face.id + 1000}.jpg"  # a crop cached of a face erased elsewhere
    gone.write_bytes(kept.read_bytes())
    with Reunite.open(settings, finder=finder):
        assert kept.is_file() and not gone.exists()
