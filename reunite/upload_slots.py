"""How many large uploads each caller is sending at once, counted across every worker process
of a server on one machine.

A caller has ``limit`` slot files in one folder (``<data_dir>/uploads-in-flight``, 0700). A
slot is taken by ``flock(LOCK_EX | LOCK_NB)`` on a file descriptor of its own, held for the
body's life and closed when it ends; the kernel releases the lock when the descriptor closes,
so a worker that dies (even by SIGKILL) gives its slots back with no cleanup. The files stay,
empty; there are at most ``limit`` per caller that has sent a large body.

A file's name is a keyed hash (HMAC-SHA256 under the server's secret key) of the caller's id
(``key:<prefix>`` or ``user:<id>``, never a name), so the folder does not say who uploads.

The folder must be on a **local** file system: ``flock`` is not shared between machines (on
NFS it is emulated, or not at all), so servers on several machines each count their own.
Several servers on one machine with the same data folder share one count per caller.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import hmac
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FOLDER = "uploads-in-flight"
"""The slot files' folder, under the data folder."""


class UploadSlots:
    """At most ``limit`` uploads at once per caller, across the processes that share ``folder``.
    Thread-safe (each slot is a descriptor of its own; ``flock`` conflicts between two
    descriptors of one process as between two processes)."""

    def __init__(self, folder: Path, limit: int, secret: bytes) -> None:
        self.folder = folder
        self.limit = limit
        self._secret = secret
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)  # owner-only even where it existed, or the umask was wide

    @contextmanager
    def slot(self, caller: str) -> Iterator[bool]:
        """Yields whether ``caller`` got a slot (False: ``limit`` are taken, in any process);
        the slot is held until the block ends."""
        fd = self._take(caller)
        try:
            yield fd is not None
        finally:
            if fd is not None:
                os.close(fd)  # releases the lock

    def taken(self, caller: str) -> int:
        """How many of ``caller``'s slots are held now, by any process (a snapshot)."""
        held = 0
        for path in self._paths(caller):
            fd = self._locked(path)
            if fd is None:
                held += 1
            else:
                os.close(fd)
        return held

    def _take(self, caller: str) -> int | None:
        """A descriptor holding the lock on a free slot file of ``caller``'s, or None."""
        for path in self._paths(caller):
            fd = self._locked(path)
            if fd is not None:
                return fd
        return None

    def _paths(self, caller: str) -> list[Path]:
        name = hmac.new(self._secret, caller.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
        return [self.folder / f"{name}.{i}" for i in range(self.limit)]

    @staticmethod
    def _locked(path: Path) -> int | None:
        """A descriptor of ``path`` (created empty, 0600) holding its lock, or None where
        another descriptor holds it."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        return fd
