"""Undo: a person takes back their own decision on a candidate, within ``undo_window_s``.

A slip of the hand (confirming the wrong card, rejecting the right one) should not need an
admin. An undo moves the candidate back to the status it had before the decision and puts back
what the decision changed (a confirm's cases, ``matched``, go back to ``open``). It is a new
decision (``CandidateDecisionRow.undoes_id`` names the one undone), audited as
``candidate.undo``, and sends the candidate's webhook event (``candidate.decided``, with the
status restored) like any decision.

It is refused (``UndoRefused``, its ``reason`` in ``details``) when:

- ``off``: ``undo_window_s`` is 0;
- ``not_undoable``: the decision is not a confirm or reject of a pending candidate (a
  reopening, a proposal again, or an undo itself);
- ``not_yours``: someone else made the decision;
- ``window_passed``: it was made more than ``undo_window_s`` seconds ago;
- ``later_decision``: the candidate has had another decision since;
- ``case_changed``: one of the two cases was closed since, or, for a confirm, is no longer
  ``matched``; what the decision did can no longer be put back exactly.
"""

from __future__ import annotations

import threading
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from reunite import webhooks
from reunite.candidate_view import CandidateView
from reunite.candidates import Candidates, candidate_row, record_decision, update_case_status
from reunite.cases import case_row
from reunite.config import Settings
from reunite.errors import NotFound, UndoRefused
from reunite.store import CandidateDecisionRow, CaseRow, Store, utc_now

UNDOABLE = {("pending", "confirmed"), ("pending", "rejected")}
"""(from, to) of the decisions an undo can take back: a reviewer's confirm or reject."""


@dataclass(eq=False)
class Undos:
    """Undoing decisions on the candidates of one store (under the candidates' write lock)."""

    settings: Settings
    store: Store
    _: KW_ONLY
    candidates: Candidates
    write_lock: threading.RLock

    def undo(self, candidate_id: int, decision_id: int, *, actor: str) -> CandidateView:
        """Take back decision ``decision_id`` on candidate ``candidate_id``, made by ``actor``.

        Raises:
            NotFound: no such candidate, or no such decision on it.
            UndoRefused: see the module's list of reasons.
        """
        with self.write_lock, self.store.transaction() as session:
            candidate = candidate_row(session, candidate_id)
            decision = session.get(CandidateDecisionRow, decision_id)
            if decision is None or decision.candidate_id != candidate.id:
                raise NotFound(f"Candidate {candidate_id} has no decision {decision_id}.")
            self._check(session, decision, actor)
            cases = [
                case_row(session, candidate.found_case_id),
                case_row(session, candidate.missing_case_id),
            ]
            _check_cases(decision, cases)
            record_decision(
                session,
                candidate,
                decision.from_status,
                actor=actor,
                note=None,
                undoes_id=decision.id,
            )
            for case in cases:
                update_case_status(
                    session,
                    candidate,
                    case,
                    decision.from_status,
                    decision.to_status == "confirmed",
                    actor,
                )
            session.flush()
            view = self.candidates.views(session, [candidate])[0]
            webhooks.enqueue_candidate_event(session, "candidate.decided", view)
            return view

    def undoable_until(self, decision: CandidateDecisionRow) -> datetime | None:
        """Until when ``decision`` may be undone (by its maker, if nothing changed since); None
        when it never may (undo turned off, or not a confirm or reject)."""
        window = self.settings.undo_window_s
        if window <= 0 or (decision.from_status, decision.to_status) not in UNDOABLE:
            return None
        if decision.undoes_id is not None:
            return None
        return _aware(decision.at) + timedelta(seconds=window)

    def _check(self, session: Session, decision: CandidateDecisionRow, actor: str) -> None:
        """Raise ``UndoRefused`` unless ``actor`` may undo ``decision`` now (cases aside)."""
        if self.settings.undo_window_s <= 0:
            raise UndoRefused("Undo is turned off here (REUNITE_UNDO_WINDOW_S is 0).", reason="off")
        until = self.undoable_until(decision)
        if until is None:
            raise UndoRefused(
                f"Decision {decision.id} cannot be undone: only a confirm or a reject can; "
                "an admin can reopen the candidate.",
                reason="not_undoable",
            )
        if decision.actor != actor:
            raise UndoRefused(
                f"Decision {decision.id} was made by someone else; only they can undo it.",
                reason="not_yours",
            )
        if utc_now() > until:
            raise UndoRefused(
                f"Decision {decision.id} can no longer be undone: the "
                f"{self.settings.undo_window_s} s to undo it have passed. An admin can reopen "
                "the candidate.",
                reason="window_passed",
                seconds=self.settings.undo_window_s,
            )
        later = session.scalar(
            select(CandidateDecisionRow.id).where(
                CandidateDecisionRow.candidate_id == decision.candidate_id,
                CandidateDecisionRow.id > decision.id,
            )
        )
        if later is not None:
            raise UndoRefused(
                f"Candidate {decision.candidate_id} has had another decision since; reload.",
                reason="later_decision",
            )


def _check_cases(decision: CandidateDecisionRow, cases: list[CaseRow]) -> None:
    """Raise ``UndoRefused`` when a case changed since ``decision`` in a way an undo could not
    put back exactly: closed, or (after a confirm) no longer ``matched``."""
    for case in cases:
        if case.status == "closed" or (
            decision.to_status == "confirmed" and case.status != "matched"
        ):
            raise UndoRefused(
                f"Case {case.id} has changed since (it is {case.status}); the decision can no "
                "longer be undone. An admin can reopen the candidate.",
                reason="case_changed",
                case=case.id,
            )


def _aware(moment: datetime) -> datetime:
    """``moment`` with its zone (stored times are UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
