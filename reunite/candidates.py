"""Candidates: pairs of a missing and a found case whose faces are close, and people's
decisions on them.

Enrolling a face (or reopening a case) proposes a pending candidate for each near case of the
other kind (``Candidates.record``); cross-age pairs are kept up to a wider tolerance. Reviewers
confirm, reject or reopen them (``decide``, rules in ``reunite.review``); every decision is kept.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
from sqlalchemy import and_, case, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from reunite import audit, paging, review, webhooks
from reunite.candidate_view import (
    CandidateView,
    Similarity,
    SimilarityBasisOf,
    in_review_order,
)
from reunite.cases import case_row, cases_by_id
from reunite.config import Settings
from reunite.errors import Conflict, InvalidField, NotFound
from reunite.faces import MODEL_NAME
from reunite.live_index import LiveIndex
from reunite.matching import CaseMatch, case_matches, other_kind
from reunite.paging import Listing
from reunite.store import (
    CandidateDecisionRow,
    CandidateRow,
    CaseRow,
    FaceRow,
    PhotoRow,
    Store,
    utc_now,
)


def _superseded_last(candidate: CandidateRow) -> int:
    """1 for a pending candidate that today's rules no longer propose, else 0."""
    return int(candidate.status == "pending" and candidate.superseded_at is not None)


_SUPERSEDED_LAST = case(
    (and_(CandidateRow.status == "pending", CandidateRow.superseded_at.is_not(None)), 1),
    else_=0,
)
"""``_superseded_last`` in SQL: a sort column that is never NULL, so the keyset cursor
compares it like any other (a NULL ``superseded_at`` would not compare)."""

_ORDERINGS: dict[str, tuple[paging.SortKey, tuple[paging.KeyPart, ...]]] = {
    "closest": (
        [(_SUPERSEDED_LAST, True), (CandidateRow.distance, True), (CandidateRow.id, True)],
        (_superseded_last, "distance", "id"),
    ),
    "newest": ([(CandidateRow.id, False)], ("id",)),
    "updated": ([(CandidateRow.updated_at, True), (CandidateRow.id, True)], ("updated_at", "id")),
}


