"""Password guessing is slowed per address and per username, and cannot lock a person out: a
device that has signed in as her before is never paused, and a new device waits at most the
longest pause."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from reunite import accounts
from reunite.api.sign_ins import FREE_FAILURES, MAX_DEVICE_NAMES, MAX_USERNAMES, SignInGuard
from reunite.errors import RateLimited
from tests.api.test_routes import API, assert_problem
from tests.conftest import ready_client, settings_in

PASSWORD = "correct horse battery"


class Clock:
    """A clock the test moves by hand (passed in, as the guard takes its clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def guard(clock: Clock, max_pause_s: float = 60.0) -> SignInGuard:
    return SignInGuard(per_minute=1000, max_pause_s=max_pause_s, secret="s" * 40, clock=clock)


def test_pauses_begin_after_the_free_failures_double_and_stop_at_the_maximum():
    clock = Clock()
    made = guard(clock, max_pause_s=10)
    pauses = []
    for _ in range(FREE_FAILURES + 5):
        made.check("a", "anna", trusted_device=False)
        made.failed("anna")
        try:
            made.check("a", "anna", trusted_device=False)
            pauses.append(0)
        except RateLimited as exc:
            pauses.append(exc.details["retry_after_s"])
        clock.now += 60
    assert pauses == [0] * FREE_FAILURES + [2, 4, 8, 10, 10]
    made.failed("anna")
    made.succeeded("anna")  # the right password clears it
    made.check("a", "anna", trusted_device=False)


def test_a_device_that_signed_in_before_is_never_paused_and_its_cookie_cannot_be_forged():
    clock = Clock()
    made = guard(clock)
    cookie = made.device_cookie(None, "anna")
    for _ in range(FREE_FAILURES + 3):
        made.failed("anna")
    with pytest.raises(RateLimited):
        made.check("a", "anna", trusted_device=made.trusts(None, "anna"))
    assert made.trusts(cookie, "anna")
    made.check("a", "anna", trusted_device=made.trusts(cookie, "anna"))
    assert not made.trusts(cookie, "bob")
    assert not made.trusts(cookie[:-2] + "xx", "anna")
    other = SignInGuard(per_minute=10, max_pause_s=60, secret="t" * 40, clock=clock)
    assert not other.trusts(cookie, "anna")  # another server's key
    for index in range(MAX_DEVICE_NAMES + 2):
        cookie = made.device_cookie(cookie, f"user{index}")
    assert made.trusts(cookie, f"user{MAX_DEVICE_NAMES + 1}")
    assert not made.trusts(cookie, "anna")  # the oldest name went first


def test_the_failure_table_stays_bounded():
    made = guard(Clock())
    for index in range(MAX_USERNAMES + 50):
        made.failed(f"guess{index}")
    assert len(made._failures) == MAX_USERNAMES


def test_under_attack_the_person_still_signs_in(tmp_path, finder):
    """Through the app: a guesser pauses the account for itself and new devices only."""
    from reunite.app import create_app

    app = create_app(
        settings_in(tmp_path, sign_in_attempts_per_minute=1000, sign_in_max_pause_s=3),
        finder=finder,
    )
    person = ready_client(app)
    try:
        store = app.state.service.store
        accounts.create_user(store, "anna", PASSWORD, "staff", actor="test")
        signed = person.post(f"{API}/session", json={"username": "anna", "password": PASSWORD})
        assert signed.status_code == 200 and "reunite_device" in person.cookies
        person.cookies.delete("reunite_session")  # she signs out; the device cookie stays

        guesser, new_device = TestClient(app), TestClient(app)
        answers = [
            guesser.post(f"{API}/session", json={"username": "anna", "password": f"guess {i}"})
            for i in range(FREE_FAILURES + 3)
        ]
        statuses = [a.status_code for a in answers]
        assert statuses[: FREE_FAILURES + 1] == [401] * (FREE_FAILURES + 1)
        assert statuses[FREE_FAILURES + 1 :] == [429, 429]
        refused = new_device.post(f"{API}/session", json={"username": "anna", "password": PASSWORD})
        assert_problem(refused, 429, "rate_limited")
        assert 1 <= int(refused.headers["retry-after"]) <= 3

        again = person.post(f"{API}/session", json={"username": "anna", "password": PASSWORD})
        assert again.status_code == 200, again.text  # her own browser is never paused

        time.sleep(int(refused.headers["retry-after"]))  # a new device waits one pause at most
        later = new_device.post(f"{API}/session", json={"username": "anna", "password": PASSWORD})
        assert later.status_code == 200, later.text
    finally:
        person.__exit__(None, None, None)
