"""Photos prepared for enrollment over a process pool.

Decoding, detection and embedding are CPU-bound, and dlib runs one of them at a time in a
process (``reunite.faces.DLIB_LOCK``), so batches (``reunite enroll``) use one process per core,
each loading the models once when it imports ``reunite.faces``. The results come back in order
and are stored by the calling process, one at a time, as ``Reunite.enroll_prepared`` requires.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

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
    jobs = [_Job(p, pipeline, max_bytes, max_pixels) for p in paths]
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(jobs) < 2:
        yield from map(_prepared, jobs)
        return
    with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
        yield from pool.map(_prepared, jobs)
