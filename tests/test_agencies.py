"""The agencies an admin keeps (``reunite.agencies``): codes by the cases' own rule, audited."""

import pytest

from reunite import agencies
from reunite.errors import Conflict, InvalidField, NotFound

ACTOR = "user:admin1"


def test_agencies_are_kept_renamed_retired_and_audited(service):
    store = service.store
    agencies.add_agency(store, " SH-RESCUE-01 ", "上海市救助管理站", actor=ACTOR)
    agencies.add_agency(store, "BJ.01", "北京救助站", actor=ACTOR)
    agencies.rename_agency(store, "BJ.01", "北京市救助管理站", actor=ACTOR)
    agencies.retire_agency(store, "SH-RESCUE-01", actor=ACTOR)
    rows = agencies.agencies(store)
    assert [(r.code, r.name, r.retired) for r in rows] == [
        ("BJ.01", "北京市救助管理站", False),
        ("SH-RESCUE-01", "上海市救助管理站", True),
    ]
    assert agencies.active_codes(store) == {"BJ.01"}
    agencies.retire_agency(store, "SH-RESCUE-01", actor=ACTOR, retired=False)
    assert agencies.active_codes(store) == {"BJ.01", "SH-RESCUE-01"}
    events = [e for e in service.audit_events(actor=ACTOR) if e.action.startswith("agency.")]
    assert sorted(e.action for e in events) == sorted(
        ["agency.add", "agency.add", "agency.rename", "agency.retire", "agency.restore"]
    )
    assert all("救助" not in str(e.details) for e in events)  # codes only, never names


@pytest.mark.parametrize("code", ["SH RESCUE", "", "上海", "a" * 65, "x/y", "a\x00b"])
def test_a_code_a_case_could_not_carry_is_refused(service, code):
    with pytest.raises(InvalidField, match="no spaces"):
        agencies.add_agency(service.store, code, "Name", actor=ACTOR)
    assert agencies.agencies(service.store) == []


def test_names_duplicates_and_unknown_codes_are_refused(service):
    store = service.store
    with pytest.raises(InvalidField):
        agencies.add_agency(store, "SH", "   ", actor=ACTOR)
    with pytest.raises(InvalidField):
        agencies.add_agency(store, "SH", "x" * 201, actor=ACTOR)
    agencies.add_agency(store, "SH", "上海", actor=ACTOR)
    with pytest.raises(Conflict):
        agencies.add_agency(store, "SH", "上海二", actor=ACTOR)
    with pytest.raises(NotFound):
        agencies.rename_agency(store, "NOPE", "x", actor=ACTOR)
    with pytest.raises(NotFound):
        agencies.retire_agency(store, "NOPE", actor=ACTOR)
