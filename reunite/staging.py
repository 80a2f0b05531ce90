"""Staged photos: a form's photos kept for a while after the form was refused, so the person
does not choose them again (and a group photo can wait for its face to be picked).

Each staged photo is two owner-only files (mode 0600) in one folder under the data folder,
named by a random token: ``<token>.photo`` (the bytes) and ``<token>.json`` (its owner, the
file name the person chose and when it was staged). A photo is given back only to its owner,
before it expires; expired ones are removed whenever the folder is used. Nothing here logs a
file name or a byte of a photo.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from reunite.errors import NotFound

STAGING_TTL_S = 3600
"""How long a staged photo is kept (seconds) unless the form is sent again with it."""
MAX_PER_OWNER = 30
"""Most photos one owner may have staged at once; staging another removes their oldest."""
_TOKEN = re.compile(r"^[A-Za-z0-9_\-]{22}$")


@dataclass(frozen=True)
class StagedPhoto:
    """A staged photo: its token (what a form sends back), its bytes and the file's name."""

    token: str
    filename: str
    data: bytes


class Staging:
    """The staging folder ``folder`` (made owner-only), whose photos expire after ``ttl_s``."""

    def __init__(
        self, folder: Path, *, ttl_s: float = STAGING_TTL_S, max_per_owner: int = MAX_PER_OWNER
    ) -> None:
        self.folder = folder
        self.ttl_s = ttl_s
        self.max_per_owner = max_per_owner

    def stage(self, owner: str, filename: str, data: bytes) -> StagedPhoto:
        """Keep ``data`` for ``owner`` (a user id, as the caller names users); its token."""
        self.remove_expired()
        self._make_room(owner)
        token = secrets.token_urlsafe(16)
        name = filename[:200]
        facts = {"owner": owner, "filename": name, "at": time.time()}
        _write_private(self._path(token, "photo"), data)
        _write_private(self._path(token, "json"), json.dumps(facts).encode("utf-8"))
        return StagedPhoto(token, name, data)

    def staged(self, owner: str, token: str) -> StagedPhoto:
        """The photo staged by ``owner`` as ``token``. Raises ``NotFound`` when there is none:
        a malformed token, another owner's, expired or removed."""
        facts = self._facts(token)
        if facts is None or facts.get("owner") != owner or self._expired(facts):
            raise NotFound("This kept photo is no longer kept; choose it again.")
        try:
            data = self._path(token, "photo").read_bytes()
        except OSError:
            raise NotFound("This kept photo is no longer kept; choose it again.") from None
        return StagedPhoto(token, str(facts.get("filename", "")), data)

    def remove(self, owner: str, token: str) -> None:
        """Remove ``owner``'s staged photo ``token`` (nothing if there is none)."""
        facts = self._facts(token)
        if facts is not None and facts.get("owner") == owner:
            self._delete(token)

    def remove_expired(self) -> int:
        """Remove every expired staged photo (and any half-written one); how many."""
        removed = 0
        if not self.folder.is_dir():
            return 0
        for path in self.folder.glob("*.json"):
            token = path.stem
            facts = self._facts(token)
            if facts is None or self._expired(facts):
                self._delete(token)
                removed += 1
        for path in self.folder.glob("*.photo"):  # bytes whose facts were never written
            if not path.with_suffix(".json").exists() and self._old(path):
                path.unlink(missing_ok=True)
        return removed

    def _make_room(self, owner: str) -> None:
        """Remove ``owner``'s oldest staged photos until one more fits ``max_per_owner``."""
        owned = []
        for path in self.folder.glob("*.json") if self.folder.is_dir() else []:
            facts = self._facts(path.stem)
            if facts is not None and facts.get("owner") == owner:
                at = facts.get("at")
                owned.append((at if isinstance(at, int | float) else 0.0, path.stem))
        for _, token in sorted(owned)[: max(0, len(owned) - self.max_per_owner + 1)]:
            self._delete(token)

    def _path(self, token: str, kind: str) -> Path:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.folder / f"{token}.{kind}"

    def _facts(self, token: str) -> dict[str, object] | None:
        if not _TOKEN.match(token):
            return None
        try:
            facts = json.loads(self._path(token, "json").read_bytes())
        except (OSError, ValueError):
            return None
        return facts if isinstance(facts, dict) else None

    def _expired(self, facts: dict[str, object]) -> bool:
        at = facts.get("at")
        return not isinstance(at, int | float) or time.time() - at > self.ttl_s

    def _old(self, path: Path) -> bool:
        try:
            return time.time() - path.stat().st_mtime > self.ttl_s
        except OSError:
            return False

    def _delete(self, token: str) -> None:
        for kind in ("photo", "json"):
            self._path(token, kind).unlink(missing_ok=True)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file only its owner may read (0600 from the start)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
