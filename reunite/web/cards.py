"""What a candidate card (and a case page) shows beyond the candidate itself: every photo of
both cases with their faces, each case's agency reference, the facts a reviewer checks, and
the people who decided, by name.

``card_context`` gathers a whole page's worth at once: one query for the photos and faces of
every case on the page, one for the agencies' names, one each for the users and keys who
decided; never one per card. Its values go into the page's template context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from reunite import names
from reunite.api.auth import service_of, session_user
from reunite.candidate_view import CandidateView
from reunite.store import CaseRow, PhotoRow
from reunite.web import i18n
from reunite.web.pages import case_facts, language


def card_context(
    request: Request, views: Sequence[CandidateView], cases: Iterable[CaseRow] = ()
) -> dict[str, Any]:
    """The template values the cards of ``views`` (and the pages of ``cases``) need:
    ``case_photos`` (case id to its photos, each with its faces), ``reference``, ``card_facts``,
    ``photo_date``, ``actor_name`` and ``undo_until`` (functions of a case, a photo, an actor
    string and a card)."""
    service = service_of(request)
    lang = language(request)
    shown = {case.id: case for case in cases}
    for view in views:
        shown[view.found.id] = view.found
        shown[view.missing.id] = view.missing
    photos = service.photos_of_cases(shown)
    agencies = names.agency_names(service.store, (case.agency for case in shown.values()))
    actors = names.actors(service.store, (d.actor for v in views for d in v.decisions))

    def photo_date(photo: PhotoRow) -> str:
        return photo_date_text(lang, photo)

    def facts(case: CaseRow) -> list[tuple[str, str]]:
        return card_facts(lang, case, agencies, [p for p, _ in photos.get(case.id, [])])

    return {
        "case_photos": photos,
        "reference": lambda case: reference_text(lang, case, agencies),
        "card_facts": facts,
        "photo_date": photo_date,
        "actor_name": lambda actor: actor_text(lang, actors.get(actor), actor),
        "undo_until": lambda view: undo_until(request, view),
    }


def undo_until(request: Request, view: CandidateView) -> datetime | None:
    """Until when the signed-in user may still undo the card's last decision (their own, made
    within the undo window, nothing changed since), else None. The undo route checks again."""
    user = session_user(request)
    if user is None or not view.decisions:
        return None
    decision = view.decisions[-1]
    if decision.actor != f"user:{user.username}":
        return None
    until = service_of(request).undoable_until(decision)
    return until if until is not None and until > datetime.now(UTC) else None


def reference_text(lang: str, case: CaseRow, agencies: dict[str, str]) -> str:
    """A case's reference as staff quote it: ``Agency name (CODE) · REF``, what is known of it,
    or words saying there is none."""
    agency = case.agency
    parts = []
    if agency:
        parts.append(f"{agencies[agency]} ({agency})" if agency in agencies else agency)
    if case.external_ref:
        parts.append(case.external_ref)
    return " · ".join(parts) if parts else i18n.text(lang, "card.reference_none")


def photo_date_text(lang: str, photo: PhotoRow) -> str:
    """When a photo was taken, or "date unknown": never the upload date, which says nothing of
    the person's age in it."""
    if photo.taken_on is None:
        return i18n.text(lang, "photo.date_unknown")
    return i18n.text(lang, "photo.taken", date=i18n.date_text(lang, photo.taken_on))


def card_facts(
    lang: str, case: CaseRow, agencies: dict[str, str], photos: list[PhotoRow]
) -> list[tuple[str, str]]:
    """The facts a reviewer checks, as (label, value) rows: ``case_facts`` (name, sex, birth
    years, the date missing or found, place, status), then the agency and its case number,
    the contact, and the dates the photos were taken."""
    t: Callable[..., str] = i18n.text
    unknown = t(lang, "unknown")
    agency = case.agency
    rows = case_facts(lang, case)
    rows += [
        (
            t(lang, "field.agency"),
            (f"{agencies[agency]} ({agency})" if agency in agencies else agency or unknown),
        ),
        (t(lang, "field.external_ref"), case.external_ref or unknown),
        (t(lang, "field.contact"), case.contact or unknown),
    ]
    if photos:
        dates = [
            i18n.date_text(lang, p.taken_on) if p.taken_on else t(lang, "photo.date_unknown")
            for p in photos
        ]
        rows.append((t(lang, "card.photo_dates"), ("、" if lang == "zh-CN" else ", ").join(dates)))
    return rows


def actor_text(lang: str, actor: names.Actor | None, raw: str) -> str:
    """Who did something, in words: a user's display name (else username), an API key by its
    label and prefix, the command line, the system; else the actor string as stored."""
    if actor is None or actor.kind == "other":
        key = f"actor.{raw}"
        return i18n.text(lang, key) if i18n.has_text(lang, key) else raw
    if actor.kind == "key":
        if actor.name:
            return i18n.text(lang, "actor.key", label=actor.name, prefix=actor.prefix)
        return i18n.text(lang, "actor.key_unlabelled", prefix=actor.prefix)
    return actor.name or raw
