"""Case records: create, read, list, replace by external reference and update.

A case is one person, missing or found, with the facts an agency knows (see
``store.CaseFields``). An agency's external references are unique. Reopening a closed case
matches it again (``Candidates.rematch``), since matching skips closed cases.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from reunite import audit, paging, review
from reunite.errors import Conflict, InvalidField, NotFound
from reunite.paging import Listing
from reunite.store import CaseFields, CaseRow, Store, validated_case_fields

if TYPE_CHECKING:
    from reunite.candidates import Candidates
    from reunite.live_index import LiveIndex

log = logging.getLogger(__name__)

PutOutcome = Literal["created", "updated", "unchanged"]

CASE_FIELD_NAMES = tuple(CaseFields.model_fields)


def case_row(session: Session, case_id: int) -> CaseRow:
    """The case with this id in ``session``. Raises ``NotFound``."""
    case = session.get(CaseRow, case_id)
    if case is None:
        raise NotFound(f"There is no case {case_id}.")
    return case


def cases_by_id(session: Session, case_ids: Iterable[int]) -> dict[int, CaseRow]:
    """The cases with these ids that exist, by id."""
    ids = list(set(case_ids))
    if not ids:
        return {}
    return {c.id: c for c in session.scalars(select(CaseRow).where(CaseRow.id.in_(ids)))}


def _check_external_ref_free(
    session: Session, agency: str | None, external_ref: str | None, case_id: int | None
) -> None:
    if not external_ref:
        return
    other = session.scalar(
        select(CaseRow.id).where(CaseRow.agency == agency, CaseRow.external_ref == external_ref)
    )
    if other is not None and other != case_id:
        raise Conflict(
            f"Agency {agency} already has a case with external_ref {external_ref!r} "
            f"(case {other}).",
            case_id=other,
        )


@dataclass(eq=False)
class Cases:
    """The case records of one store. Writes take ``write_lock``; a reopened case is matched
    again through ``candidates`` (which needs ``live`` ready)."""

    store: Store
    _: KW_ONLY
    write_lock: threading.RLock
    live: LiveIndex
    candidates: Candidates

    def create(self, data: Mapping[str, Any], *, actor: str) -> CaseRow:
        """Create a case from its facts (see ``CaseFields``).

        Raises:
            InvalidField: the facts are malformed or contradict each other.
            Conflict: the agency already has a case with this external_ref.
        """
        fields = validated_case_fields(dict(data))
        if fields.status == "matched":
            raise InvalidField(
                "A case becomes matched when one of its candidates is confirmed; create it open."
            )
        with self.write_lock, self.store.transaction() as session:
            _check_external_ref_free(session, fields.agency, fields.external_ref, None)
            case = CaseRow(**fields.model_dump())
            session.add(case)
            session.flush()
            audit.record(session, actor, "case.create", case.id)
        log.info("case %d created (%s)", case.id, case.kind)
        return case

    def case(self, case_id: int) -> CaseRow:
        """The case with this id. Raises ``NotFound``."""
        with self.store.transaction() as session:
            return case_row(session, case_id)

    def by_external_ref(self, agency: str, external_ref: str) -> CaseRow:
        """The agency's case with this external reference. Raises ``NotFound``."""
        with self.store.transaction() as session:
            case = session.scalar(
                select(CaseRow).where(
                    CaseRow.agency == agency, CaseRow.external_ref == external_ref
                )
            )
        if case is None:
            raise NotFound(f"Agency {agency} has no case {external_ref!r}.")
        return case

    def listing(
        self,
        *,
        kind: str | None = None,
        status: str | None = None,
        agency: str | None = None,
        updated_since: datetime | None = None,
        after: Sequence[Any] | None = None,
        limit: int = 50,
    ) -> Listing[CaseRow]:
        """Cases by last change, oldest first (so a sync client can follow them), filtered.

        ``after`` is the ``next_after`` of the previous listing. ``total`` counts every case
        that matches the filters.
        """
        query = select(CaseRow)
        if kind:
            query = query.where(CaseRow.kind == kind)
        if status:
            query = query.where(CaseRow.status == status)
        if agency:
            query = query.where(CaseRow.agency == agency)
        if updated_since:
            query = query.where(CaseRow.updated_at >= updated_since)
        ordering = [(CaseRow.updated_at, True), (CaseRow.id, True)]
        with self.store.transaction() as session:
            return paging.listing(
                session, query, ordering, ("updated_at", "id"), after=after, limit=limit
            )

    def put(
        self, agency: str, external_ref: str, data: Mapping[str, Any], *, actor: str
    ) -> tuple[CaseRow, PutOutcome]:
        """Create or replace the agency's case ``external_ref`` with ``data``; idempotent.

        ``data`` is the whole record (fields left out become empty; ``status`` is kept unless
        given). The same data again changes nothing, not even ``updated_at``. Returns the case
        and whether it was created, updated or left unchanged.

        Raises:
            InvalidField: bad facts, or a ``kind`` different from the stored case's.
            Conflict: a status change that is not allowed.
        """
        record = {**data, "agency": agency, "external_ref": external_ref}
        # Look the case up by the reference as it is stored (trimmed), not as it came.
        stored_ref = validated_case_fields(record).external_ref or external_ref
        with self.write_lock:
            try:
                case = self.by_external_ref(agency, stored_ref)
            except NotFound:
                try:
                    return self.create(record, actor=actor), "created"
                except Conflict:  # another process created it at the same moment: that one
                    case = self.by_external_ref(agency, stored_ref)
            if record.get("kind") != case.kind:
                raise InvalidField(
                    f"Case {external_ref!r} is a {case.kind} case; its kind cannot change."
                )
            wanted = validated_case_fields({"status": case.status, **record}).model_dump()
            changes = {k: v for k, v in wanted.items() if k != "kind" and getattr(case, k) != v}
            if not changes:
                return case, "unchanged"
            return self.update(case.id, changes, actor=actor), "updated"

    def update(self, case_id: int, changes: Mapping[str, Any], *, actor: str) -> CaseRow:
        """Change some facts of a case. The kind cannot change (delete and re-create instead).

        A status change must be allowed from the current status (see ``reunite.review``). A
        reopened case is matched again, so pairs missed while it was closed are proposed.

        Raises:
            NotFound, InvalidField, Conflict (duplicate external_ref, or a status change that is
            not allowed).
        """
        if "kind" in changes:
            raise InvalidField("A case's kind cannot change; create a new case instead.")
        if "status" in changes:
            self.live.require_ready()  # a reopened case is matched again
        with self.write_lock, self.store.transaction() as session:
            case = case_row(session, case_id)
            current = {name: getattr(case, name) for name in CASE_FIELD_NAMES}
            fields = validated_case_fields({**current, **changes})
            review.check_case_transition(case.status, fields.status)
            _check_external_ref_free(session, fields.agency, fields.external_ref, case.id)
            facts = sorted(name for name in changes if name != "status")
            if fields.status != case.status:
                audit.record(
                    session, actor, "case.status", case.id, old=case.status, new=fields.status
                )
            if facts:
                audit.record(session, actor, "case.update", case.id, fields=facts)
            reopened = case.status == "closed" and fields.status != "closed"
            for name, value in fields.model_dump().items():
                setattr(case, name, value)
            if reopened:  # matching skipped it while closed: catch up on what arrived since
                self.candidates.rematch(session, case)
        return case
