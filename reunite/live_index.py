"""The live index: this process's in-memory ``FaceIndex``, kept in step with the store.

The store is the source of truth; the index is derived from it. ``LiveIndex`` loads the saved
index (or catches it up, or rebuilds it), applies the faces other processes added or deleted
(``sync``), adopts newer builds saved by ``reunite reindex``, and saves it every
``index_save_every`` changes. Matching, search and erasure need it loaded (``require_ready``).

The saved files are *mapped* (``FaceIndex.load(mapped=True)``), not read: the API workers of
one machine share one copy in the page cache. Each worker keeps only the faces added since in a
small flat index of its own, and the faces removed since as tombstones (merged in at search
time), until a save writes them (an approximate kind's added faces to a file beside its own,
which saves leave alone: ``FaceIndex.save``): then it maps the new files, and the other workers
adopt them at their next ``sync``, their deltas read from that file. A start catches up from
the store marks the
manifest records (``Manifest.marks``), reading only the faces added or removed since the save.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reunite.compressed_index import COMPRESSED_MIN_FACES
from reunite.config import Settings
from reunite.device import Devices
from reunite.errors import IndexUnusable, NotReady, PhotoStoreUnavailable
from reunite.faces import EMBEDDING_DIM, MODEL_NAME
from reunite.graph_index import graph_parts
from reunite.index import (
    KINDS,
    MANIFEST_NAME,
    DirectoryLock,
    FaceIndex,
    Manifest,
    read_manifest,
)
from reunite.index_builds import PublishedBuilds
from reunite.store import FaceRow, RemovedFaceRow, Store, embedding_vector

log = logging.getLogger(__name__)

IndexType = Literal["auto", "flat", "hnsw"]
PUBLISHED_RETRY_S = 30.0
"""After the object store failed to answer, how long before the next look for a published
build (the index sync goes on meanwhile)."""


@dataclass(frozen=True)
class IndexReport:
    """How the index was made ready: ``loaded``, ``caught_up`` or ``rebuilt``, and why."""

    how: str
    reason: str
    counts: dict[str, int]


class LiveIndex:
    """The index this process searches, with the marks that keep it in step with the store.

    ``write_lock`` is the service's lock on writes that change matching; every change to the
    index happens under it.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        write_lock: threading.RLock,
        devices: Devices | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.devices = devices
        self.write_lock = write_lock
        self.index = FaceIndex(MODEL_NAME, EMBEDDING_DIM)
        self.report = IndexReport("empty", "not opened yet", {k: 0 for k in KINDS})
        self._ready = threading.Event()
        self._unsaved_changes = 0
        self.index_lock = DirectoryLock(settings.index_dir)
        """The index folder's lock, among the processes of this machine that share it."""
        self.saving = threading.Lock()
        """Held while this process writes index files (a save, or a fetched build's move-in):
        a stop that gives up waiting for the index thread still waits for this, so that no
        write is cut off half-way."""
        self._face_mark = 0
        """Highest face id (committed) that the index has seen; see ``sync``."""
        self._removal_mark = 0
        """Highest ``removed_faces`` id that the index has applied."""
        self._manifest_stamp: tuple[int, int, int] | None = None
        self.ready_after_s: float | None = None
        """Seconds from this process's launch to the index being ready (``make_ready``)."""
        self.published = PublishedBuilds.of(settings)
        """Builds published through the photo store's bucket (None without one)."""
        self._published_retry_at = 0.0
        self.on_removed: Callable[[list[int]], None] = lambda _face_ids: None
        """Called with the ids of faces that left the index because another process (or an
        earlier run) deleted them from the store: the service drops their cached crops."""

    @property
    def ready(self) -> bool:
        """Whether the index is loaded (matching, search and deletion need it)."""
        return self._ready.is_set()

    def require_ready(self) -> None:
        """Raises ``NotReady`` until ``make_ready`` has run."""
        if not self._ready.is_set():
            raise NotReady("The service is starting (loading the face index); retry shortly.")

    def make_ready(self) -> IndexReport:
        """Load the index (see ``load``); matching and search work from then on."""
        started = time.monotonic()
        self.report = self.load()
        self.ready_after_s = round(process_age_s(), 3)
        self._ready.set()
        log.info(
            "index: ready %.1f s after launch, loaded in %.2f s (%s, %d faces)",
            self.ready_after_s,
            time.monotonic() - started,
            self.report.how,
            sum(self.report.counts.values()),
        )
        return self.report

    def counts(self) -> dict[str, int]:
        """Faces held per kind."""
        return {kind: self.index.count(kind) for kind in KINDS}

    # ------------------------------------------------------------------- changes

    def add(self, kind: str, face_id: int, embedding: np.ndarray) -> None:
        """Add a face this process just committed (under the write lock); saves every
        ``index_save_every`` changes."""
        self.index.add(kind, [face_id], embedding[None, :])
        self._face_mark = max(self._face_mark, face_id)
        self._unsaved_changes += 1
        if self._unsaved_changes >= self.settings.index_save_every:
            self.try_save()

    def remove(self, face_ids: list[int]) -> None:
        """Take faces out (an erasure committed, under the write lock); the caller saves."""
        self.index.remove(face_ids)
        self._unsaved_changes += len(face_ids)

    # -------------------------------------------------------------- load and save

    def load(self) -> IndexReport:
        """Make the index agree with the store: load it, catch it up, or rebuild it.

        The saved index is used when its manifest matches this model; faces added to or deleted
        from the store since it was saved are then added or removed. A missing, corrupt or
        foreign index is rebuilt from the store. A newer build published in the object store
        (``reunite.index_builds``) is fetched into the index folder first. The log says which
        happened and why.
        """
        self.fetch_published()
        with self.write_lock, self.index_lock.held():
            _remove_unfinished_writes(self.settings.index_dir)
            try:
                index, manifest = FaceIndex.load(
                    self.settings.index_dir, model=MODEL_NAME, dim=EMBEDDING_DIM, mapped=True
                )
            except IndexUnusable as exc:
                first_start = not (self.settings.index_dir / MANIFEST_NAME).exists()
                with self.store.transaction() as session:
                    stored = session.scalar(select(func.count(FaceRow.id))) or 0
                # A new installation (no index, no faces) is normal; anything else is news.
                level = logging.INFO if first_start and not stored else logging.WARNING
                log.log(level, "index: rebuilding from the store: %s", exc)
                return self._rebuild(f"{exc}")
            added, removed = self._adopt(index, manifest)
            self._unsaved_changes += added + removed
            self._unsaved_changes += self._fit_index_type(index, only_if_crossed=True)
            if added or removed:
                reason = f"{added} faces added and {removed} removed since the last save"
                log.warning("index: loaded and caught up with the store: %s", reason)
                self.save()
                return IndexReport("caught_up", reason, self.counts())
            if self._unsaved_changes:  # a kind changed type: written, then mapped
                self.save()
            log.info("index: loaded %d faces saved at %s", manifest.count, manifest.saved_at)
            return IndexReport("loaded", "manifest matches the store", self.counts())

    def rebuild(self, index_type: IndexType = "auto") -> IndexReport:
        """Build a fresh index from every face in the store, swap it in and save it as a new
        build. Running servers sharing the index directory adopt it within
        ``index_sync_interval_s``, and keep answering from their old one meanwhile (servers on
        other machines once ``reunite reindex`` has published it: ``reunite.index_builds``).

        ``index_type``: ``auto`` chooses by size (``approximate_min_faces``); ``flat`` and
        ``hnsw`` force one (an HNSW graph that cannot reach the target recall stays flat).
        Cost: seconds per 100,000 faces for a flat index, about 4 minutes per million for HNSW.
        """
        with self.write_lock:
            return self._rebuild("requested", index_type)

    def save(self) -> None:
        """Write the index files and manifest atomically (no-op if nothing changed).

        Never over a newer build on disk (made by another process): that one is adopted by the
        next ``sync`` instead.
        """
        directory = self.settings.index_dir
        with self.write_lock, self.index_lock.held(), self.saving:
            try:
                on_disk = read_manifest(directory)
            except IndexUnusable:
                on_disk = None
            if on_disk is not None and self.index.is_older_than(on_disk):
                log.info("index: not saved: a newer build is on disk (%s)", on_disk.build_id)
                return
            if self._unsaved_changes or on_disk is None or on_disk.build_id != self.index.build_id:
                self.index.save(directory, marks=[self._face_mark, self._removal_mark])
                self._unsaved_changes = 0
                self._map_saved()

    def _map_saved(self) -> None:
        """Search the files just saved, mapped, in place of the index in memory (whose delta
        and tombstones they now hold): one copy shared by the processes that map them."""
        try:
            index, _ = FaceIndex.load(
                self.settings.index_dir,
                model=MODEL_NAME,
                dim=EMBEDDING_DIM,
                mapped=True,
                verify=False,  # hashed as written
            )
        except IndexUnusable as exc:  # keep answering from memory; the next save retries
            log.warning("index: saved files could not be mapped, kept in memory: %s", exc)
            return
        self._swap_in(index)

    def try_save(self) -> None:
        """``save``, logging an ``OSError`` instead of raising it: the store already holds
        the changes, a later save retries, and the next start catches the index up."""
        try:
            self.save()
        except OSError:
            log.exception("index: saving failed; will retry, and catch up at next start")

    def save_at_shutdown(self) -> None:
        """``save`` if the index was loaded, logging an ``OSError`` (the next start catches
        the index up from the store)."""
        with self.write_lock:
            try:
                if self.ready:
                    self.save()
            except OSError:
                log.exception("index: saving at shutdown failed; the next start catches it up")

    # ---------------------------------------------------------------------- sync

    def sync(self) -> tuple[int, int]:
        """Bring this process's index in step with the store and the index directory; returns
        (faces added, faces removed).

        First applies the faces other processes (API workers, other servers) added or
        deleted since the last sync; then adopts newer files in the index directory, caught up
        with the store: a newer build (``reunite reindex``), or a later save of this build by
        another worker (mapping it empties this process's delta). Servers call it every
        ``index_sync_interval_s``; enrollment does the first step under the faces lock before
        matching.

        Cost: a ``stat`` of the manifest and two indexed queries when nothing changed; mapping
        the new files (and checksumming them: about 1.5 s per GB) when there are some.
        """
        self.require_ready()
        with self.write_lock, self.store.transaction() as session:
            changes = self.pull_changes(session)
        self.fetch_published()
        self._adopt_newer_files()
        return changes

    def fetch_published(self) -> None:
        """Fetch a newer build published in the object store into the index folder, where
        ``_adopt_newer_files`` finds it (``PublishedBuilds.fetch_newer``). Best effort: an
        object store that is down, or a damaged build, is logged and the index kept as it is
        (searches keep working); a look after a failure waits ``PUBLISHED_RETRY_S``."""
        if self.published is None or time.monotonic() < self._published_retry_at:
            return
        try:
            self.published.fetch_newer(self.settings.index_dir, self.index_lock, self.saving)
        except PhotoStoreUnavailable as exc:
            self._published_retry_at = time.monotonic() + PUBLISHED_RETRY_S
            log.warning("index: no published build fetched, keeping the current index: %s", exc)
        except IndexUnusable as exc:
            self._published_retry_at = time.monotonic() + PUBLISHED_RETRY_S
            log.error("index: published build refused, keeping the current index: %s", exc)
        except OSError as exc:  # the index folder: full, or not writable
            self._published_retry_at = time.monotonic() + PUBLISHED_RETRY_S
            log.error("index: published build not fetched into the index folder: %s", exc)

    def pull_changes(self, session: Session) -> tuple[int, int]:
        """Add the faces committed since ``_face_mark`` and remove those deleted since
        ``_removal_mark``; returns (added, removed).

        Faces are committed in id order (``Store.lock_faces``), so nothing committed can hide
        below a mark. A face may arrive twice (a catch-up ran after the mark was read), so those
        already held are skipped.
        """
        added, removed, marks = _pull(
            session, self.index, (self._face_mark, self._removal_mark), self.on_removed
        )
        self._face_mark, self._removal_mark = marks
        if added or removed:
            self._unsaved_changes += added + removed
            log.info("index: %d faces added and %d removed by other processes", added, removed)
        return added, removed

    def _adopt_newer_files(self) -> bool:
        directory = self.settings.index_dir
        try:
            stat = (directory / MANIFEST_NAME).stat()
        except FileNotFoundError:
            return False
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp == self._manifest_stamp:
            return False
        with self.index_lock.held():
            try:
                if not self._behind(read_manifest(directory)):
                    self._manifest_stamp = stamp
                    return False
                index, manifest = FaceIndex.load(
                    directory, model=MODEL_NAME, dim=EMBEDDING_DIM, mapped=True
                )
            except IndexUnusable as exc:
                log.warning("index: a newer build on disk is unusable, keeping ours: %s", exc)
                self._manifest_stamp = stamp
                return False
        with self.write_lock:
            newer_build = self.index.is_older_than(manifest)
            added, removed = self._adopt(index, manifest)
            self._unsaved_changes = added + removed
            self._manifest_stamp = stamp
        log.log(
            logging.INFO if newer_build else logging.DEBUG,
            "index: adopted %s %s (%d faces, saved at %s); caught up: %d added, %d removed",
            "build" if newer_build else "a later save of build",
            manifest.build_id,
            index.count(),
            manifest.saved_at,
            added,
            removed,
        )
        return True

    def _behind(self, manifest: Manifest) -> bool:
        """Whether ``manifest`` describes files to adopt: a newer build, or a later save of our
        build (another worker wrote its changes in: mapping them empties our delta)."""
        if self.index.is_older_than(manifest):
            return True
        same_build = manifest.build_id == self.index.build_id
        return same_build and self.index.mapped and manifest.saved_at > self.index.saved_at

    def _adopt(self, index: FaceIndex, manifest: Manifest) -> tuple[int, int]:
        """Catch a loaded ``index`` up with the store and make it the one searched, with the
        marks ``pull_changes`` continues from; returns (faces added, faces removed).

        From the manifest's marks when it has them and the store is not behind them: only the
        faces added and removed since are read. Otherwise (an older manifest, a store restored
        from an older backup) every face id is compared."""
        with self.store.transaction() as session:
            marks = _marks(session)  # before the catch-up: see ``pull_changes``
            saved = manifest.marks
            if (
                saved is not None
                and len(saved) == 2
                and all(0 <= s <= m for s, m in zip(saved, marks, strict=True))
            ):
                added, removed, marks = _pull(session, index, (saved[0], saved[1]), self.on_removed)
                self._swap_in(index)
                self._face_mark, self._removal_mark = marks
                return added, removed
        added, removed = self._catch_up(index)
        self._swap_in(index)
        self._face_mark, self._removal_mark = marks
        return added, removed

    def _swap_in(self, index: FaceIndex) -> None:
        """Make ``index`` the one searched, on the GPU where FAISS can (``FaceIndex.use_gpu``)."""
        on_gpu = index.use_gpu(self.devices is not None and self.devices.faiss_gpus > 0)
        if on_gpu:
            log.info("index: exact kinds searched on the GPU")
        self.index = index

    def _rebuild(self, reason: str, index_type: IndexType = "auto") -> IndexReport:
        index = FaceIndex(MODEL_NAME, EMBEDDING_DIM)
        with self.store.transaction() as session:
            marks = _marks(session)  # before reading the faces: see ``pull_changes``
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
        self.save()
        log.info("index: rebuilt with %d faces (%s)", index.count(), reason)
        return IndexReport("rebuilt", reason, self.counts())

    def _fit_index_type(
        self, index: FaceIndex, *, only_if_crossed: bool, index_type: IndexType = "auto"
    ) -> int:
        """Exact or approximate per kind, by size (``approximate_min_faces``) or as forced by
        ``index_type``; returns how many kinds changed. With ``only_if_crossed`` a kind is left
        alone unless its size crossed the threshold since it was built, or it outgrew its
        graphs (``graph_parts`` now asks for more of them, or it reached
        ``COMPRESSED_MIN_FACES``): a reload keeps its trained index."""
        changed = 0
        threshold = {
            "auto": self.settings.approximate_min_faces,
            "flat": sys.maxsize,
            "hnsw": 0,
        }[index_type]
        for kind in KINDS:
            approximate = index.params[kind]["type"] != "flat"
            outgrown = index.params[kind]["type"] == "hnsw" and (
                graph_parts(index.count(kind)) > len(index.part_sizes(kind))
                or index.count(kind) >= COMPRESSED_MIN_FACES
            )
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
                self.on_removed(sorted(held - stored))
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


