"""Per-principal rate limits: a token bucket per API key or user, in this process's memory.

Each bucket holds up to ``burst`` requests and refills at ``per_minute / 60`` a second. Behind
several server processes each keeps its own buckets, so the effective limit is per process.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from reunite.errors import RateLimited


class RateLimiter:
    """Token buckets keyed by principal name. Thread-safe; O(1) a request."""

    def __init__(
        self, *, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate_per_s = per_minute / 60.0
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, name: str) -> None:
        """Spend one request for ``name``; raise ``RateLimited`` (with ``retry_after_s``) if none
        is left."""
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.get(name, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate_per_s)
            if tokens < 1.0:
                self._buckets[name] = (tokens, now)
                retry_after_s = max(1, math.ceil((1.0 - tokens) / self.rate_per_s))
                raise RateLimited(
                    f"Too many requests; try again in {retry_after_s} s.",
                    retry_after_s=retry_after_s,
                )
            self._buckets[name] = (tokens - 1.0, now)
