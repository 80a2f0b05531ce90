"""Webhooks: signing, registration, and delivery by ``WebhookWorker`` to a real HTTP receiver
(``http.server`` on 127.0.0.1), over a real SQLite store, with candidates made by real dlib."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from reunite.config import Settings
from reunite.errors import Conflict, InvalidField, NotFound
from reunite.service import Reunite
from reunite.store import CandidateRow, OutboxEventRow, WebhookRow, utc_now
from reunite.webhook_delivery import WebhookWorker, backoff_s
from reunite.webhook_targets import allowed_networks
from reunite.webhooks import (
    SIGNATURE_HEADER,
    agency_webhooks,
    backlog,
    deactivate_webhook,
    deliveries,
    new_secret,
    register_webhook,
    retry_delivery,
    signature_header,
    signature_is_valid,
)
from tests.conftest import settings_in

NAME = "Zhang Xiaoming"
"""A missing person's name: it must never appear in a webhook body."""


# ------------------------------------------------------------------------------ receiver


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    answered: int

    @property
    def event_id(self) -> str:
        return self.headers["x-reunite-event-id"]


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every POST and answers ``status``.

    ``stop`` closes the port (senders get connection refused); ``start`` opens it again on the
    same port.
    """

    def __init__(self) -> None:
        self.status = 200
        self.location: str | None = None
        """Sent as ``Location`` (a redirect) when set."""
        self.port = 0
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.start()

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                answered = receiver.status
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver._lock:
                    receiver._received.append(Received(self.path, headers, body, answered))
                self.send_response(answered)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def accepted(self) -> list[Received]:
        """The requests answered 2xx."""
        return [r for r in self.received if 200 <= r.answered < 300]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


# ------------------------------------------------------------------------------- helpers


LOCAL = "127.0.0.1/32"
"""The receiver runs on this machine: its network is allowed, as the tutorial allows it."""


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return settings_in(tmp_path, database_url=database_url, webhook_allowed_networks=LOCAL)


def fast_settings(directory: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_allowed_networks": LOCAL,
        "webhook_backoff_base_s": 0.05,
        "webhook_backoff_max_s": 0.2,
        "webhook_poll_interval_s": 0.05,
        **overrides,
    }
    return settings_in(directory, **values)


@pytest.fixture
def service(tmp_path: Path, finder: Any) -> Iterator[Reunite]:
    with Reunite.open(fast_settings(tmp_path), finder=finder) as opened:
        yield opened


@pytest.fixture
def worker(service: Reunite) -> Iterator[WebhookWorker]:
    made = WebhookWorker(service.store, service.settings)
    yield made
    made.stop()


def register(service: Reunite, url: str, agency: str = "SH-PSB") -> tuple[int, str]:
    """A new webhook's id and secret."""
    with service.store.transaction() as session:
        hook, secret = register_webhook(session, agency, url, service.settings.webhook_networks)
    return hook.id, secret


def make_candidate(service: Reunite, sample: Callable[[str], bytes], ref: str = "SH-1") -> int:
    """A missing case of SH-PSB (obama.jpg) and a found case (obama2.jpg): the candidate's id.

    Each active SH-PSB webhook gets one ``candidate.created`` event.
    """
    missing = service.create_case(
        {"kind": "missing", "agency": "SH-PSB", "external_ref": ref, "name": NAME}, actor="t"
    )
    service.enroll_photo(missing.id, sample("obama.jpg"), actor="t")
    found = service.create_case({"kind": "found", "name": "unknown man"}, actor="t")
    enrollment = service.enroll_photo(found.id, sample("obama2.jpg"), actor="t")
    [view] = enrollment.new_candidates
    return view.candidate.id


def events(service: Reunite, status: str | None = None) -> list[OutboxEventRow]:
    """Every outbox event (of ``status``), oldest first."""
    with service.store.transaction() as session:
        return list(reversed(deliveries(session, status=status, limit=500)))


def pending_count(service: Reunite) -> int:
    with service.store.transaction() as session:
        return backlog(session)


