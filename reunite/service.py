"""``Reunite``: the library's front door over one store, photo folder and face index.

The HTTP API, the web pages and the command line call this facade; it holds no rules of its
own, only the parts it composes, one module per concern::

    with Reunite.open(Settings()) as service:
        case = service.create_case({"kind": "missing", "name": "..."}, actor="cli")
        enrollment = service.enroll_photo(case.id, photo_bytes, actor="cli")
        enrollment.new_candidates      # found cases whose faces are within tolerance

- ``cases``: case records; ``enrollment``: adding photos; ``photos``: reads and crops;
  ``candidates``: proposals and decisions; ``search``; ``matching``: case scoring;
  ``live_index``: the in-memory index and its sync; ``erasure``: deletion and retention;
  ``audit``. Keys, users and webhooks are functions of ``accounts`` and ``webhooks``.

Writes that change matching (enrolling, deleting) are serialised by one lock so that two
enrollments of opposite kinds always see each other. Face detection runs outside the lock.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from types import TracebackType
from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reunite import audit, imaging, privacy
from reunite.admission import Admission
from reunite.calibration import (
    SimilarityBasis,
    calibration_fingerprint,
    linear_similarity,
    loaded_calibration,
    warn_of_a_calibration_left_behind,
)
from reunite.candidate_view import CandidateView
from reunite.candidates import Candidates
from reunite.cases import Cases, PutOutcome
from reunite.config import SHIPPED_CALIBRATION_PATH, Settings
from reunite.device import Devices, chosen_devices
from reunite.enrollment import Enrollment, Enrollments, PreparedPhoto
from reunite.erasure import Erasure
from reunite.errors import InvalidField, StoreUnavailable
from reunite.faces import MODEL_NAME, FaceFinder, Pipeline, faces_in_image
from reunite.index import KINDS, FaceIndex
from reunite.live_index import IndexReport, IndexType, LiveIndex
from reunite.matching import rules_version
from reunite.paging import Listing
from reunite.photo_files import photo_files_of
from reunite.photos import Photos
from reunite.search import FaceResult, RankedCase, Search
from reunite.store import AuditEventRow, CandidateDecisionRow, CaseRow, FaceRow, PhotoRow, Store
from reunite.undo import Undos

log = logging.getLogger(__name__)

__all__ = [
    "CandidateView",
    "Enrollment",
    "FaceResult",
    "IndexReport",
    "Listing",
    "PreparedPhoto",
    "RankedCase",
    "Reunite",
    "Stats",
]


class Stats:
    """Counts since start (``enrollments``, ``searches``, ``candidates``), safe to add to from
    several threads; read one with ``stats[name]`` (0 when never counted)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, **counts: int) -> None:
        """Add to some counts at once."""
        with self._lock:
            self._counts.update(counts)

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._counts[name]


def pipeline_of(settings: Settings, devices: Devices) -> Pipeline:
    """How faces are found and embedded under ``settings``: dlib's CNN detector by default
    when dlib can use CUDA, else HOG."""
    return Pipeline(
        detector=settings.detector or ("cnn" if devices.dlib_cuda else "hog"),
        upsample_times=settings.upsample_times,
        num_jitters=settings.num_jitters,
        min_face_px=settings.min_face_px,
    )


def admission_of(settings: Settings) -> Admission:
    """The gate of photos in flight (``REUNITE_MAX_PHOTOS_IN_FLIGHT``, by default 8 per CPU
    and at least 16; ``REUNITE_MAX_PIXELS_IN_FLIGHT``)."""
    return Admission(
        max_photos=settings.max_photos_in_flight or max(16, 8 * (os.cpu_count() or 2)),
        max_pixels=settings.max_pixels_in_flight,
        small_pixels=settings.small_photo_pixels,
    )


