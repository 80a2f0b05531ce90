"""The audit log: who did what, to which case, when. Rows name ids and counts, never a name,
a photo or an embedding; every module that changes or shows personal data records here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reunite.store import AuditEventRow, Store


def record(session: Session, actor: str, action: str, case_id: int | None, **details: Any) -> None:
    """Add an audit event to ``session``'s transaction (it is kept only if that commits)."""
    session.add(AuditEventRow(actor=actor, action=action, case_id=case_id, details=details))


def audit_events(
    store: Store,
    *,
    action: str | None = None,
    actor: str | None = None,
    case_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEventRow]:
    """Audit events, newest first, filtered; page with ``before_id`` (the last id seen)."""
    query = select(AuditEventRow)
    if action:
        query = query.where(AuditEventRow.action == action)
    if actor:
        query = query.where(AuditEventRow.actor == actor)
    if case_id is not None:
        query = query.where(AuditEventRow.case_id == case_id)
    if since:
        query = query.where(AuditEventRow.at >= since)
    if until:
        query = query.where(AuditEventRow.at < until)
    if before_id is not None:
        query = query.where(AuditEventRow.id < before_id)
    with store.transaction() as session:
        return list(session.scalars(query.order_by(AuditEventRow.id.desc()).limit(limit)))
