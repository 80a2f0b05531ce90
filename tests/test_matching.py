import numpy as np

from reunite.calibration import linear_similarity as similarity
from reunite.index import FaceIndex
from reunite.matching import best_per_case, nearest_cases, other_kind


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
