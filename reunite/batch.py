"""Photos prepared for enrollment over a process pool.

Decoding, detection and embedding are CPU-bound, and dlib runs one of them at a time in a
process (``reunite.faces.DLIB_LOCK``), so batches (``reunite enroll``, ``reunite import``) use
one process per core, each loading the models once when it imports ``reunite.faces``. Each
file gives a ``PhotoResult`` (a ``PreparedPhoto`` or an error code). The results come back in
order and are stored by the calling process, one at a time, as ``Reunite.enroll_prepared``
requires. Workers import ``reunite.enrollment``, never the service or the index.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from reunite.enrollment import PreparedPhoto, prepared_photo
from reunite.errors import ReuniteError, UnreadableFile
from reunite.faces import Pipeline, faces_in_image


@dataclass(frozen=True)
class PhotoResult:
    """One photo file's outcome: ``photo`` ready to enroll, or an error ``code`` and
    ``message``."""

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
    face_choice: str


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


def _photo_result(job: _Job) -> PhotoResult:
    try:
        photo = prepared_photo(
            job.path.read_bytes(),
            finder=faces_in_image,
            pipeline=job.pipeline,
            max_bytes=job.max_bytes,
            max_pixels=job.max_pixels,
            face_choice=job.face_choice,
        )
    except ReuniteError as exc:
        return PhotoResult(job.path, code=exc.code, message=exc.message)
    except OSError as exc:
        return PhotoResult(job.path, code=UnreadableFile.code, message=str(exc))
    return PhotoResult(job.path, replace(photo, image=photo.image.without_pixels()))


class PhotoResultPool:
    """Gives the ``PhotoResult`` of batches of photo files over one process pool, kept until
    ``close``: each worker loads dlib's models once, however many batches follow (``reunite
    import`` sends one per chunk).

    ``workers``: processes (default: one per core; 1: in the calling process).
    ``face_choice``: how a photo with several faces is taken (``enrollment.FACE_CHOICES``;
    default: refused). Use it as a context manager so the pool is shut down.
    """

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        max_bytes: int,
        max_pixels: int,
        workers: int | None = None,
        face_choice: str = "refuse",
    ) -> None:
        self.pipeline = pipeline
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.face_choice = face_choice
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    def results(self, paths: Sequence[Path]) -> Iterator[PhotoResult]:
        """Each photo's result, in the order given. With a pool, every photo is submitted at
        once (the work starts before the first result is read); in-process, as it is read.

        Cost: about 0.1-1 s a photo per process; the first batch also waits for the workers to
        load dlib's models (about a second each).
        """
        jobs = [
            _Job(p, self.pipeline, self.max_bytes, self.max_pixels, self.face_choice) for p in paths
        ]
        if self.workers == 1:
            return map(_photo_result, jobs)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, initializer=exit_with_parent, initargs=(os.getpid(),)
            )
        return self._pool.map(_photo_result, jobs)

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


def photo_results(
    paths: Sequence[Path],
    *,
    pipeline: Pipeline,
    max_bytes: int,
    max_pixels: int,
    workers: int | None = None,
) -> Iterator[PhotoResult]:
    """Each photo's result (decoded, its one face found and embedded), in the order given.

    ``workers``: processes (default: one per core; 1: in this process). Cost: about 0.1-1 s a
    photo per process; the first results wait for the workers to load dlib's models.
    """
    workers = min(workers or os.cpu_count() or 1, max(len(paths), 1))
    with PhotoResultPool(
        pipeline=pipeline, max_bytes=max_bytes, max_pixels=max_pixels, workers=workers
    ) as pool:
        yield from pool.results(paths)