def eventually(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s} s: {what}")
        time.sleep(0.01)


def passes_until(worker: WebhookWorker, condition: Callable[[], bool], what: str) -> None:
    """Run delivery passes until ``condition`` holds (retries become due after backoff)."""

    def done() -> bool:
        worker.deliver_due()
        return condition()

    eventually(done, what)


def verified(request: Received, secret: str) -> dict[str, Any]:
    """The request's body as JSON, after checking its headers and signature."""
    assert request.headers["content-type"] == "application/json"
    header = request.headers[SIGNATURE_HEADER.lower()]
    assert signature_is_valid(secret, header, request.body, now_s=int(time.time()))
    payload: dict[str, Any] = json.loads(request.body)
    assert payload["id"] == request.event_id
    assert payload["type"] == request.headers["x-reunite-event-type"]
    # compact UTF-8 JSON, exactly as documented
    assert request.body == json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return payload


# ------------------------------------------------------------------------------- signing


def test_signature_round_trip() -> None:
    secret = new_secret()
    body = '{"id":"e1","note":"走失"}'.encode()
    header = signature_header(secret, 1_767_225_600, body)

    assert header.startswith("t=1767225600,v1=")
    assert len(header.split("v1=")[1]) == 64
    assert signature_is_valid(secret, header, body, now_s=1_767_225_600)
    assert signature_is_valid(secret, header, body, now_s=1_767_225_600 + 300)
    assert signature_is_valid(secret, header, body, now_s=1_767_225_600 - 300)  # clock skew
    # a second v1 (say, signed with a rotated secret) does not hide a valid one
    rotated = header + ",v1=" + "0" * 64
    assert signature_is_valid(secret, rotated, body, now_s=1_767_225_600)


def test_signature_rejects_tampering_wrong_secret_stale_time_and_garbage() -> None:
    secret = new_secret()
    body = b'{"id":"e1","candidate":{"id":7}}'
    now = 1_767_225_600
    header = signature_header(secret, now, body)

    assert not signature_is_valid(secret, header, b'{"id":"e1","candidate":{"id":8}}', now_s=now)
    assert not signature_is_valid(new_secret(), header, body, now_s=now)
    assert not signature_is_valid(secret, header, body, now_s=now + 301)  # replayed later
    assert not signature_is_valid(secret, header, body, now_s=now + 60, tolerance_s=59)
    # the timestamp is signed: moving it breaks the signature
    moved = header.replace(f"t={now}", f"t={now + 100}")
    assert not signature_is_valid(secret, moved, body, now_s=now + 100)
    for garbage in ("", "v1=abc", f"t={now}", f"t=x,{header.split(',')[1]}", "t=1,t=2,v1=a", "é"):
        assert not signature_is_valid(secret, garbage, body, now_s=now), garbage


def test_backoff_doubles_from_the_base_up_to_the_maximum() -> None:
    assert [backoff_s(n, 5.0, 600.0) for n in (1, 2, 3, 7, 8, 50, 10_000)] == [
        5.0,
        10.0,
        20.0,
        320.0,
        600.0,
        600.0,
        600.0,
    ]


# -------------------------------------------------------------------------- registration


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "example.org/hook",
        "ftp://example.org/hook",
        "javascript:alert(1)",
        "http://",
        "https:///hook",
        "http://user:password@example.org/hook",
        "http://example.org:99999/hook",
        "http://exa mple.org/hook",
        "http://example.org/a\tb",
        "https://example.org/" + "a" * 2000,
    ],
)
def test_register_webhook_refuses_bad_urls(service: Reunite, url: str) -> None:
    with pytest.raises(InvalidField) as raised, service.store.transaction() as session:
        register_webhook(session, "SH-PSB", url)
    assert raised.value.details["errors"][0]["field"] == "url"
    with service.store.transaction() as session:
        assert agency_webhooks(session, "SH-PSB") == []


