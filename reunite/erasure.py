"""Erasure: deleting a case, and the retention purge of closed cases' biometric data.

``reunite.privacy`` holds the rules (reasons, what the purge keeps, the SQL conditions); this
module carries them out across the store, the live index, the photo files and the crops. Faces
leave every server's index through ``removed_faces`` rows.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from reunite import audit, privacy, webhooks
from reunite.candidates import Candidates
from reunite.cases import case_row
from reunite.config import Settings
from reunite.errors import InvalidField, PhotoStoreUnavailable
from reunite.live_index import LiveIndex
from reunite.photos import Photos, crop_path
from reunite.store import (
    CandidateRow,
    CaseRow,
    FaceRow,
    PhotoRow,
    RemovedFaceRow,
    Store,
    photo_file_name,
    utc_now,
)

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Erasure:
    """Erases cases and expired biometric data of one store, data folder and live index."""

    settings: Settings
    store: Store
    _: KW_ONLY
    live: LiveIndex
    photos: Photos
    candidates: Candidates
    write_lock: threading.RLock

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
        self.live.require_ready()
        with self.write_lock:
            with self.store.transaction() as session:
                self.store.lock_faces(session)
                case = case_row(session, case_id)
                face_ids = list(
                    session.scalars(select(FaceRow.id).where(FaceRow.case_id == case_id))
                )
                _drop_faces(session, case.kind, face_ids)
                photos = list(session.scalars(select(PhotoRow).where(PhotoRow.case_id == case_id)))
                candidates = self._delete_candidates(session, case_id)
                session.execute(delete(FaceRow).where(FaceRow.case_id == case_id))
                session.execute(delete(PhotoRow).where(PhotoRow.case_id == case_id))
                session.delete(case)
                audit.record(
                    session,
                    actor,
                    "case.delete",
                    case_id,
                    reason=reason,
                    photos=len(photos),
                    faces=len(face_ids),
                    candidates=candidates,
                )
            self._erase_after_commit(face_ids, [(p.sha256, p.format) for p in photos])
            self.live.try_save()
        self._checkpoint()
        log.info("case %d erased (%s) with %d faces", case_id, reason, len(face_ids))

    def _delete_candidates(self, session: Session, case_id: int) -> int:
        """Delete a case's candidates (their decisions go with them), telling the agencies'
        webhooks; returns how many."""
        of_case = (CandidateRow.found_case_id == case_id) | (
            CandidateRow.missing_case_id == case_id
        )
        doomed = list(session.scalars(select(CandidateRow).where(of_case)))
        for view in self.candidates.views(session, doomed):
            webhooks.enqueue_candidate_event(session, "candidate.deleted", view)
        session.execute(delete(CandidateRow).where(of_case))
        return len(doomed)

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
            self.live.require_ready()
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
            self.live.try_save()
            self._checkpoint()
            log.info("retention: biometric data of %d closed cases erased", len(report.cases))
        return report

    def _biometrics_of(self, case_id: int, closed_at: datetime) -> privacy.PurgedCase:
        """What the purge would erase of a case: its live photos, faces and crop files."""
        with self.store.transaction() as session:
            photos, faces = _biometrics(session, case_id)
        crops = sum(crop_path(self.settings, f.id).exists() for f in faces)
        return privacy.PurgedCase(case_id, closed_at, len(photos), len(faces), crops)

    def _purge_case(
        self, case_id: int, closed_at: datetime, *, actor: str
    ) -> privacy.PurgedCase | None:
        """Erase one closed case's photos, crops and embeddings, keeping the rows that
        candidates need as tombstones; None if the case is no longer closed. The caller saves
        the index."""
        with self.write_lock:
            with self.store.transaction() as session:
                self.store.lock_faces(session)
                case = session.get(CaseRow, case_id)
                if case is None or case.status != "closed":
                    return None
                photos, faces = _biometrics(session, case_id)
                files = [(p.sha256, p.format) for p in photos]
                face_ids = [f.id for f in faces]
                _drop_faces(session, case.kind, face_ids)
                for face in faces:
                    face.embedding, face.model, face.pipeline = b"", privacy.ERASED, privacy.ERASED
                for photo in photos:
                    photo.sha256 = privacy.erased_photo_sha256(photo.id)
                audit.record(
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

    def _erase_after_commit(self, face_ids: list[int], photo_files: list[tuple[str, str]]) -> int:
        """The rest of an erasure, once its transaction committed: take the faces out of this
        process's index (the caller saves it), delete their crops, and delete each photo file,
        given as (sha256, format), unless a photo row still uses it. Returns the number of
        crops deleted. Call it under the write lock."""
        self.live.remove(face_ids)
        crops = 0
        for face_id in face_ids:
            crop = crop_path(self.settings, face_id)
            crops += crop.exists()
            crop.unlink(missing_ok=True)
        for sha256, fmt in photo_files:
            try:
                self.photos.forget_file(sha256, fmt)
            except PhotoStoreUnavailable:
                # The rows are gone already: the erasure stands; the file is left behind.
                log.error(
                    "erasure: photo file %s left in %s (the photo store is down); delete it "
                    "by hand",
                    photo_file_name(sha256, fmt),
                    self.photos.files.describe(),
                )
        return crops

    def _checkpoint(self) -> None:
        with self.store.transaction() as session:
            outcome = privacy.sqlite_checkpoint(session)
        if outcome is not None and outcome[0]:
            log.info("store: write-ahead log busy; a later checkpoint empties it")


def _drop_faces(session: Session, kind: str, face_ids: list[int]) -> None:
    """Record that these faces (of one kind) leave the store, so that every server's index
    drops them; the caller deletes or tombstones their rows. The transaction must hold
    ``Store.lock_faces`` from its start (before the faces were read)."""
    session.add_all(RemovedFaceRow(face_id=i, kind=kind) for i in face_ids)


def _biometrics(session: Session, case_id: int) -> tuple[list[PhotoRow], list[FaceRow]]:
    """A case's photos and faces that the retention purge has not erased."""
    photos = session.scalars(
        select(PhotoRow).where(PhotoRow.case_id == case_id, privacy.live_photo())
    )
    faces = session.scalars(
        select(FaceRow).where(FaceRow.case_id == case_id, FaceRow.model != privacy.ERASED)
    )
    return list(photos), list(faces)
