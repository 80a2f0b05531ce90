"""Case records: validated facts and unique external references."""

import pytest

from reunite import errors
from tests.conftest import new_case


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