@dataclass(eq=False)
class Candidates:
    """The candidates of one store, matched through the live index. Writes that change
    matching or decisions take ``write_lock``."""

    settings: Settings
    store: Store
    _: KW_ONLY
    live: LiveIndex
    similarity: Similarity
    similarity_basis: SimilarityBasisOf
    write_lock: threading.RLock
    rules_version: str
    """Today's matching rules (``matching.rules_version``), recorded with the cases matched."""

    def nearest(
        self, session: Session, embedding: np.ndarray, kind: str, k: int, tolerance: float
    ) -> list[CaseMatch]:
        """The ``k`` nearest open or matched cases of ``kind`` within ``tolerance``, scored as
        ``case_scoring`` says and normalised against the probe's cohort (see
        ``reunite.matching``)."""
        return case_matches(
            session,
            self.live.index,
            embedding,
            kind,
            k=k,
            tolerance=tolerance,
            scoring=self.settings.case_scoring,
            cohort_size=self.settings.cohort_size,
        )

    # --------------------------------------------------------------------- proposing

    def proposals(
        self, session: Session, case: CaseRow, face: FaceRow, embedding: np.ndarray
    ) -> list[CaseMatch]:
        """The near cases of the other kind that today's rules propose for one face of ``case``
        (``embedding`` is the face's): the one place that decides what is proposed.

        A pair is proposed when it is within ``tolerance`` and its normalised score (when the
        search has a cohort) is at least ``min_score``. Cross-age pairs are kept up to
        ``cross_age_tolerance`` whatever their score (``_is_cross_age``): the model's distances
        grow across age gaps, and dropping such a pair would hide a child missing for years.
        """
        settings = self.settings
        wider = max(settings.tolerance, settings.cross_age_tolerance)
        taken_on = _photo_date(session, face.photo_id)
        return [
            m
            for m in self.nearest(session, embedding, other_kind(case.kind), settings.top_k, wider)
            if (
                m.distance <= settings.tolerance
                and (m.score is None or m.score >= settings.min_score)
            )
            or self._is_cross_age(session, case, taken_on, m.face_id)
        ]

    def _is_cross_age(
        self, session: Session, case: CaseRow, taken_on: date | None, other_face_id: int
    ) -> bool:
        """Whether the person would be at least ``photo_age_gap_years`` older in one photo than
        in the other (from photo dates, else the dates missing and found, and birth years),
        with no fact of the pair contradicting that they are one person. Two people of
        different ages are no cross-age pair: their ages contradict, and flag it."""
        row = session.execute(
            select(CaseRow, PhotoRow.taken_on)
            .join(FaceRow, FaceRow.case_id == CaseRow.id)
            .join(PhotoRow, PhotoRow.id == FaceRow.photo_id)
            .where(FaceRow.id == other_face_id)
        ).first()
        if row is None:
            return False
        other, other_taken_on = row
        gap = review.years_apart(
            review.age_in_photo(case, taken_on), review.age_in_photo(other, other_taken_on)
        )
        if gap < self.settings.photo_age_gap_years:
            return False
        if case.kind == "found":
            flags = self.flags(case, other, found_on=taken_on, missing_on=other_taken_on)
        else:
            flags = self.flags(other, case, found_on=other_taken_on, missing_on=taken_on)
        return not any(f.code in review.CONTRADICTIONS for f in flags)

    def flags(
        self, found: CaseRow, missing: CaseRow, *, found_on: date | None, missing_on: date | None
    ) -> list[review.Flag]:
        """The consistency flags of a pair whose faces' photos were taken on these dates."""
        settings = self.settings
        return review.consistency_flags(
            found,
            missing,
            found_photo_taken_on=found_on,
            age_margin_years=settings.age_margin_years,
            found_before_missing_days=settings.found_before_missing_days,
            missing_photo_taken_on=missing_on,
            photo_age_gap_years=settings.photo_age_gap_years,
        )

    def record(
        self, session: Session, case: CaseRow, face: FaceRow, embedding: np.ndarray
    ) -> list[CandidateRow]:
        """Store a pending candidate for each case ``proposals`` finds; returns the new ones.

        An existing pending or confirmed candidate for the same pair keeps its status; its
        distance and faces are updated when the new face is closer, and a pending one is no
        longer superseded (``superseded_at``: the rules propose it). A rejected one is proposed
        again (back to pending) only by a photo added after the rejection.
        """
        matches = self.proposals(session, case, face, embedding)
        created: list[CandidateRow] = []
        reproposed: list[CandidateRow] = []
        for match in matches:
            candidate, how = _proposed(session, case, face, match)
            if candidate.status == "pending":
                candidate.superseded_at = None
            if how == "reproposed":
                reproposed.append(candidate)
            if how in ("created", "reproposed"):
                created.append(candidate)
        session.flush()
        for view in self.views(session, created):
            candidate = view.candidate
            audit.record(
                session,
                "system",
                "candidate.propose",
                candidate.found_case_id,
                candidate_id=candidate.id,
                missing_case_id=candidate.missing_case_id,
                face_id=face.id,
            )
            webhooks.enqueue_candidate_event(
                session,
                "candidate.decided" if candidate in reproposed else "candidate.created",
                view,
            )
        return created

    def rematch(self, session: Session, case: CaseRow) -> None:
        """Match every face of a reopened case again (matching skipped it while closed), in
        ``session``'s transaction, after catching the index up under the faces lock."""
        self.store.lock_faces(session)
        self.live.pull_changes(session)
        session.flush()
        faces = session.scalars(
            select(FaceRow).where(FaceRow.case_id == case.id, FaceRow.model == MODEL_NAME)
        )
        for face in list(faces):
            self.record(session, case, face, face.vector)

    def mark_matched(self, session: Session, case: CaseRow) -> None:
        """Record that every face of ``case`` was matched by today's rules. Bookkeeping, not a
        fact of the case: its ``updated_at`` (what case sync clients follow) stays."""
        session.execute(
            update(CaseRow)
            .where(CaseRow.id == case.id)
            .values(matched_by_rules=self.rules_version, updated_at=CaseRow.updated_at)
            .execution_options(synchronize_session=False)
        )
        set_committed_value(case, "matched_by_rules", self.rules_version)

    # ----------------------------------------------------------------------- reading

    def of_case(self, case_id: int) -> list[CandidateView]:
        """A case's candidates with flags and decisions, in the order a reviewer should look at
        them (``in_review_order``). Raises ``NotFound``."""
        with self.store.transaction() as session:
            case_row(session, case_id)
            rows = session.scalars(
                select(CandidateRow)
                .where(
                    (CandidateRow.found_case_id == case_id)
                    | (CandidateRow.missing_case_id == case_id)
                )
                .order_by(CandidateRow.distance, CandidateRow.id)
            )
            return in_review_order(self.views(session, list(rows)))

    def candidate(self, candidate_id: int) -> CandidateView:
        """One candidate with both cases, flags and decisions. Raises ``NotFound``."""
        with self.store.transaction() as session:
            return self.views(session, [candidate_row(session, candidate_id)])[0]

    def queue(
        self,
        *,
        status: str | None = "pending",
        order: str = "closest",
        agency: str | None = None,
        updated_since: datetime | None = None,
        after: Sequence[Any] | None = None,
        limit: int = 50,
    ) -> Listing[CandidateView]:
        """Candidates with ``status`` (None: any), with flags and decisions.

        ``order``: ``closest`` (distance, then id; pending candidates that today's rules no
        longer propose after all others, still listed), ``newest`` (newest first) or ``updated``
        (by last change, oldest first, for sync clients). ``agency`` keeps candidates whose
        missing case is that agency's. ``after`` is the previous listing's ``next_after``.
        """
        if order not in _ORDERINGS:
            raise InvalidField(f"order must be one of {sorted(_ORDERINGS)}, not {order!r}.")
        ordering, names = _ORDERINGS[order]
        query = select(CandidateRow)
        if status:
            query = query.where(CandidateRow.status == status)
        if status == "pending":  # a closed case's candidates wait for nobody
            closed = select(CaseRow.id).where(CaseRow.status == "closed")
            query = query.where(
                CandidateRow.found_case_id.not_in(closed),
                CandidateRow.missing_case_id.not_in(closed),
            )
        if agency:
            query = query.join(CaseRow, CaseRow.id == CandidateRow.missing_case_id).where(
                CaseRow.agency == agency
            )
        if updated_since:
            query = query.where(CandidateRow.updated_at >= updated_since)
        with self.store.transaction() as session:
            page = paging.listing(session, query, ordering, names, after=after, limit=limit)
            return Listing(self.views(session, page.items), page.total, page.next_after)

    def decided_pairs(self) -> tuple[list[float], list[bool]]:
        """(distances, same) of every decided candidate: confirmed ones are the same person,
        rejected ones are not. The deployment's own evidence for ``reunite calibrate``."""
        with self.store.transaction() as session:
            rows = session.execute(
                select(CandidateRow.distance, CandidateRow.status).where(
                    CandidateRow.status.in_(("confirmed", "rejected"))
                )
            ).all()
        return [r.distance for r in rows], [r.status == "confirmed" for r in rows]

    def views(self, session: Session, candidates: list[CandidateRow]) -> list[CandidateView]:
        """Candidates with both cases, flags (consistency, then faces chosen automatically) and
        decisions (oldest first)."""
        if not candidates:
            return []
        ids = [c.id for c in candidates]
        cases = cases_by_id(
            session, [i for c in candidates for i in (c.found_case_id, c.missing_case_id)]
        )
        decisions = list(
            session.scalars(
                select(CandidateDecisionRow)
                .where(CandidateDecisionRow.candidate_id.in_(ids))
                .order_by(CandidateDecisionRow.id)
            )
        )
        face_ids = [c.found_face_id for c in candidates] + [c.missing_face_id for c in candidates]
        faces = session.execute(
            select(FaceRow.id, PhotoRow.taken_on, FaceRow.face_choice)
            .join(PhotoRow, PhotoRow.id == FaceRow.photo_id)
            .where(FaceRow.id.in_(face_ids))
        ).all()
        photo_dates = {face_id: taken_on for face_id, taken_on, _ in faces}
        face_choices = {face_id: choice for face_id, _, choice in faces}
        views = []
        for c in candidates:
            flags = (
                self.flags(
                    cases[c.found_case_id],
                    cases[c.missing_case_id],
                    found_on=photo_dates.get(c.found_face_id),
                    missing_on=photo_dates.get(c.missing_face_id),
                )
                + review.face_choice_flags(
                    face_choices.get(c.found_face_id), face_choices.get(c.missing_face_id)
                )
                + _rules_flags(c)
            )
            views.append(
                CandidateView(
                    candidate=c,
                    found=cases[c.found_case_id],
                    missing=cases[c.missing_case_id],
                    flags=flags,
                    decisions=[d for d in decisions if d.candidate_id == c.id],
                    similarity=self.similarity(c.distance, c.score),
                    similarity_basis=self.similarity_basis(c.score),
                    blocked_by=_blocked_by(session, c, cases) if c.status == "pending" else (),
                )
            )
        return views

    # ---------------------------------------------------------------------- deciding

    def decide(
        self, candidate_id: int, status: str, *, actor: str, role: str, note: str | None = None
    ) -> CandidateView:
        """Record a person's decision on a candidate: ``confirmed``, ``rejected`` or ``pending``.

        Confirming marks both cases ``matched``. Reopening (admin only, with a reason in
        ``note``) a confirmed candidate sets a ``matched`` case back to ``open`` when it has no
        other confirmed candidate. Every decision is kept with who, when and the note.

        Raises:
            NotFound, Conflict (not allowed from the current status, or a closed case),
            Forbidden (role too low), InvalidField (reopening without a reason).
        """
        with self.write_lock, self.store.transaction() as session:
            candidate = candidate_row(session, candidate_id)
            review.check_candidate_transition(candidate.status, status, role=role, note=note)
            cases = [
                case_row(session, candidate.found_case_id),
                case_row(session, candidate.missing_case_id),
            ]
            if any(c.status == "closed" for c in cases):
                raise Conflict("One of the two cases is closed; reopen the case first.")
            if status == "confirmed":
                for case in cases:
                    if _has_other_confirmed(session, candidate, case):
                        raise Conflict(
                            f"Case {case.id} is already matched by another confirmed "
                            "candidate; an admin must reopen that one first."
                        )
            was_confirmed = candidate.status == "confirmed"
            record_decision(session, candidate, status, actor=actor, note=note)
            webhooks.enqueue_candidate_event(
                session, "candidate.decided", self.views(session, [candidate])[0]
            )
            for case in cases:
                update_case_status(session, candidate, case, status, was_confirmed, actor)
            session.flush()
            return self.views(session, [candidate])[0]


