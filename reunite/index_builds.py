"""Index builds published through the object store, for servers that share no folder.

With photos in a bucket (``REUNITE_PHOTO_STORE=s3://bucket/prefix``), each server keeps its
index in its own local folder (``REUNITE_INDEX_DIR``) and catches it up from the store, as
ever. A build made by ``reunite reindex`` reaches them through the bucket:

- ``publish`` uploads the build's index files and manifest as ``prefix/index-builds/<build
  id>/<file>``, then, last, the pointer ``prefix/index-builds/current.json``: the build id, its
  manifest (with each file's SHA-256) and the builds kept. A pointer therefore only ever names a
  build whose files are all there. Builds older than the last ``KEPT_BUILDS`` are deleted (and
  uploads abandoned for more than ``ABANDONED_AFTER``).
- ``fetch_newer`` (each server's index sync, every ``REUNITE_INDEX_SYNC_INTERVAL_S``, and at
  start) reads the pointer's ETag (one HEAD); when it changed and names a build newer than the
  one in the local folder, downloads the files into ``<index dir>/.incoming-<build id>/``,
  checks each against the manifest's SHA-256, and moves them into the folder, manifest last,
  under the folder's lock (``DirectoryLock``: among the workers of this machine only). The
  server then adopts the build as it adopts a local one (``reunite.live_index``), caught up
  with the store from the manifest's marks.

A damaged download is refused (``IndexUnusable``) and that pointer is not tried again; an
object store that is down raises ``PhotoStoreUnavailable``: the server keeps its index.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from reunite.config import Settings
from reunite.errors import Conflict, IndexUnusable, PhotoStoreUnavailable
from reunite.index_files import (
    MANIFEST_NAME,
    DirectoryLock,
    Manifest,
    install,
    manifest_of,
    read_manifest,
)
from reunite.photo_files import INDEX_BUILDS, ObjectMissing, S3PhotoFiles

log = logging.getLogger(__name__)

POINTER_NAME = f"{INDEX_BUILDS}/current.json"
KEPT_BUILDS = 3
"""Builds kept in the bucket: the current one and the two before it (a server still
downloading the previous one finishes; an operator can go back by hand)."""
ABANDONED_AFTER = timedelta(hours=1)
"""A build folder that no pointer names (a publish that died half-way) is deleted by the next
publish once its newest object is this old (a younger one may be a publish still running)."""
INCOMING_PREFIX = ".incoming-"
FETCHING_NAME = ".fetching"
"""The folder (in the index folder) whose lock one worker of a machine holds while it fetches a
build; the index folder's own lock is held only to move the checked files in."""
BUILD_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
CHUNK_BYTES = 1 << 20
PART_BYTES = 64 << 20
"""Index files larger than this are uploaded in parts this large (S3 allows 10,000 parts of
at least 5 MiB each: up to 640 GB)."""
THEN = "Servers keep their current index until a build can be read from it."
PUBLISH_THEN = (
    "The build is saved in this machine's index folder only, and the servers keep theirs; run "
    "`reunite reindex --skip-reembed` again once the photo store is back."
)


@dataclass(frozen=True)
class Published:
    """What the pointer names: the current build, its manifest, and the builds kept."""

    build_id: str
    manifest: Manifest
    kept: list[str]


