"""Undo: a person takes back their own confirm or reject within the undo window, and
everything the decision changed is put back exactly; every other undo is refused, saying why."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from reunite import audit
from reunite.errors import NotFound, UndoRefused
from reunite.service import Reunite
from reunite.store import CandidateDecisionRow, CandidateRow, CaseRow, OutboxEventRow
from reunite.webhooks import register_webhook
from tests.conftest import settings_in

STAFF = "user:staff1"
OTHER = "user:staff2"


@pytest.fixture
def pair(service: Reunite, sample):  # type: ignore[no-untyped-def]
    """A missing case (of agency SH-PSB, with a webhook) and two found cases proposed as that
    person: (missing id, [(found id, candidate id)])."""
    with service.store.transaction() as session:
        register_webhook(session, "SH-PSB", "https://example.org/hook")
    missing = service.create_case({"kind": "missing", "agency": "SH-PSB"}, actor="t")
    service.enroll_photo(missing.id, sample("obama.jpg"), actor="t")
    pairs = []
    for photo in ("obama2.jpg", "obama3.jpg"):
        found = service.create_case({"kind": "found"}, actor="t")
        [view] = service.enroll_photo(found.id, sample(photo), actor="t").new_candidates
        pairs.append((found.id, view.candidate.id))
    return missing.id, pairs


def state(service: Reunite) -> dict[str, dict[int, str]]:
    """Every candidate's and every case's status."""
    with service.store.transaction() as session:
        return {
            "candidates": dict(session.execute(select(CandidateRow.id, CandidateRow.status)).all()),
            "cases": dict(session.execute(select(CaseRow.id, CaseRow.status)).all()),
        }


def last_decision_id(service: Reunite, candidate_id: int) -> int:
    return service.candidate(candidate_id).decisions[-1].id


def decided(service: Reunite, candidate_id: int, status: str, actor: str = STAFF) -> int:
    """Decide as ``actor`` (staff); the decision's id."""
    service.decide(candidate_id, status, actor=actor, role="staff")
    return last_decision_id(service, candidate_id)


def made_earlier(service: Reunite, decision_id: int, *, seconds: int) -> None:
    """Move a decision's time back by ``seconds``."""
    with service.store.transaction() as session:
        row = session.get(CandidateDecisionRow, decision_id)
        assert row is not None
        row.at = row.at - timedelta(seconds=seconds)


def refusal(service: Reunite, candidate_id: int, decision_id: int, actor: str = STAFF) -> str:
    """The reason an undo is refused; the store is left as it was."""
    before = state(service)
    with pytest.raises(UndoRefused) as refused:
        service.undo(candidate_id, decision_id, actor=actor)
    assert state(service) == before
    assert refused.value.message  # a sentence a person can act on
    return str(refused.value.details["reason"])


def test_undoing_a_confirm_puts_back_the_candidate_the_cases_and_the_blocked_pair(service, pair):
    missing, [(found, first), (_, second)] = pair
    before = state(service)
    decision = decided(service, first, "confirmed")
    assert state(service)["cases"][missing] == "matched"
    assert service.candidate(second).blocked_by == (missing,)

    view = service.undo(first, decision, actor=STAFF)

    assert state(service) == before
    assert before["cases"][missing] == before["cases"][found] == "open"
    assert view.candidate.status == "pending" and service.candidate(second).blocked_by == ()
    undo = view.decisions[-1]
    assert (undo.from_status, undo.to_status, undo.actor) == ("confirmed", "pending", STAFF)
    assert undo.undoes_id == decision
    [event] = audit.audit_events(service.store, action="candidate.undo")
    assert event.actor == STAFF and event.case_id == found
    assert event.details == {
        "candidate_id": first,
        "missing_case_id": missing,
        "old": "confirmed",
        "new": "pending",
        "undoes_id": decision,
    }
    reopened = audit.audit_events(service.store, action="case.status", actor=STAFF, limit=2)
    assert {(e.case_id, e.details["old"], e.details["new"]) for e in reopened} == {
        (found, "matched", "open"),
        (missing, "matched", "open"),
    }
    with service.store.transaction() as session:
        last = session.scalars(select(OutboxEventRow).order_by(OutboxEventRow.id.desc())).first()
        assert last is not None and last.type == "candidate.decided"
        assert last.payload["candidate"] == {**last.payload["candidate"], "status": "pending"}
        assert last.payload["candidate"]["id"] == first