@pytest.mark.parametrize("agency", ["", "SH PSB", "x" * 65, "SH/PSB"])
def test_register_webhook_refuses_bad_agencies(service: Reunite, agency: str) -> None:
    with pytest.raises(InvalidField) as raised, service.store.transaction() as session:
        register_webhook(session, agency, "https://example.org/hook")
    assert raised.value.details["errors"][0]["field"] == "agency"


def test_register_list_and_deactivate_webhooks(service: Reunite) -> None:
    with service.store.transaction() as session:
        first, secret = register_webhook(session, "SH-PSB", "  https://psb.example/hook?x=1 ")
        second, other_secret = register_webhook(
            session, "SH-PSB", "http://10.0.0.5:8080/in", allowed_networks("10.0.0.0/8")
        )
        register_webhook(session, "BJ-PSB", "https://bj.example/hook")

    assert first.url == "https://psb.example/hook?x=1"
    assert secret == first.secret and secret.startswith("whsec_") and secret != other_secret
    with service.store.transaction() as session:
        assert [h.id for h in agency_webhooks(session, "SH-PSB")] == [first.id, second.id]
        with pytest.raises(NotFound):
            deactivate_webhook(session, first.id, "BJ-PSB")
        with pytest.raises(NotFound):
            deactivate_webhook(session, 999_999, None)
        assert not deactivate_webhook(session, first.id, "SH-PSB").active
        assert not deactivate_webhook(session, first.id, None).active  # again: no change
    with service.store.transaction() as session:
        assert [h.active for h in agency_webhooks(session, "SH-PSB")] == [False, True]


# ------------------------------------------------------------------------------ delivery


def test_candidate_events_reach_the_agency_signed_and_without_names(
    tmp_path: Path, finder: Any, sample: Callable[[str], bytes], receiver: Receiver
) -> None:
    service = Reunite.open(fast_settings(tmp_path), finder=finder)
    worker = WebhookWorker(service.store, service.settings)
    try:
        with service.store.transaction() as session:
            _, secret = register_webhook(
                session, "SH-PSB", receiver.url("/psb"), service.settings.webhook_networks
            )
        worker.start()
        candidate_id = make_candidate(service, sample, ref="SH-2026-0042")
        worker.wake()
        eventually(lambda: len(receiver.received) == 1, "candidate.created delivered")

        [created] = receiver.received
        payload = verified(created, secret)
        assert created.path == "/psb"
        assert payload["type"] == "candidate.created"
        assert payload["candidate"]["id"] == candidate_id
        assert payload["candidate"]["status"] == "pending"
        assert payload["case"]["agency"] == "SH-PSB"
        assert payload["case"]["external_ref"] == "SH-2026-0042"
        with service.store.transaction() as session:
            row = session.get_one(CandidateRow, candidate_id)
            assert payload["candidate"]["explanation"] == {
                "rank": row.rank,
                "distance": row.distance,
                "score": row.score,
                "flags": [],
            }
        assert payload["candidate"]["similarity_basis"] == "pair"  # two cases: no cohort
        assert NAME.split()[0].encode() not in created.body
        assert b"unknown man" not in created.body

        with service.store.transaction() as session:  # as the matching records them
            session.get_one(CandidateRow, candidate_id).rank = 1
            session.get_one(CandidateRow, candidate_id).score = 3.2
        service.decide(candidate_id, "confirmed", actor="t", role="staff")
        worker.wake()
        eventually(lambda: len(receiver.received) == 2, "candidate.decided delivered")
        decided = verified(receiver.received[1], secret)
        assert decided["candidate"]["explanation"] == {
            "rank": 1,
            "distance": payload["candidate"]["distance"],
            "score": 3.2,
            "flags": [],
        }
        assert decided["candidate"]["similarity_basis"] == "search"  # now with a score
        assert decided["type"] == "candidate.decided"
        assert decided["candidate"]["id"] == candidate_id
        assert decided["candidate"]["status"] == "confirmed"
        assert decided["id"] != payload["id"]

        eventually(lambda: pending_count(service) == 0, "both marked delivered")
        stored = events(service)
        assert [e.status for e in stored] == ["delivered", "delivered"]
        assert all(e.delivered_at is not None and e.attempts == 1 for e in stored)
    finally:
        worker.stop()
        service.close()
    assert not worker.running


