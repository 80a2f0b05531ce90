"""Password guessing, slowed without letting anyone lock a person out.

Two limits, both per server process:

* **Per client address**: a token bucket of ``REUNITE_SIGN_IN_ATTEMPTS_PER_MINUTE`` tries (429
  past it). It slows one guesser, and only that guesser.
* **Per username**: the first ``FREE_FAILURES`` wrong passwords cost nothing; each one after
  starts a pause that doubles (2 s, 4 s, 8 s, ... up to ``REUNITE_SIGN_IN_MAX_PAUSE_S``) during
  which tries for that username are answered 429 *without the password being checked*. A
  right password ends the pause and clears the count.

The pause would let anyone keep a person out by guessing wrong for her name. So a browser that
has signed in as a username before carries a signed cookie saying so (``reunite_device``, kept
180 days; it names no one: it holds keyed hashes of the usernames), and the pause never applies
to it: the person signs in from her usual device while her name is under attack, and a guesser,
who has no such cookie, stays paused. From a new device she waits at most the longest pause.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from itsdangerous import BadSignature, URLSafeTimedSerializer

from reunite.api.limits import RateLimiter
from reunite.errors import RateLimited

DEVICE_COOKIE = "reunite_device"
DEVICE_MAX_AGE_S = 180 * 86400
FREE_FAILURES = 5
"""Wrong passwords a username may take before the pauses begin."""
FIRST_PAUSE_S = 2.0
MAX_USERNAMES = 10_000
"""Usernames whose failures are remembered (the oldest are forgotten first): guessers choose the
names, so the table must not grow without end."""
MAX_DEVICE_NAMES = 8
"""Usernames one device cookie remembers (a shared desk computer)."""


class SignInGuard:
    """The two limits above, and the device cookie. Thread-safe."""

    def __init__(
        self,
        *,
        per_minute: int,
        max_pause_s: float,
        secret: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.addresses = RateLimiter(per_minute=per_minute, burst=per_minute, clock=clock)
        self.max_pause_s = max_pause_s
        self._clock = clock
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._secret = secret.encode()
        self._serializer = URLSafeTimedSerializer(secret, salt="reunite-device")

    def check(self, address: str, username: str, *, trusted_device: bool) -> None:
        """Spend a try for ``address``, and refuse while ``username`` is paused (unless the try
        comes from a device that signed in as it before). Raises ``RateLimited``."""
        self.addresses.take(f"sign-in-from:{address}")
        if trusted_device:
            return
        with self._lock:
            _count, paused_until = self._failures.get(username, (0, 0.0))
        wait_s = paused_until - self._clock()
        if wait_s > 0:
            retry_after_s = max(1, math.ceil(wait_s))
            raise RateLimited(
                f"Too many wrong passwords for this account; try again in {retry_after_s} s, "
                "or from a device that has signed in to it before.",
                retry_after_s=retry_after_s,
            )

    def failed(self, username: str) -> None:
        """Count a wrong password for ``username``; past ``FREE_FAILURES``, pause it."""
        with self._lock:
            count, _until = self._failures.pop(username, (0, 0.0))
            count += 1
            pause_s = 0.0
            if count > FREE_FAILURES:
                pause_s = min(self.max_pause_s, FIRST_PAUSE_S * 2 ** (count - FREE_FAILURES - 1))
            self._failures[username] = (count, self._clock() + pause_s)
            while len(self._failures) > MAX_USERNAMES:
                self._failures.popitem(last=False)

    def succeeded(self, username: str) -> None:
        """A right password: the username's count and pause are cleared."""
        with self._lock:
            self._failures.pop(username, None)

    def trusts(self, cookie: str | None, username: str) -> bool:
        """Whether the device cookie ``cookie`` says this browser signed in as ``username``."""
        return self._tag(username) in self._device_tags(cookie)

    def device_cookie(self, cookie: str | None, username: str) -> str:
        """The device cookie after a sign-in as ``username`` (the most recent names kept)."""
        tags = [t for t in self._device_tags(cookie) if t != self._tag(username)]
        return self._serializer.dumps([self._tag(username), *tags][:MAX_DEVICE_NAMES])

    def _tag(self, username: str) -> str:
        return hmac.new(self._secret, username.encode(), hashlib.sha256).hexdigest()[:32]

    def _device_tags(self, cookie: str | None) -> list[str]:
        if not cookie:
            return []
        try:
            tags = self._serializer.loads(cookie, max_age=DEVICE_MAX_AGE_S)
        except BadSignature:
            return []
        return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
