"""Candidates: proposals between the two kinds, closer faces, closed and reopened cases and
cross-age pairs (real photos, real dlib)."""

import pytest

from reunite.service import Reunite
from tests.conftest import ACTOR, new_case, settings_in


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


def test_a_different_person_is_not_a_candidate(service, sample):
    missing = new_case(service, "missing")
    service.enroll_photo(missing.id, sample("obama.jpg"), actor=ACTOR)
    found = new_case(service, "found")
    assert service.enroll_photo(found.id, sample("biden.jpg"), actor=ACTOR).new_candidates == []


def test_closed_cases_get_no_new_candidates(service, sample):
    missing = new_case(service, "missing")
    service.enroll_photo(missing.id, sample("obama.jpg"), actor=ACTOR)
    service.update_case(missing.id, {"status": "closed"}, actor=ACTOR)
    found = new_case(service, "found")
    assert service.enroll_photo(found.id, sample("obama2.jpg"), actor=ACTOR).new_candidates == []


def test_a_reopened_case_is_matched_again(service, sample):
    missing = new_case(service, "missing")
    service.enroll_photo(missing.id, sample("obama.jpg"), actor=ACTOR)
    service.update_case(missing.id, {"status": "closed"}, actor=ACTOR)
    found = new_case(service, "found")
    assert service.enroll_photo(found.id, sample("obama2.jpg"), actor=ACTOR).new_candidates == []
    service.update_case(missing.id, {"status": "open"}, actor=ACTOR)
    [view] = service.candidates(found.id)
    assert (view.candidate.missing_case_id, view.candidate.status) == (missing.id, "pending")


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
        # A missing case's undated photo counts as taken on the date missing.
        lost = new_case(service, "missing", birth_date="1961-08-04", date_missing="1971-06-01")
        views = service.enroll_photo(lost.id, sample("obama.jpg"), actor=ACTOR).new_candidates
        [view] = [v for v in views if v.candidate.found_case_id == adult.id]
        assert view.candidate.distance > 0.3
        assert [f.code for f in view.flags] == ["photo_age_gap"]
        assert view.flags[0].facts["missing_photo_age"] == [10, 10]
        # Two people of different ages are no cross-age pair: born 1990, found aged 59-69.
        younger = new_case(service, "missing", birth_date="1990-01-01")
        enrollment = service.enroll_photo(
            younger.id, sample("obama.jpg"), actor=ACTOR, taken_on=date(2000, 6, 1)
        )
        assert adult.id not in [v.candidate.found_case_id for v in enrollment.new_candidates]


def test_a_candidate_whose_facts_contradict_is_listed_below_the_others_and_still_shown(
    service, sample
):
    found = new_case(service, "found", sex="male")
    service.enroll_photo(found.id, sample("obama2.jpg"), actor=ACTOR)
    missing = [new_case(service, "missing", sex="male") for _ in range(2)]
    service.enroll_photo(missing[0].id, sample("obama.jpg"), actor=ACTOR)
    service.enroll_photo(missing[1].id, sample("obama3.jpg"), actor=ACTOR)
    by_distance = [v.candidate.missing_case_id for v in service.candidates(found.id)]
    assert sorted(by_distance) == sorted(m.id for m in missing)
    nearer = by_distance[0]
    service.update_case(nearer, {"sex": "female"}, actor=ACTOR)
    listed = service.candidates(found.id)
    assert [v.candidate.missing_case_id for v in listed] == by_distance[::-1]
    assert [f.code for f in listed[1].flags] == ["sex_differs"]
    assert listed[1].candidate.distance < listed[0].candidate.distance


def test_a_new_case_is_matched_by_todays_rules_when_its_first_face_is_enrolled(service, sample):
    from reunite.store import CaseRow

    case = new_case(service, "missing")
    service.enroll_photo(case.id, sample("obama.jpg"), actor=ACTOR)
    with service.store.transaction() as session:
        row = session.get_one(CaseRow, case.id)
        assert row.matched_by_rules == service.rules_version
        assert row.updated_at == case.updated_at  # bookkeeping: case sync clients see no change
        row.matched_by_rules = None  # as if matched before the rules were recorded
    service.enroll_photo(case.id, sample("obama2.jpg"), actor=ACTOR)
    with service.store.transaction() as session:
        row = session.get_one(CaseRow, case.id)
        assert row.matched_by_rules is None  # its first face was matched by other rules
    other = new_case(service, "found")
    service.enroll_photo(other.id, sample("biden.jpg"), actor=ACTOR)
    with service.store.transaction() as session:
        row = session.get_one(CaseRow, other.id)
        assert row.matched_by_rules == service.rules_version


def test_candidates_no_longer_proposed_are_flagged_and_listed_last_across_pages(service, sample):
    from reunite.store import CandidateRow, utc_now

    missing = [new_case(service, "missing") for _ in range(2)]
    service.enroll_photo(missing[0].id, sample("obama.jpg"), actor=ACTOR)
    service.enroll_photo(missing[1].id, sample("obama3.jpg"), actor=ACTOR)
    found = new_case(service, "found")
    service.enroll_photo(found.id, sample("obama2.jpg"), actor=ACTOR)
    other = new_case(service, "found")
    service.enroll_photo(other.id, sample("obama.jpg"), actor=ACTOR)
    whole = service.candidate_queue(status="pending").items
    assert len(whole) == 4
    nearest = whole[0].candidate
    with service.store.transaction() as session:  # as `reunite rematch` leaves it
        session.get_one(CandidateRow, nearest.id).superseded_at = utc_now()
    reordered = service.candidate_queue(status="pending").items
    assert [v.candidate.id for v in reordered] == [v.candidate.id for v in whole[1:]] + [nearest.id]
    since = reordered[-1].candidate.superseded_at
    assert [(f.code, f.facts) for f in reordered[-1].flags] == [
        ("no_longer_proposed", {"since": since.isoformat()})
    ]
    assert all(not v.flags for v in reordered[:-1])
    owner = service.candidates(nearest.found_case_id)  # and last in its case's list
    assert len(owner) == 2 and owner[-1].candidate.id == nearest.id
    for limit in (1, 2, 3):
        seen, after = [], None
        while True:
            page = service.candidate_queue(status="pending", limit=limit, after=after)
            seen += [v.candidate.id for v in page.items]
            if page.next_after is None:
                break
            after = page.next_after
        assert seen == [v.candidate.id for v in reordered], limit
    # Decided, it is no longer flagged (the flag is about what waits for review).
    service.decide(nearest.id, "rejected", actor=ACTOR, role="admin")
    assert service.candidate(nearest.id).flags == []
