"""Durable file writes: a file is either wholly the old version or wholly the new one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file in the same directory, fsync, rename, fsync dir.

    After a crash at any point, ``path`` holds either its previous content or ``data``.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries to disk, so that a file renamed into it survives a crash."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


OWNER_ONLY_UMASK = 0o077
"""New files 0600, new folders 0700: photos, crops, the database, the index and the secret key
hold biometric data and names."""


def restrict_new_files() -> None:
    """Make every file and folder this process (and the processes it starts) creates from now
    on readable by its owner only, whatever umask it was started with. Called by the command
    line and each server worker before anything is written."""
    os.umask(OWNER_ONLY_UMASK)


def ensure_owner_only_file(path: Path) -> None:
    """Create ``path`` empty and owner-only (0600) if it does not exist, so that a program which
    creates it later (SQLite: the database, then its ``-wal`` and ``-shm`` files, which take the
    database's mode) makes it no wider."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


SHIPPED_NOTES = frozenset({"README.md"})
"""Files a checkout ships at the top of ``data/`` and ``index/`` (what the folder is for): they
hold no data, so ``loose_paths`` does not count them."""


def close_own_folders(folders: list[Path]) -> list[Path]:
    """Make each of ``folders`` that exists and belongs to this user owner-only (0700), and
    return those changed. A fresh checkout makes ``data/`` and ``index/`` 0755; once closed,
    nothing under them can be reached by others, whatever its own mode."""
    closed = []
    for folder in folders:
        try:
            info = folder.stat()
        except FileNotFoundError:
            continue
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            folder.chmod(0o700)
            closed.append(folder)
    return closed


def loose_paths(folders: list[Path], limit: int = 5) -> tuple[int, list[Path]]:
    """How many files and folders under ``folders`` others may read, write or enter (any
    group or other permission bit), and the first ``limit`` of them; the notes a checkout
    ships at their top (``SHIPPED_NOTES``) aside. Cost: one ``stat`` per entry (about a
    second per 200,000 files)."""
    count = 0
    examples: list[Path] = []
    for folder in folders:
        if not folder.exists():
            continue
        for root, dirs, names in os.walk(folder):
            if root == str(folder):
                names = [n for n in names if n not in SHIPPED_NOTES]
            for entry in [root, *(os.path.join(root, n) for n in names)]:
                try:
                    loose = os.lstat(entry).st_mode & 0o077
                except FileNotFoundError:
                    continue  # removed while we looked
                if loose:
                    count += 1
                    if len(examples) < limit:
                        examples.append(Path(entry))
            dirs.sort()
    return count, examples
