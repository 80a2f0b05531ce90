"""Re-matching cases after the matching rules changed (``reunite rematch``).

A change of tolerance, scoring, calibration or model changes ``matching.rules_version``. Every
case that is not closed and was matched by other rules (``CaseRow.matched_by_rules``) is
matched again, in case id order, each in its own transaction under the faces lock (as
enrollment): its faces propose what today's rules find (``Candidates.record``: new candidates,
audited, with webhooks), and each of its **pending** candidates that neither side's faces
propose any more is marked ``superseded_at`` (kept, flagged, audited), while a superseded one
proposed again is restored. Confirmed and rejected candidates are never touched. The case then
records today's rules, so a run killed at any point resumes with the cases not yet done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from reunite import audit
from reunite.candidates import Candidates
from reunite.faces import MODEL_NAME
from reunite.store import CandidateRow, CaseRow, FaceRow, utc_now

Progress = Callable[[int, int], None]
"""Called with (cases done, cases in this run) after each case."""


@dataclass
class RematchReport:
    """What a run did: cases matched again (of ``cases``, those due when it started),
    candidates proposed, superseded and restored; ``remaining`` cases still due (``limit``)."""

    rules: str
    cases: int = 0
    cases_matched: int = 0
    candidates_proposed: int = 0
    candidates_superseded: int = 0
    candidates_restored: int = 0
    remaining: int = 0


def rematch_cases(
    candidates: Candidates, *, limit: int | None = None, progress: Progress | None = None
) -> RematchReport:
    """Match again every open or matched case whose ``matched_by_rules`` is not today's, at
    most ``limit`` of them (None: all), in id order. See the module's docstring."""
    rules = candidates.rules_version
    with candidates.store.transaction() as session:
        due = list(session.scalars(_due_cases(rules)))
    chosen = due if limit is None else due[:limit]
    report = RematchReport(rules=rules, cases=len(chosen), remaining=len(due) - len(chosen))
    for done, case_id in enumerate(chosen, start=1):
        with candidates.write_lock, candidates.store.transaction() as session:
            candidates.store.lock_faces(session)
            candidates.live.pull_changes(session)
            session.flush()
            case = session.get(CaseRow, case_id)
            # Another run (or the case's closing) may have come first.
            if case is not None and case.status != "closed" and case.matched_by_rules != rules:
                _rematch_case(session, candidates, case, report)
        if progress is not None:
            progress(done, len(chosen))
    return report


def _due_cases(rules: str) -> Select[int]:
    return (
        select(CaseRow.id)
        .where(
            CaseRow.status != "closed",
            or_(CaseRow.matched_by_rules.is_(None), CaseRow.matched_by_rules != rules),
        )
        .order_by(CaseRow.id)
    )


def _rematch_case(
    session: Session, candidates: Candidates, case: CaseRow, report: RematchReport
) -> None:
    """Match one case's faces again, then supersede or restore its pending candidates."""
    superseded_before = {c.id for c in _pending_of(session, case) if c.superseded_at is not None}
    proposed: set[int] = set()  # the other side's case ids that this case's faces propose
    for face in _faces_of(session, case.id):
        proposed |= {m.case_id for m in candidates.proposals(session, case, face, face.vector)}
        report.candidates_proposed += len(candidates.record(session, case, face, face.vector))
    now = utc_now()
    for candidate in _pending_of(session, case):
        other_id = candidate.missing_case_id if case.kind == "found" else candidate.found_case_id
        still = other_id in proposed or _proposed_by(session, candidates, other_id, case.id)
        if still and candidate.id in superseded_before:
            candidate.superseded_at = None  # record cleared it already when it proposed it
            report.candidates_restored += 1
            _audit(session, "candidate.restored", candidate)
        elif not still and candidate.superseded_at is None:
            candidate.superseded_at = now
            report.candidates_superseded += 1
            _audit(session, "candidate.superseded", candidate)
    candidates.mark_matched(session, case)
    report.cases_matched += 1


def _proposed_by(session: Session, candidates: Candidates, case_id: int, other_id: int) -> bool:
    """Whether a face of case ``case_id`` proposes case ``other_id`` under today's rules (a
    closed case proposes nothing)."""
    case = session.get(CaseRow, case_id)
    if case is None or case.status == "closed":
        return False
    return any(
        m.case_id == other_id
        for face in _faces_of(session, case_id)
        for m in candidates.proposals(session, case, face, face.vector)
    )


def _faces_of(session: Session, case_id: int) -> list[FaceRow]:
    """A case's faces of today's model (the only ones matched), in id order."""
    return list(
        session.scalars(
            select(FaceRow)
            .where(FaceRow.case_id == case_id, FaceRow.model == MODEL_NAME)
            .order_by(FaceRow.id)
        )
    )


def _pending_of(session: Session, case: CaseRow) -> list[CandidateRow]:
    column = CandidateRow.found_case_id if case.kind == "found" else CandidateRow.missing_case_id
    return list(
        session.scalars(
            select(CandidateRow)
            .where(column == case.id, CandidateRow.status == "pending")
            .order_by(CandidateRow.id)
        )
    )


def _audit(session: Session, action: str, candidate: CandidateRow) -> None:
    audit.record(
        session,
        "system",
        action,
        candidate.found_case_id,
        candidate_id=candidate.id,
        missing_case_id=candidate.missing_case_id,
    )
