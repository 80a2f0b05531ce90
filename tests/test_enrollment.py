"""Enrollment: one face per photo, re-enrolling, photo dates (real photos, real dlib)."""

import pytest

from reunite import errors
from tests.conftest import ACTOR, new_case


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
