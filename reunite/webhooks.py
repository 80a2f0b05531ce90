"""Webhooks: tell an agency's system when one of its cases gets a candidate or a decision.

Events are written to ``outbox_events`` in the same transaction as the change that causes them
(``enqueue_candidate_event``); a ``WebhookWorker`` (``reunite.webhook_delivery``) then POSTs
each one to the agency's URL and retries with exponential backoff until the receiver answers
2xx. Delivery is **at least once**:
a crash, or a lost response, can send an event again, so receivers must dedupe by event id
(the ``id`` field of the body, also sent as ``X-Reunite-Event-Id``).

Each request carries::

    Content-Type: application/json
    X-Reunite-Event-Id: 3f0c...               the event id (a UUID), the same on every retry
    X-Reunite-Event-Type: candidate.created   or candidate.decided
    X-Reunite-Signature: t=1767225600,v1=5d41...

``v1`` is the lowercase hex HMAC-SHA256, keyed with the webhook's secret (UTF-8), of the bytes
``f"{t}."`` followed by the raw request body; ``t`` is the sending time in Unix seconds. A
receiver recomputes it over the body bytes exactly as received (before any JSON parsing),
compares in constant time, and refuses a ``t`` more than a few minutes from its own clock (so a
captured request cannot be replayed later). ``signature_is_valid`` is the reference
implementation; in a receiver::

    from reunite.webhooks import SIGNATURE_HEADER, signature_is_valid

    body = request.body                            # raw bytes
    header = request.headers.get(SIGNATURE_HEADER, "")
    if not signature_is_valid(secret, header, body, now_s=int(time.time())):
        return 401
    event = json.loads(body)
    if not already_seen(event["id"]):              # at-least-once: dedupe by event id
        store(event)
    return 204                                     # 2xx only once the event is safely kept

Bodies hold ids, the receiving agency's own case reference, the distance, the similarity, the
candidate's explanation (rank, distance, score, flag codes) and the status: never names, photos
or embeddings. A receiver answering anything but 2xx (redirects included: they are not followed)
is retried; after ``webhook_max_attempts`` the event is marked ``failed`` and an admin can retry
it (``retry_delivery``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx2
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reunite import audit
from reunite.errors import Conflict, InvalidField, NotFound
from reunite.store import CaseRow, OutboxEventRow, Store, WebhookRow, utc_now
from reunite.webhook_targets import Network, check_registered_url

if TYPE_CHECKING:  # reunite.candidates imports this module
    from reunite.candidate_view import CandidateView

log = logging.getLogger(__name__)

EVENT_TYPES = ("candidate.created", "candidate.decided", "candidate.deleted")
"""``created``: a new candidate; ``decided``: its status changed (by a reviewer, or back to
pending when a new photo proposes a rejected pair again, or by an undo, ``reunite.undo``);
``deleted``: it went away with one of its cases. Events go to the agency of the candidate's
missing case."""
DELIVERY_STATUSES = ("pending", "delivered", "failed")

SIGNATURE_HEADER = "X-Reunite-Signature"
EVENT_ID_HEADER = "X-Reunite-Event-Id"
EVENT_TYPE_HEADER = "X-Reunite-Event-Type"
SIGNATURE_TOLERANCE_S = 300
"""How far, in seconds, a signature's timestamp may be from the receiver's clock."""

MAX_URL_CHARS = 2000
AGENCY_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
MAX_DELIVERIES_PAGE = 500


def new_secret() -> str:
    """A fresh signing secret for a webhook (256 random bits, URL-safe text)."""
    return "whsec_" + secrets.token_urlsafe(32)


# ----------------------------------------------------------------------------- signing


def signature_header(secret: str, timestamp_s: int, body: bytes) -> str:
    """The ``X-Reunite-Signature`` value for ``body`` sent at ``timestamp_s`` (Unix seconds)."""
    return f"t={timestamp_s},v1={_signature_hex(secret, timestamp_s, body)}"


def signature_is_valid(
    secret: str,
    header: str,
    body: bytes,
    *,
    now_s: int,
    tolerance_s: int = SIGNATURE_TOLERANCE_S,
) -> bool:
    """Whether ``header`` is a signature of ``body`` with ``secret``, made within
    ``tolerance_s`` seconds of ``now_s`` (either side, for clock skew).

    A malformed header is simply invalid. Several ``v1=`` values are accepted (any one may
    match). The comparison takes the same time wherever the hex digits differ. Cost: one
    HMAC-SHA256 over the body.
    """
    if not header.isascii():
        return False
    timestamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if name == "t":
            timestamps.append(value)
        elif name == "v1":
            signatures.append(value)
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not signatures:
        return False
    timestamp_s = int(timestamps[0])
    if abs(now_s - timestamp_s) > tolerance_s:
        return False
    expected = _signature_hex(secret, timestamp_s, body).encode()
    return any(hmac.compare_digest(expected, given.encode()) for given in signatures)


def _signature_hex(secret: str, timestamp_s: int, body: bytes) -> str:
    message = f"{timestamp_s}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The exact bytes POSTed for a payload: compact JSON, UTF-8, non-ASCII kept as is."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


# ------------------------------------------------------------------------------ events


def enqueue_candidate_event(session: Session, event_type: str, view: CandidateView) -> int:
    """Write one outbox event per active webhook of the agency of the candidate's missing case.

    Runs in the caller's transaction, so the event exists exactly when the change does. The
    payload holds ids, the receiving agency's own case reference, the distance, similarity,
    explanation and status: never names, photos or embeddings. Returns how many events were
    written.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    missing = view.missing
    written = 0
    # Agencies own missing cases (reunite.access.owns); a found case's agency field is a rescue
    # center's reference and gives its holder no right to hear about others' cases.
    own_cases: dict[str, list[CaseRow]] = {}
    if missing.agency:
        own_cases[missing.agency] = [missing]
    for agency, cases in own_cases.items():
        hooks = session.scalars(
            select(WebhookRow).where(WebhookRow.agency == agency, WebhookRow.active.is_(True))
        )
        for hook in hooks:
            event_id = str(uuid.uuid4())
            session.add(
                OutboxEventRow(
                    webhook_id=hook.id,
                    event_id=event_id,
                    type=event_type,
                    payload=_payload(event_id, event_type, view, cases),
                )
            )
            written += 1
    return written


