"""Who may do what: principals (a signed-in person or an API key) and the role rules.

Roles::

    admin    everything
    staff    rescue-center staff: found cases (read and write), every case (read), review,
             search
    police   its own agency's missing cases (read and write), search, and the candidates that
             involve its cases; of any other case it sees only what a candidate shows (a summary
             without name, contact, description or case number), and a request for another
             agency's case answers "not found", so that its existence is not revealed

The HTTP layer turns a session or a key into a ``Principal`` and asks these functions before it
calls the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from reunite.errors import Forbidden, NotFound

if TYPE_CHECKING:  # annotations only: the command line reads ROLES without the store
    from reunite.store import CaseRow

ROLES = ("staff", "admin", "police")
"""Every role; an API key may have any of them."""
USER_ROLES = ("staff", "admin")
"""Roles a staff user (who signs in to the pages) may have, least to most: staff < admin."""


@dataclass(frozen=True)
class Principal:
    """Who is calling. ``name`` goes into the audit log: ``user:<name>`` or ``key:<prefix>``."""

    name: str
    role: str
    agency: str | None = None

    @property
    def is_police(self) -> bool:
        return self.role == "police"


def owns(principal: Principal, case: CaseRow) -> bool:
    """Whether the case is the police principal's own (its agency's missing case)."""
    return principal.is_police and case.kind == "missing" and case.agency == principal.agency


def check_read_case(principal: Principal, case: CaseRow) -> None:
    """Raise ``NotFound`` if ``principal`` may not see this case's details."""
    if principal.is_police and not owns(principal, case):
        raise NotFound(f"There is no case {case.id}.")


def check_write_case(principal: Principal, case: CaseRow) -> None:
    """Raise unless ``principal`` may change this case (or add photos to it, or delete it)."""
    check_read_case(principal, case)
    if principal.role == "staff" and case.kind != "found":
        raise Forbidden("Staff accounts change found cases; missing cases belong to agencies.")


def checked_new_case_fields(principal: Principal, fields: dict[str, object]) -> dict[str, object]:
    """The fields of a case ``principal`` may create (police: its agency filled in)."""
    kind = fields.get("kind")
    if principal.role == "staff" and kind != "found":
        raise Forbidden("Staff accounts create found cases; missing cases come from agencies.")
    if principal.is_police:
        if kind != "missing":
            raise Forbidden("Police keys create missing cases only.")
        agency = fields.get("agency") or principal.agency
        if agency != principal.agency:
            raise Forbidden(f"This key creates cases for agency {principal.agency} only.")
        return {**fields, "agency": agency}
    return fields


def check_agency(principal: Principal, agency: str) -> None:
    """Raise ``Forbidden`` unless ``principal`` may act for ``agency`` (its own, or admin)."""
    if principal.role == "admin":
        return
    if not principal.is_police or principal.agency != agency:
        raise Forbidden(f"Only agency {agency}'s keys (or an admin) may do this.")


def check_role(principal: Principal, *roles: str) -> None:
    """Raise ``Forbidden`` unless the principal has one of ``roles`` (admin always passes)."""
    if principal.role != "admin" and principal.role not in roles:
        raise Forbidden(f"The {principal.role} role may not do this.")


def may_see_face_of(principal: Principal, case: CaseRow) -> bool:
    """Whether ``principal`` may see the photos and face crops of ``case``.

    Police see their own cases and found (unidentified) people, whom searchers are meant to
    recognise; other agencies' missing persons stay hidden.
    """
    return not principal.is_police or owns(principal, case) or case.kind == "found"
