"""Webhook delivery: a worker that POSTs due outbox events to the agencies' URLs.

Events, their signature and the webhooks themselves are ``reunite.webhooks``; this module sends
them, at least once, with exponential backoff (``backoff_s``) until the receiver answers 2xx or
``webhook_max_attempts`` is reached (the event is then ``failed``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import httpx2
from sqlalchemy import CursorResult, select, update

from reunite.config import Settings
from reunite.errors import StoreUnavailable, WebhookTargetRefused
from reunite.store import OutboxEventRow, Store, WebhookRow, utc_now
from reunite.webhook_targets import checked_address
from reunite.webhooks import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    body_bytes,
    signature_header,
)

log = logging.getLogger(__name__)

BATCH_SIZE = 100
"""Due events read per query within a pass."""


@dataclass(frozen=True)
class _Claim:
    """An event this worker holds the lease on, with what it needs to send it."""

    row_id: int
    event_id: str
    event_type: str
    webhook_id: int
    url: str
    secret: str
    body: bytes
    attempts: int
    lease_until: datetime


@dataclass(frozen=True)
class _Outcome:
    delivered: bool
    reason: str | None
    """Why it failed: ``HTTP <status>`` or the exception's class name (never bodies)."""


_DEFAULT_PORTS = {"http": 80, "https": 443}


