"""The files of a saved index: the manifest, the index files (read whole, or mapped), and the
directory lock shared by the processes that save and load them (see ``reunite.index``).

A mapped index file (``IO_FLAG_MMAP_IFC``) is shared by every process that maps it: the kernel
keeps one copy in the page cache. Files are replaced by rename, never rewritten in place, so a
mapping of an older version stays valid until its index is dropped.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss

from reunite.errors import IndexUnusable
from reunite.files import write_atomically

MANIFEST_NAME = "manifest.json"
VERIFIED_NAME = ".verified.json"
"""Which index files have been checked against their checksums (``loaded_part``): the first
process to map a saved file reads it whole to hash it; the other workers, and later starts,
map it at once (start-up at 1M faces would otherwise read about 0.8 GB per worker)."""
FORMAT_VERSION = 2
"""2: a kind may be held in parts. Written only when one is, so that a version that reads only
format 1 refuses such a set by its number (and rebuilds) rather than as missing files."""
ADDED_FORMAT_VERSION = 3
"""3: an approximate kind may have an added-faces file (``added_file_name``). Written only
when one has, for the same reason."""
FORMAT_VERSIONS_READ = (1, 2, 3)
INDEX_FILE_NAME = re.compile(r"(missing|found)(\.[0-9]+|\.added)?\.faiss")
"""What a manifest may name: ``missing.faiss``, ``found.0.faiss``, ``missing.added.faiss``, ...
(never a path)."""


@dataclass(frozen=True)
class Manifest:
    """What an index directory holds: written last on save, checked first on load."""

    model: str
    dim: int
    counts: dict[str, int]
    last_face_id: int
    files: dict[str, str]
    saved_at: str
    format: int = FORMAT_VERSION
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per kind: ``{"type": "flat"}``, ``{"type": "hnsw", "M", "ef_search", "recall_at_10",
    "parts", ...}`` or ``{"type": "ivfpq", "nlist", "nprobe", "refine_factor", "recall_at_10",
    ...}`` (``FaceIndex.optimize``), plus ``removed``: tombstoned face ids of an approximate
    kind."""
    build_id: str = ""
    """Which build this is: kept by saves, new for each index built from the store."""
    built_at: str = ""
    """When the build started from the store (ISO 8601, UTC): a later one is newer."""
    marks: list[int] | None = None
    """The store's highest face id and ``removed_faces`` id that the saved faces reflect: a
    start catches up from there, reading only what changed since (absent: compare every id)."""

    @property
    def count(self) -> int:
        return sum(self.counts.values())


def part_file_names(kind: str, parts: int) -> list[str]:
    """The files of a kind held in ``parts`` parts: ``missing.faiss``, or ``missing.0.faiss``,
    ``missing.1.faiss``, ..."""
    return [f"{kind}.faiss"] if parts == 1 else [f"{kind}.{i}.faiss" for i in range(parts)]


def added_file_name(kind: str) -> str:
    """The file of the faces added to an approximate kind since its build (``missing.added
    .faiss``): an exact index saved beside the kind's own files, which saves leave as they are."""
    return f"{kind}.added.faiss"


