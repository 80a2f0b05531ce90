"""Photos: face crops are cached and go with their case."""

from tests.conftest import ACTOR, new_case


def test_face_crops_are_kept_and_go_with_their_case(service, sample, settings):
    case = new_case(service, "missing")
    face = service.enroll_photo(case.id, sample("obama.jpg"), actor=ACTOR).faces[0]
    first = service.face_crop(face.id, actor=ACTOR)
    kept = settings.data_dir / "crops" / f"{face.id}.jpg"
    assert kept.read_bytes() == first == service.face_crop(face.id, actor=ACTOR)
    service.delete_case(case.id, actor=ACTOR, reason="entered_in_error")
    assert not kept.exists()
