"""The facade: what ``Reunite`` adds over its parts (the rest is tested with each part)."""

from concurrent.futures import ThreadPoolExecutor

from reunite.service import Stats


def test_stats_counted_from_many_threads_add_up():
    stats = Stats()

    def count(_: int) -> None:
        for _ in range(1000):
            stats.add(enrollments=1, candidates=2)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(count, range(8)))
    assert (stats["enrollments"], stats["candidates"], stats["searches"]) == (8000, 16000, 0)