def test_undoing_a_reject_makes_the_candidate_pending_again(service, pair):
    _, [(_, first), _] = pair
    before = state(service)
    decision = decided(service, first, "rejected")
    view = service.undo(first, decision, actor=STAFF)
    assert state(service) == before and view.candidate.status == "pending"
    assert view.decisions[-1].undoes_id == decision
    assert service.candidate_queue().total == 2  # back in the queue


def test_only_the_one_who_decided_can_undo(service, pair):
    _, [(_, first), _] = pair
    decision = decided(service, first, "confirmed")
    assert refusal(service, first, decision, actor=OTHER) == "not_yours"
    assert refusal(service, first, decision, actor="user:admin1") == "not_yours"


def test_an_undo_after_the_window_is_refused(service, pair):
    _, [(_, first), _] = pair
    decision = decided(service, first, "rejected")
    made_earlier(service, decision, seconds=121)
    assert refusal(service, first, decision) == "window_passed"


def test_an_undo_just_inside_the_window_is_allowed(service, pair):
    _, [(_, first), _] = pair
    decision = decided(service, first, "rejected")
    made_earlier(service, decision, seconds=110)
    assert service.undo(first, decision, actor=STAFF).candidate.status == "pending"


def test_a_decision_with_a_later_decision_cannot_be_undone(service, pair):
    _, [(_, first), _] = pair
    decision = decided(service, first, "rejected")
    service.decide(first, "pending", actor="user:admin1", role="admin", note="a second look")
    assert refusal(service, first, decision) == "later_decision"


def test_an_undo_cannot_be_undone_nor_undone_twice(service, pair):
    _, [(_, first), _] = pair
    decision = decided(service, first, "confirmed")
    service.undo(first, decision, actor=STAFF)
    assert refusal(service, first, last_decision_id(service, first)) == "not_undoable"
    assert refusal(service, first, decision) == "later_decision"


def test_a_reopening_is_not_undone(service, pair):
    _, [(_, first), _] = pair
    decided(service, first, "rejected", actor="user:admin1")
    service.decide(first, "pending", actor="user:admin1", role="admin", note="a second look")
    assert refusal(service, first, last_decision_id(service, first), "user:admin1") == (
        "not_undoable"
    )


@pytest.mark.parametrize("status", ["confirmed", "rejected"])
def test_a_case_closed_since_refuses_the_undo(service, pair, status):
    missing, [(_, first), _] = pair
    decision = decided(service, first, status)
    service.update_case(missing, {"status": "closed"}, actor="t")
    assert refusal(service, first, decision) == "case_changed"


def test_a_confirmed_case_closed_and_reopened_since_refuses_the_undo(service, pair):
    _, [(found, first), _] = pair
    decision = decided(service, first, "confirmed")
    service.update_case(found, {"status": "closed"}, actor="t")
    service.update_case(found, {"status": "open"}, actor="t")
    assert state(service)["cases"][found] == "open"  # no longer what the confirm made it
    assert refusal(service, first, decision) == "case_changed"


def test_a_decision_of_another_candidate_is_not_found(service, pair):
    _, [(_, first), (_, second)] = pair
    decision = decided(service, first, "rejected")
    with pytest.raises(NotFound):
        service.undo(second, decision, actor=STAFF)
    with pytest.raises(NotFound):
        service.undo(first, decision + 1000, actor=STAFF)


def test_undo_can_be_turned_off(tmp_path, finder, sample):
    settings = settings_in(tmp_path, undo_window_s=0)
    with Reunite.open(settings, finder=finder) as service:
        missing = service.create_case({"kind": "missing"}, actor="t")
        service.enroll_photo(missing.id, sample("obama.jpg"), actor="t")
        found = service.create_case({"kind": "found"}, actor="t")
        [view] = service.enroll_photo(found.id, sample("obama2.jpg"), actor="t").new_candidates
        decision = decided(service, view.candidate.id, "rejected")
        assert service.undoable_until(service.candidate(view.candidate.id).decisions[-1]) is None
        assert refusal(service, view.candidate.id, decision) == "off"