def _rules_flags(candidate: CandidateRow) -> list[review.Flag]:
    """``no_longer_proposed`` for a pending candidate that ``reunite rematch`` found today's
    rules no longer propose, with ``since`` (ISO time)."""
    if candidate.status != "pending" or candidate.superseded_at is None:
        return []
    return [review.Flag("no_longer_proposed", {"since": candidate.superseded_at.isoformat()})]


def update_case_status(
    session: Session,
    candidate: CandidateRow,
    case: CaseRow,
    status: str,
    was_confirmed: bool,
    actor: str,
) -> None:
    """Set one of a decided candidate's cases to ``matched`` (confirmed), or back to ``open``
    (a confirmed candidate reopened, the case matched by no other), audited."""
    new_status = case.status
    if status == "confirmed":
        new_status = "matched"
    elif (
        was_confirmed
        and case.status == "matched"
        and not _has_other_confirmed(session, candidate, case)
    ):
        new_status = "open"
    if new_status != case.status:
        audit.record(
            session,
            actor,
            "case.status",
            case.id,
            old=case.status,
            new=new_status,
            candidate_id=candidate.id,
        )
        case.status = new_status


def _proposed(
    session: Session, case: CaseRow, face: FaceRow, match: CaseMatch
) -> tuple[CandidateRow, str]:
    """Propose one pair (``face`` of ``case`` and a near case); returns the candidate and
    ``created``, ``reproposed`` (was rejected), ``closer`` (faces updated) or ``kept``."""
    found_side = case.kind == "found"
    pair = {
        "found_case_id": case.id if found_side else match.case_id,
        "missing_case_id": match.case_id if found_side else case.id,
    }
    faces = {
        "found_face_id": face.id if found_side else match.face_id,
        "missing_face_id": match.face_id if found_side else face.id,
    }
    existing = session.scalar(select(CandidateRow).filter_by(**pair))
    scored = {"distance": match.distance, "score": match.score, "rank": match.rank}
    if existing is None:
        candidate = CandidateRow(**pair, **faces, **scored, status="pending")
        session.add(candidate)
        return candidate, "created"
    if not _is_new_evidence(session, existing.id, **faces):
        return existing, "kept"  # both faces were there when a person rejected this pair
    if existing.status == "rejected":
        _set_scores(existing, match)
        existing.found_face_id = faces["found_face_id"]
        existing.missing_face_id = faces["missing_face_id"]
        record_decision(
            session,
            existing,
            "pending",
            actor="system",
            note="proposed again: a photo added after the rejection matched",
        )
        return existing, "reproposed"
    if match.distance < existing.distance:
        _set_scores(existing, match)
        existing.found_face_id = faces["found_face_id"]
        existing.missing_face_id = faces["missing_face_id"]
        return existing, "closer"
    same_faces = (existing.found_face_id, existing.missing_face_id) == tuple(faces.values())
    if same_faces and (existing.score, existing.rank) != (match.score, match.rank):
        _set_scores(existing, match)  # the same faces in a later search (`reunite rematch`)
    return existing, "kept"