class WebhookWorker:
    """Delivers due outbox events, in passes: by calling ``deliver_due``, or every
    ``webhook_poll_interval_s`` in a daemon thread (``start``/``wake``/``stop``).

    Claiming. Before sending, an event is claimed by a conditional UPDATE that moves its
    ``next_attempt_at`` past the send's longest possible duration (a lease) only if it is still
    pending and due; a worker whose UPDATE changes no row leaves the event alone. So workers in
    one process, or processes sharing one database, never send an event twice at the same
    moment. The same UPDATE is correct on PostgreSQL (the loser re-reads the row after the
    winner commits); with many servers, claiming a batch with ``SELECT ... FOR UPDATE SKIP
    LOCKED`` would save round trips but is not needed for correctness.

    Durability. Each claim and each outcome is its own transaction, and the HTTP request runs
    outside any transaction. A crash loses nothing: an event whose outcome was not recorded is
    sent again once its lease runs out (at-least-once; receivers dedupe by event id).
    """

    def __init__(
        self, store: Store, settings: Settings, *, client: httpx2.Client | None = None
    ) -> None:
        self.store = store
        self.settings = settings
        self._client = client
        self._owns_client = client is None
        self._client_lock = threading.Lock()
        # Connect, write, read and pool each have the timeout; a send that outlives the lease
        # may be sent again by another worker, which at-least-once delivery allows.
        self._lease = timedelta(seconds=4 * settings.webhook_timeout_s + 60)
        self._allowed = settings.webhook_networks
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop_thread = threading.Event()

    # -------------------------------------------------------------------- passes

    def deliver_due(self) -> int:
        """Try every event that is pending and due now, oldest first; returns how many were
        delivered (answered 2xx).

        A failing event never stops the pass: its failure is recorded and logged with ids.
        Cost: up to one HTTP request (at most ``webhook_timeout_s`` per phase) and three short
        transactions per due event.
        """
        return self._pass(threading.Event())

    def _pass(self, stop: threading.Event) -> int:
        cutoff = utc_now()
        delivered = 0
        last_id = 0
        while not stop.is_set():
            row_ids = self._due_ids(cutoff, after_id=last_id)
            if not row_ids:
                break
            for row_id in row_ids:
                if stop.is_set():
                    break
                last_id = row_id
                try:
                    delivered += self._deliver(row_id)
                except Exception:
                    log.exception("webhook event %d: recording the attempt failed", row_id)
        return delivered

    def _due_ids(self, cutoff: datetime, *, after_id: int) -> list[int]:
        """Ids of up to ``BATCH_SIZE`` events pending and due at ``cutoff``, after ``after_id``."""
        with self.store.transaction() as session:
            return list(
                session.scalars(
                    select(OutboxEventRow.id)
                    .where(
                        OutboxEventRow.status == "pending",
                        OutboxEventRow.next_attempt_at <= cutoff,
                        OutboxEventRow.id > after_id,
                    )
                    .order_by(OutboxEventRow.id)
                    .limit(BATCH_SIZE)
                )
            )

    def _deliver(self, row_id: int) -> bool:
        """Claim, send and record one event; whether it was delivered now."""
        claim = self._claimed(row_id)
        if claim is None:
            return False
        outcome = self._sent(claim)
        self._record(claim, outcome)
        return outcome.delivered

    def _claimed(self, row_id: int) -> _Claim | None:
        """The event, leased to this worker; None when another worker has it, it is no longer
        due, or its webhook is deactivated (then it is marked failed)."""
        now = utc_now()
        lease_until = now + self._lease
        with self.store.transaction() as session:
            result = session.execute(
                update(OutboxEventRow)
                .where(
                    OutboxEventRow.id == row_id,
                    OutboxEventRow.status == "pending",
                    OutboxEventRow.next_attempt_at <= now,
                )
                .values(next_attempt_at=lease_until)
                .execution_options(synchronize_session=False)
            )
            if cast(CursorResult[Any], result).rowcount != 1:
                return None
            event = session.get_one(OutboxEventRow, row_id)
            hook = session.get(WebhookRow, event.webhook_id)
            if hook is None or not hook.active:
                event.status = "failed"
                event.last_error = "webhook deactivated"
                event.next_attempt_at = now
                log.warning(
                    "webhook event %d: webhook %d is deactivated; marked failed",
                    row_id,
                    event.webhook_id,
                )
                return None
            return _Claim(
                row_id=row_id,
                event_id=event.event_id,
                event_type=event.type,
                webhook_id=hook.id,
                url=hook.url,
                secret=hook.secret,
                body=body_bytes(event.payload),
                attempts=event.attempts,
                lease_until=lease_until,
            )

    def _sent(self, claim: _Claim) -> _Outcome:
        """POST the event; the outcome (2xx or why not). The response body is never read.

        The URL's host is resolved now and every address checked (``webhook_targets``); the
        request then goes to the checked address itself, with the URL's host name in the
        ``Host`` header and for TLS (SNI and the certificate check), so the name cannot
        resolve elsewhere in between."""
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: claim.event_id,
            EVENT_TYPE_HEADER: claim.event_type,
            SIGNATURE_HEADER: signature_header(claim.secret, int(time.time()), claim.body),
        }
        url = httpx2.URL(claim.url)
        try:
            address = checked_address(
                url.host, url.port or _DEFAULT_PORTS[url.scheme], self._allowed
            )
        except WebhookTargetRefused:
            return _Outcome(False, "target address refused (not public; see webhook settings)")
        except OSError:
            return _Outcome(False, "host name does not resolve")
        headers["Host"] = url.netloc.decode("ascii")
        try:
            with self._http().stream(
                "POST",
                url.copy_with(host=str(address)),
                content=claim.body,
                headers=headers,
                timeout=self.settings.webhook_timeout_s,
                extensions={"sni_hostname": url.host} if url.scheme == "https" else {},
            ) as response:
                status = response.status_code
        except Exception as exc:  # any failure to send is this event's failure, not the pass's
            return _Outcome(False, type(exc).__name__)
        if 200 <= status < 300:
            return _Outcome(True, None)
        return _Outcome(False, f"HTTP {status}")

    def _record(self, claim: _Claim, outcome: _Outcome) -> None:
        """Store the attempt: delivered, or failed with the next try (or for good)."""
        now = utc_now()
        attempts = claim.attempts + 1
        if outcome.delivered:
            # Recorded even if the lease ran out meanwhile: the receiver has the event.
            conditions = [OutboxEventRow.id == claim.row_id, OutboxEventRow.status == "pending"]
            values: dict[str, Any] = {
                "status": "delivered",
                "delivered_at": now,
                "attempts": attempts,
                "last_error": None,
            }
        else:
            gave_up = attempts >= self.settings.webhook_max_attempts
            delay_s = backoff_s(
                attempts, self.settings.webhook_backoff_base_s, self.settings.webhook_backoff_max_s
            )
            # Only while the lease is ours: else another worker has taken the event over.
            conditions = [
                OutboxEventRow.id == claim.row_id,
                OutboxEventRow.status == "pending",
                OutboxEventRow.next_attempt_at == claim.lease_until,
            ]
            values = {
                "status": "failed" if gave_up else "pending",
                "attempts": attempts,
                "last_error": (outcome.reason or "unknown")[:500],
                "next_attempt_at": now if gave_up else now + timedelta(seconds=delay_s),
            }
        with self.store.transaction() as session:
            result = session.execute(
                update(OutboxEventRow)
                .where(*conditions)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            recorded = cast(CursorResult[Any], result).rowcount == 1
        ids = (claim.row_id, claim.webhook_id, attempts)
        if not recorded:
            log.info("webhook event %d (webhook %d, attempt %d): taken over meanwhile", *ids)
        elif outcome.delivered:
            log.info("webhook event %d delivered to webhook %d (attempt %d)", *ids)
        elif values["status"] == "failed":
            log.warning(
                "webhook event %d to webhook %d failed (attempt %d, the last): %s",
                *ids,
                outcome.reason,
            )
        else:
            log.warning(
                "webhook event %d to webhook %d failed (attempt %d): %s; next try in %.1f s",
                *ids,
                outcome.reason,
                delay_s,
            )

    def _http(self) -> httpx2.Client:
        with self._client_lock:
            if self._client is None:
                self._client = httpx2.Client(
                    timeout=self.settings.webhook_timeout_s, follow_redirects=False
                )
            return self._client

    # -------------------------------------------------------------------- thread

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Run a pass now and then every ``webhook_poll_interval_s`` (or at ``wake``), in a
        daemon thread, until ``stop``. Raises ``RuntimeError`` if already running."""
        if self.running:
            raise RuntimeError("the webhook worker is already running")
        self._stop_thread = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stop_thread,), name="reunite-webhooks", daemon=True
        )
        self._thread.start()
        log.info("webhook worker started")

    def wake(self) -> None:
        """Start the next pass now rather than at the next poll (call after writing events)."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread after the event in flight (waits up to ``timeout_s`` seconds), then
        close the HTTP client this worker made (a later ``deliver_due`` makes a new one)."""
        thread = self._thread
        if thread is not None:
            self._stop_thread.set()
            self._wake.set()
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("webhook worker: still sending after %.1f s; left to finish", timeout_s)
                return
            self._thread = None
            log.info("webhook worker stopped")
        if self._owns_client:
            with self._client_lock:
                if self._client is not None:
                    self._client.close()
                    self._client = None

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._wake.clear()  # before the pass: a wake during the pass starts the next one
            try:
                self._pass(stop)
            except StoreUnavailable:  # the database is down or restarting: one line, no traceback
                log.warning("webhook worker: pass failed (database unreachable); trying again")
            except Exception:
                log.exception("webhook worker: pass failed; trying again at the next poll")
            self._wake.wait(self.settings.webhook_poll_interval_s)


def backoff_s(attempts: int, base_s: float, max_s: float) -> float:
    """Seconds to wait after ``attempts`` failed attempts: ``base_s`` doubling, at most
    ``max_s``."""
    return float(min(base_s * 2 ** min(attempts - 1, 64), max_s))