def test_every_event_explains_the_candidate_flags_included(
    service: Reunite, sample: Callable[[str], bytes]
) -> None:
    register(service, "https://police.example/hooks")
    missing = service.create_case(
        {"kind": "missing", "agency": "SH-PSB", "external_ref": "SH-9", "sex": "female"},
        actor="t",
    )
    service.enroll_photo(missing.id, sample("obama.jpg"), actor="t")
    found = service.create_case({"kind": "found", "sex": "male"}, actor="t")
    [view] = service.enroll_photo(found.id, sample("obama2.jpg"), actor="t").new_candidates
    service.delete_case(found.id, actor="t", reason="subject_request")

    created, deleted = events(service)
    assert (created.type, deleted.type) == ("candidate.created", "candidate.deleted")
    for event in (created, deleted):
        explanation = event.payload["candidate"]["explanation"]
        assert explanation["flags"] == ["sex_differs"]
        assert explanation["distance"] == view.candidate.distance
        assert explanation["rank"] == view.candidate.rank
        assert explanation["score"] == view.candidate.score


def test_receiver_down_then_failing_still_gets_every_event_exactly_once(
    service: Reunite, worker: WebhookWorker, sample: Callable[[str], bytes], receiver: Receiver
) -> None:
    secrets_by_path = {path: register(service, receiver.url(path))[1] for path in ("/a", "/b")}
    candidate_id = make_candidate(service, sample)
    service.decide(candidate_id, "confirmed", actor="t", role="staff")
    stored = events(service)
    assert len(stored) == 4  # two webhooks, two events each

    receiver.stop()  # connection refused
    before_pass = utc_now()
    assert worker.deliver_due() == 0
    after_refusal = events(service)
    assert [(e.status, e.attempts, e.last_error) for e in after_refusal] == [
        ("pending", 1, "ConnectError")
    ] * 4
    first_wait = timedelta(seconds=service.settings.webhook_backoff_base_s)
    assert all(e.next_attempt_at >= before_pass + first_wait for e in after_refusal)

    receiver.status = 500
    receiver.start()
    passes_until(
        worker,
        lambda: all(
            Counter(r.event_id for r in receiver.received)[e.event_id] >= 2 for e in stored
        ),
        "every event refused twice with HTTP 500",
    )
    assert {e.last_error for e in events(service)} == {"HTTP 500"}
    assert receiver.accepted() == []

    receiver.status = 200
    passes_until(worker, lambda: pending_count(service) == 0, "all delivered")
    assert worker.deliver_due() == 0  # nothing is sent again
    accepted = Counter(r.event_id for r in receiver.accepted())
    assert accepted == Counter({e.event_id: 1 for e in stored})
    tries = Counter(r.event_id for r in receiver.received)
    for event in events(service):
        assert event.status == "delivered"
        assert event.attempts == tries[event.event_id] + 1  # + the refused connection
    for request in receiver.received:  # each webhook signs with its own secret
        verified(request, secrets_by_path[request.path])


def test_events_survive_a_restart_of_the_service(
    tmp_path: Path, finder: Any, sample: Callable[[str], bytes], receiver: Receiver
) -> None:
    settings = fast_settings(tmp_path)
    service = Reunite.open(settings, finder=finder)
    worker = WebhookWorker(service.store, settings)
    try:
        _, secret = register(service, receiver.url())
        register(service, receiver.url("/second"))
        receiver.stop()
        worker.start()
        candidate_id = make_candidate(service, sample)
        service.decide(candidate_id, "rejected", actor="t", role="staff")
        worker.wake()
        event_ids = {e.event_id for e in events(service)}
        assert len(event_ids) == 4
        eventually(
            lambda: all(e.attempts >= 1 for e in events(service)),
            "every event tried while the receiver is down",
        )
    finally:
        worker.stop()
        service.close()
    assert not worker.running

    receiver.start()
    service = Reunite.open(settings, finder=finder)
    worker = WebhookWorker(service.store, settings)
    try:
        assert pending_count(service) == 4
        worker.start()
        eventually(lambda: pending_count(service) == 0, "delivered after the restart")
        assert Counter(r.event_id for r in receiver.received) == Counter(
            dict.fromkeys(event_ids, 1)
        )
        for request in receiver.received:
            if request.path == "/hook":
                verified(request, secret)
    finally:
        worker.stop()
        service.close()


