"""Review pages: the queue of pending candidates, a decision on one, and a case's page.

Each handler calls ``Reunite`` and renders one template; errors are answered as pages
(``PageRoute``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from reunite import names
from reunite.api.auth import check_csrf, service_of
from reunite.api.routes import MAX_ID, Id, decoded_cursor, encoded_cursor
from reunite.candidate_view import CandidateView
from reunite.errors import ReuniteError
from reunite.store import CaseRow
from reunite.web import i18n
from reunite.web.cards import card_context
from reunite.web.pages import PageRoute, language, page_error, page_user, render, safe_next

router = APIRouter(include_in_schema=False, route_class=PageRoute)

MAX_NOTE_CHARS = 2000
QUEUE_PAGE = 25


@router.get("/review")
def review_queue(request: Request, order: str = "closest", cursor: str | None = None) -> Response:
    """The pending candidates, a page of ``QUEUE_PAGE`` at a time."""
    page_user(request)
    order = order if order in ("closest", "newest") else "closest"
    listing = service_of(request).candidate_queue(
        status="pending",
        order=order,
        limit=QUEUE_PAGE,
        after=decoded_cursor(cursor, order=order),
    )
    return render(
        request,
        "queue.html",
        views=listing.items,
        total=listing.total,
        order=order,
        next_cursor=encoded_cursor(listing.next_after),
        **card_context(request, listing.items),
    )


@router.post("/candidates/{candidate_id}/decision")
def decide(
    request: Request,
    candidate_id: Id,
    status: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/review",
) -> Response:
    user = page_user(request)
    lang = language(request)
    if len(note) > MAX_NOTE_CHARS:
        request.session["notice"] = i18n.text(lang, "error.note_too_long")
        return RedirectResponse(safe_next(next), status_code=303)
    try:
        check_csrf(request, csrf_token)
        view = service_of(request).decide(
            candidate_id,
            status,
            actor=f"user:{user.username}",
            role=user.role,
            note=note.strip() or None,
        )
        request.session["notice"] = pair_notice(request, lang, "decision.saved", view)
        request.session["undo"] = undo_offer(request, view)
    except ReuniteError as exc:
        request.session["notice"] = i18n.error_text(lang, exc)
    return RedirectResponse(safe_next(next), status_code=303)


def pair_notice(request: Request, lang: str, key: str, view: CandidateView) -> str:
    """The notice after a change to a candidate (``key``), naming its pair and new status:
    each case by its agency's reference where it has one (``case_name``), else by its number."""
    c = view.candidate
    agencies = names.agency_names(
        service_of(request).store, [view.found.agency, view.missing.agency]
    )
    return i18n.text(
        lang,
        key,
        id=c.id,
        found=case_name(lang, view.found, agencies),
        missing=case_name(lang, view.missing, agencies),
        status=i18n.text(lang, f"status.{c.status}").lower(),
    )


def case_name(lang: str, case: CaseRow, agencies: dict[str, str]) -> str:
    """A case as staff name it, its side said: "found person SH-2024-0031 (Shanghai police)"
    (the agency's name, else its code, where known), else "found case 12"."""
    if not case.external_ref:
        return i18n.text(lang, f"notice.{case.kind}_case", id=case.id)
    reference = case.external_ref
    if case.agency:
        agency = agencies.get(case.agency, case.agency)
        reference = i18n.text(lang, "notice.reference", reference=reference, agency=agency)
    return i18n.text(lang, f"notice.{case.kind}", reference=reference)


def undo_offer(request: Request, view: CandidateView) -> dict[str, int] | None:
    """What the notice after a decision needs to offer its undo (shown once, on the next
    page): the candidate, the decision and the seconds it may be undone in; None when it may
    not be (``Reunite.undoable_until``)."""
    service = service_of(request)
    decision = view.decisions[-1]
    if service.undoable_until(decision) is None:
        return None
    return {
        "candidate": view.candidate.id,
        "decision": decision.id,
        "seconds": service.settings.undo_window_s,
    }


@router.post("/candidates/{candidate_id}/undo")
def undo(
    request: Request,
    candidate_id: Id,
    decision: Annotated[int, Form(ge=1, le=MAX_ID)],
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/review",
) -> Response:
    """Undo the signed-in user's own decision ``decision`` (see ``reunite.undo``)."""
    user = page_user(request)
    lang = language(request)
    try:
        check_csrf(request, csrf_token)
        view = service_of(request).undo(candidate_id, decision, actor=f"user:{user.username}")
        request.session["notice"] = pair_notice(request, lang, "undo.done", view)
    except ReuniteError as exc:
        request.session["notice"] = i18n.error_text(lang, exc)
    return RedirectResponse(safe_next(next), status_code=303)


# --------------------------------------------------------------------------------- case


@router.get("/cases/{case_id}")
def case_page(request: Request, case_id: Id) -> Response:
    page_user(request)
    service = service_of(request)
    try:
        case = service.case(case_id)
    except ReuniteError as exc:
        return page_error(request, exc, 404)
    views = service.candidates(case_id)
    return render(
        request,
        "case.html",
        case=case,
        photos=service.photos(case_id),
        views=views,
        **card_context(request, views, [case]),
    )
