"""The per-process admission limit (reunite.admission), with real threads: no mocks."""

from __future__ import annotations

import threading
import time

import pytest

from reunite.admission import (
    RETRY_AFTER_S,
    Admission,
    InFlight,
    PriorityLock,
    holds_small_photo,
)
from reunite.errors import BadConfiguration, Overloaded

MP = 1_000_000


def gate() -> Admission:
    return Admission(max_photos=3, max_pixels=60 * MP, small_pixels=12 * MP)


class Held:
    """A photo of ``pixels`` holding its place in another thread until ``release``."""

    def __init__(self, admission: Admission, pixels: int) -> None:
        self.admitted = threading.Event()
        self.refused: Overloaded | None = None
        self._go = threading.Event()
        self._settled = threading.Event()
        self._thread = threading.Thread(target=self._hold, args=(admission, pixels), daemon=True)
        self._thread.start()
        assert self._settled.wait(5)

    def _hold(self, admission: Admission, pixels: int) -> None:
        try:
            with admission.admitted(pixels):
                self.admitted.set()
                self._settled.set()
                self._go.wait(30)
        except Overloaded as exc:
            self.refused = exc
            self._settled.set()

    def release(self) -> None:
        self._go.set()
        self._thread.join(5)


def test_photos_past_the_photo_limit_are_refused_at_once_with_a_retry_after():
    admission = gate()
    held = [Held(admission, MP) for _ in range(3)]
    assert all(h.admitted.is_set() for h in held)
    with pytest.raises(Overloaded) as refused, admission.admitted(MP):
        pass
    assert refused.value.details["retry_after_s"] == RETRY_AFTER_S
    assert refused.value.code == "overloaded"
    held[0].release()
    with admission.admitted(MP):
        assert admission.in_flight() == InFlight(
            photos=3, pixels=3 * MP, large_photos=0, large_pixels=0
        )
    for h in held[1:]:
        h.release()
    assert admission.in_flight() == InFlight(0, 0, 0, 0)


def test_small_photos_share_the_pixel_budget():
    admission = Admission(max_photos=10, max_pixels=30 * MP, small_pixels=12 * MP)
    held = [Held(admission, 10 * MP), Held(admission, 10 * MP)]
    assert Held(admission, 11 * MP).refused is not None  # 31 MP > 30 MP
    last = Held(admission, 10 * MP)
    assert last.admitted.is_set()
    for h in [*held, last]:
        h.release()


def test_large_photos_leave_a_slot_and_a_share_for_small_ones():
    admission = Admission(max_photos=3, max_pixels=80 * MP, small_pixels=4 * MP)
    first = Held(admission, 40 * MP)
    assert first.admitted.is_set()
    assert Held(admission, 40 * MP).refused is not None  # 80 MP > the large share, 76
    second = Held(admission, 20 * MP)  # 60 MP of large photos, 2 of 3 slots
    assert second.admitted.is_set()
    assert Held(admission, 13 * MP).refused is not None  # 73 MP fits, but no third slot
    small = Held(admission, 2 * MP)  # the kept slot and share
    assert small.admitted.is_set()
    for h in (first, second, small):
        h.release()


def test_one_large_photo_over_the_large_share_is_let_in_alone():
    admission = Admission(max_photos=2, max_pixels=30 * MP, small_pixels=12 * MP)
    huge = Held(admission, 40 * MP)
    assert huge.admitted.is_set()
    assert admission.in_flight().large_photos == 1
    assert Held(admission, 13 * MP).refused is not None
    small = Held(admission, 12 * MP)
    assert small.admitted.is_set()
    for h in (huge, small):
        h.release()


def test_a_place_is_given_back_when_the_block_raises():
    admission = gate()
    with pytest.raises(ValueError), admission.admitted(40 * MP):
        raise ValueError("detector failed")
    assert admission.in_flight() == InFlight(0, 0, 0, 0)
    with admission.admitted(40 * MP):
        pass


def test_nested_admission_in_one_thread_counts_once():
    admission = Admission(max_photos=2, max_pixels=30 * MP, small_pixels=12 * MP)
    other = Held(admission, MP)
    with admission.admitted(5 * MP), admission.admitted(5 * MP):
        assert admission.in_flight().photos == 2
    assert admission.in_flight().photos == 1
    other.release()


def test_a_flood_of_large_photos_never_takes_the_small_photos_place():
    admission = Admission(max_photos=4, max_pixels=60 * MP, small_pixels=12 * MP)
    barrier = threading.Barrier(17)
    outcomes: list[str] = []
    seen: list[InFlight] = []
    lock = threading.Lock()

    def send(pixels: int) -> None:
        barrier.wait()
        for _ in range(50):
            try:
                with admission.admitted(pixels):
                    seen.append(admission.in_flight())
                    time.sleep(0.002)
                    outcome = "in"
            except Overloaded:
                outcome = "refused"
            with lock:
                outcomes.append(outcome)

    floods = [threading.Thread(target=send, args=(40 * MP,)) for _ in range(16)]
    for t in floods:
        t.start()
    barrier.wait()
    small_admitted = 0
    for _ in range(200):
        with admission.admitted(1 * MP):
            small_admitted += 1
        time.sleep(0.001)
    for t in floods:
        t.join(10)
    assert small_admitted == 200
    assert max(s.large_photos for s in seen) == 1  # 2 x 40 MP > the large share, 48
    assert max(s.pixels for s in seen) <= 60 * MP
    assert "refused" in outcomes and "in" in outcomes
    assert admission.in_flight() == InFlight(0, 0, 0, 0)


@pytest.mark.parametrize(
    ("photos", "pixels", "small"), [(1, 60 * MP, 12 * MP), (4, 10 * MP, 10 * MP), (4, MP, 0)]
)
def test_limits_that_cannot_work_are_refused(photos, pixels, small):
    with pytest.raises(BadConfiguration):
        Admission(max_photos=photos, max_pixels=pixels, small_pixels=small)


def test_a_thread_knows_whether_it_holds_a_small_photo():
    admission = gate()
    assert not holds_small_photo()
    with admission.admitted(MP):
        assert holds_small_photo()
        with admission.admitted(40 * MP):  # nested: still the small photo's place
            assert holds_small_photo()
    with admission.admitted(40 * MP):
        assert not holds_small_photo()
    assert not holds_small_photo()


def test_callers_asking_to_go_first_take_the_lock_before_the_others_waiting():
    lock = PriorityLock()
    order: list[str] = []
    waiting = threading.Semaphore(0)

    def take(name: str, first: bool) -> None:
        waiting.release()
        with lock.held(first=first):
            order.append(name)

    with lock.held():
        threads = [threading.Thread(target=take, args=("large-1", False))]
        threads[0].start()
        waiting.acquire()
        time.sleep(0.05)  # large-1 waits on the lock before the small one asks
        threads.append(threading.Thread(target=take, args=("small", True)))
        threads[1].start()
        waiting.acquire()
        time.sleep(0.05)
    for t in threads:
        t.join(5)
    assert order == ["small", "large-1"]


def test_the_priority_lock_is_given_back_when_the_block_raises():
    lock = PriorityLock()
    with pytest.raises(ValueError), lock.held(first=True):
        raise ValueError("dlib failed")
    done = threading.Event()

    def take() -> None:
        with lock.held():
            done.set()

    threading.Thread(target=take).start()
    assert done.wait(5)