def test_max_attempts_marks_failed_and_an_admin_retry_delivers(
    tmp_path: Path, finder: Any, sample: Callable[[str], bytes], receiver: Receiver
) -> None:
    with Reunite.open(fast_settings(tmp_path, webhook_max_attempts=3), finder=finder) as service:
        worker = WebhookWorker(service.store, service.settings)
        try:
            register(service, receiver.url())
            make_candidate(service, sample)
            receiver.status = 500
            passes_until(worker, lambda: pending_count(service) == 0, "given up")
            [event] = events(service)
            assert (event.status, event.attempts, event.last_error) == ("failed", 3, "HTTP 500")
            assert len(receiver.received) == 3
            assert worker.deliver_due() == 0  # a failed event is not sent again by itself
            assert len(receiver.received) == 3

            with service.store.transaction() as session:
                assert [e.id for e in deliveries(session, status="failed", limit=10)] == [event.id]
                retried = retry_delivery(session, event.id)
            assert (retried.status, retried.attempts) == ("pending", 3)
            assert pending_count(service) == 1
            assert worker.deliver_due() == 0  # one more try, refused: failed again
            assert [(e.status, e.attempts) for e in events(service)] == [("failed", 4)]

            receiver.status = 204
            with service.store.transaction() as session:
                retry_delivery(session, event.id)
            assert worker.deliver_due() == 1
            [event] = events(service)
            assert (event.status, event.attempts) == ("delivered", 5)
            assert len(receiver.received) == 5
            assert len({r.event_id for r in receiver.received}) == 1  # the same event id

            with pytest.raises(Conflict), service.store.transaction() as session:
                retry_delivery(session, event.id)
            with pytest.raises(NotFound), service.store.transaction() as session:
                retry_delivery(session, 999_999)
        finally:
            worker.stop()


def test_a_deactivated_webhooks_events_fail_and_cannot_be_retried(
    service: Reunite, worker: WebhookWorker, sample: Callable[[str], bytes], receiver: Receiver
) -> None:
    dropped, _ = register(service, receiver.url("/dropped"))
    register(service, receiver.url("/kept"))
    make_candidate(service, sample)
    with service.store.transaction() as session:
        deactivate_webhook(session, dropped, "SH-PSB")

    assert worker.deliver_due() == 1
    assert [r.path for r in receiver.received] == ["/kept"]
    by_hook = {e.webhook_id: e for e in events(service)}
    assert (by_hook[dropped].status, by_hook[dropped].last_error) == (
        "failed",
        "webhook deactivated",
    )
    with pytest.raises(Conflict), service.store.transaction() as session:
        retry_delivery(session, by_hook[dropped].id)


def test_one_bad_webhook_does_not_stop_the_pass(
    service: Reunite, worker: WebhookWorker, sample: Callable[[str], bytes], receiver: Receiver
) -> None:
    with service.store.transaction() as session:  # a row stored before URLs were checked
        session.add(WebhookRow(agency="SH-PSB", url="http://exa mple/hook", secret=new_secret()))
    register(service, receiver.url())
    make_candidate(service, sample)

    assert worker.deliver_due() == 1
    bad, good = events(service)
    assert bad.status == "pending" and bad.attempts == 1 and bad.last_error
    assert "exa" not in bad.last_error  # the reason is a class name, not the URL
    assert good.status == "delivered"
    assert len(receiver.received) == 1


