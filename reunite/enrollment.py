"""Enrollment: adding a photo to a case, in two halves.

``prepared_photo`` is the costly half (decode, detect, embed; no store), which batches run over
a process pool (``reunite.batch``); ``Enrollments.enroll_prepared`` is the quick half: store the
photo and its face, match it against the other kind and record new candidates, one at a time
under the write lock and the store's faces lock. This module's top level is what pool workers
import: the face models, not the index or the service.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import KW_ONLY, dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from reunite import audit, imaging
from reunite.cases import case_row
from reunite.errors import Conflict, InvalidField, MultipleFaces, NoFaceFound
from reunite.faces import (
    MODEL_NAME,
    Face,
    FaceFinder,
    Pipeline,
    central_index,
    largest_index,
)
from reunite.photo_files import PhotoFiles
from reunite.store import (
    EARLIEST_DATE,
    FaceRow,
    PhotoRow,
    Store,
    embedding_bytes,
    photo_file_name,
)

if TYPE_CHECKING:
    from reunite.candidate_view import CandidateView
    from reunite.candidates import Candidates
    from reunite.config import Settings
    from reunite.live_index import LiveIndex

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Enrollment:
    """The outcome of adding a photo to a case."""

    photo: PhotoRow
    faces: list[FaceRow]
    new_candidates: list[CandidateView]
    created: bool
    """False when the same bytes were already a photo of this case (nothing changed)."""


FACE_CHOICES = ("refuse", "largest", "central")
"""How a batch takes a photo that shows several faces: refuse it (``MultipleFaces``, as the API
does without ``face_index``), or use the face with the largest box, or the one whose box centre
is nearest the photo's centre (``reunite import --face``)."""


@dataclass(frozen=True)
class PreparedPhoto:
    """A decoded case photo and the one face chosen in it, not yet stored."""

    data: bytes
    image: imaging.DecodedImage
    face: Face
    face_choice: str | None = None
    """``largest`` or ``central`` when the face was chosen automatically among several (stored
    as ``FaceRow.face_choice``); None when the photo had one face or a person chose it."""


def prepared_photo(
    data: bytes,
    *,
    finder: FaceFinder,
    pipeline: Pipeline,
    max_bytes: int,
    max_pixels: int,
    face_index: int | None = None,
    face_choice: str = "refuse",
) -> PreparedPhoto:
    """A case photo decoded (within ``max_bytes`` and ``max_pixels``) with its one face found
    and embedded by ``finder`` (see ``chosen_face``), storing nothing.

    Raises:
        UnsupportedImage, ImageTooLarge, UnreadableImage, ImageTooSmall: bad photo file.
        NoFaceFound, MultipleFaces, InvalidField: no usable face, or a bad ``face_index``
            (``FeaturelessImage``, a ``NoFaceFound``, for a nearly uniform image).
    """
    image = imaging.decoded_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    imaging.check_detail(image.pixels)  # a blank image costs no detection
    faces = finder(image.pixels, pipeline)
    shape = (image.pixels.shape[0], image.pixels.shape[1])
    face, how = chosen_face(faces, face_index, choice=face_choice, shape=shape)
    return PreparedPhoto(data, image, face, how)


def check_taken_on(taken_on: date | None) -> None:
    """Raises ``InvalidField`` unless a photo date is plausible (or not given)."""
    if taken_on is not None and not EARLIEST_DATE <= taken_on <= date.today():
        raise InvalidField(
            f"taken_on must be between {EARLIEST_DATE.isoformat()} and today, "
            f"not {taken_on.isoformat()}."
        )


def chosen_face(
    faces: list[Face],
    face_index: int | None,
    *,
    choice: str = "refuse",
    shape: tuple[int, int] = (0, 0),
) -> tuple[Face, str | None]:
    """The one face to enroll from a case photo (see ``Enrollments.enroll_photo``), and how it
    was chosen among several: ``choice`` (one of ``FACE_CHOICES``) when a photo of ``shape``
    (height, width) shows several faces and no ``face_index`` is given, else None."""
    if choice not in FACE_CHOICES:
        raise InvalidField(
            f"The face choice must be one of {', '.join(FACE_CHOICES)}, not {choice!r}."
        )
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
        return faces[face_index], None
    if len(faces) > 1 and choice != "refuse":
        boxes_px = [f.box for f in faces]
        index = (
            largest_index(boxes_px)
            if choice == "largest"
            else central_index(np.array(boxes_px, dtype=float), shape)
        )
        return faces[index or 0], choice
    if len(faces) > 1:
        raise MultipleFaces(
            f"This photo shows {len(faces)} faces. Send it again with face_index set to the "
            "face to use (0 is the leftmost), or crop the photo to one person.",
            boxes=boxes,
        )
    return faces[0], None


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