def _set_scores(candidate: CandidateRow, match: CaseMatch) -> None:
    candidate.distance, candidate.score, candidate.rank = match.distance, match.score, match.rank


def record_decision(
    session: Session,
    candidate: CandidateRow,
    status: str,
    *,
    actor: str,
    note: str | None,
    undoes_id: int | None = None,
) -> None:
    """Move ``candidate`` to ``status`` and keep the decision (``undoes_id``: the decision an
    undo undid), audited as ``candidate.decision`` (an undo: ``candidate.undo``). Raises
    ``Conflict`` when someone else changed its status at the same moment."""
    session.add(
        CandidateDecisionRow(
            candidate_id=candidate.id,
            from_status=candidate.status,
            to_status=status,
            actor=actor,
            note=note,
            found_face_id=candidate.found_face_id,
            missing_face_id=candidate.missing_face_id,
            undoes_id=undoes_id,
        )
    )
    # A conditional update: of two people deciding at once (in any process), one wins and
    # the other gets a Conflict, even without this process's lock.
    changed = session.execute(
        update(CandidateRow)
        .where(CandidateRow.id == candidate.id, CandidateRow.status == candidate.status)
        .values(status=status, updated_at=utc_now())
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("Someone else decided on this candidate at the same moment; reload.")
    audit.record(
        session,
        actor,
        "candidate.decision" if undoes_id is None else "candidate.undo",
        candidate.found_case_id,
        candidate_id=candidate.id,
        missing_case_id=candidate.missing_case_id,
        old=candidate.status,
        new=status,
        **({} if undoes_id is None else {"undoes_id": undoes_id}),
    )
    candidate.status = status


def candidate_row(session: Session, candidate_id: int) -> CandidateRow:
    candidate = session.get(CandidateRow, candidate_id)
    if candidate is None:
        raise NotFound(f"There is no candidate {candidate_id}.")
    return candidate


def _photo_date(session: Session, photo_id: int) -> date | None:
    return session.scalar(select(PhotoRow.taken_on).where(PhotoRow.id == photo_id))


def _is_new_evidence(
    session: Session, candidate_id: int, *, found_face_id: int, missing_face_id: int
) -> bool:
    """Whether a pair of faces may be shown for a candidate: true unless a person rejected the
    candidate after both faces were enrolled (a rejection covers every face it saw; only a
    photo added later can bring the pair back)."""
    rejected_at = session.scalar(
        select(func.max(CandidateDecisionRow.at)).where(
            CandidateDecisionRow.candidate_id == candidate_id,
            CandidateDecisionRow.to_status == "rejected",
        )
    )
    if rejected_at is None:
        return True
    newest_face = session.scalar(
        select(func.max(FaceRow.created_at)).where(FaceRow.id.in_([found_face_id, missing_face_id]))
    )
    return newest_face is not None and newest_face > rejected_at


def _blocked_by(
    session: Session, candidate: CandidateRow, cases: dict[int, CaseRow]
) -> tuple[int, ...]:
    """Ids of ``candidate``'s two cases that another confirmed candidate already matches."""
    return tuple(
        case_id
        for case_id in (candidate.found_case_id, candidate.missing_case_id)
        if _has_other_confirmed(session, candidate, cases[case_id])
    )


def _has_other_confirmed(session: Session, candidate: CandidateRow, case: CaseRow) -> bool:
    """Whether ``case`` has a confirmed candidate other than ``candidate``."""
    column = CandidateRow.found_case_id if case.kind == "found" else CandidateRow.missing_case_id
    other = session.scalar(
        select(CandidateRow.id).where(
            column == case.id, CandidateRow.status == "confirmed", CandidateRow.id != candidate.id
        )
    )
    return other is not None