def test_two_workers_sharing_a_store_send_each_event_once(
    service: Reunite, sample: Callable[[str], bytes], receiver: Receiver
) -> None:
    for n in range(5):
        register(service, receiver.url(f"/{n}"))
    candidate_id = make_candidate(service, sample)
    service.decide(candidate_id, "confirmed", actor="t", role="staff")
    stored = events(service)
    assert len(stored) == 10

    workers = [WebhookWorker(service.store, service.settings) for _ in range(2)]
    start = threading.Barrier(len(workers))
    delivered: list[int] = []

    def run(worker: WebhookWorker) -> None:
        start.wait()
        delivered.append(worker.deliver_due())

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for worker in workers:
        worker.stop()

    assert sum(delivered) == 10
    assert Counter(r.event_id for r in receiver.received) == Counter(
        {e.event_id: 1 for e in stored}
    )
    assert pending_count(service) == 0


def test_wake_sends_new_events_before_the_next_poll(
    tmp_path: Path, finder: Any, sample: Callable[[str], bytes], receiver: Receiver
) -> None:
    settings = fast_settings(tmp_path, webhook_poll_interval_s=600)
    with Reunite.open(settings, finder=finder) as service:
        register(service, receiver.url())
        candidate_id = make_candidate(service, sample)
        worker = WebhookWorker(service.store, settings)
        worker.start()  # the first pass runs at once
        try:
            eventually(lambda: pending_count(service) == 0, "the first pass delivered")
            service.decide(candidate_id, "confirmed", actor="t", role="staff")
            worker.wake()
            eventually(lambda: len(receiver.received) == 2, "woken up, not after 600 s")
        finally:
            worker.stop()
        assert not worker.running
        assert [json.loads(r.body)["type"] for r in receiver.received] == [
            "candidate.created",
            "candidate.decided",
        ]


def test_deliveries_are_listed_newest_first_in_pages(
    service: Reunite, worker: WebhookWorker, sample: Callable[[str], bytes], receiver: Receiver
) -> None:
    for n in range(3):
        register(service, receiver.url(f"/{n}"))
    make_candidate(service, sample)
    ids = [e.id for e in events(service)]
    with service.store.transaction() as session:
        assert backlog(session) == 3
        first = deliveries(session, limit=2)
        assert [e.id for e in first] == [ids[2], ids[1]]
        assert [e.id for e in deliveries(session, limit=2, before_id=first[-1].id)] == [ids[0]]
        assert deliveries(session, status="delivered", limit=10) == []
        for bad in ({"status": "sent"}, {"limit": 0}, {"limit": 501}):
            with pytest.raises(InvalidField):
                deliveries(session, **bad)
    assert worker.deliver_due() == 3
    with service.store.transaction() as session:
        assert backlog(session) == 0
        assert len(deliveries(session, status="delivered", limit=10)) == 3


# ------------------------------------------------------------------------------ targets


def test_delivery_checks_the_address_the_name_has_now_and_follows_no_redirect(
    tmp_path: Path, finder: Any, sample: Callable[[str], bytes], receiver: Receiver
) -> None:
    """A webhook registered while its network was allowed (``localhost``), delivered by a
    worker whose settings no longer allow it: the name is resolved at delivery and refused,
    nothing is sent. Allowed again, the receiver's redirect is not followed."""
    url = f"http://localhost:{receiver.port}/psb"
    with Reunite.open(fast_settings(tmp_path), finder=finder) as service:
        register(service, url)
        make_candidate(service, sample)
        strict = WebhookWorker(service.store, fast_settings(tmp_path, webhook_allowed_networks=""))
        strict.deliver_due()
        [event] = events(service)
        assert event.status == "pending" and event.attempts == 1
        assert event.last_error is not None and "refused" in event.last_error
        assert receiver.received == []

        receiver.status, receiver.location = 307, receiver.url("/elsewhere")
        with service.store.transaction() as session:
            session.get_one(OutboxEventRow, event.id).next_attempt_at = utc_now()
        WebhookWorker(service.store, service.settings).deliver_due()
        [event] = events(service)
        assert event.last_error == "HTTP 307"
        assert [r.path for r in receiver.received] == ["/psb"]  # never /elsewhere
        assert receiver.received[0].headers["host"] == f"localhost:{receiver.port}"