def loaded_part(
    directory: Path,
    name: str,
    manifest: Manifest,
    dim: int,
    *,
    mapped: bool = False,
    verify: bool = True,
) -> faiss.IndexIDMap:
    """One index file, checked against the manifest's SHA-256 (streamed: no copy of the file in
    memory) unless this very file was checked before (``VERIFIED_NAME``). ``mapped``: map it
    read-only (shared with every other process that maps it) rather than read it into this
    process's memory. ``verify=False`` skips the checksum (for files this process has just
    written and hashed). Raises ``IndexUnusable``."""
    path = directory / name
    try:
        stat = path.stat()
        identity = [stat.st_size, stat.st_mtime_ns, stat.st_ino, manifest.files.get(name)]
        if verify and _verified(directory).get(name) != identity:
            with path.open("rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            if digest != manifest.files.get(name):
                raise IndexUnusable(f"Index file {name} does not match its manifest (corrupt).")
            write_atomically(
                directory / VERIFIED_NAME,
                json.dumps(_verified(directory) | {name: identity}).encode("utf-8"),
            )
    except OSError as exc:
        raise IndexUnusable(f"Index file {name} cannot be read ({exc}).") from exc
    flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mapped else 0
    try:
        loaded = faiss.read_index(str(path), flags)
    except RuntimeError as exc:
        raise IndexUnusable(f"Index file {name} cannot be decoded ({exc}).") from exc
    if not isinstance(loaded, faiss.IndexIDMap):  # IndexIDMap2 for exact and HNSW kinds
        raise IndexUnusable(f"Index file {name} is not an id-mapped index.")
    if loaded.d != dim:
        raise IndexUnusable(f"Index file {name} disagrees with its manifest.")
    return loaded


def staged_index_file(path: Path, index: Any) -> tuple[Path, str]:
    """Write ``index`` beside ``path`` under a temporary name (``.NAME.*.tmp``, fsynced) and
    return that file and its SHA-256; the caller renames it to ``path``. Streamed: FAISS
    writes the file and it is hashed from disk, so no copy of the index is made in memory (at
    10M faces the file is about 5.5 GB). A file left by a kill is deleted at the next load."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    staged = Path(name)
    try:
        os.close(fd)
        faiss.write_index(index, str(staged))
        with staged.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
            os.fsync(handle.fileno())
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return staged, digest


def install(directory: Path, moves: dict[Path, Path], manifest: Manifest) -> None:
    """Make ``manifest`` the index of ``directory``: rename each file of ``moves`` (written
    elsewhere -> its place) into place, then write the manifest, then delete the index files
    it does not name (parts of an earlier layout, added faces folded in). Each step is a
    rename, so a process mapping the old files keeps them. Call it with the folder's lock
    held; a kill in the milliseconds of the renames leaves files the old manifest's checksums
    refuse (rebuilt or fetched again), never a set that loads wrong."""
    for written, place in moves.items():
        os.replace(written, place)
    write_atomically(
        directory / MANIFEST_NAME, json.dumps(manifest.__dict__, indent=2).encode("utf-8")
    )
    for stale in set(directory.glob("*.faiss")) - {directory / name for name in manifest.files}:
        stale.unlink(missing_ok=True)


def _verified(directory: Path) -> dict[str, Any]:
    """The index files whose checksum a process has checked: name -> [size, mtime, inode,
    SHA-256] as they were then. A file replaced (by rename: a new inode) or rewritten (a new
    mtime) since is checked again."""
    try:
        recorded = json.loads((directory / VERIFIED_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def read_manifest(directory: Path) -> Manifest:
    """The manifest of an index directory. Raises ``IndexUnusable`` if absent or malformed."""
    path = directory / MANIFEST_NAME
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexUnusable(f"No index manifest at {path}.") from exc
    except (OSError, ValueError) as exc:
        raise IndexUnusable(f"The index manifest at {path} is unreadable ({exc}).") from exc
    return manifest_of(raw, f"at {path}")


def manifest_of(raw: Any, where: str) -> Manifest:
    """A manifest from its JSON value, checked (``where`` names it in messages: "at PATH").
    Raises ``IndexUnusable`` if it is malformed or of a format this version does not read."""
    try:
        manifest = Manifest(**raw)
    except TypeError as exc:
        raise IndexUnusable(f"The index manifest {where} is unreadable ({exc}).") from exc
    if manifest.format not in FORMAT_VERSIONS_READ:
        raise IndexUnusable(
            f"Index format {manifest.format} is not one this version reads {FORMAT_VERSIONS_READ}."
        )
    if not all(
        isinstance(part, dict) for part in (manifest.counts, manifest.files, manifest.params)
    ) or not all(isinstance(digest, str) for digest in manifest.files.values()):
        raise IndexUnusable(f"The index manifest {where} is malformed.")
    if not all(
        isinstance(name, str) and INDEX_FILE_NAME.fullmatch(name) for name in manifest.files
    ):
        raise IndexUnusable(f"The index manifest {where} names files that are not index files.")
    return manifest


class DirectoryLock:
    """An exclusive lock on a directory, shared by processes (``flock`` on ``<dir>/.lock``) and
    re-entrant within one process. Released by the kernel if its holder dies."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / ".lock"
        self._local = threading.RLock()
        self._depth = 0
        self._fd = -1

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the ``with`` block (waits for other processes to release it)."""
        with self._local:
            if self._depth == 0:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    os.close(self._fd)  # closing the descriptor releases the flock
                    self._fd = -1


def format_of(layout: dict[str, int], added_files: int) -> int:
    """The oldest manifest format that describes files of this ``layout`` (parts per kind)
    and this many added-faces files: a version that reads only older formats then refuses
    them by number (and rebuilds)."""
    if added_files:
        return ADDED_FORMAT_VERSION
    return FORMAT_VERSION if any(n > 1 for n in layout.values()) else 1


def file_identity(path: Path) -> tuple[int, ...]:
    """Which file ``path`` is now (inode, size, modification time); () if there is none."""
    try:
        stat = path.stat()
    except OSError:
        return ()
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def files_on_disk(directory: Path) -> dict[str, str]:
    """The index files the manifest in ``directory`` names (name: SHA-256); none if it has no
    readable manifest."""
    try:
        return dict(read_manifest(directory).files)
    except IndexUnusable:
        return {}


def added_faces(
    directory: Path, kind: str, manifest: Manifest, dim: int, *, verify: bool
) -> faiss.IndexIDMap2 | None:
    """The faces added to ``kind`` since its build, if the manifest names such a file (read
    into memory: it is small, and this process adds to it). Raises ``IndexUnusable``."""
    name = added_file_name(kind)
    if name not in manifest.files:
        return None
    added = loaded_part(directory, name, manifest, dim, verify=verify)
    if not isinstance(added, faiss.IndexIDMap2) or not isinstance(
        faiss.downcast_index(added.index), faiss.IndexFlatL2
    ):
        raise IndexUnusable(f"Index file {name} is not an exact index of added faces.")
    return added
