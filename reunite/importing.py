"""Batch import of an archive of cases (``reunite import MANIFEST``).

A manifest (read by ``reunite.manifests``) lists one case per row: its kind, agency,
external_ref, facts and photos, each photo with the date it was taken if known.
``import_manifest`` creates or updates each case (``Reunite.put_case``) and enrolls its photos,
which a process pool prepares (``reunite.batch``) a chunk of rows at a time, so memory stays
bounded however long the manifest is.

Repeatable and resumable: a case is found again by its agency and external_ref, and a photo
whose bytes are already enrolled in its case is skipped before detection (its date as it was
enrolled). A second run changes
nothing; a run stopped at any point (even by ``kill -9``) continues where it stopped when run
again, and ends in the same state as a run that was never stopped. Bad rows and bad photos never
stop the run: each becomes a line of the report (``REPORT_COLUMNS``), and the summary counts them.

Nothing here prints. Logs carry row numbers, ids and counts, never names, paths or image bytes.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from reunite import imaging
from reunite.batch import PhotoResult, PhotoResultPool, batched
from reunite.enrollment import FACE_CHOICES
from reunite.errors import (
    Conflict,
    ImageTooLarge,
    InvalidField,
    InvalidInput,
    MultipleFaces,
    NotFound,
    UnreadableFile,
)
from reunite.manifests import ManifestRow, manifest_rows
from reunite.service import Reunite
from reunite.store import CaseRow, validated_case_fields

log = logging.getLogger(__name__)

REPORT_COLUMNS = ("row", "external_ref", "photo", "code", "reason")
"""The report's header: one line per bad row (``photo`` empty) or bad photo."""
CHUNK_ROWS = 200
"""Rows read, and their photos prepared, at a time; the next chunk is prepared while this one
is stored."""

FACE_CHOICE_HINT = (
    "Crop it to one person, or run the import again with --face largest (the largest face) "
    "or --face central (the face nearest the centre)."
)

ProgressCallback = Callable[[int, int], None]
"""Called with (photos done, photos listed in the manifest) at the start and after each photo."""


@dataclass
class ImportSummary:
    """What an import did, in counts; the report file (``report``) lists each failure."""

    rows: int = 0
    """Rows (cases) read from the manifest."""
    rows_failed: int = 0
    """Rows refused whole (bad facts, a kind conflict, a repeated case...): none of their photos
    was tried."""
    cases_created: int = 0
    cases_updated: int = 0
    cases_unchanged: int = 0
    photos_enrolled: int = 0
    photos_already_enrolled: int = 0
    """Photos skipped because their bytes were already a photo of the case."""
    photos_failed: int = 0
    new_candidates: int = 0
    """Candidates proposed by the photos enrolled in this run."""
    report: str = ""
    """Path of the report file."""

    @property
    def failed(self) -> int:
        """Rows and photos that failed (each is a line of the report)."""
        return self.rows_failed + self.photos_failed


@dataclass(frozen=True)
class _PhotoJob:
    row: ManifestRow
    position: int
    """The photo's place in the row's list (0-based)."""
    case_id: int
    path: Path
    taken_on: date | None


def default_report_path(manifest: Path) -> Path:
    """Where the report goes unless told: beside the manifest, ``<manifest name>.report.csv``."""
    return manifest.with_name(f"{manifest.name}.report.csv")


