"""The facade: what ``Reunite`` adds over its parts (the rest is tested with each part)."""

import sys
from concurrent.futures import ThreadPoolExecutor

from reunite.service import Stats


def test_stats_counted_from_many_threads_add_up():
    stats = Stats()

    def count(_: int) -> None:
        for _ in range(1000):
            stats.add(enrollments=1, candidates=2)

    # Threads switch every microsecond, not every 5 ms: without the lock, counts get lost in
    # every run (measured: 5,786-7,050 enrollments of 8,000), not once in a while.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(count, range(8)))
    finally:
        sys.setswitchinterval(interval)
    assert (stats["enrollments"], stats["candidates"], stats["searches"]) == (8000, 16000, 0)
