"""How many photos, and how many of their pixels, one process decodes and searches at once.

Decoding and face detection cost memory and time in proportion to a photo's pixels (a 40 MP
photo with no face: 0.4 GB decoded, then about 20 s of detection, one tile at a time), and
detection runs one photo at a time per process (``faces.DLIB_LOCK``). Without a limit, a
flood of large photos takes all memory and makes every other search wait behind it.

``Admission`` admits a photo only while both limits hold, and refuses at once (``Overloaded``,
an HTTP 503 with ``Retry-After``) otherwise: nothing queues. It keeps a share for small
photos, so large ones cannot starve them:

- a *small* photo (at most ``small_pixels``) needs a free slot of ``max_photos`` and room in
  the whole pixel budget ``max_pixels``;
- a *large* photo may use at most ``max_photos - 1`` slots and ``max_pixels - small_pixels``
  pixels (the rest is kept for small photos), except that one large photo is always
  admitted (a slot permitting) when no other large photo is in flight, so the largest photo
  ``REUNITE_MAX_PIXELS`` allows is never refused forever. Memory in flight is thus bounded by
  ``max_pixels`` plus one largest photo.

Admission is per thread and re-entrant: a thread that holds a place (a search that decodes
and then detects) is not counted twice. Thread-safe; no waiting, so no deadlock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from reunite.errors import BadConfiguration, Overloaded

_THIS_THREAD = threading.local()
"""Whether the current thread holds a place for a small photo (``holds_small_photo``)."""

RETRY_AFTER_S = 2
"""What a refused client is told to wait, seconds (a small photo is searched in about 1 s)."""


@dataclass(frozen=True)
class InFlight:
    """What an ``Admission`` holds now."""

    photos: int
    pixels: int
    large_photos: int
    large_pixels: int


class Admission:
    """At most ``max_photos`` photos and ``max_pixels`` decoded pixels in flight at once, with
    ``small_pixels`` of the budget (and one slot) kept for photos no larger than that."""

    def __init__(self, *, max_photos: int, max_pixels: int, small_pixels: int) -> None:
        if max_photos < 2:
            raise BadConfiguration("At least 2 photos must be allowed in flight.")
        if not 0 < small_pixels < max_pixels:
            raise BadConfiguration("The small photos' share must be within the pixel budget.")
        self.max_photos = max_photos
        self.max_pixels = max_pixels
        self.small_pixels = small_pixels
        self._lock = threading.Lock()
        self._held = threading.local()
        self._photos = 0
        self._pixels = 0
        self._large_photos = 0
        self._large_pixels = 0

    def in_flight(self) -> InFlight:
        """A snapshot of the photos and pixels admitted and not yet released."""
        with self._lock:
            return InFlight(self._photos, self._pixels, self._large_photos, self._large_pixels)

    @contextmanager
    def admitted(self, pixels: int) -> Iterator[None]:
        """Hold a place for a photo of ``pixels`` pixels while the block runs; released on
        exit, error or not. Raises ``Overloaded`` at once when there is no room. Inside a
        block this thread already holds, admits without counting again."""
        if getattr(self._held, "depth", 0):
            self._held.depth += 1
            try:
                yield
            finally:
                self._held.depth -= 1
            return
        weight = max(1, pixels)
        large = weight > self.small_pixels
        self._take(weight, large=large)
        self._held.depth = 1
        _THIS_THREAD.small = not large
        try:
            yield
        finally:
            self._held.depth = 0
            _THIS_THREAD.small = False
            self._give_back(weight, large=large)

    def _take(self, weight: int, *, large: bool) -> None:
        with self._lock:
            if not self._room_for(weight, large=large):
                raise Overloaded(
                    "The service is busy with other photos. Try again in a few seconds.",
                    retry_after_s=RETRY_AFTER_S,
                )
            self._photos += 1
            self._pixels += weight
            if large:
                self._large_photos += 1
                self._large_pixels += weight

    def _room_for(self, weight: int, *, large: bool) -> bool:
        if self._photos >= self.max_photos:
            return False
        large_share = self.max_pixels - self.small_pixels
        if not large:  # large photos count for no more than their share, even one oversized
            small_pixels = self._pixels - self._large_pixels
            return small_pixels + min(self._large_pixels, large_share) + weight <= self.max_pixels
        if self._large_photos == 0:
            return True  # one large photo at a time, however large, is always let in
        return (
            self._large_photos < self.max_photos - 1 and self._large_pixels + weight <= large_share
        )

    def _give_back(self, weight: int, *, large: bool) -> None:
        with self._lock:
            self._photos -= 1
            self._pixels -= weight
            if large:
                self._large_photos -= 1
                self._large_pixels -= weight
        if large:
            _trimmed_heap()


def holds_small_photo() -> bool:
    """Whether this thread is working on a photo an ``Admission`` let in as small (such a
    photo goes first to the detector: ``PriorityLock``). False outside any admission."""
    return bool(getattr(_THIS_THREAD, "small", False))


class PriorityLock:
    """A lock where callers asking to go ``first`` take it before the others waiting (among
    themselves, in no set order). Not re-entrant."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._busy = False
        self._first_waiting = 0

    @contextmanager
    def held(self, *, first: bool = False) -> Iterator[None]:
        """Hold the lock while the block runs, waiting as long as it takes."""
        with self._changed:
            self._first_waiting += first
            try:
                while self._busy or (not first and self._first_waiting):
                    self._changed.wait()
            finally:
                self._first_waiting -= first
            self._busy = True
        try:
            yield
        finally:
            with self._changed:
                self._busy = False
                self._changed.notify_all()


_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None)


def _trimmed_heap() -> bool:
    """Give the C heap's free memory back to the system (glibc ``malloc_trim``); without it
    a large photo's decoding and detection buffers stay resident after it is done. Returns
    whether memory was given back (False where the C library has no ``malloc_trim``)."""
    trim = getattr(_LIBC, "malloc_trim", None)
    return bool(trim(0)) if trim is not None else False