class PublishedBuilds:
    """The index builds of one bucket prefix. Not thread-safe: one per ``LiveIndex``."""

    def __init__(self, files: S3PhotoFiles, *, part_bytes: int = PART_BYTES) -> None:
        self.files = files
        self.part_bytes = part_bytes
        self._seen_etag = ""
        """The pointer last dealt with: fetched, refused, or naming nothing newer."""

    @classmethod
    def of(cls, settings: Settings) -> PublishedBuilds | None:
        """The published builds of ``REUNITE_PHOTO_STORE``'s bucket; None without a bucket."""
        if not settings.photo_store:
            return None
        return cls(
            S3PhotoFiles(
                settings.photo_store,
                endpoint_url=settings.s3_endpoint_url,
                region=settings.s3_region,
                timeout_s=settings.s3_timeout_s,
            )
        )

    def describe(self, build_id: str = "") -> str:
        """Where the builds are (or one build), for messages."""
        return f"{self.files.describe()}/{INDEX_BUILDS}/{build_id}".rstrip("/")

    # ------------------------------------------------------------------ publish

    def publish(self, directory: Path, lock: DirectoryLock) -> Published:
        """Upload the build saved in ``directory`` and point to it (see the module docstring).

        Raises ``IndexUnusable`` (no build there, or a file that no longer matches its
        checksum), ``Conflict`` (a newer build is published already: another ``reunite
        reindex`` started later) and ``PhotoStoreUnavailable``. Cost: the index files' size in
        uploads, in parts of ``part_bytes``; the folder's lock is held only while the files
        are opened, so the servers of this machine go on syncing during the upload."""
        try:
            earlier: Published | None = self.current(then=PUBLISH_THEN)
        except (ObjectMissing, IndexUnusable):
            earlier = None
        with contextlib.ExitStack() as opened:
            with lock.held():  # files are replaced by rename: an open one stays this build's
                manifest = read_manifest(directory)
                if earlier is not None and _newer(earlier.manifest, manifest):
                    raise self._newer_published(earlier, manifest)
                handles = {
                    name: opened.enter_context((directory / name).open("rb"))
                    for name in manifest.files
                }
            for name, handle in handles.items():
                if hashlib.file_digest(handle, "sha256").hexdigest() != manifest.files[name]:
                    raise IndexUnusable(
                        f"Index file {name} does not match its manifest; not published."
                    )
                handle.seek(0)
                self._upload(manifest.build_id, name, handle)
        body = json.dumps(manifest.__dict__, indent=2).encode("utf-8")
        self.files.request(
            "publish an index build in",
            "put_object",
            then=PUBLISH_THEN,
            Key=self.files.key(f"{INDEX_BUILDS}/{manifest.build_id}/{MANIFEST_NAME}"),
            Body=body,
        )
        return self._point_to(manifest, earlier)

    def _upload(self, build_id: str, name: str, handle: BinaryIO) -> None:
        """Upload one index file of a build: in parts past ``part_bytes`` (a single upload is
        limited to 5 GiB, and a compressed index of 10M faces is over 5 GB)."""
        from boto3.s3.transfer import TransferConfig

        parts = TransferConfig(
            multipart_threshold=self.part_bytes,
            multipart_chunksize=self.part_bytes,
            use_threads=False,
        )
        self.files.request(
            "publish an index build in",
            "upload_fileobj",
            then=PUBLISH_THEN,
            Fileobj=handle,
            Key=self.files.key(f"{INDEX_BUILDS}/{build_id}/{name}"),
            Config=parts,
        )

    def _point_to(self, manifest: Manifest, earlier: Published | None) -> Published:
        """Write the pointer to the uploaded build ``manifest``, unless a newer build was
        published meanwhile (``Conflict``); then delete the builds no longer kept."""
        try:
            now: Published | None = self.current(then=PUBLISH_THEN)
        except (ObjectMissing, IndexUnusable):
            now = None
        if now is not None and _newer(now.manifest, manifest):
            raise self._newer_published(now, manifest)
        latest = now if now is not None else earlier
        before = latest.kept if latest is not None else []
        kept = [manifest.build_id, *(b for b in before if b != manifest.build_id)][:KEPT_BUILDS]
        pointer = {
            "build_id": manifest.build_id,
            "published_at": datetime.now(UTC).isoformat(),
            "kept": kept,
            "manifest": manifest.__dict__,
        }
        self.files.request(
            "publish an index build in",
            "put_object",
            then=PUBLISH_THEN,
            Key=self.files.key(POINTER_NAME),
            Body=json.dumps(pointer, indent=2).encode("utf-8"),
        )
        log.info("index: build %s published to %s", manifest.build_id, self.describe())
        try:
            self._delete_unkept(kept, manifest)
        except PhotoStoreUnavailable as exc:  # published all the same: the next run tries again
            log.warning("index: old builds not deleted: %s", exc)
        return Published(manifest.build_id, manifest, kept)

    def _newer_published(self, newer: Published, mine: Manifest) -> Conflict:
        return Conflict(
            f"A newer index build ({newer.build_id}, built at {newer.manifest.built_at}) is "
            f"already published in {self.describe()}; this one ({mine.build_id}) stays in this "
            "machine's index folder."
        )

    def _delete_unkept(self, kept: list[str], mine: Manifest) -> None:
        """Delete the objects of builds not ``kept``, except a complete build newer than
        ``mine`` (another run's, about to write its pointer) and an incomplete one younger
        than ``ABANDONED_AFTER`` (perhaps an upload still running)."""
        start = self.files.key(f"{INDEX_BUILDS}/")
        objects: dict[str, list[dict[str, Any]]] = {}
        token: dict[str, str] = {}
        while True:
            page = self.files.request(
                "list the index builds of", "list_objects_v2", then=THEN, Prefix=start, **token
            )
            for item in page.get("Contents", []):
                build, _, rest = item["Key"][len(start) :].partition("/")
                if rest:
                    objects.setdefault(build, []).append(item)
            if not page.get("IsTruncated"):
                break
            token = {"ContinuationToken": page["NextContinuationToken"]}
        now = datetime.now(UTC)
        for build, items in objects.items():
            if build in kept:
                continue
            complete = any(item["Key"].endswith(f"/{MANIFEST_NAME}") for item in items)
            if complete and self._is_newer_build(build, mine):
                continue
            newest = max(item["LastModified"] for item in items)
            if not complete and now - newest < ABANDONED_AFTER:
                continue
            for item in items:
                self.files.request(
                    "delete an old index build from", "delete_object", then=THEN, Key=item["Key"]
                )
            log.info("index: deleted old build %s from %s", build, self.describe())

    def _is_newer_build(self, build_id: str, mine: Manifest) -> bool:
        """Whether the uploaded build ``build_id``'s manifest says it is newer than ``mine``
        (False for a manifest that cannot be read: that build is not worth keeping; a store
        that fails to answer raises ``PhotoStoreUnavailable``, and the caller stops)."""
        key = f"{INDEX_BUILDS}/{build_id}/{MANIFEST_NAME}"
        try:
            raw = self._json_at("read an index build's manifest in", key, THEN)
            theirs = manifest_of(raw, f"of build {build_id}")
        except (ObjectMissing, IndexUnusable, ValueError, TypeError):
            return False
        return _newer(theirs, mine)

    def _json_at(self, doing: str, key: str, then: str) -> Any:
        """The JSON value of the object ``key`` (under the prefix). Raises ``ObjectMissing``,
        ``ValueError`` (not JSON) and ``PhotoStoreUnavailable``, also for a body cut off while
        it is read."""
        from botocore.exceptions import BotoCoreError

        answer = self.files.request(doing, "get_object", then=then, Key=self.files.key(key))
        try:
            return json.loads(answer["Body"].read())
        except (BotoCoreError, OSError) as exc:
            raise self._unavailable(doing, exc, then) from exc

    # -------------------------------------------------------------------- fetch

    def current(self, *, then: str = THEN) -> Published:
        """The build the pointer names. Raises ``ObjectMissing`` (none published yet),
        ``IndexUnusable`` (a malformed pointer) and ``PhotoStoreUnavailable``."""
        try:
            raw = self._json_at("read the index build pointer of", POINTER_NAME, then)
            build_id, kept = raw["build_id"], raw["kept"]
            manifest = manifest_of(raw["manifest"], f"of {self.describe(str(build_id))}")
        except (ValueError, TypeError, KeyError) as exc:
            raise IndexUnusable(
                f"The index build pointer of {self.describe()} is malformed."
            ) from exc
        if not (
            isinstance(build_id, str)
            and BUILD_ID.fullmatch(build_id)
            and build_id == manifest.build_id
            and isinstance(kept, list)
            and all(isinstance(b, str) and BUILD_ID.fullmatch(b) for b in kept)
        ):
            raise IndexUnusable(f"The index build pointer of {self.describe()} is malformed.")
        return Published(build_id, manifest, kept)

    def fetch_newer(
        self, directory: Path, lock: DirectoryLock, writing: AbstractContextManager[Any]
    ) -> str | None:
        """Bring the published build into ``directory`` if it is newer than the one there (see
        the module docstring); returns its id, or None when there was nothing to fetch. The
        files are moved in holding ``lock`` and ``writing`` (``LiveIndex.saving``: a stop waits
        for it, so none is left half moved in).

        Cost: one HEAD request when the pointer has not changed. Raises ``IndexUnusable`` (a
        damaged or malformed build, refused: not tried again until the pointer changes) and
        ``PhotoStoreUnavailable`` (tried again at the next call)."""
        try:
            head = self.files.request(
                "look for index builds in",
                "head_object",
                then=THEN,
                Key=self.files.key(POINTER_NAME),
            )
        except ObjectMissing:
            return None
        etag = str(head.get("ETag", ""))
        if etag and etag == self._seen_etag:
            return None
        try:
            published = self.current()
        except ObjectMissing:
            return None
        except IndexUnusable:
            self._seen_etag = etag
            raise
        # One download per machine: its other workers wait here, then find the build on disk.
        with DirectoryLock(directory / FETCHING_NAME).held():
            if not _newer_than_disk(published.manifest, directory):
                self._seen_etag = etag
                return None
            incoming = directory / f"{INCOMING_PREFIX}{published.build_id}-{os.getpid()}"
            try:
                self._download(published, incoming)
                with lock.held(), writing:  # no worker loads or saves meanwhile
                    if _newer_than_disk(published.manifest, directory):  # still (a rebuild?)
                        _move_in(published.manifest, incoming, directory)
            except IndexUnusable:
                self._seen_etag = etag
                raise
            finally:
                shutil.rmtree(incoming, ignore_errors=True)
        self._seen_etag = etag
        log.info("index: fetched build %s from %s", published.build_id, self.describe())
        return published.build_id

    def _download(self, published: Published, incoming: Path) -> None:
        """The build's files, each checked against its SHA-256, into the folder ``incoming``.
        Raises ``IndexUnusable`` for a damaged file."""
        _remove_abandoned_downloads(incoming.parent)
        shutil.rmtree(incoming, ignore_errors=True)
        incoming.mkdir(mode=0o700, parents=True)
        for name, digest in published.manifest.files.items():
            try:
                fetched = self._fetched(published.build_id, name, incoming / name)
            except ObjectMissing as exc:  # deleted by hand, or by a lifecycle rule
                raise IndexUnusable(
                    f"Index file {name} of build {published.build_id} is missing from "
                    f"{self.describe()} (incomplete build); not adopted."
                ) from exc
            if fetched != digest:
                raise IndexUnusable(
                    f"Index file {name} of build {published.build_id} from {self.describe()} "
                    "does not match its checksum (damaged); not adopted."
                )

    def _fetched(self, build_id: str, name: str, path: Path) -> str:
        """Download one file of a build to ``path`` (owner-only, synced); its SHA-256."""
        from botocore.exceptions import BotoCoreError

        answer = self.files.request(
            "download an index build from",
            "get_object",
            then=THEN,
            Key=self.files.key(f"{INDEX_BUILDS}/{build_id}/{name}"),
        )
        digest = hashlib.sha256()
        try:
            with os.fdopen(
                os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb"
            ) as out:
                for chunk in answer["Body"].iter_chunks(CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BotoCoreError as exc:
            raise self._unavailable("download an index build from", exc) from exc
        return digest.hexdigest()

    def _unavailable(self, doing: str, exc: Exception, then: str = THEN) -> PhotoStoreUnavailable:
        reason = type(exc).__name__
        log.warning("photo store %s: could not %s it (%s)", self.files.describe(), doing, reason)
        return PhotoStoreUnavailable(
            f"Could not {doing} the photo store {self.files.describe()} ({reason}). {then}",
            photo_store=self.files.describe(),
        )


def _newer_than_disk(published: Manifest, directory: Path) -> bool:
    """Whether the published build is newer than the build saved in ``directory`` (or that
    folder holds none that can be read)."""
    try:
        on_disk = read_manifest(directory)
    except IndexUnusable:
        return True
    return _newer(published, on_disk)


def _newer(one: Manifest, other: Manifest) -> bool:
    """Whether ``one`` is a newer build than ``other`` (started later from the store)."""
    return one.build_id != other.build_id and one.built_at > other.built_at


def _remove_abandoned_downloads(directory: Path) -> None:
    """Delete download folders left by a process killed while fetching (``ABANDONED_AFTER``
    old: a younger one may be another worker's download still running)."""
    oldest = datetime.now(UTC).timestamp() - ABANDONED_AFTER.total_seconds()
    for folder in directory.glob(f"{INCOMING_PREFIX}*"):
        with contextlib.suppress(OSError):
            if folder.stat().st_mtime < oldest:
                shutil.rmtree(folder, ignore_errors=True)


def _move_in(manifest: Manifest, incoming: Path, directory: Path) -> None:
    """Install the checked files of ``incoming`` and their manifest in the index folder
    (``index_files.install``). Call it under the folder's lock."""
    install(directory, {incoming / name: directory / name for name in manifest.files}, manifest)
