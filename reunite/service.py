"""``Reunite``: the library's front door. Cases, photos, matching and search in one object.

The HTTP API and the command line are thin layers over this class. It owns the SQL store (the
source of truth), the photo directory and the FAISS index derived from the store::

    with Reunite.open(Settings()) as service:
        case = service.create_case({"kind": "missing", "name": "..."}, actor="cli")
        enrollment = service.enroll_photo(case.id, photo_bytes, actor="cli")
        enrollment.new_candidates      # found cases whose faces are within tolerance

Writes that change matching (enrolling, deleting) are serialised by one lock so that two
enrollments of opposite kinds always see each other. Face detection runs outside the lock.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Literal, Self, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from reunite import accounts, imaging, paging, privacy, review, webhooks
from reunite.calibration import linear_similarity, loaded_calibration
from reunite.config import Settings
from reunite.device import chosen_devices
from reunite.errors import (
    Conflict,
    IndexUnusable,
    InvalidField,
    MultipleFaces,
    NoFaceFound,
    NotAuthenticated,
    NotFound,
    NotReady,
)
from reunite.faces import EMBEDDING_DIM, MODEL_NAME, Face, FaceFinder, Pipeline, faces_in_image
from reunite.files import write_atomically
from reunite.index import (
    KINDS,
    MANIFEST_NAME,
    DirectoryLock,
    FaceIndex,
    graph_parts,
    read_manifest,
)
from reunite.matching import CaseMatch, nearest_cases, other_kind
from reunite.store import (
    EARLIEST_DATE,
    ApiKey,
    AuditEvent,
    Candidate,
    CandidateDecision,
    Case,
    CaseFields,
    OutboxEvent,
    Photo,
    RemovedFace,
    Store,
    User,
    Webhook,
    embedding_bytes,
    embedding_vector,
    photo_file_name,
    utc_now,
    validated_case_fields,
)
from reunite.store import Face as FaceRow

log = logging.getLogger(__name__)

T = TypeVar("T")
IndexType = Literal["auto", "flat", "hnsw"]
PutOutcome = Literal["created", "updated", "unchanged"]

TEMPLATE_SEARCH_MARGIN = 0.1
"""How much wider than the tolerance the face search looks for cases to score by template (a
case's mean can be nearer than any one of its faces)."""

CROP_MARGIN = 0.25
"""Margin added on each side of a face box when cropping, as a fraction of the box size."""


@dataclass(frozen=True)
class Enrollment:
    """The outcome of adding a photo to a case."""

    photo: Photo
    faces: list[FaceRow]
    new_candidates: list[CandidateView]
    created: bool
    """False when the same bytes were already a photo of this case (nothing changed)."""


@dataclass(frozen=True)
class PreparedPhoto:
    """A decoded case photo and the one face chosen in it, not yet stored."""

    data: bytes
    image: imaging.DecodedImage
    face: Face


@dataclass(frozen=True)
class RankedCase:
    """A candidate case for one probe face: the case row, how close its nearest face is, and
    what that distance means (``similarity``, see ``Reunite.similarity``)."""

    case: Case
    match: CaseMatch
    similarity: float


@dataclass(frozen=True)
class FaceResult:
    """One face of a searched photo and its ranked candidate cases, nearest first."""

    face: Face
    ranked: list[RankedCase] = field(default_factory=list)


@dataclass(frozen=True)
class Listing(Generic[T]):
    """One page of a list: its rows, how many match in all, and where the next page starts."""

    items: list[T]
    total: int
    next_after: list[Any] | None
    """The last row's sort key when the page is full (pass it as ``after``), else None."""


@dataclass(frozen=True)
class CandidateView:
    """A candidate as a reviewer sees it: both cases, consistency flags and past decisions."""

    candidate: Candidate
    found: Case
    missing: Case
    flags: list[review.Flag]
    decisions: list[CandidateDecision]
    similarity: float


@dataclass(frozen=True)
class IndexReport:
    """How the index was made ready: ``loaded``, ``caught_up`` or ``rebuilt``, and why."""

    how: str
    reason: str
    counts: dict[str, int]


class Reunite:
    """Cases, photos, faces, candidates and search over one store, photo folder and index."""

    def __init__(
        self, settings: Settings, *, store: Store, finder: FaceFinder = faces_in_image
    ) -> None:
        self.settings = settings
        self.store = store
        self.devices = chosen_devices(settings.device)
        self.pipeline = Pipeline(
            detector=settings.detector or ("cnn" if self.devices.dlib_cuda else "hog"),
            upsample_times=settings.upsample_times,
            num_jitters=settings.num_jitters,
            min_face_px=settings.min_face_px,
        )
        self._finder = finder
        self.calibration = loaded_calibration(
            settings.calibration_path, model=MODEL_NAME, pipeline=self.pipeline.version
        )
        self._write_lock = threading.RLock()
        self._unsaved_changes = 0
        self._ready = threading.Event()
        self.display_zone = _zone(settings.display_timezone)

        self.on_outbox: Callable[[], None] = lambda: None
        """Called after a change that may have written webhook events (a worker's ``wake``)."""
        self.stats: Counter[str] = Counter()
        """Counts since start: ``enrollments``, ``searches``, ``candidates`` (for metrics)."""
        self.index = FaceIndex(MODEL_NAME, EMBEDDING_DIM)
        self.index_report = IndexReport("empty", "not opened yet", {k: 0 for k in KINDS})
        self._index_dir_lock = DirectoryLock(settings.index_dir)
        self._face_mark = 0
        """Highest face id (committed) that the index has seen; see ``sync_index``."""
        self._removal_mark = 0
        """Highest ``removed_faces`` id that the index has applied."""
        self._manifest_stamp: tuple[int, int, int] | None = None

    @classmethod
    def open(
        cls, settings: Settings, *, finder: FaceFinder = faces_in_image, load_index: bool = True
    ) -> Reunite:
        """Connect to the store, then load the index (or catch it up, or rebuild it).

        With ``load_index=False`` the caller loads it later with ``make_ready`` (a server does
        so in the background, answering "not ready" meanwhile).
        """
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.photos_dir.mkdir(parents=True, exist_ok=True)
        service = cls(settings, store=Store(settings.resolved_database_url), finder=finder)
        if load_index:
            service.make_ready()
        return service

    def make_ready(self) -> IndexReport:
        """Load the index (see ``load_index``); matching and search work from then on."""
        self.index_report = self.load_index()
        self._ready.set()
        return self.index_report

    def similarity(self, distance: float) -> float:
        """What a distance means, in [0, 1]: the calibrated P(same person) when a calibration
        is loaded, else the linear ``1 - distance / 1.2``."""
        if self.calibration is None:
            return linear_similarity(distance)
        return self.calibration.similarity(distance)

    @property
    def ready(self) -> bool:
        """Whether the index is loaded (matching, search and deletion need it)."""
        return self._ready.is_set()

    def _require_ready(self) -> None:
        if not self._ready.is_set():
            raise NotReady("The service is starting (loading the face index); retry shortly.")

    def close(self) -> None:
        """Save the index (if it was loaded) and release the database connections."""
        with self._write_lock:
            try:
                if self.ready:
                    self.save_index()
            except OSError:
                log.exception("index: saving at shutdown failed; the next start catches it up")
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------------------- cases

    def create_case(self, data: Mapping[str, Any], *, actor: str) -> Case:
        """Create a case from its facts (see ``CaseFields``).

        Raises:
            InvalidField: the facts are malformed or contradict each other.
            Conflict: the agency already has a case with this external_ref.
        """
        fields = validated_case_fields(dict(data))
        if fields.status == "matched":
            raise InvalidField(
                "A case becomes matched when one of its candidates is confirmed; create it open."
            )
        with self._write_lock, self.store.transaction() as session:
            self._check_external_ref_free(session, fields.agency, fields.external_ref, None)
            case = Case(**fields.model_dump())
            session.add(case)
            session.flush()
            self._audit(session, actor, "case.create", case.id)
        log.info("case %d created (%s)", case.id, case.kind)
        return case

    def case(self, case_id: int) -> Case:
        """The case with this id. Raises ``NotFound``."""
        with self.store.transaction() as session:
            return self._case(session, case_id)

    def case_by_external_ref(self, agency: str, external_ref: str) -> Case:
        """The agency's case with this external reference. Raises ``NotFound``."""
        with self.store.transaction() as session:
            case = session.scalar(
                select(Case).where(Case.agency == agency, Case.external_ref == external_ref)
            )
        if case is None:
            raise NotFound(f"Agency {agency} has no case {external_ref!r}.")
        return case

    def cases(
        self,
        *,
        kind: str | None = None,
        status: str | None = None,
        agency: str | None = None,
        updated_since: datetime | None = None,
        after: Sequence[Any] | None = None,
        limit: int = 50,
    ) -> Listing[Case]:
        """Cases by last change, oldest first (so a sync client can follow them), filtered.

        ``after`` is the ``next_after`` of the previous listing. ``total`` counts every case
        that matches the filters.
        """
        query = select(Case)
        if kind:
            query = query.where(Case.kind == kind)
        if status:
            query = query.where(Case.status == status)
        if agency:
            query = query.where(Case.agency == agency)
        if updated_since:
            query = query.where(Case.updated_at >= updated_since)
        ordering = [(Case.updated_at, True), (Case.id, True)]
        with self.store.transaction() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            if after is not None:
                query = query.where(paging.after_key(ordering, after))
            rows = list(session.scalars(query.order_by(*paging.order_by(ordering)).limit(limit)))
        next_after = paging.key_of(rows[-1], ("updated_at", "id")) if len(rows) == limit else None
        return Listing(rows, total, next_after)

    def put_case(
        self, agency: str, external_ref: str, data: Mapping[str, Any], *, actor: str
    ) -> tuple[Case, PutOutcome]:
        """Create or replace the agency's case ``external_ref`` with ``data``; idempotent.

        ``data`` is the whole record (fields left out become empty; ``status`` is kept unless
        given). The same data again changes nothing, not even ``updated_at``. Returns the case
        and whether it was created, updated or left unchanged.

        Raises:
            InvalidField: bad facts, or a ``kind`` different from the stored case's.
            Conflict: a status change that is not allowed.
        """
        record = {**data, "agency": agency, "external_ref": external_ref}
        # Look the case up by the reference as it is stored (trimmed), not as it came.
        stored_ref = validated_case_fields(record).external_ref or external_ref
        with self._write_lock:
            try:
                case = self.case_by_external_ref(agency, stored_ref)
            except NotFound:
                try:
                    return self.create_case(record, actor=actor), "created"
                except Conflict:  # another process created it at the same moment: that one
                    case = self.case_by_external_ref(agency, stored_ref)
            if record.get("kind") != case.kind:
                raise InvalidField(
                    f"Case {external_ref!r} is a {case.kind} case; its kind cannot change."
                )
            wanted = validated_case_fields({"status": case.status, **record}).model_dump()
            changes = {k: v for k, v in wanted.items() if k != "kind" and getattr(case, k) != v}
            if not changes:
                return case, "unchanged"
            return self.update_case(case.id, changes, actor=actor), "updated"

    def update_case(self, case_id: int, changes: Mapping[str, Any], *, actor: str) -> Case:
        """Change some facts of a case. The kind cannot change (delete and re-create instead).

        A status change must be allowed from the current status (see ``reunite.review``). A
        reopened case is matched again, so pairs missed while it was closed are proposed.

        Raises:
            NotFound, InvalidField, Conflict (duplicate external_ref, or a status change that is
            not allowed).
        """
        if "kind" in changes:
            raise InvalidField("A case's kind cannot change; create a new case instead.")
        if "status" in changes:
            self._require_ready()  # a reopened case is matched again
        with self._write_lock, self.store.transaction() as session:
            case = self._case(session, case_id)
            current = {name: getattr(case, name) for name in _CASE_FIELD_NAMES}
            fields = validated_case_fields({**current, **changes})
            review.check_case_transition(case.status, fields.status)
            self._check_external_ref_free(session, fields.agency, fields.external_ref, case.id)
            facts = sorted(name for name in changes if name != "status")
            if fields.status != case.status:
                self._audit(
                    session, actor, "case.status", case.id, old=case.status, new=fields.status
                )
            if facts:
                self._audit(session, actor, "case.update", case.id, fields=facts)
            reopened = case.status == "closed" and fields.status != "closed"
            for name, value in fields.model_dump().items():
                setattr(case, name, value)
            if reopened:  # matching skipped it while closed: catch up on what arrived since
                self.store.lock_faces(session)
                self._pull_changes(session)
                session.flush()
                faces = session.scalars(
                    select(FaceRow).where(FaceRow.case_id == case.id, FaceRow.model == MODEL_NAME)
                )
                for face in list(faces):
                    self._record_candidates(session, case, face, face.vector)
        return case

    def delete_case(self, case_id: int, *, actor: str, reason: str) -> None:
        """Erase a case: its record, its photos (files too, unless another case has the same
        bytes), its faces (from the store and every server's index), its face crops and its
        candidates with their decisions.

        ``reason`` is one of ``privacy.ERASURE_REASONS``. The audit log keeps who erased which
        case, when and why (that category), and counts; earlier audit rows name ids only. On
        SQLite the erased rows are overwritten in the database file and the write-ahead log is
        emptied (best effort); the index files are saved at once without the faces (an
        approximate index keeps them as tombstones until ``reunite reindex``). Cost: one
        transaction, then one save of the index (O(faces) of I/O).

        Raises:
            NotFound, NotReady, InvalidField (an unknown reason).
        """
        if reason not in privacy.ERASURE_REASONS:
            raise InvalidField(
                f"reason must be one of {list(privacy.ERASURE_REASONS)}, not {reason!r}."
            )
        self._require_ready()
        with self._write_lock:
            with self.store.transaction() as session:
                self.store.lock_faces(session)
                case = self._case(session, case_id)
                face_ids = list(
                    session.scalars(select(FaceRow.id).where(FaceRow.case_id == case_id))
                )
                self._drop_faces(session, case.kind, face_ids)
                photos = list(session.scalars(select(Photo).where(Photo.case_id == case_id)))
                doomed = list(
                    session.scalars(
                        select(Candidate).where(
                            (Candidate.found_case_id == case_id)
                            | (Candidate.missing_case_id == case_id)
                        )
                    )
                )
                for candidate in doomed:
                    webhooks.enqueue_candidate_event(
                        session,
                        "candidate.deleted",
                        candidate,
                        session.get_one(Case, candidate.found_case_id),
                        session.get_one(Case, candidate.missing_case_id),
                        similarity=self.similarity(candidate.distance),
                    )
                session.execute(
                    delete(Candidate).where(
                        (Candidate.found_case_id == case_id)
                        | (Candidate.missing_case_id == case_id)
                    )
                )
                session.execute(delete(FaceRow).where(FaceRow.case_id == case_id))
                session.execute(delete(Photo).where(Photo.case_id == case_id))
                session.delete(case)
                self._audit(
                    session,
                    actor,
                    "case.delete",
                    case_id,
                    reason=reason,
                    photos=len(photos),
                    faces=len(face_ids),
                    candidates=len(doomed),
                )
            self._erase_after_commit(face_ids, [(p.sha256, p.format) for p in photos])
            self._try_save_index()
        self._checkpoint_after_erasure()
        self.on_outbox()
        log.info("case %d erased (%s) with %d faces", case_id, reason, len(face_ids))

    def purge_expired(
        self, *, actor: str, dry_run: bool = False, now: datetime | None = None
    ) -> privacy.PurgeReport:
        """Erase the biometric data of cases closed more than ``retention_days`` ago: photo
        files, face crops and embeddings (faces leave every index). The case record, its
        candidates and their decisions stay (see ``reunite.privacy``). With ``dry_run``,
        report what would be erased and change nothing (the index need not be loaded).

        A case reopened meanwhile is left alone. Each purged case is audited (``case.purge``,
        reason ``retention``, counts). ``retention_days = 0`` purges nothing. Cost: a few
        queries, then per case one transaction and the file deletions; one index save at the
        end.

        Raises:
            NotReady (without ``dry_run``, before the index is loaded).
        """
        days = self.settings.retention_days
        if not days:
            return privacy.PurgeReport(dry_run=dry_run, retention_days=0, cutoff=None)
        if not dry_run:
            self._require_ready()
        cutoff = (now or utc_now()) - timedelta(days=days)
        with self.store.transaction() as session:
            closed = privacy.closed_cases_with_photos(session)
        due = sorted(case_id for case_id, at in closed.items() if at < cutoff)
        report = privacy.PurgeReport(dry_run=dry_run, retention_days=days, cutoff=cutoff)
        for case_id in due:
            purged = (
                self._biometrics_of(case_id, closed[case_id])
                if dry_run
                else self._purge_case(case_id, closed[case_id], actor=actor)
            )
            if purged is not None:
                report.cases.append(purged)
        if report.cases and not dry_run:
            self._try_save_index()
            self._checkpoint_after_erasure()
            log.info("retention: biometric data of %d closed cases erased", len(report.cases))
        return report

    def _biometrics_of(self, case_id: int, closed_at: datetime) -> privacy.PurgedCase:
        """What the purge would erase of a case: its live photos, faces and crop files."""
        with self.store.transaction() as session:
            photos, faces = _biometrics(session, case_id)
        crops = sum(self._crop_path(f.id).exists() for f in faces)
        return privacy.PurgedCase(case_id, closed_at, len(photos), len(faces), crops)

    def _purge_case(
        self, case_id: int, closed_at: datetime, *, actor: str
    ) -> privacy.PurgedCase | None:
        """Erase one closed case's photos, crops and embeddings, keeping the rows that
        candidates need as tombstones; None if the case is no longer closed. The caller saves
        the index."""
        with self._write_lock:
            with self.store.transaction() as session:
                self.store.lock_faces(session)
                case = session.get(Case, case_id)
                if case is None or case.status != "closed":
                    return None
                photos, faces = _biometrics(session, case_id)
                files = [(p.sha256, p.format) for p in photos]
                face_ids = [f.id for f in faces]
                self._drop_faces(session, case.kind, face_ids)
                for face in faces:
                    face.embedding, face.model, face.pipeline = b"", privacy.ERASED, privacy.ERASED
                for photo in photos:
                    photo.sha256 = privacy.erased_photo_sha256(photo.id)
                self._audit(
                    session,
                    actor,
                    "case.purge",
                    case_id,
                    reason=privacy.RETENTION_REASON,
                    photos=len(photos),
                    faces=len(faces),
                )
            crops = self._erase_after_commit(face_ids, files)
        log.info(
            "retention: case %d: %d photos and %d faces erased", case_id, len(files), len(faces)
        )
        return privacy.PurgedCase(case_id, closed_at, len(files), len(face_ids), crops)

    @staticmethod
    def _drop_faces(session: Session, kind: str, face_ids: list[int]) -> None:
        """Record that these faces (of one kind) leave the store, so that every server's index
        drops them; the caller deletes or tombstones their rows. The transaction must hold
        ``Store.lock_faces`` from its start (before the faces were read)."""
        session.add_all(RemovedFace(face_id=i, kind=kind) for i in face_ids)

    def _erase_after_commit(self, face_ids: list[int], photo_files: list[tuple[str, str]]) -> int:
        """The rest of an erasure, once its transaction committed: take the faces out of this
        process's index (the caller saves it), delete their crops, and delete each photo file,
        given as (sha256, format), unless a photo row still uses it. Returns the number of
        crops deleted. Call it under the write lock."""
        self.index.remove(face_ids)
        self._unsaved_changes += len(face_ids)
        crops = 0
        for face_id in face_ids:
            crop = self._crop_path(face_id)
            crops += crop.exists()
            crop.unlink(missing_ok=True)
        for sha256, fmt in photo_files:
            self._forget_photo_file(sha256, fmt)
        return crops

    def _checkpoint_after_erasure(self) -> None:
        with self.store.transaction() as session:
            outcome = privacy.sqlite_checkpoint(session)
        if outcome is not None and outcome[0]:
            log.info("store: write-ahead log busy; a later checkpoint empties it")

    # ---------------------------------------------------------------------------- photos

    def enroll_photo(
        self,
        case_id: int,
        data: bytes,
        *,
        actor: str,
        taken_on: date | None = None,
        face_index: int | None = None,
    ) -> Enrollment:
        """Add a photo to a case, embed its face and store new candidates from the other kind.

        The photo must show exactly one face, unless ``face_index`` (0-based, in the left-to-right
        order that ``MultipleFaces`` lists) says which one to use. Adding the same bytes to the
        same case again changes nothing (and costs no detection when ``face_index`` is not
        given). Cost: one decode and one detection, then one search.

        Raises:
            NotFound: no such case.
            UnsupportedImage, ImageTooLarge, UnreadableImage, ImageTooSmall: bad photo file.
            NoFaceFound, MultipleFaces, InvalidField: no usable face, a bad ``face_index`` or
            ``taken_on``.
            Conflict: these bytes are already enrolled in this case with another face.
        """
        _check_taken_on(taken_on)
        with self.store.transaction() as session:
            self._case(session, case_id)  # fail fast, before the costly detection
            existing = self._existing_enrollment(session, case_id, imaging.sha256_hex(data))
        if existing is not None and face_index is None:
            return existing
        prepared = self.prepared_photo(data, face_index=face_index)
        return self.enroll_prepared(case_id, prepared, actor=actor, taken_on=taken_on)

    def prepared_photo(self, data: bytes, *, face_index: int | None = None) -> PreparedPhoto:
        """Decode a case photo and find its one face, storing nothing (the costly half of
        ``enroll_photo``). Raises the same photo errors as ``enroll_photo``."""
        image = self.decoded_photo(data)
        face = chosen_face(self._finder(image.pixels, self.pipeline), face_index)
        return PreparedPhoto(data=data, image=image, face=face)

    def enroll_prepared(
        self, case_id: int, prepared: PreparedPhoto, *, actor: str, taken_on: date | None = None
    ) -> Enrollment:
        """Store a prepared photo in a case and its candidates (the quick half of
        ``enroll_photo``). Raises ``NotFound``."""
        _check_taken_on(taken_on)
        self._require_ready()
        data, image, face = prepared.data, prepared.image, prepared.face
        with self._write_lock:
            with self.store.transaction() as session:
                # One enrollment at a time across processes, each matched against every face
                # committed before it (other servers' faces included).
                self.store.lock_faces(session)
                self._pull_changes(session)
                case = self._case(session, case_id)
                existing = self._existing_enrollment(session, case_id, image.sha256)
                if existing is not None:
                    if any(tuple(face.box) != _box_of(f) for f in existing.faces):
                        raise Conflict(
                            f"This photo is already photo {existing.photo.id} of case {case_id}, "
                            "enrolled with another of its faces. Delete it first to change "
                            "the face.",
                            photo_id=existing.photo.id,
                        )
                    return existing
                write_atomically(self.photo_path_of(image.sha256, image.format), data)
                photo = Photo(
                    case_id=case_id,
                    sha256=image.sha256,
                    format=image.format,
                    width=image.width,
                    height=image.height,
                    byte_size=image.byte_size,
                    taken_on=taken_on,
                )
                session.add(photo)
                session.flush()
                row = FaceRow(
                    photo_id=photo.id,
                    case_id=case_id,
                    kind=case.kind,
                    **face_columns(face, self.pipeline),
                )
                session.add(row)
                session.flush()
                new_candidates = (
                    self._record_candidates(session, case, row, face.embedding)
                    if case.status != "closed"
                    else []
                )
                self._audit(
                    session,
                    actor,
                    "photo.enroll",
                    case_id,
                    photo_id=photo.id,
                    face_ids=[row.id],
                    new_candidate_ids=[c.id for c in new_candidates],
                )
                new_views = self._views(session, new_candidates)
            self.index.add(case.kind, [row.id], face.embedding[None, :])
            self._face_mark = max(self._face_mark, row.id)
            self._count_changes(1)
        self.on_outbox()
        self.stats["enrollments"] += 1
        self.stats["candidates"] += len(new_views)
        log.info(
            "case %d: photo %d enrolled, face %d, %d new candidates",
            case_id,
            photo.id,
            row.id,
            len(new_candidates),
        )
        return Enrollment(photo, [row], new_views, created=True)

    def _existing_enrollment(
        self, session: Session, case_id: int, sha256: str
    ) -> Enrollment | None:
        """The case's photo with these bytes, as an unchanged ``Enrollment``, or None."""
        photo = session.scalar(
            select(Photo).where(Photo.case_id == case_id, Photo.sha256 == sha256)
        )
        if photo is None:
            return None
        faces = list(session.scalars(select(FaceRow).where(FaceRow.photo_id == photo.id)))
        return Enrollment(photo, faces, [], created=False)

    def photos(self, case_id: int) -> list[tuple[Photo, list[FaceRow]]]:
        """A case's photos, oldest first, each with its faces; photos purged by the retention
        rule are left out. Raises ``NotFound``."""
        with self.store.transaction() as session:
            self._case(session, case_id)
            photos = list(
                session.scalars(
                    select(Photo)
                    .where(Photo.case_id == case_id, privacy.live_photo())
                    .order_by(Photo.id)
                )
            )
            faces = list(
                session.scalars(
                    select(FaceRow).where(FaceRow.case_id == case_id).order_by(FaceRow.id)
                )
            )
        return [(p, [f for f in faces if f.photo_id == p.id]) for p in photos]

    def enrolled_sha256s(self, case_id: int) -> set[str]:
        """The SHA-256 (hex) of each photo of a case: bytes that enrolling again would skip, so a
        batch can skip them before the costly detection. Cost: one indexed query."""
        with self.store.transaction() as session:
            return set(session.scalars(select(Photo.sha256).where(Photo.case_id == case_id)))

    def photo(self, photo_id: int) -> Photo:
        """A photo's row (no bytes, no audit). Raises ``NotFound``."""
        with self.store.transaction() as session:
            photo = session.get(Photo, photo_id)
        if photo is None:
            raise NotFound(f"There is no photo {photo_id}.")
        return photo

    def face(self, face_id: int) -> FaceRow:
        """A face's row. Raises ``NotFound``."""
        with self.store.transaction() as session:
            face = session.get(FaceRow, face_id)
        if face is None:
            raise NotFound(f"There is no face {face_id}.")
        return face

    def photo_file(self, photo_id: int, *, actor: str) -> tuple[Photo, bytes]:
        """A photo's row and its original bytes; the view is audited. Raises ``NotFound`` (also
        for a photo purged by the retention rule)."""
        with self.store.transaction() as session:
            photo = session.get(Photo, photo_id)
            if photo is None or privacy.is_erased(photo):
                raise NotFound(f"There is no photo {photo_id}.")
            self._audit(session, actor, "photo.view", photo.case_id, photo_id=photo_id)
        return photo, self.photo_path_of(photo.sha256, photo.format).read_bytes()

    def face_crop(self, face_id: int, *, actor: str) -> bytes:
        """A JPEG of one face, with a 25% margin, cut from its upright photo; the view is audited.

        Crops are kept in ``<data_dir>/crops/`` (a face's box never changes; the crop goes with
        its case), so a review page of 25 candidates does not decode 50 photos each time.
        Cost: one decode of the stored photo the first time, a file read after.

        Raises ``NotFound`` (also for a face purged by the retention rule).
        """
        with self.store.transaction() as session:
            face = session.get(FaceRow, face_id)
            if face is None or face.model == privacy.ERASED:
                raise NotFound(f"There is no face {face_id}.")
            self._audit(session, actor, "face.view", face.case_id, face_id=face_id)
            photo = session.get_one(Photo, face.photo_id)
        cached = self._crop_path(face_id)
        if cached.exists():
            return cached.read_bytes()
        data = self.photo_path_of(photo.sha256, photo.format).read_bytes()
        pixels = imaging.decoded_image(
            data, max_bytes=len(data), max_pixels=self.settings.max_pixels
        ).pixels
        height, width = pixels.shape[:2]
        margin_y = int((face.bottom - face.top) * CROP_MARGIN)
        margin_x = int((face.right - face.left) * CROP_MARGIN)
        top, bottom = max(face.top - margin_y, 0), min(face.bottom + margin_y, height)
        left, right = max(face.left - margin_x, 0), min(face.right + margin_x, width)
        crop = imaging.jpeg_bytes(pixels[top:bottom, left:right])
        write_atomically(cached, crop)
        return crop

    def _crop_path(self, face_id: int) -> Path:
        return self.settings.data_dir / "crops" / f"{face_id}.jpg"

    # ------------------------------------------------------------------------- candidates

    def candidates(self, case_id: int) -> list[CandidateView]:
        """A case's candidates, nearest first, with flags and decisions. Raises ``NotFound``."""
        with self.store.transaction() as session:
            self._case(session, case_id)
            rows = session.scalars(
                select(Candidate)
                .where(
                    (Candidate.found_case_id == case_id) | (Candidate.missing_case_id == case_id)
                )
                .order_by(Candidate.distance, Candidate.id)
            )
            return self._views(session, list(rows))

    def candidate(self, candidate_id: int) -> CandidateView:
        """One candidate with both cases, flags and decisions. Raises ``NotFound``."""
        with self.store.transaction() as session:
            return self._views(session, [self._candidate(session, candidate_id)])[0]

    def candidate_queue(
        self,
        *,
        status: str | None = "pending",
        order: str = "closest",
        agency: str | None = None,
        updated_since: datetime | None = None,
        after: Sequence[Any] | None = None,
        limit: int = 50,
    ) -> Listing[CandidateView]:
        """Candidates with ``status`` (None: any), with flags and decisions.

        ``order``: ``closest`` (distance, then id), ``newest`` (newest first) or ``updated``
        (by last change, oldest first, for sync clients). ``agency`` keeps candidates whose
        missing case is that agency's. ``after`` is the previous listing's ``next_after``.
        """
        orderings: dict[str, tuple[paging.SortKey, tuple[str, ...]]] = {
            "closest": ([(Candidate.distance, True), (Candidate.id, True)], ("distance", "id")),
            "newest": ([(Candidate.id, False)], ("id",)),
            "updated": ([(Candidate.updated_at, True), (Candidate.id, True)], ("updated_at", "id")),
        }
        if order not in orderings:
            raise InvalidField(f"order must be one of {sorted(orderings)}, not {order!r}.")
        ordering, names = orderings[order]
        query = select(Candidate)
        if status:
            query = query.where(Candidate.status == status)
        if status == "pending":  # a closed case's candidates wait for nobody
            closed = select(Case.id).where(Case.status == "closed")
            query = query.where(
                Candidate.found_case_id.not_in(closed), Candidate.missing_case_id.not_in(closed)
            )
        if agency:
            query = query.join(Case, Case.id == Candidate.missing_case_id).where(
                Case.agency == agency
            )
        if updated_since:
            query = query.where(Candidate.updated_at >= updated_since)
        with self.store.transaction() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            if after is not None:
                query = query.where(paging.after_key(ordering, after))
            rows = list(session.scalars(query.order_by(*paging.order_by(ordering)).limit(limit)))
            next_after = paging.key_of(rows[-1], names) if len(rows) == limit else None
            return Listing(self._views(session, rows), total, next_after)

    def decide(
        self, candidate_id: int, status: str, *, actor: str, role: str, note: str | None = None
    ) -> CandidateView:
        """Record a person's decision on a candidate: ``confirmed``, ``rejected`` or ``pending``.

        Confirming marks both cases ``matched``. Reopening (admin only, with a reason in
        ``note``) a confirmed candidate sets a ``matched`` case back to ``open`` when it has no
        other confirmed candidate. Every decision is kept with who, when and the note.

        Raises:
            NotFound, Conflict (not allowed from the current status, or a closed case),
            Forbidden (role too low), InvalidField (reopening without a reason).
        """
        with self._write_lock, self.store.transaction() as session:
            candidate = self._candidate(session, candidate_id)
            review.check_candidate_transition(candidate.status, status, role=role, note=note)
            cases = [
                self._case(session, candidate.found_case_id),
                self._case(session, candidate.missing_case_id),
            ]
            if any(c.status == "closed" for c in cases):
                raise Conflict("One of the two cases is closed; reopen the case first.")
            if status == "confirmed":
                for case in cases:
                    if _has_other_confirmed(session, candidate, case):
                        raise Conflict(
                            f"Case {case.id} is already matched by another confirmed "
                            "candidate; an admin must reopen that one first."
                        )
            was_confirmed = candidate.status == "confirmed"
            self._record_decision(session, candidate, status, actor=actor, note=note)
            webhooks.enqueue_candidate_event(
                session,
                "candidate.decided",
                candidate,
                *cases,
                similarity=self.similarity(candidate.distance),
            )
            for case in cases:
                new_status = case.status
                if status == "confirmed":
                    new_status = "matched"
                elif (
                    was_confirmed
                    and case.status == "matched"
                    and not _has_other_confirmed(session, candidate, case)
                ):
                    new_status = "open"
                if new_status != case.status:
                    self._audit(
                        session,
                        actor,
                        "case.status",
                        case.id,
                        old=case.status,
                        new=new_status,
                        candidate_id=candidate.id,
                    )
                    case.status = new_status
            session.flush()
            view = self._views(session, [candidate])[0]
        self.on_outbox()
        return view

    # ---------------------------------------------------------------------------- audit

    def audit_events(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        case_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """Audit events, newest first, filtered; page with ``before_id`` (the last id seen)."""
        query = select(AuditEvent)
        if action:
            query = query.where(AuditEvent.action == action)
        if actor:
            query = query.where(AuditEvent.actor == actor)
        if case_id is not None:
            query = query.where(AuditEvent.case_id == case_id)
        if since:
            query = query.where(AuditEvent.at >= since)
        if until:
            query = query.where(AuditEvent.at < until)
        if before_id is not None:
            query = query.where(AuditEvent.id < before_id)
        with self.store.transaction() as session:
            return list(session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit)))

    def decided_pairs(self) -> tuple[list[float], list[bool]]:
        """(distances, same) of every decided candidate: confirmed ones are the same person,
        rejected ones are not. The deployment's own evidence for ``reunite calibrate``."""
        with self.store.transaction() as session:
            rows = session.execute(
                select(Candidate.distance, Candidate.status).where(
                    Candidate.status.in_(("confirmed", "rejected"))
                )
            ).all()
        return [r.distance for r in rows], [r.status == "confirmed" for r in rows]

    # ------------------------------------------------------------------------- API keys

    def create_api_key(
        self,
        role: str,
        *,
        agency: str | None,
        actor: str,
        label: str | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[ApiKey, str]:
        """A new API key row and the key itself, which is shown once and never stored."""
        with self.store.transaction() as session:
            row, key = accounts.new_api_key(
                session, role, agency=agency, label=label, expires_at=expires_at
            )
            self._audit(
                session,
                actor,
                "key.create",
                None,
                key_id=row.id,
                prefix=row.prefix,
                role=role,
                agency=agency,
            )
        return row, key

    def api_key(self, key: str) -> ApiKey:
        """The usable key row for a presented key. Raises ``NotAuthenticated``."""
        with self.store.transaction() as session:
            return accounts.api_key_for(session, key)

    def revoke_api_key(self, prefix: str, *, actor: str) -> ApiKey:
        """Revoke a key by prefix; it stops working at once. Raises ``NotFound``."""
        with self.store.transaction() as session:
            row = accounts.revoke_api_key(session, prefix)
            self._audit(session, actor, "key.revoke", None, key_id=row.id, prefix=prefix)
        return row

    def api_keys(self) -> list[ApiKey]:
        with self.store.transaction() as session:
            return accounts.api_keys(session)

    # ------------------------------------------------------------------------- webhooks

    def register_webhook(self, agency: str, url: str, *, actor: str) -> tuple[Webhook, str]:
        """Register an agency's webhook URL; returns it and its signing secret (shown once)."""
        with self.store.transaction() as session:
            hook, secret = webhooks.register_webhook(session, agency, url)
            self._audit(session, actor, "webhook.create", None, webhook_id=hook.id, agency=agency)
        return hook, secret

    def webhooks(self, agency: str) -> list[Webhook]:
        with self.store.transaction() as session:
            return webhooks.agency_webhooks(session, agency)

    def deactivate_webhook(self, webhook_id: int, *, agency: str, actor: str) -> Webhook:
        with self.store.transaction() as session:
            hook = webhooks.deactivate_webhook(session, webhook_id, agency)
            self._audit(session, actor, "webhook.deactivate", None, webhook_id=hook.id)
        return hook

    def webhook_deliveries(
        self, *, status: str | None, limit: int, before_id: int | None
    ) -> list[OutboxEvent]:
        with self.store.transaction() as session:
            return webhooks.deliveries(session, status=status, limit=limit, before_id=before_id)

    def retry_webhook_delivery(self, event_row_id: int, *, actor: str) -> OutboxEvent:
        with self.store.transaction() as session:
            event = webhooks.retry_delivery(session, event_row_id)
            self._audit(session, actor, "webhook.retry", None, outbox_event_id=event.id)
        return event

    def webhook_backlog(self) -> int:
        with self.store.transaction() as session:
            return webhooks.backlog(session)

    # ---------------------------------------------------------------------------- users

    def create_user(self, username: str, password: str, role: str, *, actor: str) -> User:
        """Add a staff or admin account. Raises ``InvalidField`` or ``Conflict``."""
        with self.store.transaction() as session:
            user = accounts.new_user(session, username, password, role)
            self._audit(session, actor, "user.create", None, user_id=user.id, role=role)
        return user

    def signed_in_user(self, username: str, password: str) -> User:
        """The user with these credentials; sign-ins and failed ones are audited (by user id
        where the name exists; never the typed name, which may be a mistyped password).

        Raises ``NotAuthenticated``.
        """
        try:
            with self.store.transaction() as session:
                user = accounts.authenticated_user(session, username, password)
                self._audit(session, f"user:{user.username}", "user.sign_in", None, user_id=user.id)
            return user
        except NotAuthenticated:
            with self.store.transaction() as session:
                known = session.scalar(select(User.id).where(User.username == username))
                self._audit(session, "anonymous", "user.sign_in_failed", None, user_id=known)
            raise

    def sign_out(self, user_id: int) -> None:
        """End every session of the user (the session cookies carry an epoch this bumps)."""
        with self.store.transaction() as session:
            user = session.get(User, user_id)
            if user is not None:
                user.session_epoch += 1
                self._audit(
                    session, f"user:{user.username}", "user.sign_out", None, user_id=user_id
                )

    def disable_user(self, username: str, *, actor: str) -> User:
        """Disable an account and end its sessions. Raises ``NotFound``."""
        with self.store.transaction() as session:
            user = session.scalar(select(User).where(User.username == username))
            if user is None:
                raise NotFound(f"There is no user {username!r}.")
            user.disabled = True
            user.session_epoch += 1
            self._audit(session, actor, "user.disable", None, user_id=user.id)
        return user

    def user(self, user_id: int) -> User:
        """The enabled user with this id. Raises ``NotAuthenticated`` if absent or disabled."""
        with self.store.transaction() as session:
            user = session.get(User, user_id)
        if user is None or user.disabled:
            raise NotAuthenticated("Your session has ended; please sign in again.")
        return user

    # ----------------------------------------------------------------------------- search

    def search_photo(
        self,
        data: bytes,
        *,
        actor: str,
        kinds: Sequence[str] = KINDS,
        k: int | None = None,
        tolerance: float | None = None,
    ) -> list[FaceResult]:
        """Candidate cases for every face in a photo; stores only an audit record (ids only).

        ``kinds`` says which cases to search (``missing``, ``found`` or both). Results per face
        are the ``k`` nearest cases within ``tolerance`` (settings' defaults), nearest first.

        Raises:
            UnsupportedImage, ImageTooLarge, UnreadableImage, ImageTooSmall, NoFaceFound,
            InvalidField (unknown kind, bad k or tolerance).
        """
        return self.search_image(
            self.decoded_photo(data), actor=actor, kinds=kinds, k=k, tolerance=tolerance
        )

    def decoded_photo(self, data: bytes) -> imaging.DecodedImage:
        """Photo bytes decoded under this service's size limits (see ``imaging.decoded_image``)."""
        return imaging.decoded_image(
            data, max_bytes=self.settings.max_upload_bytes, max_pixels=self.settings.max_pixels
        )

    def search_image(
        self,
        image: imaging.DecodedImage,
        *,
        actor: str,
        kinds: Sequence[str] = KINDS,
        k: int | None = None,
        tolerance: float | None = None,
    ) -> list[FaceResult]:
        """``search_photo`` for a photo already decoded (by ``decoded_photo``)."""
        self._require_ready()
        k = self.settings.top_k if k is None else k
        tolerance = self.settings.tolerance if tolerance is None else tolerance
        if not 1 <= k <= 200:
            raise InvalidField(f"k must be between 1 and 200, not {k}.")
        if not 0 < tolerance <= 2:
            raise InvalidField(f"tolerance must be in (0, 2], not {tolerance}.")
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown or not kinds:
            raise InvalidField(f"kinds must be among {list(KINDS)}, not {list(kinds)}.")
        faces = self._finder(image.pixels, self.pipeline)
        if not faces:
            with self.store.transaction() as session:
                self._audit(
                    session,
                    actor,
                    "search",
                    None,
                    kinds=list(kinds),
                    photo_sha256=image.sha256,
                    results=[],
                )
            raise NoFaceFound("No face was found in this photo. Try a clearer, front-facing photo.")
        results = []
        with self.store.transaction() as session:
            for face in faces:
                matches = sorted(
                    (
                        m
                        for kind in kinds
                        for m in self._nearest(session, face.embedding, kind, k, tolerance)
                    ),
                    key=lambda m: (m.distance, m.case_id),
                )[:k]
                cases = _cases_by_id(session, [m.case_id for m in matches])
                ranked = [
                    RankedCase(cases[m.case_id], m, self.similarity(m.distance))
                    for m in matches
                    if m.case_id in cases
                ]
                results.append(FaceResult(face, ranked))  # a case deleted meanwhile is left out
            self._audit(
                session,
                actor,
                "search",
                None,
                kinds=list(kinds),
                photo_sha256=image.sha256,
                results=[[r.case.id for r in fr.ranked] for fr in results],
            )
        self.stats["searches"] += 1
        return results

    # ------------------------------------------------------------------------------ index

    def load_index(self) -> IndexReport:
        """Make the index agree with the store: load it, catch it up, or rebuild it.

        The saved index is used when its manifest matches this model; faces added to or deleted
        from the store since it was saved are then added or removed. A missing, corrupt or
        foreign index is rebuilt from the store. The log says which happened and why.
        """
        with self._write_lock, self._index_dir_lock.held():
            try:
                index, manifest = FaceIndex.load(
                    self.settings.index_dir, model=MODEL_NAME, dim=EMBEDDING_DIM
                )
            except IndexUnusable as exc:
                first_start = not (self.settings.index_dir / MANIFEST_NAME).exists()
                with self.store.transaction() as session:
                    stored = session.scalar(select(func.count(FaceRow.id))) or 0
                # A new installation (no index, no faces) is normal; anything else is news.
                level = logging.INFO if first_start and not stored else logging.WARNING
                log.log(level, "index: rebuilding from the store: %s", exc)
                return self._rebuild(f"{exc}")
            added, removed = self._adopt(index)
            self._unsaved_changes += added + removed
            self._unsaved_changes += self._fit_index_type(index, only_if_crossed=True)
            if added or removed:
                reason = f"{added} faces added and {removed} removed since the last save"
                log.warning("index: loaded and caught up with the store: %s", reason)
                self.save_index()
                return IndexReport("caught_up", reason, self._counts())
            log.info("index: loaded %d faces saved at %s", manifest.count, manifest.saved_at)
            return IndexReport("loaded", "manifest matches the store", self._counts())

    def rebuild_index(self, index_type: IndexType = "auto") -> IndexReport:
        """Build a fresh index from every face in the store, swap it in and save it as a new
        build. Running servers sharing the index directory adopt it within
        ``index_sync_interval_s``, and keep answering from their old one meanwhile.

        ``index_type``: ``auto`` chooses by size (``approximate_min_faces``); ``flat`` and
        ``hnsw`` force one (an HNSW graph that cannot reach the target recall stays flat).
        Cost: seconds per 100,000 faces for a flat index, about 4 minutes per million for HNSW.
        """
        with self._write_lock:
            return self._rebuild("requested", index_type)

    def save_index(self) -> None:
        """Write the index files and manifest atomically (no-op if nothing changed).

        Never over a newer build on disk (made by another process): that one is adopted by the
        next ``sync_index`` instead.
        """
        directory = self.settings.index_dir
        with self._write_lock, self._index_dir_lock.held():
            try:
                on_disk = read_manifest(directory)
            except IndexUnusable:
                on_disk = None
            if on_disk is not None and self.index.is_older_than(on_disk):
                log.info("index: not saved: a newer build is on disk (%s)", on_disk.build_id)
                return
            if self._unsaved_changes or on_disk is None or on_disk.build_id != self.index.build_id:
                self.index.save(directory)
                self._unsaved_changes = 0

    def sync_index(self) -> tuple[int, int]:
        """Bring this process's index in step with the store and the index directory; returns
        (faces added, faces removed).

        First adopts a newer build that another process saved (``reunite reindex``), caught up
        with the store; then applies the faces other processes (API workers, other servers)
        added or deleted since the last sync. Servers call it every ``index_sync_interval_s``;
        enrollment does the same step under the faces lock before matching.

        Cost: a ``stat`` of the manifest and two indexed queries when nothing changed; loading
        the new build (seconds per million faces) when there is one.
        """
        self._require_ready()
        self._adopt_newer_build()
        with self._write_lock, self.store.transaction() as session:
            return self._pull_changes(session)

    def _adopt_newer_build(self) -> bool:
        directory = self.settings.index_dir
        try:
            stat = (directory / MANIFEST_NAME).stat()
        except FileNotFoundError:
            return False
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp == self._manifest_stamp:
            return False
        with self._index_dir_lock.held():
            try:
                if not self.index.is_older_than(read_manifest(directory)):
                    self._manifest_stamp = stamp
                    return False
                index, manifest = FaceIndex.load(directory, model=MODEL_NAME, dim=EMBEDDING_DIM)
            except IndexUnusable as exc:
                log.warning("index: a newer build on disk is unusable, keeping ours: %s", exc)
                self._manifest_stamp = stamp
                return False
        with self._write_lock:
            added, removed = self._adopt(index)
            self._manifest_stamp = stamp
        log.info(
            "index: adopted build %s (%d faces, saved at %s); caught up: %d added, %d removed",
            manifest.build_id,
            index.count(),
            manifest.saved_at,
            added,
            removed,
        )
        return True

    def _adopt(self, index: FaceIndex) -> tuple[int, int]:
        """Catch a loaded ``index`` up with the store and make it the one searched, with the
        marks ``_pull_changes`` continues from; returns (faces added, faces removed)."""
        with self.store.transaction() as session:
            marks = self._marks(session)  # before the catch-up: see ``_pull_changes``
        added, removed = self._catch_up(index)
        self._swap_in(index)
        self._face_mark, self._removal_mark = marks
        return added, removed

    def _swap_in(self, index: FaceIndex) -> None:
        """Make ``index`` the one searched, on the GPU where FAISS can (``FaceIndex.use_gpu``)."""
        on_gpu = index.use_gpu(self.devices.faiss_gpus > 0)
        if on_gpu:
            log.info("index: exact kinds searched on the GPU")
        self.index = index

    def _marks(self, session: Session) -> tuple[int, int]:
        """The store's highest face id and ``removed_faces`` id, now."""
        return (
            session.scalar(select(func.max(FaceRow.id))) or 0,
            session.scalar(select(func.max(RemovedFace.id))) or 0,
        )

    def _pull_changes(self, session: Session) -> tuple[int, int]:
        """Add the faces committed since ``_face_mark`` and remove those deleted since
        ``_removal_mark``; returns (added, removed).

        Faces are committed in id order (``Store.lock_faces``), so nothing committed can hide
        below a mark. A face may arrive twice (a catch-up ran after the mark was read), so those
        already held are skipped.
        """
        added = removed = 0
        rows = session.execute(
            select(FaceRow.id, FaceRow.kind, FaceRow.model, FaceRow.embedding)
            .where(FaceRow.id > self._face_mark)
            .order_by(FaceRow.id)
        ).all()
        for kind in KINDS:
            ours = [r for r in rows if r.kind == kind and r.model == MODEL_NAME]
            if not ours:
                continue
            ids = np.array([r.id for r in ours], dtype=np.int64)
            new = ~np.isin(ids, self.index.face_ids(kind))
            if new.any():
                self.index.add(kind, ids[new], _matrix(r.embedding for r in ours)[new])
                added += int(new.sum())
        if rows:
            self._face_mark = max(self._face_mark, rows[-1].id)
        gone = session.execute(
            select(RemovedFace.id, RemovedFace.face_id)
            .where(RemovedFace.id > self._removal_mark)
            .order_by(RemovedFace.id)
        ).all()
        if gone:
            removed = self.index.remove(r.face_id for r in gone)
            self._removal_mark = gone[-1].id
        if added or removed:
            self._unsaved_changes += added + removed
            log.info("index: %d faces added and %d removed by other processes", added, removed)
        return added, removed

    def _rebuild(self, reason: str, index_type: IndexType = "auto") -> IndexReport:
        index = FaceIndex(MODEL_NAME, EMBEDDING_DIM)
        with self.store.transaction() as session:
            marks = self._marks(session)  # before reading the faces: see ``_pull_changes``
            for kind in KINDS:
                rows = session.execute(
                    select(FaceRow.id, FaceRow.embedding)
                    .where(FaceRow.kind == kind, FaceRow.model == MODEL_NAME)
                    .order_by(FaceRow.id)
                    .execution_options(yield_per=10_000)
                )
                for chunk in rows.partitions():
                    index.add(kind, [r.id for r in chunk], _matrix(r.embedding for r in chunk))
        self._fit_index_type(index, only_if_crossed=False, index_type=index_type)
        self._swap_in(index)  # whole, before anyone searches it
        self._face_mark, self._removal_mark = marks
        self._unsaved_changes = 1
        self.save_index()
        log.info("index: rebuilt with %d faces (%s)", index.count(), reason)
        return IndexReport("rebuilt", reason, self._counts())

    def _fit_index_type(
        self, index: FaceIndex, *, only_if_crossed: bool, index_type: IndexType = "auto"
    ) -> int:
        """Exact or approximate per kind, by size (``approximate_min_faces``) or as forced by
        ``index_type``; returns how many kinds changed. With ``only_if_crossed`` a kind is left
        alone unless its size crossed the threshold since it was built, or it outgrew its
        graphs (``graph_parts`` now asks for more of them): a reload keeps its trained index."""
        changed = 0
        threshold = {
            "auto": self.settings.approximate_min_faces,
            "flat": sys.maxsize,
            "hnsw": 0,
        }[index_type]
        for kind in KINDS:
            approximate = index.params[kind]["type"] != "flat"
            outgrown = approximate and graph_parts(index.count(kind)) > len(index.part_sizes(kind))
            if only_if_crossed and approximate == (index.count(kind) >= threshold) and not outgrown:
                continue
            params = index.optimize(
                kind, min_faces=threshold, target_recall=self.settings.approximate_target_recall
            )
            changed += 1
            log.info("index: %s faces: %s", kind, params)
        return changed

    def _catch_up(self, index: FaceIndex) -> tuple[int, int]:
        """Add faces the store has and the index lacks; remove the reverse. Returns the counts."""
        added = removed = 0
        with self.store.transaction() as session:
            for kind in KINDS:
                stored = set(
                    session.scalars(
                        select(FaceRow.id).where(FaceRow.kind == kind, FaceRow.model == MODEL_NAME)
                    )
                )
                held = set(index.face_ids(kind).tolist())
                removed += index.remove(held - stored, kind)
                missing = sorted(stored - held)
                for start in range(0, len(missing), 10_000):
                    ids = missing[start : start + 10_000]
                    rows = session.execute(
                        select(FaceRow.id, FaceRow.embedding)
                        .where(FaceRow.id.in_(ids))
                        .order_by(FaceRow.id)
                    ).all()
                    index.add(kind, [r.id for r in rows], _matrix(r.embedding for r in rows))
                    added += len(rows)
        return added, removed

    def _counts(self) -> dict[str, int]:
        return {kind: self.index.count(kind) for kind in KINDS}

    def _count_changes(self, n: int) -> None:
        """Count index changes and save the index every ``index_save_every`` of them.

        A failed save does not fail the write that triggered it: the store already holds the
        change, and the next start catches the index up from the store.
        """
        self._unsaved_changes += n
        if self._unsaved_changes >= self.settings.index_save_every:
            self._try_save_index()

    def _try_save_index(self) -> None:
        """``save_index``, logging an ``OSError`` instead of raising it: the store already holds
        the changes, a later save retries, and the next start catches the index up."""
        try:
            self.save_index()
        except OSError:
            log.exception("index: saving failed; will retry, and catch up at next start")

    # ---------------------------------------------------------------------------- helpers

    def _case(self, session: Session, case_id: int) -> Case:
        case = session.get(Case, case_id)
        if case is None:
            raise NotFound(f"There is no case {case_id}.")
        return case

    def _check_external_ref_free(
        self, session: Session, agency: str | None, external_ref: str | None, case_id: int | None
    ) -> None:
        if not external_ref:
            return
        other = session.scalar(
            select(Case.id).where(Case.agency == agency, Case.external_ref == external_ref)
        )
        if other is not None and other != case_id:
            raise Conflict(
                f"Agency {agency} already has a case with external_ref {external_ref!r} "
                f"(case {other}).",
                case_id=other,
            )

    def _nearest(
        self, session: Session, embedding: np.ndarray, kind: str, k: int, tolerance: float
    ) -> list[CaseMatch]:
        """The ``k`` nearest open or matched cases of ``kind`` within ``tolerance``.

        With ``case_scoring = "mean"`` (the default) a case scores by the distance to its
        template, the mean of its faces' embeddings: on LFW that finds a person enrolled with
        three photos at rank 1 in 97.7% of searches, against 94.6% by the closest face
        (models/eval/identification.json). The nearest faces, searched a little wider than
        ``tolerance``, choose which cases to score. ``face_id`` stays the case's closest face.
        """
        if self.settings.case_scoring == "closest":
            return self._nearest_by_face(session, embedding, kind, k, tolerance)
        shortlist = self._nearest_by_face(
            session, embedding, kind, 3 * k, tolerance + TEMPLATE_SEARCH_MARGIN
        )
        if not shortlist:
            return []
        rows = session.execute(
            select(FaceRow.case_id, FaceRow.embedding).where(
                FaceRow.case_id.in_([m.case_id for m in shortlist]), FaceRow.model == MODEL_NAME
            )
        ).all()
        templates: dict[int, list[np.ndarray]] = {}
        for row in rows:
            templates.setdefault(row.case_id, []).append(embedding_vector(row.embedding))
        probe = np.asarray(embedding, dtype=np.float64)
        scored = []
        for match in shortlist:
            vectors = templates.get(match.case_id)
            if not vectors:  # deleted meanwhile
                continue
            distance = float(np.linalg.norm(np.mean(vectors, axis=0) - probe))
            if distance <= tolerance:
                scored.append(CaseMatch(match.case_id, match.face_id, distance))
        return sorted(scored, key=lambda m: (m.distance, m.case_id))[:k]

    def _nearest_by_face(
        self, session: Session, embedding: np.ndarray, kind: str, k: int, tolerance: float
    ) -> list[CaseMatch]:
        """The ``k`` cases of ``kind`` whose closest face is nearest, within ``tolerance``."""

        def case_of_faces(face_ids: list[int]) -> dict[int, int]:
            if not face_ids:
                return {}
            rows = session.execute(
                select(FaceRow.id, FaceRow.case_id)
                .join(Case, Case.id == FaceRow.case_id)
                .where(FaceRow.id.in_(face_ids), Case.status != "closed")
            )
            return {r.id: r.case_id for r in rows}

        return nearest_cases(
            lambda n: self.index.search(kind, embedding, n), case_of_faces, k=k, tolerance=tolerance
        )

    def _record_candidates(
        self, session: Session, case: Case, face: FaceRow, embedding: np.ndarray
    ) -> list[Candidate]:
        """Store a pending candidate for each near case of the other kind; returns the new ones.

        An existing pending or confirmed candidate for the same pair keeps its status; its
        distance and faces are updated when the new face is closer. A rejected one is proposed
        again (back to pending) only by a photo added after the rejection.

        Cross-age pairs (the person at least ``photo_age_gap_years`` older in one photo than in
        the other, from photo dates and birth years) are kept up to ``cross_age_tolerance``: the
        model's distances grow across age gaps, and dropping such a pair at the same-age
        tolerance would hide a child missing for years.
        """
        settings = self.settings
        wider = max(settings.tolerance, settings.cross_age_tolerance)
        probe_age = _age_in_photo(case, _photo_date(session, face.photo_id))
        matches = [
            m
            for m in self._nearest(session, embedding, other_kind(case.kind), settings.top_k, wider)
            if m.distance <= settings.tolerance
            or _years_apart(probe_age, self._age_of_face(session, m.face_id))
            >= settings.photo_age_gap_years
        ]
        created: list[Candidate] = []
        reproposed: list[Candidate] = []
        for match in matches:
            found_side = case.kind == "found"
            pair = {
                "found_case_id": case.id if found_side else match.case_id,
                "missing_case_id": match.case_id if found_side else case.id,
            }
            faces = {
                "found_face_id": face.id if found_side else match.face_id,
                "missing_face_id": match.face_id if found_side else face.id,
            }
            existing = session.scalar(select(Candidate).filter_by(**pair))
            if existing is None:
                candidate = Candidate(**pair, **faces, distance=match.distance, status="pending")
                session.add(candidate)
                created.append(candidate)
            elif not _is_new_evidence(session, existing.id, **faces):
                continue  # both faces were there when a person rejected this pair
            elif existing.status == "rejected":
                reproposed.append(existing)
                existing.distance = match.distance
                existing.found_face_id = faces["found_face_id"]
                existing.missing_face_id = faces["missing_face_id"]
                self._record_decision(
                    session,
                    existing,
                    "pending",
                    actor="system",
                    note="proposed again: a photo added after the rejection matched",
                )
                created.append(existing)
            elif match.distance < existing.distance:
                existing.distance = match.distance
                existing.found_face_id = faces["found_face_id"]
                existing.missing_face_id = faces["missing_face_id"]
        session.flush()
        for candidate in created:
            self._audit(
                session,
                "system",
                "candidate.propose",
                candidate.found_case_id,
                candidate_id=candidate.id,
                missing_case_id=candidate.missing_case_id,
                face_id=face.id,
            )
            webhooks.enqueue_candidate_event(
                session,
                "candidate.decided" if candidate in reproposed else "candidate.created",
                candidate,
                session.get_one(Case, candidate.found_case_id),
                session.get_one(Case, candidate.missing_case_id),
                similarity=self.similarity(candidate.distance),
            )
        return created

    def _age_of_face(self, session: Session, face_id: int) -> tuple[int, int] | None:
        row = session.execute(
            select(Case, Photo.taken_on)
            .join(FaceRow, FaceRow.case_id == Case.id)
            .join(Photo, Photo.id == FaceRow.photo_id)
            .where(FaceRow.id == face_id)
        ).first()
        return None if row is None else _age_in_photo(row[0], row[1])

    def _candidate(self, session: Session, candidate_id: int) -> Candidate:
        candidate = session.get(Candidate, candidate_id)
        if candidate is None:
            raise NotFound(f"There is no candidate {candidate_id}.")
        return candidate

    def _record_decision(
        self, session: Session, candidate: Candidate, status: str, *, actor: str, note: str | None
    ) -> None:
        session.add(
            CandidateDecision(
                candidate_id=candidate.id,
                from_status=candidate.status,
                to_status=status,
                actor=actor,
                note=note,
                found_face_id=candidate.found_face_id,
                missing_face_id=candidate.missing_face_id,
            )
        )
        # A conditional update: of two people deciding at once (in any process), one wins and
        # the other gets a Conflict, even without this process's lock.
        changed = session.execute(
            update(Candidate)
            .where(Candidate.id == candidate.id, Candidate.status == candidate.status)
            .values(status=status, updated_at=utc_now())
            .execution_options(synchronize_session=False)
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict("Someone else decided on this candidate at the same moment; reload.")
        self._audit(
            session,
            actor,
            "candidate.decision",
            candidate.found_case_id,
            candidate_id=candidate.id,
            missing_case_id=candidate.missing_case_id,
            old=candidate.status,
            new=status,
        )
        candidate.status = status

    def _views(self, session: Session, candidates: list[Candidate]) -> list[CandidateView]:
        """Candidates with both cases, consistency flags and decisions (oldest first)."""
        if not candidates:
            return []
        ids = [c.id for c in candidates]
        cases = _cases_by_id(
            session, [i for c in candidates for i in (c.found_case_id, c.missing_case_id)]
        )
        decisions = list(
            session.scalars(
                select(CandidateDecision)
                .where(CandidateDecision.candidate_id.in_(ids))
                .order_by(CandidateDecision.id)
            )
        )
        photo_dates = {
            face_id: taken_on
            for face_id, taken_on in session.execute(
                select(FaceRow.id, Photo.taken_on)
                .join(Photo, Photo.id == FaceRow.photo_id)
                .where(
                    FaceRow.id.in_(
                        [c.found_face_id for c in candidates]
                        + [c.missing_face_id for c in candidates]
                    )
                )
            )
        }
        return [
            CandidateView(
                candidate=c,
                found=cases[c.found_case_id],
                missing=cases[c.missing_case_id],
                flags=review.consistency_flags(
                    cases[c.found_case_id],
                    cases[c.missing_case_id],
                    found_photo_taken_on=photo_dates.get(c.found_face_id),
                    age_margin_years=self.settings.age_margin_years,
                    found_before_missing_days=self.settings.found_before_missing_days,
                    missing_photo_taken_on=photo_dates.get(c.missing_face_id),
                    photo_age_gap_years=self.settings.photo_age_gap_years,
                ),
                decisions=[d for d in decisions if d.candidate_id == c.id],
                similarity=self.similarity(c.distance),
            )
            for c in candidates
        ]

    def _audit(
        self, session: Session, actor: str, action: str, case_id: int | None, **details: Any
    ) -> None:
        session.add(AuditEvent(actor=actor, action=action, case_id=case_id, details=details))

    def photo_path_of(self, sha256: str, fmt: str) -> Path:
        """Where the photo with these bytes (SHA-256, hex) and format is kept."""
        return self.settings.photos_dir / photo_file_name(sha256, fmt)

    def _forget_photo_file(self, sha256: str, fmt: str) -> None:
        """Delete a photo's file unless another photo row still uses the same bytes."""
        with self.store.transaction() as session:
            still_used = session.scalar(select(Photo.id).where(Photo.sha256 == sha256))
        if still_used is None:
            self.photo_path_of(sha256, fmt).unlink(missing_ok=True)


_CASE_FIELD_NAMES = tuple(CaseFields.model_fields)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidField(f"REUNITE_DISPLAY_TIMEZONE {name!r} is not a known time zone.") from exc


def _photo_date(session: Session, photo_id: int) -> date | None:
    return session.scalar(select(Photo.taken_on).where(Photo.id == photo_id))


def _biometrics(session: Session, case_id: int) -> tuple[list[Photo], list[FaceRow]]:
    """A case's photos and faces that the retention purge has not erased."""
    photos = session.scalars(select(Photo).where(Photo.case_id == case_id, privacy.live_photo()))
    faces = session.scalars(
        select(FaceRow).where(FaceRow.case_id == case_id, FaceRow.model != privacy.ERASED)
    )
    return list(photos), list(faces)


def _age_in_photo(case: Case, taken_on: date | None) -> tuple[int, int] | None:
    """The (youngest, oldest) age the case's person can have in a photo taken on ``taken_on``
    (from the birth date or years; a found case's undated photo counts as taken the day the
    person was found, as the consistency flags do); None when unknown."""
    if taken_on is None and case.kind == "found":
        taken_on = case.date_found
    years = review.birth_years(case)
    if taken_on is None or years is None:
        return None
    return taken_on.year - years[1], taken_on.year - years[0]


def _years_apart(a: tuple[int, int] | None, b: tuple[int, int] | None) -> int:
    """The least age difference between two (youngest, oldest) ranges; 0 when unknown."""
    if a is None or b is None:
        return 0
    return max(a[0] - b[1], b[0] - a[1], 0)


def _check_taken_on(taken_on: date | None) -> None:
    if taken_on is not None and not EARLIEST_DATE <= taken_on <= date.today():
        raise InvalidField(
            f"taken_on must be between {EARLIEST_DATE.isoformat()} and today, "
            f"not {taken_on.isoformat()}."
        )


def _box_of(face: FaceRow) -> tuple[int, int, int, int]:
    return (face.top, face.right, face.bottom, face.left)


def face_columns(face: Face, pipeline: Pipeline) -> dict[str, Any]:
    """What a ``faces`` row stores of a detected face made by ``pipeline``: its box, embedding,
    model, pipeline version and quality figures."""
    return {
        "top": face.box.top,
        "right": face.box.right,
        "bottom": face.box.bottom,
        "left": face.box.left,
        "embedding": embedding_bytes(face.embedding),
        "model": MODEL_NAME,
        "pipeline": pipeline.version,
        "face_width_px": face.face_width_px,
        "sharpness": face.sharpness,
    }


def chosen_face(faces: list[Face], face_index: int | None) -> Face:
    """The one face to enroll from a case photo (see ``Reunite.enroll_photo``)."""
    if not faces:
        raise NoFaceFound(
            "No face was found in this photo. Use a clear photo where the face is at least "
            "about 80 pixels wide and not turned far from the camera."
        )
    boxes = [dict(index=i, **f.box._asdict()) for i, f in enumerate(faces)]
    if face_index is not None:
        if not 0 <= face_index < len(faces):
            raise InvalidField(
                f"face_index {face_index} is out of range: this photo has {len(faces)} faces.",
                boxes=boxes,
            )
        return faces[face_index]
    if len(faces) > 1:
        raise MultipleFaces(
            f"This photo shows {len(faces)} faces. Send it again with face_index set to the "
            "face to use (0 is the leftmost), or crop the photo to one person.",
            boxes=boxes,
        )
    return faces[0]


def _is_new_evidence(
    session: Session, candidate_id: int, *, found_face_id: int, missing_face_id: int
) -> bool:
    """Whether a pair of faces may be shown for a candidate: true unless a person rejected the
    candidate after both faces were enrolled (a rejection covers every face it saw; only a
    photo added later can bring the pair back)."""
    rejected_at = session.scalar(
        select(func.max(CandidateDecision.at)).where(
            CandidateDecision.candidate_id == candidate_id,
            CandidateDecision.to_status == "rejected",
        )
    )
    if rejected_at is None:
        return True
    newest_face = session.scalar(
        select(func.max(FaceRow.created_at)).where(FaceRow.id.in_([found_face_id, missing_face_id]))
    )
    return newest_face is not None and newest_face > rejected_at


def _has_other_confirmed(session: Session, candidate: Candidate, case: Case) -> bool:
    """Whether ``case`` has a confirmed candidate other than ``candidate``."""
    column = Candidate.found_case_id if case.kind == "found" else Candidate.missing_case_id
    other = session.scalar(
        select(Candidate.id).where(
            column == case.id, Candidate.status == "confirmed", Candidate.id != candidate.id
        )
    )
    return other is not None


def _cases_by_id(session: Session, case_ids: Iterable[int]) -> dict[int, Case]:
    ids = list(set(case_ids))
    if not ids:
        return {}
    return {c.id: c for c in session.scalars(select(Case).where(Case.id.in_(ids)))}


def _matrix(embeddings: Iterable[bytes]) -> np.ndarray:
    rows = [embedding_vector(e) for e in embeddings]
    return np.vstack(rows) if rows else np.empty((0, EMBEDDING_DIM), dtype=np.float32)
