"""Case photos and their faces as stored: reads, the photo files, and face crops.

Photo files are named by their bytes (``ab/<sha256>.<format>``), so two cases with the same
photo share one file; they are kept in ``Photos.files`` (``reunite.photo_files``: the folder
``<data_dir>/photos`` or an S3 bucket). Crops of faces are cached in ``<data_dir>/crops/`` on
each machine. Views of a photo or a crop are audited; photos erased by the retention rule read
as absent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from reunite import audit, imaging, privacy
from reunite.cases import case_row
from reunite.config import Settings
from reunite.errors import NotFound
from reunite.files import write_atomically
from reunite.photo_files import PhotoFiles
from reunite.store import FaceRow, PhotoRow, Store, photo_file_name

CROP_MARGIN = 0.25
"""Margin added on each side of a face box when cropping, as a fraction of the box size."""


def crop_path(settings: Settings, face_id: int) -> Path:
    """Where a face's crop is cached."""
    return settings.data_dir / "crops" / f"{face_id}.jpg"


@dataclass(eq=False)
class Photos:
    """The photos, faces and crops of one store and data folder."""

    settings: Settings
    store: Store
    files: PhotoFiles
    """Where the photo files are (``photo_files.photo_files_of(settings)``)."""

    def decoded(self, data: bytes) -> imaging.DecodedImage:
        """Photo bytes decoded under the upload limits (see ``imaging.decoded_image``)."""
        return imaging.decoded_image(
            data, max_bytes=self.settings.max_upload_bytes, max_pixels=self.settings.max_pixels
        )

    def of_case(self, case_id: int) -> list[tuple[PhotoRow, list[FaceRow]]]:
        """A case's photos, oldest first, each with its faces; photos purged by the retention
        rule are left out. Raises ``NotFound``."""
        with self.store.transaction() as session:
            case_row(session, case_id)
            photos = list(
                session.scalars(
                    select(PhotoRow)
                    .where(PhotoRow.case_id == case_id, privacy.live_photo())
                    .order_by(PhotoRow.id)
                )
            )
            faces = list(
                session.scalars(
                    select(FaceRow).where(FaceRow.case_id == case_id).order_by(FaceRow.id)
                )
            )
        return [(p, [f for f in faces if f.photo_id == p.id]) for p in photos]

    def of_cases(self, case_ids: Iterable[int]) -> dict[int, list[tuple[PhotoRow, list[FaceRow]]]]:
        """``of_case`` for several cases at once (a page of candidate cards), in two queries
        whatever their number; a case without photos, or that does not exist, maps to []."""
        wanted = sorted(set(case_ids))
        found: dict[int, list[tuple[PhotoRow, list[FaceRow]]]] = {i: [] for i in wanted}
        if not wanted:
            return found
        with self.store.transaction() as session:
            photos = session.scalars(
                select(PhotoRow)
                .where(PhotoRow.case_id.in_(wanted), privacy.live_photo())
                .order_by(PhotoRow.id)
            ).all()
            faces = session.scalars(
                select(FaceRow).where(FaceRow.case_id.in_(wanted)).order_by(FaceRow.id)
            ).all()
        faces_of: dict[int, list[FaceRow]] = {}
        for face in faces:
            faces_of.setdefault(face.photo_id, []).append(face)
        for photo in photos:
            found[photo.case_id].append((photo, faces_of.get(photo.id, [])))
        return found

    def enrolled_sha256s(self, case_id: int) -> set[str]:
        """The SHA-256 (hex) of each photo of a case: bytes that enrolling again would skip, so a
        batch can skip them before the costly detection. Cost: one indexed query."""
        with self.store.transaction() as session:
            return set(session.scalars(select(PhotoRow.sha256).where(PhotoRow.case_id == case_id)))

    def photo(self, photo_id: int) -> PhotoRow:
        """A photo's row (no bytes, no audit). Raises ``NotFound``."""
        with self.store.transaction() as session:
            photo = session.get(PhotoRow, photo_id)
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

    def photo_file(self, photo_id: int, *, actor: str) -> tuple[PhotoRow, bytes]:
        """A photo's row and its original bytes; the view is audited. Raises ``NotFound`` (also
        for a photo purged by the retention rule)."""
        with self.store.transaction() as session:
            photo = session.get(PhotoRow, photo_id)
            if photo is None or privacy.is_erased(photo):
                raise NotFound(f"There is no photo {photo_id}.")
            audit.record(session, actor, "photo.view", photo.case_id, photo_id=photo_id)
        return photo, self.files.get(photo_file_name(photo.sha256, photo.format))

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
            audit.record(session, actor, "face.view", face.case_id, face_id=face_id)
            photo = session.get_one(PhotoRow, face.photo_id)
        cached = crop_path(self.settings, face_id)
        if cached.exists():
            return cached.read_bytes()
        data = self.files.get(photo_file_name(photo.sha256, photo.format))
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

    def forget_crops(self, face_ids: Iterable[int]) -> None:
        """Delete the cached crops of these faces (faces another process erased: this
        machine's cache must not keep them)."""
        for face_id in face_ids:
            crop_path(self.settings, face_id).unlink(missing_ok=True)

    def forget_stale_crops(self) -> int:
        """Delete cached crops whose face the store no longer holds (erased, or purged, while
        this server was down); returns how many. Cost: one query per 10,000 crops."""
        folder = self.settings.data_dir / "crops"
        cached = sorted(int(p.stem) for p in folder.glob("*.jpg") if p.stem.isdigit())
        stale: list[int] = []
        for start in range(0, len(cached), 10_000):
            ids = cached[start : start + 10_000]
            with self.store.transaction() as session:
                live = set(
                    session.scalars(
                        select(FaceRow.id).where(
                            FaceRow.id.in_(ids), FaceRow.model != privacy.ERASED
                        )
                    )
                )
            stale += [i for i in ids if i not in live]
        self.forget_crops(stale)
        return len(stale)

    def forget_file(self, sha256: str, fmt: str) -> None:
        """Delete a photo's file unless another photo row still uses the same bytes."""
        with self.store.transaction() as session:
            still_used = session.scalar(select(PhotoRow.id).where(PhotoRow.sha256 == sha256))
        if still_used is None:
            self.files.delete(photo_file_name(sha256, fmt))
