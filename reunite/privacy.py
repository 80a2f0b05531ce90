"""Erasure and retention: the reasons a case may be erased for, how erased biometric data is
marked, and which closed cases are due for the retention purge.

Two ways biometric data leaves the service (``Reunite`` does both):

* **Erasure** (``Reunite.delete_case``): the whole case goes, with its photos, faces, crops and
  candidates. The audit log keeps that it happened: who, when, the case id and a reason from
  ``ERASURE_REASONS`` (a category, never free text, which could carry a name).
* **Retention** (``Reunite.purge_expired``, ``reunite purge``): a case closed for longer than
  ``REUNITE_RETENTION_DAYS`` loses its photos (files), face crops and embeddings, and keeps its
  record, its candidates and their decisions. Candidates point at faces, so a purged face's row
  stays as a tombstone: its box, with no embedding (``model`` and ``pipeline`` set to
  ``ERASED``); a purged photo's row keeps its id, date and size, and its ``sha256`` becomes
  ``erased:<id>``, so that it names no file and no content.

When a case was closed is read from the audit log (the last ``case.status`` event that closed
it), or, for a case created closed, from its ``updated_at``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

from sqlalchemy import ColumnElement, select, text
from sqlalchemy.orm import Session

from reunite.store import AuditEventRow, CaseRow, PhotoRow

ErasureReason = Literal[
    "subject_request",
    "consent_withdrawn",
    "entered_in_error",
    "duplicate",
    "no_longer_needed",
    "legal_order",
    "other",
]
ERASURE_REASONS: tuple[str, ...] = get_args(ErasureReason)
"""Why a case is erased, as the audit log records it: the person (or family) asked, consent was
withdrawn, the case was entered in error, it duplicates another, its purpose is over, a legal
order, or another reason."""
RETENTION_REASON = "retention"
"""The reason the retention purge records."""

ERASED = "erased"
"""The ``model`` and ``pipeline`` of a face whose embedding was erased."""
ERASED_PHOTO_PREFIX = "erased:"
"""A purged photo's ``sha256`` is this prefix and the photo's id."""


def erased_photo_sha256(photo_id: int) -> str:
    return f"{ERASED_PHOTO_PREFIX}{photo_id}"


def is_erased(photo: PhotoRow) -> bool:
    """Whether the photo's file and faces were purged (the row is a tombstone)."""
    return photo.sha256.startswith(ERASED_PHOTO_PREFIX)


def live_photo() -> ColumnElement[bool]:
    """The SQL condition on ``photos`` that the photo was not purged: ``not is_erased``."""
    return ~PhotoRow.sha256.startswith(ERASED_PHOTO_PREFIX)


@dataclass(frozen=True)
class PurgedCase:
    """A closed case whose biometric data the purge erased (or would erase): counts only."""

    case_id: int
    closed_at: datetime
    photos: int
    faces: int
    crops: int


@dataclass(frozen=True)
class PurgeReport:
    """What ``Reunite.purge_expired`` erased, or would erase with ``dry_run``."""

    dry_run: bool
    retention_days: int
    cutoff: datetime | None
    """Cases closed before this lose their biometric data; None when retention is off."""
    cases: list[PurgedCase] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        """The report as JSON-ready values: ids, times and counts only."""
        return {
            "dry_run": self.dry_run,
            "retention_days": self.retention_days,
            "cutoff": self.cutoff.isoformat() if self.cutoff else None,
            "cases": [
                {
                    "case_id": c.case_id,
                    "closed_at": c.closed_at.isoformat(),
                    "photos": c.photos,
                    "faces": c.faces,
                    "crops": c.crops,
                }
                for c in self.cases
            ],
            "totals": {
                "cases": len(self.cases),
                "photos": sum(c.photos for c in self.cases),
                "faces": sum(c.faces for c in self.cases),
                "crops": sum(c.crops for c in self.cases),
            },
        }


def closed_cases_with_photos(session: Session) -> dict[int, datetime]:
    """Closed cases that still hold a photo, and when each was closed.

    The closing time is the last ``case.status`` audit event that set ``closed``; a case created
    closed has none, and counts from its ``updated_at`` (a later edit of its facts moves that on,
    which only delays the purge). Cost: two indexed queries, and one audit query per 10,000
    cases.
    """
    holding = select(PhotoRow.case_id).where(live_photo())
    rows = session.execute(
        select(CaseRow.id, CaseRow.updated_at).where(
            CaseRow.status == "closed", CaseRow.id.in_(holding)
        )
    ).all()
    closed_at = {row.id: row.updated_at for row in rows}
    ids = sorted(closed_at)
    closed_by_event: dict[int, datetime] = {}
    for start in range(0, len(ids), 10_000):
        events = session.execute(
            select(AuditEventRow.case_id, AuditEventRow.at, AuditEventRow.details).where(
                AuditEventRow.action == "case.status",
                AuditEventRow.case_id.in_(ids[start : start + 10_000]),
            )
        ).all()
        for event in events:
            if event.case_id is None or (event.details or {}).get("new") != "closed":
                continue
            known = closed_by_event.get(event.case_id)
            if known is None or event.at > known:
                closed_by_event[event.case_id] = event.at
    return closed_at | closed_by_event


def sqlite_checkpoint(session: Session, *, wait_ms: int = 1000) -> tuple[int, ...] | None:
    """On SQLite, copy the write-ahead log into the database and empty it (``wal_checkpoint
    (TRUNCATE)``), so rows erased from the database do not linger in the log file either.

    Best effort: it waits at most ``wait_ms`` for readers (writers wait meanwhile), and with
    readers still busy a later checkpoint empties the log. Call it outside a write transaction.
    Returns SQLite's (busy, log pages, checkpointed pages), or None on other databases.
    """
    if session.get_bind().dialect.name != "sqlite":
        return None
    usual = session.execute(text("PRAGMA busy_timeout")).scalar_one()
    session.execute(text(f"PRAGMA busy_timeout={int(wait_ms)}"))
    try:
        row = session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).one()
    finally:
        session.execute(text(f"PRAGMA busy_timeout={int(usual)}"))
    return tuple(int(value) for value in row)
