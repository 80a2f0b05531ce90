"""Normalised scores: each candidate's distance against its search's cohort (real LFW photos,
real dlib, real FAISS), the ``min_score`` rule, and what the shown similarity is made of."""

from pathlib import Path

import numpy as np
import pytest

from reunite.errors import InvalidInput
from reunite.matching import MIN_COHORT_SIZE
from reunite.rematching import rematch_cases
from reunite.service import Reunite
from reunite.store import CandidateRow, CaseRow
from tests.conftest import ACTOR, MemoFinder, new_case, settings_in

GALLERY_SIZE = 40  # single-photo LFW people, first by name: more than MIN_COHORT_SIZE


def lfw_gallery(faces_dir: Path) -> list[Path]:
    people = sorted(p for p in (faces_dir / "lfw").iterdir() if p.is_dir())
    singles = [p for p in people if len(list(p.glob("*.jpg"))) == 1]
    return [next(p.glob("*.jpg")) for p in singles[: GALLERY_SIZE + 10]]


def enrolled_gallery(service: Reunite, faces_dir: Path) -> dict[int, np.ndarray]:
    """Missing cases of ``GALLERY_SIZE`` LFW people and Jiang Zemin's first photo: case id ->
    the embedding of its one face."""
    embeddings: dict[int, np.ndarray] = {}
    photos = [*lfw_gallery(faces_dir), faces_dir / "lfw/Jiang_Zemin/Jiang_Zemin_0001.jpg"]
    for photo in photos:
        if len(embeddings) == GALLERY_SIZE and "Jiang" not in photo.name:
            continue
        case = new_case(service, "missing")
        try:
            enrollment = service.enroll_photo(case.id, photo.read_bytes(), actor=ACTOR)
        except InvalidInput:  # a photo with several faces: leave its case empty
            continue
        embeddings[case.id] = enrollment.faces[0].vector
    assert len(embeddings) == GALLERY_SIZE + 1 >= MIN_COHORT_SIZE
    return embeddings


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_candidate_carries_its_score_in_its_search_and_its_rank(service, faces_dir):
    gallery = enrolled_gallery(service, faces_dir)
    found = new_case(service, "found")
    photo = (faces_dir / "lfw/Jiang_Zemin/Jiang_Zemin_0002.jpg").read_bytes()
    enrollment = service.enroll_photo(found.id, photo, actor=ACTOR)
    probe = enrollment.faces[0].vector
    [view] = service.candidates(found.id)
    candidate = view.candidate
    jiang = max(gallery)
    assert candidate.missing_case_id == jiang and candidate.rank == 1

    distances = np.array([np.linalg.norm(e - probe) for e in gallery.values()])
    expected = (distances.mean() - distances.min()) / distances.std()
    assert candidate.score == pytest.approx(expected, abs=1e-3)
    assert candidate.distance == pytest.approx(distances.min(), abs=1e-4)
    assert candidate.score >= service.settings.min_score
    assert view.similarity == pytest.approx(service.similarity(candidate.distance, candidate.score))
    assert view.similarity_basis == "search"  # a cohort of the gallery: the search fit

    # A candidate proposed before scores existed gets its score from `reunite rematch`.
    with service.store.transaction() as session:
        session.get_one(CandidateRow, candidate.id).score = None
        session.get_one(CandidateRow, candidate.id).rank = None
        session.get_one(CaseRow, found.id).matched_by_rules = None
    assert rematch_cases(service.candidate_records).candidates_proposed == 0
    [again] = service.candidates(found.id)
    assert again.candidate.id == candidate.id and again.candidate.rank == 1
    assert again.candidate.score == pytest.approx(expected, abs=1e-3)


def test_min_score_keeps_out_what_does_not_stand_out_and_no_cohort_means_no_score(
    tmp_path, faces_dir, finder: MemoFinder
):
    photo = (faces_dir / "lfw/Jiang_Zemin/Jiang_Zemin_0002.jpg").read_bytes()
    strict = settings_in(tmp_path / "strict", min_score=15.0)
    with Reunite.open(strict, finder=finder) as service:
        enrolled_gallery(service, faces_dir)
        found = new_case(service, "found")
        assert service.enroll_photo(found.id, photo, actor=ACTOR).new_candidates == []

    no_cohort = settings_in(tmp_path / "off", min_score=15.0, cohort_size=0)
    with Reunite.open(no_cohort, finder=finder) as service:
        enrolled_gallery(service, faces_dir)
        found = new_case(service, "found")
        [view] = service.enroll_photo(found.id, photo, actor=ACTOR).new_candidates
        assert view.candidate.score is None and view.candidate.rank == 1
        assert view.similarity == pytest.approx(service.similarity(view.candidate.distance))
        assert view.similarity_basis == "pair"


def test_a_cross_age_pair_needs_no_score(tmp_path, faces_dir, finder: MemoFinder):
    from datetime import date

    photo = (faces_dir / "lfw/Jiang_Zemin/Jiang_Zemin_0002.jpg").read_bytes()
    strict = settings_in(tmp_path, min_score=15.0)  # no same-age pair stands out that far
    with Reunite.open(strict, finder=finder) as service:
        jiang = max(enrolled_gallery(service, faces_dir))
        # His missing case's photo is undated: it counts as taken on the date missing, 1985.
        service.update_case(
            jiang, {"birth_date": "1926-08-17", "date_missing": "1985-01-01"}, actor=ACTOR
        )
        found = new_case(service, "found", birth_year_min=1920, birth_year_max=1930)
        enrollment = service.enroll_photo(found.id, photo, actor=ACTOR, taken_on=date(2002, 1, 1))
        [view] = enrollment.new_candidates
        assert view.candidate.missing_case_id == jiang
        assert view.candidate.score is not None and view.candidate.score < 15.0
        assert "photo_age_gap" in [f.code for f in view.flags]
        # One scale for the whole list: read as any candidate, it reads low (a weaker face
        # match across the years), flagged photo_age_gap.
        assert view.similarity == pytest.approx(
            service.similarity(view.candidate.distance, view.candidate.score)
        )
        assert view.similarity < service.similarity(view.candidate.distance)
        # Facts that contradict (born 1980: a child in 1985, not 72 in 2002) widen nothing.
        service.update_case(jiang, {"birth_date": "1980-01-01"}, actor=ACTOR)
        other = new_case(service, "found", birth_year_min=1920, birth_year_max=1930)
        assert (
            service.enroll_photo(
                other.id, photo, actor=ACTOR, taken_on=date(2002, 1, 1)
            ).new_candidates
            == []
        )
