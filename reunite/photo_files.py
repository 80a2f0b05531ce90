"""Where photo files are kept: a local folder (the default) or an S3-compatible bucket.

A photo file is named by its bytes (``ab/ab….jpg``, see ``store.photo_file_name``), so a write
is idempotent and two cases with the same photo share one file. ``PhotoFiles`` is the one
interface the rest of reunite uses; ``photo_files_of(settings)`` picks the implementation from
``REUNITE_PHOTO_STORE``:

- empty (the default): ``LocalPhotoFiles``, files under ``<data_dir>/photos/``, written
  atomically (temp file, fsync, rename), as they always were;
- ``s3://bucket/prefix``: ``S3PhotoFiles``, objects ``prefix/ab/ab….jpg`` in that bucket, at
  ``REUNITE_S3_ENDPOINT_URL`` (empty: AWS itself). Credentials come from the standard AWS
  sources (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, a profile, an instance role),
  never from reunite's settings.

An object store that cannot be reached, or that refuses us, raises ``PhotoStoreUnavailable``
(503 on the API) naming the bucket and the reason, never the credentials. Both implementations
pickle (the re-embedding workers receive one); the S3 client is made again in each process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

from reunite.config import Settings
from reunite.errors import PhotoStoreUnavailable
from reunite.files import write_atomically

log = logging.getLogger(__name__)

S3_SCHEME = "s3://"
INDEX_BUILDS = "index-builds"
"""The folder of a bucket's prefix that holds published index builds (``reunite.index_builds``),
not photos: ``names`` leaves it out."""
PHOTO_CONSEQUENCE = (
    "Searches still work; photos can be added and viewed again once the photo store is back."
)


class PhotoFiles(Protocol):
    """Photo files by name (``ab/ab….jpg``). Every method may raise ``PhotoStoreUnavailable``."""

    def put(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name``, all or nothing; the same name always has the same
        bytes, so storing it again changes nothing."""

    def get(self, name: str) -> bytes:
        """The bytes stored under ``name``. Raises ``FileNotFoundError`` if there are none."""

    def exists(self, name: str) -> bool:
        """Whether ``name`` is stored."""

    def delete(self, name: str) -> None:
        """Remove ``name``; nothing happens if it is not stored."""

    def names(self) -> list[str]:
        """Every stored name, sorted (for backups)."""

    def describe(self) -> str:
        """Where the files are, for messages and logs (no credentials)."""


class LocalPhotoFiles:
    """Photo files in a local folder (``<data_dir>/photos``), owner-only."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, name: str) -> Path:
        """The file of ``name``."""
        return self.folder / name

    def put(self, name: str, data: bytes) -> None:
        write_atomically(self.path(name), data)

    def get(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(
            p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*") if p.is_file()
        )

    def describe(self) -> str:
        return str(self.folder)


class S3PhotoFiles:
    """Photo files as objects of an S3-compatible bucket (boto3)."""

    def __init__(
        self, url: str, *, endpoint_url: str = "", region: str = "", timeout_s: float = 5.0
    ) -> None:
        self.bucket, self.prefix = parsed_s3_url(url)
        self.endpoint_url = endpoint_url
        self.region = region
        self.timeout_s = timeout_s
        self._client: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}

    def key(self, name: str) -> str:
        """The object key of ``name``."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def put(self, name: str, data: bytes) -> None:
        self.request("store a photo in", "put_object", Key=self.key(name), Body=data)

    def get(self, name: str) -> bytes:
        try:
            answer = self.request("read a photo from", "get_object", Key=self.key(name))
            return bytes(answer["Body"].read())
        except ObjectMissing as exc:
            raise FileNotFoundError(f"no object {self.key(name)} in {self.describe()}") from exc

    def exists(self, name: str) -> bool:
        try:
            self.request("look for a photo in", "head_object", Key=self.key(name))
        except ObjectMissing:
            return False
        return True

    def delete(self, name: str) -> None:
        self.request("delete a photo from", "delete_object", Key=self.key(name))

    def names(self) -> list[str]:
        start = f"{self.prefix}/" if self.prefix else ""
        found: list[str] = []
        token: dict[str, str] = {}
        while True:
            page = self.request("list the photos of", "list_objects_v2", Prefix=start, **token)
            found.extend(item["Key"][len(start) :] for item in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return sorted(n for n in found if _is_photo_name(n))
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def describe(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.prefix}".rstrip("/")

    def client(self) -> Any:
        """This process's boto3 client, made on first use."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url or None,
                region_name=self.region or None,
                config=Config(
                    connect_timeout=self.timeout_s,
                    read_timeout=self.timeout_s,
                    retries={"max_attempts": 2, "mode": "standard"},
                ),
            )
        return self._client

    def request(
        self, doing: str, operation: str, *, then: str = PHOTO_CONSEQUENCE, **arguments: Any
    ) -> Any:
        """One S3 operation on the bucket; a missing key raises ``ObjectMissing``, every other
        failure ``PhotoStoreUnavailable`` ("Could not ``doing`` the photo store ... ``then``")."""
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client(), operation)(Bucket=self.bucket, **arguments)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in {"NoSuchKey", "404", "NotFound"}:
                raise ObjectMissing from exc
            reason = f"it answered {code or 'an error'}"
        except (BotoCoreError, Boto3Error) as exc:  # Boto3Error: a multipart upload failed
            reason = type(exc).__name__
        log.warning("photo store %s: could not %s it (%s)", self.describe(), doing, reason)
        raise PhotoStoreUnavailable(
            f"Could not {doing} the photo store {self.describe()} ({reason}). {then}",
            photo_store=self.describe(),
        )


class ObjectMissing(Exception):
    """No object under that key."""


def parsed_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` as (bucket, prefix without slashes at its ends). Raises
    ``ValueError`` naming what is wrong."""
    if not url.startswith(S3_SCHEME):
        raise ValueError(f"a photo store must be empty (the local folder) or {S3_SCHEME}bucket")
    bucket, _, prefix = url[len(S3_SCHEME) :].partition("/")
    if not 3 <= len(bucket) <= 63 or not all(c.isalnum() or c in ".-" for c in bucket):
        raise ValueError(f"{url!r} does not name a bucket (3 to 63 letters, digits, '.' or '-')")
    return bucket, prefix.strip("/")


def photo_files_of(settings: Settings) -> PhotoFiles:
    """The photo files that ``REUNITE_PHOTO_STORE`` names (see the module docstring)."""
    if not settings.photo_store:
        return LocalPhotoFiles(settings.photos_dir)
    return S3PhotoFiles(
        settings.photo_store,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        timeout_s=settings.s3_timeout_s,
    )


def _is_photo_name(name: str) -> bool:
    """Whether a listed name (the key less the prefix) is a photo: not an index build's
    file, and not a folder entry (``x/``, which SeaweedFS lists for a while after the
    folder's last object is deleted)."""
    return bool(name) and not name.endswith("/") and not name.startswith(f"{INDEX_BUILDS}/")