@dataclass(eq=False)
class Enrollments:
    """Stores photos in cases and matches their faces. ``write_lock`` serialises the writes
    that change matching, so two enrollments of opposite kinds always see each other."""

    settings: Settings
    store: Store
    _: KW_ONLY
    live: LiveIndex
    candidates: Candidates
    write_lock: threading.RLock
    finder: FaceFinder
    pipeline: Pipeline
    files: PhotoFiles
    """Where photo files are written, before the rows that name them commit."""

    def prepared_photo(self, data: bytes, *, face_index: int | None = None) -> PreparedPhoto:
        """``prepared_photo`` with this service's finder, pipeline and upload limits."""
        return prepared_photo(
            data,
            finder=self.finder,
            pipeline=self.pipeline,
            max_bytes=self.settings.max_upload_bytes,
            max_pixels=self.settings.max_pixels,
            face_index=face_index,
        )

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
        check_taken_on(taken_on)
        with self.store.transaction() as session:
            case_row(session, case_id)  # fail fast, before the costly detection
            existing = _existing_enrollment(session, case_id, imaging.sha256_hex(data))
        if existing is not None and face_index is None:
            return existing
        prepared = self.prepared_photo(data, face_index=face_index)
        return self.enroll_prepared(case_id, prepared, actor=actor, taken_on=taken_on)

    def enroll_prepared(
        self, case_id: int, prepared: PreparedPhoto, *, actor: str, taken_on: date | None = None
    ) -> Enrollment:
        """Store a prepared photo in a case and its candidates (the quick half of
        ``Reunite.enroll_photo``). Raises ``NotFound``, ``Conflict``, ``InvalidField``."""
        check_taken_on(taken_on)
        self.live.require_ready()
        image, face = prepared.image, prepared.face
        with self.write_lock:
            with self.store.transaction() as session:
                # One enrollment at a time across processes, each matched against every face
                # committed before it (other servers' faces included).
                self.store.lock_faces(session)
                self.live.pull_changes(session)
                case = case_row(session, case_id)
                existing = _existing_enrollment(session, case_id, image.sha256)
                if existing is not None:
                    if any(tuple(face.box) != _box_of(f) for f in existing.faces):
                        raise Conflict(
                            f"This photo is already photo {existing.photo.id} of case {case_id}, "
                            "enrolled with another of its faces. Delete it first to change "
                            "the face.",
                            photo_id=existing.photo.id,
                        )
                    return existing
                photo, row = self._stored(session, case.kind, case_id, prepared, taken_on)
                new_candidates = (
                    self.candidates.record(session, case, row, face.embedding)
                    if case.status != "closed"
                    else []
                )
                if case.status != "closed" and _first_face(session, case_id, row.id):
                    self.candidates.mark_matched(session, case)
                audit.record(
                    session,
                    actor,
                    "photo.enroll",
                    case_id,
                    photo_id=photo.id,
                    face_ids=[row.id],
                    new_candidate_ids=[c.id for c in new_candidates],
                )
                new_views = self.candidates.views(session, new_candidates)
            self.live.add(case.kind, row.id, face.embedding)
        log.info(
            "case %d: photo %d enrolled, face %d, %d new candidates",
            case_id,
            photo.id,
            row.id,
            len(new_candidates),
        )
        return Enrollment(photo, [row], new_views, created=True)

    def _stored(
        self,
        session: Session,
        kind: str,
        case_id: int,
        prepared: PreparedPhoto,
        taken_on: date | None,
    ) -> tuple[PhotoRow, FaceRow]:
        """Write the photo's file and add its photo and face rows (flushed, so with ids)."""
        image = prepared.image
        self.files.put(photo_file_name(image.sha256, image.format), prepared.data)
        photo = PhotoRow(
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
            kind=kind,
            face_choice=prepared.face_choice,
            **face_columns(prepared.face, self.pipeline),
        )
        session.add(row)
        session.flush()
        return photo, row


def _existing_enrollment(session: Session, case_id: int, sha256: str) -> Enrollment | None:
    """The case's photo with these bytes, as an unchanged ``Enrollment``, or None."""
    photo = session.scalar(
        select(PhotoRow).where(PhotoRow.case_id == case_id, PhotoRow.sha256 == sha256)
    )
    if photo is None:
        return None
    faces = list(session.scalars(select(FaceRow).where(FaceRow.photo_id == photo.id)))
    return Enrollment(photo, faces, [], created=False)


def _first_face(session: Session, case_id: int, face_id: int) -> bool:
    """Whether ``face_id`` is the case's only face: a new case, so matching its one face with
    today's rules matches the whole case with them."""
    other = session.scalar(
        select(FaceRow.id).where(FaceRow.case_id == case_id, FaceRow.id != face_id).limit(1)
    )
    return other is None


def _box_of(face: FaceRow) -> tuple[int, int, int, int]:
    return (face.top, face.right, face.bottom, face.left)
