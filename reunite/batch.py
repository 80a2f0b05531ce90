"""Photos prepared for enrollment over a process pool.

Decoding, detection and embedding are CPU-bound, and dlib runs one of them at a time in a
process (``reunite.faces.DLIB_LOCK``), so batches (``reunite enroll``, ``reunite import``) use
one process per core, each loading the models once when it imports ``reunite.faces``. The
results come back in order and are stored by the calling process, one at a time, as
``Reunite.enroll_prepared`` requires.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from reunite import imaging
from reunite.errors import ReuniteError
from reunite.faces import Pipeline, faces_in_image
from reunite.service import PreparedPhoto, chosen_face


@dataclass(frozen=True)
class Prepared:
    """One photo's outcome: ``photo`` ready to enroll, or an error ``code`` and ``message``."""

    path: Path
    photo: PreparedPhoto | None = None
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class _Job:
    path: Path
    pipeline: Pipeline
    max_bytes: int
    max_pixels: int


T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), read as they are consumed
    (``itertools.batched`` from Python 3.12, as lists)."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


PARENT_CHECK_S = 1.0
"""How often a worker checks that the process that started it still runs, seconds."""


def exit_with_parent(parent: int) -> None:
    """Worker initializer: end the worker soon after its parent is gone. A parent killed with
    ``kill -9`` cannot tell its pool, whose workers would otherwise wait for work forever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _prepared(job: _Job) -> Prepared:
    try:
        data = job.path.read_bytes()
        image = imaging.decoded_image(data, max_bytes=job.max_bytes, max_pixels=job.max_pixels)
        face = chosen_face(faces_in_image(image.pixels, job.pipeline), None)
    except ReuniteError as exc:
        return Prepared(job.path, code=exc.code, message=exc.message)
    except OSError as exc:
        return Prepared(job.path, code="unreadable_file", message=str(exc))
    return Prepared(job.path, PreparedPhoto(data=data, image=image.without_pixels(), face=face))


class PhotoPreparer:
    """Prepares batches of photos over one process pool, kept until ``close``: each worker loads
    dlib's models once, however many batches follow (``reunite import`` sends one per chunk).

    ``workers``: processes (default: one per core; 1: in the calling process). Use it as a
    context manager so the pool is shut down.
    """

    def __init__(
        self, *, pipeline: Pipeline, max_bytes: int, max_pixels: int, workers: int | None = None
    ) -> None:
        self.pipeline = pipeline
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    def prepared(self, paths: Sequence[Path]) -> Iterator[Prepared]:
        """Each photo prepared, in the order given. With a pool, every photo is submitted at
        once (the work starts before the first result is read); in-process, as it is read.

        Cost: about 0.1-1 s a photo per process; the first batch also waits for the workers to
        load dlib's models (about a second each).
        """
        jobs = [_Job(p, self.pipeline, self.max_bytes, self.max_pixels) for p in paths]
        if self.workers == 1:
            return map(_prepared, jobs)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, initializer=exit_with_parent, initargs=(os.getpid(),)
            )
        return self._pool.map(_prepared, jobs)

    def close(self) -> None:
        """Stop the workers; photos submitted and not yet prepared are dropped."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def prepared_photos(
    paths: Sequence[Path],
    *,
    pipeline: Pipeline,
    max_bytes: int,
    max_pixels: int,
    workers: int | None = None,
) -> Iterator[Prepared]:
    """Each photo prepared (decoded, its one face found and embedded), in the order given.

    ``workers``: processes (default: one per core; 1: in this process). Cost: about 0.1-1 s a
    photo per process; the first results wait for the workers to load dlib's models.
    """
    workers = min(workers or os.cpu_count() or 1, max(len(paths), 1))
    with PhotoPreparer(
        pipeline=pipeline, max_bytes=max_bytes, max_pixels=max_pixels, workers=workers
    ) as preparer:
        yield from preparer.prepared(paths)