def _payload(
    event_id: str, event_type: str, view: CandidateView, own: list[CaseRow]
) -> dict[str, Any]:
    """The event body. ``case`` is the receiving agency's case in the pair (``cases`` lists
    both when both are the agency's)."""
    candidate = view.candidate
    summaries = [
        {"id": c.id, "kind": c.kind, "agency": c.agency, "external_ref": c.external_ref}
        for c in own
    ]
    return {
        "id": event_id,
        "type": event_type,
        "created_at": utc_now().isoformat(),
        "candidate": {
            "id": candidate.id,
            "found_case_id": candidate.found_case_id,
            "missing_case_id": candidate.missing_case_id,
            "distance": candidate.distance,
            "similarity": view.similarity,
            "similarity_basis": view.similarity_basis,
            "status": candidate.status,
            "explanation": view.explanation.as_dict(),
        },
        "case": summaries[-1],
        "cases": summaries,
    }


# ------------------------------------------------------------------------ registration


def register_webhook(
    session: Session, agency: str, url: str, allowed_networks: Sequence[Network] = ()
) -> tuple[WebhookRow, str]:
    """Add an active webhook for ``agency``; returns the row and its signing secret.

    The URL must be absolute ``http`` or ``https`` with a host, without credentials (receivers
    authenticate us by the signature) or whitespace, aimed at a public address or one in
    ``allowed_networks`` (see ``webhook_targets``). Show the secret to the agency once.

    Raises:
        InvalidField: a malformed agency or URL.
        WebhookTargetRefused: the URL names a loopback, private or link-local address.
    """
    if not AGENCY_PATTERN.match(agency):
        raise _invalid("agency", "An agency is 1-64 letters, digits or _ . -.")
    checked = _checked_url(url)
    check_registered_url(checked, allowed_networks)
    secret = new_secret()
    hook = WebhookRow(agency=agency, url=checked, secret=secret, active=True)
    session.add(hook)
    session.flush()
    log.info("webhook %d registered", hook.id)
    return hook, secret


def agency_webhooks(session: Session, agency: str) -> list[WebhookRow]:
    """The agency's webhooks, active or not, oldest first."""
    return list(
        session.scalars(
            select(WebhookRow).where(WebhookRow.agency == agency).order_by(WebhookRow.id)
        )
    )


def deactivate_webhook(session: Session, webhook_id: int, agency: str | None) -> WebhookRow:
    """Stop sending to a webhook (its pending events are marked failed by the next pass).

    With ``agency`` given, only that agency's webhook can be deactivated. Deactivating an
    inactive webhook changes nothing.

    Raises:
        NotFound: no such webhook, or it belongs to another agency.
    """
    hook = session.get(WebhookRow, webhook_id)
    if hook is None or (agency is not None and hook.agency != agency):
        raise NotFound(f"There is no webhook {webhook_id}.")
    if hook.active:
        hook.active = False
        log.info("webhook %d deactivated", hook.id)
    return hook


