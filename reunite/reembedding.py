"""Re-embedding stored faces with the current pipeline: locally over a process pool, or on a
Ray cluster.

When the model or the detector settings change, ``reembed_faces`` recomputes every face made
otherwise (or every face, with ``everything``) from its stored photo and updates it in place:
face ids, and so candidates and their decisions, stay. ``reunite reindex`` then builds a fresh
index from the store (``Reunite.rebuild_index``), which running servers adopt.

Work goes in face id order. The results are written in batches, each in one transaction that
also records the last face id done (``batch_jobs``), so a job killed at any point (``kill -9``
included) resumes after the last batch written and ends with the same store as an
uninterrupted run.

Where the embedding runs:

* locally, ``workers`` processes (dlib runs one photo at a time per process), each loading the
  models once;
* on Ray (``ray_address``: ``auto``, ``ray://HOST:PORT``, or an instance this process already
  started with ``ray.init``), one actor per CPU of the cluster, each loading the models once and
  reading the photos itself: the photo folder must be mounted at the same path on every node.
  The results come back to this process, which alone writes to the store.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import func, select, true, update

from reunite import imaging
from reunite.batch import batched, exit_with_parent
from reunite.config import Settings
from reunite.enrollment import face_columns
from reunite.errors import InvalidInput, ReuniteError, UnreadableFile
from reunite.faces import MODEL_NAME, Box, Face, Pipeline, box_overlap, face_at_box, faces_in_image
from reunite.photo_files import PhotoFiles
from reunite.privacy import ERASED
from reunite.store import BatchJobRow, FaceRow, PhotoRow, Store, photo_file_name

log = logging.getLogger(__name__)

JOB_NAME = "reembed"
BATCH_SIZE = 256
"""Faces written per transaction (and so redone at most after a kill)."""
SAME_FACE_OVERLAP = 0.3
"""A detected face is the stored one when their boxes overlap at least this much (IoU)."""


class FacesOwner(Protocol):
    """What re-embedding needs of a service (``Reunite`` is one): the store, the settings (its
    photos folder) and the pipeline to embed with."""

    @property
    def store(self) -> Store: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def pipeline(self) -> Pipeline: ...

    @property
    def photo_files(self) -> PhotoFiles: ...


@dataclass(frozen=True)
class FaceJob:
    """One stored face to embed again: its id, its photo's file (its name in ``files``, which
    travel to the worker process) and its stored box."""

    face_id: int
    files: PhotoFiles
    photo_name: str
    box: Box


@dataclass(frozen=True)
class Reembedded:
    """A face embedded again (``face``), or why it could not be (``code``, ``message``)."""

    face_id: int
    face: Face | None = None
    code: str | None = None
    message: str | None = None


@dataclass
class ReembedReport:
    """What a run did. ``failed`` lists (face id, code, message); those faces keep their old
    embedding (and, if it is another model's, stay out of the index)."""

    total: int = 0
    reembedded: int = 0
    failed: list[tuple[int, str, str]] = field(default_factory=list)
    resumed_after_face_id: int = 0
    seconds: float = 0.0


Progress = Callable[[int, int], None]
"""Called with (faces done, faces in this run) after each batch is written."""


def reembedded(job: FaceJob, pipeline: Pipeline) -> Reembedded:
    """The face of ``job`` embedded again from its photo: the detected face that overlaps the
    stored box most, or, when the detector finds none there, the stored box itself.
    Cost: one decode and one detection (0.1-1 s)."""
    try:
        data = job.files.get(job.photo_name)
        # Stored photos passed the upload limits when they were enrolled.
        pixels = imaging.decoded_image(data, max_bytes=len(data) + 1, max_pixels=10**10).pixels
        detected = faces_in_image(pixels, pipeline)
        best = max(detected, key=lambda f: box_overlap(f.box, job.box), default=None)
        if best is None or box_overlap(best.box, job.box) < SAME_FACE_OVERLAP:
            best = face_at_box(pixels, job.box, pipeline)
    except ReuniteError as exc:
        return Reembedded(job.face_id, code=exc.code, message=exc.message)
    except OSError as exc:
        return Reembedded(job.face_id, code=UnreadableFile.code, message=exc.strerror or str(exc))
    return Reembedded(job.face_id, best)


def reembed_faces(
    service: FacesOwner,
    *,
    everything: bool = False,
    workers: int | None = None,
    ray_address: str | None = None,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
) -> ReembedReport:
    """Embed again, with ``service.pipeline``, every face made by another model or pipeline
    (or every face), resuming an interrupted run with the same settings.

    Cost: one decode and detection per face (0.1-1 s on one core), divided by the workers.
    Does not touch the index: rebuild it afterwards.

    Raises:
        InvalidInput: Ray was asked for and is not installed.
    """
    started = time.perf_counter()
    pipeline = service.pipeline
    wanted = json.dumps({"model": MODEL_NAME, "pipeline": pipeline.version, "all": everything})
    with service.store.transaction() as session:
        job = session.get(BatchJobRow, JOB_NAME)
        if job is not None and job.settings != wanted:
            log.info("reembed: an unfinished run with other settings is dropped")
            session.delete(job)
            session.flush()
            job = None
        if job is None:
            job = BatchJobRow(name=JOB_NAME, settings=wanted, cursor=0)
            session.add(job)
        cursor = job.cursor
        stale = _wanted(service, everything)
        total = session.scalar(select(func.count(FaceRow.id)).where(FaceRow.id > cursor, stale))
    report = ReembedReport(total=total or 0, resumed_after_face_id=cursor)
    if cursor:
        log.info("reembed: resuming after face %d, %d faces to go", cursor, total)
    jobs = _face_jobs(service, cursor, stale)
    results = _results_in_order(jobs, pipeline, workers=workers, ray_address=ray_address)
    for batch in batched(results, batch_size):
        _write(service, batch, report)
        if progress is not None:
            progress(report.reembedded + len(report.failed), report.total)
    with service.store.transaction() as session:
        finished = session.get(BatchJobRow, JOB_NAME)
        if finished is not None:
            session.delete(finished)
    report.seconds = time.perf_counter() - started
    log.info(
        "reembed: %d faces embedded again, %d failed, in %.1f s",
        report.reembedded,
        len(report.failed),
        report.seconds,
    )
    return report


def _wanted(service: FacesOwner, everything: bool) -> Any:
    """The faces to embed again (a SQL condition): every face, or those made by another model
    or pipeline version; never an erased one (its photo is gone, see ``reunite.privacy``)."""
    made_otherwise = (FaceRow.model != MODEL_NAME) | (FaceRow.pipeline != service.pipeline.version)
    return (true() if everything else made_otherwise) & (FaceRow.model != ERASED)


def _face_jobs(service: FacesOwner, after_face_id: int, stale: Any) -> Iterator[FaceJob]:
    """The faces after ``after_face_id`` that ``stale`` (see ``_wanted``) selects, in id order,
    read a page at a time (no read stays open meanwhile)."""
    last = after_face_id
    while True:
        with service.store.transaction() as session:
            rows = session.execute(
                select(FaceRow.id, FaceRow.top, FaceRow.right, FaceRow.bottom, FaceRow.left)
                .add_columns(PhotoRow.sha256, PhotoRow.format)
                .join(PhotoRow, PhotoRow.id == FaceRow.photo_id)
                .where(FaceRow.id > last, stale)
                .order_by(FaceRow.id)
                .limit(5000)
            ).all()
        if not rows:
            return
        for row in rows:
            yield FaceJob(
                face_id=row.id,
                files=service.photo_files,
                photo_name=photo_file_name(row.sha256, row.format),
                box=Box(row.top, row.right, row.bottom, row.left),
            )
        last = rows[-1].id


def _write(service: FacesOwner, batch: list[Reembedded], report: ReembedReport) -> None:
    """Store a batch of results and the job's new cursor, in one transaction."""
    with service.store.transaction() as session:
        service.store.lock_faces(session)
        for result in batch:
            if result.face is None:
                report.failed.append((result.face_id, result.code or "", result.message or ""))
                continue
            session.execute(
                update(FaceRow)
                .where(FaceRow.id == result.face_id)
                .values(face_columns(result.face, service.pipeline))
            )
            report.reembedded += 1
        session.execute(
            update(BatchJobRow).where(BatchJobRow.name == JOB_NAME).values(cursor=batch[-1].face_id)
        )


def _results_in_order(
    jobs: Iterable[FaceJob], pipeline: Pipeline, *, workers: int | None, ray_address: str | None
) -> Iterator[Reembedded]:
    if ray_address is not None:
        yield from _on_ray(jobs, pipeline, ray_address)
        return
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        yield from (reembedded(job, pipeline) for job in jobs)
        return
    # At most a few batches in flight: millions of faces never sit in memory at once.
    with ProcessPoolExecutor(
        workers, initializer=exit_with_parent, initargs=(os.getpid(),)
    ) as pool:
        pending: deque[Future[Reembedded]] = deque()
        for job in jobs:
            pending.append(pool.submit(reembedded, job, pipeline))
            if len(pending) >= 4 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _on_ray(jobs: Iterable[FaceJob], pipeline: Pipeline, address: str) -> Iterator[Reembedded]:
    try:
        import ray
        from ray.util import ActorPool
    except ImportError as exc:
        raise InvalidInput(
            "Ray is not installed: install reunite with the 'ray' extra (pip install '.[ray]')."
        ) from exc
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)

    @ray.remote
    class Embedder:
        """Holds dlib's models (loaded once, with ``reunite.faces``) and embeds batches."""

        def __init__(self, pipeline: Pipeline) -> None:
            self.pipeline = pipeline

        def run(self, batch: list[FaceJob]) -> list[Reembedded]:
            return [reembedded(job, self.pipeline) for job in batch]

    actors = max(1, int(ray.cluster_resources().get("CPU", 1)))  # type: ignore[no-untyped-call]
    pool = ActorPool([Embedder.remote(pipeline) for _ in range(actors)])  # type: ignore[attr-defined]
    log.info("reembed: %d Ray actors", actors)
    batches = batched(iter(jobs), 16)
    while window := list(itertools.islice(batches, 4 * actors)):
        for results in pool.map(lambda actor, batch: actor.run.remote(batch), window):
            yield from results
