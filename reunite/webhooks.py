"""Webhooks: tell an agency's system when one of its cases gets a candidate or a decision.

(Being written: enqueue_candidate_event is final; delivery follows.)
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reunite.faces import similarity
from reunite.store import Candidate, Case, OutboxEvent, Webhook, utc_now

EVENT_TYPES = ("candidate.created", "candidate.decided")


def new_secret() -> str:
    """A fresh signing secret for a webhook (256 random bits, URL-safe text)."""
    return "whsec_" + secrets.token_urlsafe(32)


def enqueue_candidate_event(
    session: Session, event_type: str, candidate: Candidate, found: Case, missing: Case
) -> int:
    """Write one outbox event per active webhook of each agency with a case in ``candidate``.

    Runs in the caller's transaction, so the event exists exactly when the change does. The
    payload holds ids, the receiving agency's own case reference, the distance and the status:
    never names, photos or embeddings. Returns how many events were written.
    """
    written = 0
    agencies_done: set[str] = set()
    for case in (found, missing):
        if not case.agency or case.agency in agencies_done:
            continue
        agencies_done.add(case.agency)
        hooks = session.scalars(
            select(Webhook).where(Webhook.agency == case.agency, Webhook.active.is_(True))
        )
        for hook in hooks:
            event_id = str(uuid.uuid4())
            session.add(
                OutboxEvent(
                    webhook_id=hook.id,
                    event_id=event_id,
                    type=event_type,
                    payload=_payload(event_id, event_type, candidate, case),
                )
            )
            written += 1
    return written


def _payload(event_id: str, event_type: str, candidate: Candidate, own: Case) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": event_type,
        "created_at": utc_now().isoformat(),
        "candidate": {
            "id": candidate.id,
            "found_case_id": candidate.found_case_id,
            "missing_case_id": candidate.missing_case_id,
            "distance": candidate.distance,
            "similarity": similarity(candidate.distance),
            "status": candidate.status,
        },
        "case": {
            "id": own.id,
            "kind": own.kind,
            "agency": own.agency,
            "external_ref": own.external_ref,
        },
    }
