"""Review rules: every candidate transition for every role, and the consistency flags."""

from datetime import date

import pytest

from reunite import errors
from reunite.review import (
    CANDIDATE_TRANSITIONS,
    check_candidate_transition,
    check_case_transition,
    consistency_flags,
    photo_date,
)
from reunite.store import CaseRow

STATUSES = ("pending", "confirmed", "rejected")

# (from, to, role) -> the error class, or None when allowed. Written out in full on purpose.
EXPECTED = {
    ("pending", "pending", "staff"): errors.Conflict,
    ("pending", "pending", "admin"): errors.Conflict,
    ("pending", "confirmed", "staff"): None,
    ("pending", "confirmed", "admin"): None,
    ("pending", "rejected", "staff"): None,
    ("pending", "rejected", "admin"): None,
    ("confirmed", "pending", "staff"): errors.Forbidden,
    ("confirmed", "pending", "admin"): None,
    ("confirmed", "confirmed", "staff"): errors.Conflict,
    ("confirmed", "confirmed", "admin"): errors.Conflict,
    ("confirmed", "rejected", "staff"): errors.Conflict,
    ("confirmed", "rejected", "admin"): errors.Conflict,
    ("rejected", "pending", "staff"): errors.Forbidden,
    ("rejected", "pending", "admin"): None,
    ("rejected", "confirmed", "staff"): errors.Conflict,
    ("rejected", "confirmed", "admin"): errors.Conflict,
    ("rejected", "rejected", "staff"): errors.Conflict,
    ("rejected", "rejected", "admin"): errors.Conflict,
}


@pytest.mark.parametrize(("current", "target", "role"), sorted(EXPECTED))
def test_candidate_transitions(current, target, role):
    expected = EXPECTED[(current, target, role)]
    if expected is None:
        check_candidate_transition(current, target, role=role, note="a reason")
    else:
        with pytest.raises(expected):
            check_candidate_transition(current, target, role=role, note="a reason")


def test_the_table_covers_every_allowed_transition():
    allowed = {(f, t) for (f, t, _), error in EXPECTED.items() if error is None}
    assert allowed == set(CANDIDATE_TRANSITIONS)


def test_reopening_needs_a_reason():
    with pytest.raises(errors.InvalidField, match="reason"):
        check_candidate_transition("rejected", "pending", role="admin", note="  ")


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        ("open", "closed", True),
        ("open", "matched", False),
        ("matched", "closed", True),
        ("matched", "open", False),
        ("closed", "open", True),
        ("closed", "matched", False),
        ("open", "open", True),
    ],
)
def test_case_transitions(current, target, allowed):
    if allowed:
        check_case_transition(current, target)
    else:
        with pytest.raises(errors.Conflict):
            check_case_transition(current, target)


def case(kind, **facts):
    return CaseRow(kind=kind, sex=facts.pop("sex", "unknown"), status="open", **facts)


def codes(found, missing, taken_on=None):
    return [
        f.code
        for f in consistency_flags(
            found,
            missing,
            found_photo_taken_on=taken_on,
            age_margin_years=5,
            found_before_missing_days=30,
        )
    ]


def test_no_facts_no_flags():
    assert codes(case("found"), case("missing")) == []


def test_sex_differs_only_when_both_are_known():
    assert codes(case("found", sex="female"), case("missing", sex="male")) == ["sex_differs"]
    assert codes(case("found", sex="female"), case("missing", sex="unknown")) == []
    assert codes(case("found", sex="male"), case("missing", sex="male")) == []


def test_age_is_compared_on_the_found_photo_date():
    # Born 1990; found looking 60-70 in 2024: 34 against 60-70 is implausible.
    found = case("found", birth_year_min=1954, birth_year_max=1964, date_found=date(2024, 3, 5))
    missing = case("missing", birth_date=date(1990, 6, 1))
    [flag] = consistency_flags(
        found, missing, found_photo_taken_on=None, age_margin_years=5, found_before_missing_days=30
    )
    assert flag.code == "age_implausible"
    assert flag.facts == {
        "on": "2024-03-05",
        "missing_age": [34, 34],
        "apparent_age": [60, 70],
        "gap_years": 26,
    }
    # A child missing since 2000, born 1995, found 2024 looking 25-35: plausible (the photos,
    # undated, count as taken on the dates missing and found: 20 years apart in age).
    adult = case("found", birth_year_min=1989, birth_year_max=1999, date_found=date(2024, 1, 1))
    child = case("missing", birth_date=date(1995, 1, 1), date_missing=date(2000, 1, 1))
    assert codes(adult, child) == ["photo_age_gap"]
    # Within the margin (5 years) is not flagged; 6 years is.
    near = case("found", birth_year_min=1982, birth_year_max=1986, date_found=date(2024, 1, 1))
    assert codes(near, case("missing", birth_date=date(1991, 1, 1))) == []
    assert codes(near, case("missing", birth_date=date(1992, 1, 1))) == ["age_implausible"]
    # Ages are stated on the found photo's date when it is known.
    [flag] = consistency_flags(
        found,
        missing,
        found_photo_taken_on=date(2023, 3, 5),
        age_margin_years=5,
        found_before_missing_days=30,
    )
    assert flag.facts["on"] == "2023-03-05" and flag.facts["missing_age"] == [33, 33]


def test_found_long_before_reported_missing_is_flagged():
    found = case("found", date_found=date(2024, 1, 1))
    assert codes(found, case("missing", date_missing=date(2024, 3, 1))) == ["found_before_missing"]
    assert codes(found, case("missing", date_missing=date(2024, 1, 20))) == []
    assert codes(found, case("missing", date_missing=date(2023, 1, 1))) == []


def test_an_undated_photo_counts_as_taken_on_the_date_found_or_missing():
    found = case("found", date_found=date(2024, 1, 1), date_missing=date(1999, 1, 1))
    missing = case("missing", date_found=date(2024, 1, 1), date_missing=date(2000, 1, 1))
    assert photo_date(found, None) == date(2024, 1, 1)
    assert photo_date(missing, None) == date(2000, 1, 1)
    assert photo_date(missing, date(2001, 5, 6)) == date(2001, 5, 6)
    assert photo_date(case("missing"), None) is None


def test_the_photo_age_gap_uses_the_missing_photo_date_else_the_date_missing():
    adult = case("found", birth_year_min=1989, birth_year_max=1991, date_found=date(2024, 1, 1))
    child = case("missing", birth_date=date(1990, 1, 1), date_missing=date(2000, 1, 1))

    def gap_flags(missing, missing_on=None):
        flags = consistency_flags(
            adult,
            missing,
            found_photo_taken_on=None,
            age_margin_years=5,
            found_before_missing_days=30,
            missing_photo_taken_on=missing_on,
        )
        return [f.facts for f in flags if f.code == "photo_age_gap"]

    # Aged 10 on the date missing, 33-35 when found.
    assert gap_flags(child) == [
        {"missing_photo_age": [10, 10], "found_photo_age": [33, 35], "gap_years": 23}
    ]
    assert gap_flags(child, date(2020, 1, 1)) == []  # aged 30 in a recent photo: no gap
    # Neither a photo date nor a date missing: no age in the photo, no flag.
    assert gap_flags(case("missing", birth_date=date(1990, 1, 1))) == []