def import_manifest(
    service: Reunite,
    manifest: Path,
    *,
    actor: str,
    report: Path | None = None,
    workers: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
    on_progress: ProgressCallback | None = None,
    face_choice: str = "refuse",
) -> ImportSummary:
    """Create or update every case of a manifest and enroll its photos; returns the counts.

    Reads the manifest twice: once to check it and count its photos (for ``on_progress``), then
    to import it. Each row's case is put (``Reunite.put_case``: created, updated or unchanged);
    each photo is read and hashed here, skipped if its bytes are already in the case, else
    prepared over ``workers`` processes (default: one per core) and enrolled. The report
    (default: ``default_report_path``) is written as the run goes to ``<report>.partial`` and
    renamed to ``report`` at the end. A photo that shows several faces is refused
    (``multiple_faces``) unless ``face_choice`` (``enrollment.FACE_CHOICES``) is ``largest`` or
    ``central``: that face is enrolled, and the choice recorded with it (``FaceRow.face_choice``).

    Cost: dominated by face detection, about 0.1-1 s a photo per worker (LFW's 250x250 photos:
    about 0.1 s; a 12 MP phone photo: seconds), plus about 10 ms a photo here to hash it and
    store it; a photo already enrolled costs only its read and hash. Memory: the prepared
    photos (bytes included) of up to two chunks of ``chunk_rows`` rows, and about 100 bytes a
    row to refuse a case given twice.

    Raises:
        InvalidInput: the manifest is unusable as a whole (see ``manifest_rows``), the
            report cannot be written, or ``face_choice`` is unknown. Nothing is imported then.
    """
    if face_choice not in FACE_CHOICES:
        raise InvalidField(f"--face must be one of {', '.join(FACE_CHOICES)}, not {face_choice!r}.")
    report = report or default_report_path(manifest)
    if report.resolve() == manifest.resolve():
        raise InvalidInput("The report would overwrite the manifest; choose another --report.")
    photos_total = _photos_listed(manifest)
    try:
        writer = _ReportWriter(report)
    except OSError as exc:
        raise InvalidInput(
            f"Cannot write the report {report}: {exc.strerror}. Choose another with --report."
        ) from exc
    importer = _Importer(
        service,
        manifest.parent,
        actor=actor,
        writer=writer,
        summary=ImportSummary(report=str(report)),
        photos_total=photos_total,
        on_progress=on_progress or (lambda done, total: None),
    )
    settings = service.settings
    with (
        writer,
        PhotoResultPool(
            pipeline=service.pipeline,
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_pixels,
            workers=workers,
            face_choice=face_choice,
        ) as pool,
    ):
        importer.advance(0)
        pending: tuple[list[_PhotoJob], Iterator[PhotoResult], int] | None = None
        for chunk in batched(manifest_rows(manifest), chunk_rows):
            jobs = [job for row in chunk for job in importer.planned_jobs(row)]
            prepared = pool.results([job.path for job in jobs])  # workers start on these
            if pending is not None:
                importer.store(*pending)  # ... while the previous chunk is stored
            pending = jobs, prepared, chunk[-1].row
        if pending is not None:
            importer.store(*pending)
        writer.commit()
    _log_summary(importer.summary)
    return importer.summary


def _photos_listed(manifest: Path) -> int:
    """How many photos the manifest lists, after checking every row (``manifest_rows``)."""
    rows_total = photos_total = 0
    for row in manifest_rows(manifest):
        rows_total += 1
        photos_total += len(row.photos)
    log.info("import: %d rows listing %d photos", rows_total, photos_total)
    return photos_total


def _log_summary(summary: ImportSummary) -> None:
    log.info(
        "import: %d rows (%d failed), cases %d created %d updated %d unchanged, photos %d "
        "enrolled %d already enrolled %d failed, %d new candidates",
        summary.rows,
        summary.rows_failed,
        summary.cases_created,
        summary.cases_updated,
        summary.cases_unchanged,
        summary.photos_enrolled,
        summary.photos_already_enrolled,
        summary.photos_failed,
        summary.new_candidates,
    )


