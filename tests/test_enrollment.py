"""Enrollment: one face per photo, re-enrolling, photo dates (real photos, real dlib)."""

import numpy as np
import pytest

from reunite import errors
from reunite.enrollment import prepared_photo
from reunite.faces import Box, Pipeline, central_index, largest_index
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


def prepared(finder, data, **choice):
    return prepared_photo(
        data, finder=finder, pipeline=Pipeline(), max_bytes=10**8, max_pixels=10**8, **choice
    )


def test_the_largest_and_the_central_face_follow_the_boxes():
    # (top, right, bottom, left): a large face at the left edge, a small one in the middle.
    boxes = [Box(0, 300, 300, 0), Box(450, 550, 550, 450)]
    assert largest_index(boxes) == 0
    assert central_index(np.array(boxes, dtype=float), (1000, 1000)) == 1
    assert largest_index([]) is None and central_index(np.zeros((0, 4)), (10, 10)) is None


@pytest.mark.parametrize("choice", ["largest", "central"])
def test_a_batch_may_take_the_largest_or_the_central_face(finder, sample, faces_dir, choice):
    # Two people of one size (the left one nearer the centre); Biden, Obama and a third face
    # (Biden's the largest and nearest); an LFW portrait with a second face at its edge.
    lfw = faces_dir / "lfw" / "Abdel_Aziz_Al-Hakim" / "Abdel_Aziz_Al-Hakim_0001.jpg"
    for data in (sample("two_people.jpg"), sample("obama_and_biden.jpg"), lfw.read_bytes()):
        with pytest.raises(errors.MultipleFaces):
            prepared(finder, data)
        photo = prepared(finder, data, face_choice=choice)
        boxes = [f.box for f in finder(photo.image.pixels, Pipeline())]
        assert len(boxes) > 1 and photo.face.box == boxes[0]
        assert photo.face_choice == choice
    assert photo.face.box.left < 125 < photo.face.box.right  # the portrait's subject
    # One face, or a person's choice (face_index): nothing chosen automatically.
    assert prepared(finder, sample("obama.jpg"), face_choice=choice).face_choice is None
    by_index = prepared(finder, sample("two_people.jpg"), face_index=1, face_choice=choice)
    assert by_index.face_choice is None and by_index.face.box == boxes_of(finder, sample)[1]
    with pytest.raises(errors.InvalidField, match="must be one of refuse, largest, central"):
        prepared(finder, sample("two_people.jpg"), face_choice="first")


def boxes_of(finder, sample):
    photo = prepared(finder, sample("two_people.jpg"), face_index=0)
    return [f.box for f in finder(photo.image.pixels, Pipeline())]
