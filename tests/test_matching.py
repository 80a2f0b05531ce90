"""Case scoring (unit), and by template and closest face on real photos."""

import numpy as np
import pytest

from reunite.calibration import linear_similarity as similarity
from reunite.index import FaceIndex
from reunite.matching import best_per_case, nearest_cases, other_kind
from reunite.service import Reunite
from tests.conftest import ACTOR, new_case, settings_in


def test_other_kind_pairs_missing_with_found():
    assert other_kind("missing") == "found" and other_kind("found") == "missing"


def test_a_case_scores_by_its_closest_face_and_cases_are_ranked():
    hits = [(11, 0.20), (12, 0.25), (21, 0.30), (13, 0.31), (31, 0.55), (41, 0.65)]
    case_of = {11: 1, 12: 1, 13: 1, 21: 2, 31: 3, 41: 4}
    ranked = best_per_case(hits, case_of, k=10, tolerance=0.6)
    assert [(m.case_id, m.face_id, m.distance) for m in ranked] == [
        (1, 11, 0.20),
        (2, 21, 0.30),
        (3, 31, 0.55),
    ]
    assert [m.case_id for m in best_per_case(hits, case_of, k=2, tolerance=0.6)] == [1, 2]


def test_faces_without_an_eligible_case_are_skipped():
    ranked = best_per_case([(1, 0.1), (2, 0.2)], {2: 7}, k=5, tolerance=0.6)
    assert [(m.case_id, m.face_id) for m in ranked] == [(7, 2)]


def test_nearest_cases_widens_the_search_when_one_case_owns_the_nearest_faces():
    rng = np.random.default_rng(0)
    probe = rng.normal(0, 0.09, 128).astype(np.float32)
    index = FaceIndex("m")
    # Case 1 owns 100 faces very near the probe; cases 2 and 3 have one face each, a bit farther.
    near = probe + rng.normal(0, 0.001, (100, 128)).astype(np.float32)
    index.add("found", range(1, 101), near)
    index.add("found", [500, 600], np.vstack([probe + 0.02, probe + 0.03]))
    case_of = {i: 1 for i in range(1, 101)} | {500: 2, 600: 3}
    searches = []

    def search(n):
        searches.append(n)
        return index.search("found", probe, n)

    ranked = nearest_cases(search, lambda ids: {i: case_of[i] for i in ids}, k=3, tolerance=0.6)
    assert [m.case_id for m in ranked] == [1, 2, 3]
    assert searches == [12, 48, 192]


def test_linear_similarity_formula():
    assert similarity(0.0) == 1.0
    assert similarity(0.6) == 0.5
    assert similarity(1.2) == 0.0 and similarity(2.0) == 0.0


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


def test_the_rules_version_names_every_matching_setting_and_the_calibration(tmp_path):
    from reunite.config import Settings
    from reunite.matching import MATCHING_SETTINGS, rules_version

    base = Settings(data_dir=tmp_path)
    today = rules_version(base, "none")
    assert len(today) == 16 and today == rules_version(Settings(data_dir=tmp_path), "none")
    assert rules_version(base, "ab" * 32) != today
    changed = {
        "tolerance": 0.5,
        "cross_age_tolerance": 0.8,
        "photo_age_gap_years": 12,
        "top_k": 5,
        "case_scoring": "closest",
        "cohort_size": 50,
        "min_score": 1.0,
        "age_margin_years": 3,
        "found_before_missing_days": 90,
    }
    assert set(changed) == set(MATCHING_SETTINGS)
    for name, value in changed.items():
        other = Settings(data_dir=tmp_path, **{name: value})
        assert rules_version(other, "none") != today, name
    assert rules_version(Settings(data_dir=tmp_path, max_pixels=10**6), "none") == today


def test_the_calibration_fingerprint_is_the_files_hash_or_none(tmp_path):
    import hashlib

    from reunite.calibration import calibration_fingerprint

    path = tmp_path / "calibration.json"
    assert calibration_fingerprint(path) == "none"
    path.write_bytes(b"{}")
    assert calibration_fingerprint(path) == hashlib.sha256(b"{}").hexdigest()