def deliveries(
    session: Session,
    *,
    status: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[OutboxEventRow]:
    """Outbox events, newest first, optionally of one status; page with ``before_id`` (the
    last row id seen).

    Raises:
        InvalidField: an unknown status, or ``limit`` outside 1..500.
    """
    if status is not None and status not in DELIVERY_STATUSES:
        raise _invalid("status", f"status must be one of {list(DELIVERY_STATUSES)}.")
    if not 1 <= limit <= MAX_DELIVERIES_PAGE:
        raise _invalid("limit", f"limit must be between 1 and {MAX_DELIVERIES_PAGE}.")
    query = select(OutboxEventRow)
    if status is not None:
        query = query.where(OutboxEventRow.status == status)
    if before_id is not None:
        query = query.where(OutboxEventRow.id < before_id)
    return list(session.scalars(query.order_by(OutboxEventRow.id.desc()).limit(limit)))


def retry_delivery(session: Session, event_row_id: int) -> OutboxEventRow:
    """Put a ``failed`` event back to ``pending``, due now.

    Its attempts are kept, so one more failure marks it failed again (one retry per call).

    Raises:
        NotFound: no such event.
        Conflict: the event is not ``failed``, or its webhook is no longer active.
    """
    event = session.get(OutboxEventRow, event_row_id)
    if event is None:
        raise NotFound(f"There is no webhook delivery {event_row_id}.")
    if event.status != "failed":
        raise Conflict(
            f"Webhook delivery {event_row_id} is {event.status}; only failed ones can be retried."
        )
    hook = session.get(WebhookRow, event.webhook_id)
    if hook is None or not hook.active:
        raise Conflict(
            f"Webhook {event.webhook_id} is deactivated; register a new one to receive events."
        )
    event.status = "pending"
    event.next_attempt_at = utc_now()
    log.info("webhook event %d put back to pending", event.id)
    return event


def backlog(session: Session) -> int:
    """How many events wait for delivery (``pending``, due now or later)."""
    count = session.scalar(
        select(func.count()).select_from(OutboxEventRow).where(OutboxEventRow.status == "pending")
    )
    return count or 0


# ------------------------------------------------------ registration over a store
# Each runs one transaction; those that change a webhook or a delivery audit it.


def create_webhook(
    store: Store,
    agency: str,
    url: str,
    *,
    actor: str,
    allowed_networks: Sequence[Network] = (),
) -> tuple[WebhookRow, str]:
    """Register an agency's webhook URL (see ``register_webhook``); returns it and its signing
    secret (shown once)."""
    with store.transaction() as session:
        hook, secret = register_webhook(session, agency, url, allowed_networks)
        audit.record(session, actor, "webhook.create", None, webhook_id=hook.id, agency=agency)
    return hook, secret


def webhooks_of(store: Store, agency: str) -> list[WebhookRow]:
    """The agency's webhooks, active or not, oldest first."""
    with store.transaction() as session:
        return agency_webhooks(session, agency)


def disable_webhook(store: Store, webhook_id: int, *, agency: str | None, actor: str) -> WebhookRow:
    """``deactivate_webhook`` in its own transaction, audited."""
    with store.transaction() as session:
        hook = deactivate_webhook(session, webhook_id, agency)
        audit.record(session, actor, "webhook.deactivate", None, webhook_id=hook.id)
    return hook


def webhook_deliveries(
    store: Store, *, status: str | None, limit: int, before_id: int | None
) -> list[OutboxEventRow]:
    """``deliveries`` in its own transaction."""
    with store.transaction() as session:
        return deliveries(session, status=status, limit=limit, before_id=before_id)


def retry_webhook_delivery(store: Store, event_row_id: int, *, actor: str) -> OutboxEventRow:
    """``retry_delivery`` in its own transaction, audited."""
    with store.transaction() as session:
        event = retry_delivery(session, event_row_id)
        audit.record(session, actor, "webhook.retry", None, outbox_event_id=event.id)
    return event


def webhook_backlog(store: Store) -> int:
    """``backlog`` in its own transaction."""
    with store.transaction() as session:
        return backlog(session)


def _checked_url(url: str) -> str:
    """``url`` stripped of surrounding whitespace, if it is fit to POST events to."""
    text = url.strip()
    if not text:
        raise _invalid("url", "A webhook URL is required.")
    if len(text) > MAX_URL_CHARS:
        raise _invalid("url", f"A webhook URL has at most {MAX_URL_CHARS} characters.")
    if any(c.isspace() or not c.isprintable() for c in text):
        raise _invalid("url", "A webhook URL must not contain spaces or control characters.")
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https"):
        raise _invalid("url", "A webhook URL must start with https:// (or http://).")
    if not parts.hostname:
        raise _invalid("url", "A webhook URL needs a host name.")
    if parts.username is not None or parts.password is not None:
        raise _invalid(
            "url",
            "A webhook URL must not contain a user name or password: receivers check the "
            f"{SIGNATURE_HEADER} header instead.",
        )
    try:
        parts.port  # noqa: B018 - parsing the port is the check
        httpx2.URL(text)
    except (ValueError, httpx2.InvalidURL) as exc:
        raise _invalid("url", "This webhook URL cannot be parsed (check the port).") from exc
    return text


def _invalid(field: str, message: str) -> InvalidField:
    return InvalidField(message, errors=[{"field": field, "message": message}])
