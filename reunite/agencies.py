"""Agencies an admin keeps: the list the intake form's agency is chosen from.

An agency has a code (as cases and API keys carry it, checked by the same rule as
``CaseFields.agency``) and a name staff read. A retired agency leaves the form's list but stays
for the cases that name it. Each change runs in one transaction and is audited (codes only,
never the name).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from reunite import audit
from reunite.errors import Conflict, InvalidField, NotFound
from reunite.store import AgencyRow, Store, validated_case_fields

MAX_NAME_CHARS = 200


def checked_code(code: str) -> str:
    """``code`` stripped, if a case could carry it (``CaseFields``'s own rule decides)."""
    code = code.strip()
    try:
        validated_case_fields({"kind": "found", "agency": code})
    except InvalidField:
        code = ""
    if not code:
        raise InvalidField(
            "An agency code is 1-64 letters, digits or _ . - (no spaces), such as SH-RESCUE-01."
        )
    return code


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS or "\x00" in name:
        raise InvalidField(f"An agency's name is 1-{MAX_NAME_CHARS} characters.")
    return name


def agencies(store: Store, *, include_retired: bool = True) -> list[AgencyRow]:
    """The kept agencies by code; retired ones too unless ``include_retired`` is False."""
    query = select(AgencyRow).order_by(AgencyRow.code)
    if not include_retired:
        query = query.where(AgencyRow.retired.is_(False))
    with store.transaction() as session:
        return list(session.scalars(query))


def active_codes(store: Store) -> set[str]:
    """The codes of the agencies not retired (the intake form's choices)."""
    return {row.code for row in agencies(store, include_retired=False)}


def add_agency(store: Store, code: str, name: str, *, actor: str) -> AgencyRow:
    """Keep a new agency. Raises ``InvalidField`` (bad code or name), ``Conflict`` (kept)."""
    code, name = checked_code(code), _checked_name(name)
    with store.transaction() as session:
        if session.get(AgencyRow, code) is not None:
            raise Conflict(f"There is already an agency with code {code}.")
        row = AgencyRow(code=code, name=name)
        session.add(row)
        audit.record(session, actor, "agency.add", None, agency=code)
    return row


def rename_agency(store: Store, code: str, name: str, *, actor: str) -> AgencyRow:
    """Give a kept agency a new name. Raises ``NotFound``, ``InvalidField``."""
    name = _checked_name(name)
    with store.transaction() as session:
        row = _agency(session, code)
        row.name = name
        audit.record(session, actor, "agency.rename", None, agency=row.code)
    return row


def retire_agency(store: Store, code: str, *, actor: str, retired: bool = True) -> AgencyRow:
    """Take an agency off the form's list (or back on it with ``retired=False``)."""
    with store.transaction() as session:
        row = _agency(session, code)
        row.retired = retired
        action = "agency.retire" if retired else "agency.restore"
        audit.record(session, actor, action, None, agency=row.code)
    return row


def _agency(session: Session, code: str) -> AgencyRow:
    row = session.get(AgencyRow, code.strip())
    if row is None:
        raise NotFound(f"There is no agency with code {code.strip()!r}.")
    return row