class Reunite:
    """Cases, photos, faces, candidates and search over one store, photo folder and index."""

    def __init__(
        self, settings: Settings, *, store: Store, finder: FaceFinder = faces_in_image
    ) -> None:
        self.settings = settings
        self.store = store
        self.devices = chosen_devices(settings.device)
        self.pipeline = pipeline_of(settings, self.devices)
        warn_of_a_calibration_left_behind(
            settings.calibration_path, shipped=SHIPPED_CALIBRATION_PATH
        )
        self.calibration = loaded_calibration(
            settings.calibration_path, model=MODEL_NAME, pipeline=self.pipeline.version
        )
        self.display_zone = _zone(settings.timezone)
        self.on_outbox: Callable[[], None] = lambda: None
        """Called after a change that may have written webhook events (a worker's ``wake``)."""
        self.stats = Stats()
        """Counts since start: ``enrollments``, ``searches``, ``candidates`` (for metrics)."""
        self.admission = admission_of(settings)
        """Photos decoded and searched at once (``reunite.admission``): every photo a caller
        sends passes through it; batch imports (their own processes) do not."""
        lock = threading.RLock()
        self.live = LiveIndex(settings, store, write_lock=lock, devices=self.devices)
        self.photo_files = photo_files_of(settings)
        """Where photo files are kept: the local folder or an S3 bucket."""
        self.photo_store = Photos(settings, store, self.photo_files)
        self.live.on_removed = self.photo_store.forget_crops
        self.rules_version = rules_version(
            settings, calibration_fingerprint(settings.calibration_path)
        )
        """Today's matching rules (``matching.rules_version``): what ``reunite rematch`` checks."""
        self.candidate_records = Candidates(
            settings,
            store,
            live=self.live,
            similarity=self.similarity,
            similarity_basis=self.similarity_basis,
            write_lock=lock,
            rules_version=self.rules_version,
        )
        self.undos = Undos(settings, store, candidates=self.candidate_records, write_lock=lock)
        self.case_records = Cases(
            store, write_lock=lock, live=self.live, candidates=self.candidate_records
        )
        self.enrollments = Enrollments(
            settings,
            store,
            live=self.live,
            candidates=self.candidate_records,
            write_lock=lock,
            finder=finder,
            pipeline=self.pipeline,
            files=self.photo_files,
        )
        self.searcher = Search(
            settings,
            store,
            live=self.live,
            candidates=self.candidate_records,
            finder=finder,
            pipeline=self.pipeline,
            similarity=self.similarity,
            similarity_basis=self.similarity_basis,
        )
        self.erasure = Erasure(
            settings,
            store,
            live=self.live,
            photos=self.photo_store,
            candidates=self.candidate_records,
            write_lock=lock,
        )

    @classmethod
    def open(
        cls, settings: Settings, *, finder: FaceFinder = faces_in_image, load_index: bool = True
    ) -> Reunite:
        """Connect to the store, then load the index (or catch it up, or rebuild it).

        With ``load_index=False`` the caller loads it later with ``make_ready`` (a server does
        so in the background, answering "not ready" meanwhile).
        """
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not settings.photo_store:
            settings.photos_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        service = cls(settings, store=Store(settings.resolved_database_url), finder=finder)
        if load_index:
            service.make_ready()
        return service

    def similarity(self, distance: float, score: float | None = None) -> float:
        """What a candidate's distance and normalised score mean, in [0, 1]: the calibrated
        chance that it is the person searched for (``Calibration.similarity``) when a
        calibration is loaded, else the linear ``1 - distance / 1.2``."""
        if self.calibration is None:
            return linear_similarity(distance)
        return self.calibration.similarity(distance, score)

    def similarity_basis(self, score: float | None = None) -> SimilarityBasis:
        """What ``similarity`` rests on for a candidate with normalised ``score``:
        ``search``, ``pair`` or ``linear`` (``calibration.SimilarityBasis``)."""
        if self.calibration is None:
            return "linear"
        return self.calibration.similarity_basis(score)

    def close(self) -> None:
        """Save the index (if it was loaded) and release the database connections."""
        self.live.save_at_shutdown()
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

    # ------------------------------------------------------------ the live index

    @property
    def index(self) -> FaceIndex:
        """The index this process searches (see ``reunite.live_index``)."""
        return self.live.index

    @property
    def index_report(self) -> IndexReport:
        """How the index was made ready."""
        return self.live.report

    @property
    def ready(self) -> bool:
        """Whether the index is loaded (matching, search and deletion need it)."""
        return self.live.ready

    def make_ready(self) -> IndexReport:
        """Load the index; matching and search work from then on (``LiveIndex.make_ready``).
        Then drops the cached crops of faces erased while this process was not running."""
        report = self.live.make_ready()
        try:
            if stale := self.photo_store.forget_stale_crops():
                log.info("crops: %d cached crops of erased faces deleted", stale)
        except StoreUnavailable:  # the index is ready; the next start tries again
            log.warning("crops: cached crops of erased faces not checked (database unreachable)")
        return report

    def load_index(self) -> IndexReport:
        """Make the index agree with the store (``LiveIndex.load``)."""
        return self.live.load()

    def rebuild_index(self, index_type: IndexType = "auto") -> IndexReport:
        """Build, swap in and save a fresh index (``LiveIndex.rebuild``)."""
        return self.live.rebuild(index_type)

    def save_index(self) -> None:
        """Save the index if it changed (``LiveIndex.save``)."""
        self.live.save()

    def sync_index(self) -> tuple[int, int]:
        """Catch up with other processes; (added, removed) (``LiveIndex.sync``)."""
        return self.live.sync()

    # --------------------------------------------------------------------- cases

    def create_case(self, data: Mapping[str, Any], *, actor: str) -> CaseRow:
        """See ``Cases.create``."""
        return self.case_records.create(data, actor=actor)

    def case(self, case_id: int) -> CaseRow:
        """The case with this id. Raises ``NotFound``."""
        return self.case_records.case(case_id)

    def case_by_external_ref(self, agency: str, external_ref: str) -> CaseRow:
        """See ``Cases.by_external_ref``."""
        return self.case_records.by_external_ref(agency, external_ref)

    def cases(self, **filters: Any) -> Listing[CaseRow]:
        """See ``Cases.listing`` (kind, status, agency, updated_since, after, limit)."""
        return self.case_records.listing(**filters)

    def put_case(
        self, agency: str, external_ref: str, data: Mapping[str, Any], *, actor: str
    ) -> tuple[CaseRow, PutOutcome]:
        """See ``Cases.put``."""
        return self.case_records.put(agency, external_ref, data, actor=actor)

    def update_case(self, case_id: int, changes: Mapping[str, Any], *, actor: str) -> CaseRow:
        """See ``Cases.update``."""
        return self.case_records.update(case_id, changes, actor=actor)

    def delete_case(self, case_id: int, *, actor: str, reason: str) -> None:
        """See ``Erasure.delete_case``."""
        self.erasure.delete_case(case_id, actor=actor, reason=reason)
        self.on_outbox()

    def purge_expired(
        self, *, actor: str, dry_run: bool = False, now: datetime | None = None
    ) -> privacy.PurgeReport:
        """See ``Erasure.purge_expired``."""
        return self.erasure.purge_expired(actor=actor, dry_run=dry_run, now=now)

    # -------------------------------------------------------------------- photos

    def enroll_photo(
        self,
        case_id: int,
        data: bytes,
        *,
        actor: str,
        taken_on: date | None = None,
        face_index: int | None = None,
    ) -> Enrollment:
        """See ``Enrollments.enroll_photo``; also raises ``Overloaded`` (``admission``)."""
        with self.admission.admitted(imaging.declared_pixels(data)):
            enrollment = self.enrollments.enroll_photo(
                case_id, data, actor=actor, taken_on=taken_on, face_index=face_index
            )
        return self._counted(enrollment)

    def prepared_photo(self, data: bytes, *, face_index: int | None = None) -> PreparedPhoto:
        """Decode a case photo and find its one face, storing nothing (the costly half of
        ``enroll_photo``). Raises ``Overloaded`` when too many photos are in flight."""
        with self.admission.admitted(imaging.declared_pixels(data)):
            return self.enrollments.prepared_photo(data, face_index=face_index)

    def enroll_prepared(
        self, case_id: int, prepared: PreparedPhoto, *, actor: str, taken_on: date | None = None
    ) -> Enrollment:
        """Store a prepared photo in a case and its candidates (the quick half)."""
        enrollment = self.enrollments.enroll_prepared(
            case_id, prepared, actor=actor, taken_on=taken_on
        )
        return self._counted(enrollment)

    def _counted(self, enrollment: Enrollment) -> Enrollment:
        if enrollment.created:
            self.on_outbox()
            self.stats.add(enrollments=1, candidates=len(enrollment.new_candidates))
        return enrollment

    def photos(self, case_id: int) -> list[tuple[PhotoRow, list[FaceRow]]]:
        """See ``Photos.of_case``."""
        return self.photo_store.of_case(case_id)

    def photos_of_cases(
        self, case_ids: Iterable[int]
    ) -> dict[int, list[tuple[PhotoRow, list[FaceRow]]]]:
        """See ``Photos.of_cases``."""
        return self.photo_store.of_cases(case_ids)

    def enrolled_sha256s(self, case_id: int) -> set[str]:
        """See ``Photos.enrolled_sha256s``."""
        return self.photo_store.enrolled_sha256s(case_id)

    def photo(self, photo_id: int) -> PhotoRow:
        """A photo's row. Raises ``NotFound``."""
        return self.photo_store.photo(photo_id)

    def face(self, face_id: int) -> FaceRow:
        """A face's row. Raises ``NotFound``."""
        return self.photo_store.face(face_id)

    def photo_file(self, photo_id: int, *, actor: str) -> tuple[PhotoRow, bytes]:
        """See ``Photos.photo_file``."""
        return self.photo_store.photo_file(photo_id, actor=actor)

    def face_crop(self, face_id: int, *, actor: str) -> bytes:
        """See ``Photos.face_crop``."""
        return self.photo_store.face_crop(face_id, actor=actor)

    def decoded_photo(self, data: bytes) -> imaging.DecodedImage:
        """Photo bytes decoded under this service's size limits. Raises ``Overloaded`` when
        too many photos are in flight."""
        with self.admission.admitted(imaging.declared_pixels(data)):
            return self.photo_store.decoded(data)

    # ---------------------------------------------------------------- candidates

    def candidates(self, case_id: int) -> list[CandidateView]:
        """See ``Candidates.of_case``."""
        return self.candidate_records.of_case(case_id)

    def candidate(self, candidate_id: int) -> CandidateView:
        """See ``Candidates.candidate``."""
        return self.candidate_records.candidate(candidate_id)

    def candidate_queue(self, **filters: Any) -> Listing[CandidateView]:
        """See ``Candidates.queue`` (status, order, agency, updated_since, after, limit)."""
        return self.candidate_records.queue(**filters)

    def decide(
        self, candidate_id: int, status: str, *, actor: str, role: str, note: str | None = None
    ) -> CandidateView:
        """See ``Candidates.decide``."""
        view = self.candidate_records.decide(
            candidate_id, status, actor=actor, role=role, note=note
        )
        self.on_outbox()
        return view

    def undo(self, candidate_id: int, decision_id: int, *, actor: str) -> CandidateView:
        """See ``Undos.undo``."""
        view = self.undos.undo(candidate_id, decision_id, actor=actor)
        self.on_outbox()
        return view

    def undoable_until(self, decision: CandidateDecisionRow) -> datetime | None:
        """See ``Undos.undoable_until``."""
        return self.undos.undoable_until(decision)

    def decided_pairs(self) -> tuple[list[float], list[bool]]:
        """See ``Candidates.decided_pairs``."""
        return self.candidate_records.decided_pairs()

    def audit_events(self, **filters: Any) -> list[AuditEventRow]:
        """See ``audit.audit_events``."""
        return audit.audit_events(self.store, **filters)

    # -------------------------------------------------------------------- search

    def search_photo(
        self,
        data: bytes,
        *,
        actor: str,
        kinds: Sequence[str] = KINDS,
        k: int | None = None,
        tolerance: float | None = None,
    ) -> list[FaceResult]:
        """Candidate cases for every face in a photo (see ``Search.search_image``); also
        raises the photo errors of ``imaging.decoded_image`` and ``Overloaded``. The photo
        holds its place in ``admission`` from decoding to the end of the search."""
        _, results = self.decoded_and_searched(
            data, actor=actor, kinds=kinds, k=k, tolerance=tolerance
        )
        return results

    def decoded_and_searched(
        self,
        data: bytes,
        *,
        actor: str,
        kinds: Sequence[str] = KINDS,
        k: int | None = None,
        tolerance: float | None = None,
    ) -> tuple[imaging.DecodedImage, list[FaceResult]]:
        """``search_photo``, with the decoded photo too (the search page shows it): one
        place in ``admission`` from decoding to the end of the search."""
        with self.admission.admitted(imaging.declared_pixels(data)):
            image = self.decoded_photo(data)
            results = self.search_image(image, actor=actor, kinds=kinds, k=k, tolerance=tolerance)
            return image, results

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
        with self.admission.admitted(image.width * image.height):
            results = self.searcher.search_image(
                image, actor=actor, kinds=kinds, k=k, tolerance=tolerance
            )
        self.stats.add(searches=1)
        return results


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidField(f"REUNITE_TIMEZONE {name!r} is not a known time zone.") from exc
