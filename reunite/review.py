"""Human review: the rules for candidate and case status changes, and consistency flags.

The service proposes; a person decides. Candidate states::

    pending ──confirm (staff, admin)──> confirmed
       │  ^                                 │
       │  └──────reopen (admin, reason)─────┤
       └──reject (staff, admin)──> rejected ┘

Case states: ``open`` -> ``matched`` (when one of its candidates is confirmed; back to ``open``
when an admin reopens that candidate) -> ``closed`` (reunited); a ``closed`` case can be
reopened, and an ``open`` one closed directly (found by other means). A closed case gets no new
candidates, its pending ones leave the review queue, and no decision can be made on them.
A case has at most one confirmed candidate.

Consistency flags compare the two cases' facts; ``face_chosen_automatically`` says that a face
was picked by an import among several in a photo. They warn a reviewer; they never hide a
candidate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from reunite.access import USER_ROLES
from reunite.errors import Conflict, Forbidden, InvalidField
from reunite.store import CaseRow

CANDIDATE_TRANSITIONS: dict[tuple[str, str], str] = {
    ("pending", "confirmed"): "staff",
    ("pending", "rejected"): "staff",
    ("confirmed", "pending"): "admin",
    ("rejected", "pending"): "admin",
}
"""Allowed (from, to) candidate status changes and the least role that may make each."""

CASE_TRANSITIONS: dict[str, set[str]] = {
    "open": {"closed"},
    "matched": {"closed"},
    "closed": {"open"},
}
"""Case status changes a person may make directly. open -> matched happens by confirming a
candidate, and matched -> open by an admin reopening that candidate (so a case's status and its
confirmed candidate never disagree)."""


def role_allows(role: str, least_role: str) -> bool:
    """Whether ``role`` is at least ``least_role`` (staff < admin)."""
    return USER_ROLES.index(role) >= USER_ROLES.index(least_role)


def check_candidate_transition(current: str, target: str, *, role: str, note: str | None) -> None:
    """Raise unless a user with ``role`` may move a candidate from ``current`` to ``target``.

    Raises:
        Conflict: the change is not allowed from the current status (HTTP 409).
        Forbidden: the change needs a higher role (reopening needs an admin).
        InvalidField: reopening without a reason in ``note``.
    """
    least_role = CANDIDATE_TRANSITIONS.get((current, target))
    if least_role is None:
        raise Conflict(
            f"A candidate that is {current} cannot become {target}."
            + (" An admin can reopen it to pending first." if current != "pending" else ""),
            current_status=current,
        )
    if not role_allows(role, least_role):
        raise Forbidden(f"Only an {least_role} can move a {current} candidate to {target}.")
    if target == "pending" and not (note and note.strip()):
        raise InvalidField("Reopening a candidate needs a reason in the note.")


def check_case_transition(current: str, target: str) -> None:
    """Raise ``Conflict`` unless a person may set a case from ``current`` to ``target``."""
    if target != current and target not in CASE_TRANSITIONS.get(current, set()):
        hint = " Confirm one of its candidates instead." if target == "matched" else ""
        raise Conflict(
            f"A case that is {current} cannot be set to {target}.{hint}", current_status=current
        )


CONTRADICTIONS = ("sex_differs", "age_implausible", "found_before_missing")
"""Flags whose facts say the two cases are unlikely to be one person: a candidate with one is
listed below every candidate without (``candidate_view.in_review_order``), never hidden."""


@dataclass(frozen=True)
class Flag:
    """A warning about a candidate pair: a stable ``code`` and the facts behind it."""

    code: str
    facts: dict[str, Any] = field(default_factory=dict)


def consistency_flags(
    found: CaseRow,
    missing: CaseRow,
    *,
    found_photo_taken_on: date | None,
    age_margin_years: int,
    found_before_missing_days: int,
    missing_photo_taken_on: date | None = None,
    photo_age_gap_years: int = 10,
) -> list[Flag]:
    """Warnings from the two cases' facts, in a fixed order. Unknown facts raise no flag.

    - ``sex_differs``: both sexes known and different.
    - ``age_implausible``: at the found photo's date (``photo_date``), the missing person's
      age from their birth date (or birth-year range) is more than ``age_margin_years`` outside
      the found person's apparent age (their estimated birth-year range, or birth date).
    - ``found_before_missing``: found more than ``found_before_missing_days`` days before the
      date reported missing.
    - ``photo_age_gap``: the person is at least ``photo_age_gap_years`` older in one photo than
      in the other (from the photo dates, ``photo_date``, and the birth years): the model
      is much less reliable across such gaps, so a small distance means less and a large one
      rules out less. Not raised with ``age_implausible``: then the ages are two people's.
    """
    flags = []
    if "unknown" not in (found.sex, missing.sex) and found.sex != missing.sex:
        flags.append(Flag("sex_differs", {"found": found.sex, "missing": missing.sex}))

    on = photo_date(found, found_photo_taken_on)
    missing_years = birth_years(missing)
    found_years = birth_years(found)
    if on and missing_years and found_years:
        missing_age = (on.year - missing_years[1], on.year - missing_years[0])
        apparent_age = (on.year - found_years[1], on.year - found_years[0])
        gap = max(missing_age[0] - apparent_age[1], apparent_age[0] - missing_age[1], 0)
        if gap > age_margin_years:
            flags.append(
                Flag(
                    "age_implausible",
                    {
                        "on": on.isoformat(),
                        "missing_age": list(missing_age),
                        "apparent_age": list(apparent_age),
                        "gap_years": gap,
                    },
                )
            )

    gap_flag = _photo_age_gap_flag(
        photo_date(missing, missing_photo_taken_on),
        on,
        missing_years,
        found_years,
        photo_age_gap_years,
    )
    if gap_flag is not None and not any(f.code == "age_implausible" for f in flags):
        flags.append(gap_flag)  # two people's different ages are no gap in one person's age

    if found.date_found and missing.date_missing:
        early_days = (missing.date_missing - found.date_found).days
        if early_days > found_before_missing_days:
            flags.append(
                Flag(
                    "found_before_missing",
                    {
                        "date_found": found.date_found.isoformat(),
                        "date_missing": missing.date_missing.isoformat(),
                        "days": early_days,
                    },
                )
            )
    return flags


def face_choice_flags(found_choice: str | None, missing_choice: str | None) -> list[Flag]:
    """``face_chosen_automatically`` for each side (found first) whose face was chosen by an
    import among several in its photo (``FaceRow.face_choice``, ``largest`` or ``central``):
    the reviewer should check that it is the right person in the photo."""
    return [
        Flag("face_chosen_automatically", {"side": side, "choice": choice})
        for side, choice in (("found", found_choice), ("missing", missing_choice))
        if choice
    ]


def _photo_age_gap_flag(
    missing_on: date | None,
    found_on: date | None,
    missing_years: tuple[int, int] | None,
    found_years: tuple[int, int] | None,
    photo_age_gap_years: int,
) -> Flag | None:
    """``photo_age_gap`` when the person is at least that many years older in one photo."""
    if not (missing_on and found_on and missing_years and found_years):
        return None
    in_missing_photo = (missing_on.year - missing_years[1], missing_on.year - missing_years[0])
    in_found_photo = (found_on.year - found_years[1], found_on.year - found_years[0])
    gap = max(in_found_photo[0] - in_missing_photo[1], in_missing_photo[0] - in_found_photo[1])
    if gap < photo_age_gap_years:
        return None
    return Flag(
        "photo_age_gap",
        {
            "missing_photo_age": list(in_missing_photo),
            "found_photo_age": list(in_found_photo),
            "gap_years": gap,
        },
    )


def photo_date(case: CaseRow, taken_on: date | None) -> date | None:
    """When a photo of ``case`` counts as taken: its own date, else (undated) the day a found
    person was found, or the day a missing person went missing; None when none is known.
    The one rule for every age in a photo (flags, the cross-age tolerance)."""
    if taken_on is not None:
        return taken_on
    return case.date_found if case.kind == "found" else case.date_missing


def birth_years(case: CaseRow) -> tuple[int, int] | None:
    """The (earliest, latest) possible birth year of a case's person, or None if unknown."""
    if case.birth_date:
        return case.birth_date.year, case.birth_date.year
    low, high = case.birth_year_min, case.birth_year_max
    if low is None and high is None:
        return None
    return (low if low is not None else high or 0), (high if high is not None else low or 0)


def age_in_photo(case: CaseRow, taken_on: date | None) -> tuple[int, int] | None:
    """The (youngest, oldest) age the case's person can have in a photo taken on ``taken_on``
    (from the birth date or years; an undated photo counts as taken on the date found or
    missing, ``photo_date``, as the consistency flags do); None when unknown."""
    on = photo_date(case, taken_on)
    years = birth_years(case)
    if on is None or years is None:
        return None
    return on.year - years[1], on.year - years[0]


def years_apart(a: tuple[int, int] | None, b: tuple[int, int] | None) -> int:
    """The least age difference between two (youngest, oldest) ranges; 0 when unknown."""
    if a is None or b is None:
        return 0
    return max(a[0] - b[1], b[0] - a[1], 0)