def _remove_unfinished_writes(directory: Path) -> None:
    """Delete the temporary files of writes cut off half-way (a process killed while saving).
    Call with the folder's lock held: every write into it holds that lock, so none is under
    way."""
    for unfinished in directory.glob(".*.tmp"):
        unfinished.unlink(missing_ok=True)


def _pull(
    session: Session,
    index: FaceIndex,
    marks: tuple[int, int],
    on_removed: Callable[[list[int]], None],
) -> tuple[int, int, tuple[int, int]]:
    """Add to ``index`` the faces committed after ``marks[0]`` and remove those deleted after
    ``marks[1]`` (``removed_faces`` ids), telling ``on_removed``; returns (added, removed, the
    new marks). Faces the index already holds are skipped."""
    added = removed = 0
    face_mark, removal_mark = marks
    rows = session.execute(
        select(FaceRow.id, FaceRow.kind, FaceRow.model, FaceRow.embedding)
        .where(FaceRow.id > face_mark)
        .order_by(FaceRow.id)
    ).all()
    for kind in KINDS:
        ours = [r for r in rows if r.kind == kind and r.model == MODEL_NAME]
        if not ours:
            continue
        ids = np.array([r.id for r in ours], dtype=np.int64)
        new = ~np.isin(ids, index.face_ids(kind))
        if new.any():
            index.add(kind, ids[new], _matrix(r.embedding for r in ours)[new])
            added += int(new.sum())
    if rows:
        face_mark = max(face_mark, rows[-1].id)
    gone = session.execute(
        select(RemovedFaceRow.id, RemovedFaceRow.face_id)
        .where(RemovedFaceRow.id > removal_mark)
        .order_by(RemovedFaceRow.id)
    ).all()
    if gone:
        removed = index.remove(r.face_id for r in gone)
        removal_mark = gone[-1].id
        on_removed([r.face_id for r in gone])
    return added, removed, (face_mark, removal_mark)


def process_age_s() -> float:
    """Seconds since this process was launched (Linux: from ``/proc``; elsewhere since this
    module was imported)."""
    try:
        started = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(uptime - started / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


_IMPORTED = time.monotonic()


def _marks(session: Session) -> tuple[int, int]:
    """The store's highest face id and ``removed_faces`` id, now."""
    return (
        session.scalar(select(func.max(FaceRow.id))) or 0,
        session.scalar(select(func.max(RemovedFaceRow.id))) or 0,
    )


def _matrix(embeddings: Iterable[bytes]) -> np.ndarray:
    rows = [embedding_vector(e) for e in embeddings]
    return np.vstack(rows) if rows else np.empty((0, EMBEDDING_DIM), dtype=np.float32)