@dataclass
class _Importer:
    """The state of one import: what is done so far, and where failures are written."""

    service: Reunite
    folder: Path
    actor: str
    writer: _ReportWriter
    summary: ImportSummary
    photos_total: int
    on_progress: ProgressCallback
    photos_done: int = 0
    seen_cases: set[int] = field(default_factory=set)
    """A 64-bit hash of each (agency, external_ref) met so far, to refuse a case given twice."""

    def advance(self, photos: int) -> None:
        self.photos_done += photos
        self.on_progress(self.photos_done, self.photos_total)

    def planned_jobs(self, row: ManifestRow) -> list[_PhotoJob]:
        """Put the row's case, then the photos of it still to prepare: each photo already
        enrolled, and each that cannot be read, is settled here (counted, or reported)."""
        self.summary.rows += 1
        try:
            case = self._put_case(row)
        except (InvalidInput, Conflict) as exc:
            self.summary.rows_failed += 1
            self.writer.add(row.row, -1, row.external_ref, "", exc.code, exc.message)
            log.debug("import: row %d refused (%s)", row.row, exc.code)
            self.advance(len(row.photos))
            return []
        enrolled = self.service.enrolled_sha256s(case.id)
        jobs = []
        for position, photo in enumerate(row.photos):
            if photo.problem is not None:
                self._fail(row, position, photo.problem.code, photo.problem.message)
                continue
            try:
                path = _photo_path(self.folder, photo.path)
                data = _photo_bytes(path, self.service.settings.max_upload_bytes)
            except InvalidInput as exc:
                self._fail(row, position, exc.code, exc.message)
                continue
            except OSError as exc:
                reason = f"The file cannot be read: {exc.strerror or type(exc).__name__}."
                self._fail(row, position, UnreadableFile.code, reason)
                continue
            sha256 = imaging.sha256_hex(data)
            if sha256 in enrolled:
                self.summary.photos_already_enrolled += 1
                self.advance(1)
                continue
            enrolled.add(sha256)  # the same bytes twice in a row are prepared once
            jobs.append(_PhotoJob(row, position, case.id, path, photo.taken_on))
        return jobs

    def store(self, jobs: list[_PhotoJob], prepared: Iterable[PhotoResult], last_row: int) -> None:
        """Enroll each prepared photo in its case, in order, then write the report's lines of
        the rows up to ``last_row`` (the end of the chunk), in the manifest's order."""
        for job, ready in zip(jobs, prepared, strict=True):
            if ready.photo is None:
                reason = ready.message
                if ready.code == MultipleFaces.code:  # the API's face_index means nothing here
                    reason = f"The photo shows several faces. {FACE_CHOICE_HINT}"
                self._fail(job.row, job.position, str(ready.code), reason)
                continue
            try:
                enrollment = self.service.enroll_prepared(
                    job.case_id, ready.photo, actor=self.actor, taken_on=job.taken_on
                )
            except (InvalidInput, Conflict, NotFound) as exc:
                self._fail(job.row, job.position, exc.code, exc.message)
                continue
            if enrollment.created:
                self.summary.photos_enrolled += 1
                self.summary.new_candidates += len(enrollment.new_candidates)
            else:
                self.summary.photos_already_enrolled += 1
            self.advance(1)
        self.writer.write_through(last_row)

    def _put_case(self, row: ManifestRow) -> CaseRow:
        if row.problem is not None:
            raise row.problem
        fields = validated_case_fields(row.fields)
        if fields.agency is None or fields.external_ref is None:
            raise InvalidField(
                "agency and external_ref are required: they find the case again when the "
                "import runs again."
            )
        key = _case_key(fields.agency, fields.external_ref)
        if key in self.seen_cases:
            raise Conflict(
                f"Agency {fields.agency}'s case {fields.external_ref!r} is on an earlier row "
                "too. Give each case one row, with all its photos."
            )
        self.seen_cases.add(key)
        data = {k: v for k, v in row.fields.items() if k not in ("agency", "external_ref")}
        case, outcome = self.service.put_case(
            fields.agency, fields.external_ref, data, actor=self.actor
        )
        if outcome == "created":
            self.summary.cases_created += 1
        elif outcome == "updated":
            self.summary.cases_updated += 1
        else:
            self.summary.cases_unchanged += 1
        return case

    def _fail(self, row: ManifestRow, position: int, code: str, reason: str | None) -> None:
        self.summary.photos_failed += 1
        self.writer.add(
            row.row, position, row.external_ref, row.photos[position].path, code, reason
        )
        log.debug("import: row %d, photo %d failed (%s)", row.row, position + 1, code)
        self.advance(1)


class _ReportWriter:
    """The report, written chunk by chunk (flushed) to ``<path>.partial`` and renamed to
    ``path`` by ``commit``. An interrupted run leaves the partial file; the next run starts it
    afresh. Lines are held until ``write_through`` their row, so the file follows the manifest's
    order although a row's failures are found at two moments (reading, then detection)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(f"{path.name}.partial")
        self._handle = self.partial.open("w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(REPORT_COLUMNS)
        self._held: list[tuple[int, int, str, str, str, str]] = []

    def add(
        self, row: int, position: int, external_ref: str, photo: str, code: str, reason: str | None
    ) -> None:
        """Hold a line: ``position`` orders it within its row (-1: the row itself)."""
        self._held.append((row, position, external_ref, photo, code, reason or ""))

    def write_through(self, row: int) -> None:
        """Write (and flush) the lines held for rows up to ``row``, in order."""
        ready = sorted(line for line in self._held if line[0] <= row)
        self._held = [line for line in self._held if line[0] > row]
        for number, _, *cells in ready:
            self._writer.writerow([number, *cells])
        self._handle.flush()

    def commit(self) -> None:
        """Make the report whole on disk under its name (fsync, then an atomic rename)."""
        self.write_through(sys.maxsize)
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self.partial, self.path)

    def __enter__(self) -> _ReportWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._handle.close()


def _photo_path(folder: Path, written: str) -> Path:
    """The file a manifest names, inside the manifest's ``folder`` (checked on the path as
    written: a symbolic link inside the folder may point anywhere).

    Raises:
        InvalidField: an absolute path, or one that leads out of the folder (``../``).
    """
    if "\x00" in written:
        raise InvalidField("The photo path contains a NUL character.")
    if os.path.isabs(written):
        raise InvalidField("The photo path is absolute; give it relative to the manifest's folder.")
    normalized = os.path.normpath(written)
    if normalized == os.pardir or normalized.startswith(os.pardir + os.sep):
        raise InvalidField("The photo path leads out of the manifest's folder.")
    return folder / normalized


def _photo_bytes(path: Path, max_bytes: int) -> bytes:
    """A photo file's bytes; a file over ``max_bytes`` is refused before it is read."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ImageTooLarge(
            f"The file is {size} bytes; the limit is {max_bytes} bytes (REUNITE_MAX_UPLOAD_BYTES)."
        )
    return path.read_bytes()


def _case_key(agency: str, external_ref: str) -> int:
    digest = hashlib.blake2b(f"{agency}\x00{external_ref}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")
