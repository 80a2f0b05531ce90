"""Backups: a consistent snapshot of the store, the photo files and the index, and its restore.

A backup is a directory, or the same as an uncompressed ``.tar`` archive (photos are
compressed already)::

    manifest.json         format, version, created_at, database kind, schema revision, row
                          counts, and the SHA-256 and size of every other file
    database.sqlite3      SQLite: a copy made with SQLite's backup API (one consistent
                          snapshot, taken while servers keep reading and writing)
    database.pgdump       PostgreSQL: ``pg_dump -Fc`` of an exported snapshot, the same one the
                          counts and the list of photos are read from
    photos/ab/ab….jpg     the photo files the snapshot's rows name, and only those (read from
                          the photos folder or the S3 bucket, ``reunite.photo_files``)
    index/                the index files and their manifest, copied under the index lock

Face crops are left out (they are made again on first view), and so are the session key
(``<data_dir>/secret_key``: sessions simply end) and the settings. A photo whose file is gone
by the time it is copied (its case was erased after the snapshot) is listed in
``missing_photos`` and left out.

``restore`` checks every file against the manifest, refuses to overwrite a store that holds
cases, photos, users or keys (or a photo store with files) unless forced, then restores the
database (SQLite: the backup API again; PostgreSQL: ``pg_restore --clean``), the photos and the
index, then opens the store there, which migrates the schema if the backup is older, and
loads the index (``LiveIndex``), catching it up with the store (or rebuilding it).

The backup holds every name, photo and embedding of the store: keep it as carefully as the
store (it is written readable by its owner only), and let it expire, since an erased case
lives on in the backups made before the erasure.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import Connection, make_url

from reunite import __version__, privacy
from reunite.config import Settings
from reunite.errors import Conflict, IndexUnusable, InvalidInput, ReuniteError
from reunite.index import MANIFEST_NAME, DirectoryLock, read_manifest
from reunite.photo_files import LocalPhotoFiles, PhotoFiles, photo_files_of
from reunite.store import PhotoRow, Store, photo_file_name

log = logging.getLogger(__name__)

FORMAT = "reunite-backup"
VERSION = 1
MANIFEST = "manifest.json"
DATABASE_FILES = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
COUNTED_TABLES = (
    "cases",
    "photos",
    "faces",
    "candidates",
    "candidate_decisions",
    "users",
    "api_keys",
    "webhooks",
    "outbox_events",
    "audit_events",
)
OCCUPYING_TABLES = ("cases", "photos", "users", "api_keys")
"""A store with a row in any of these is not empty: restoring over it needs ``force``."""
PG_RESTORE_OPTIONS = (
    "--clean",
    "--if-exists",
    "--no-owner",
    "--no-privileges",
    "--single-transaction",
    "--exit-on-error",
)
"""Replace what the database holds, as one transaction; owned by whoever restores."""
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Snapshot:
    """What the database snapshot holds: row counts, schema revision, and the photo files its
    rows name (relative paths under ``photos/``)."""

    counts: dict[str, int]
    revision: str | None
    photo_files: list[str]


def database_kind(url: str) -> str:
    """``sqlite`` or ``postgresql``. Raises ``InvalidInput`` for any other database."""
    backend = make_url(url).get_backend_name()
    if backend not in DATABASE_FILES:
        raise InvalidInput(f"Backups cover SQLite and PostgreSQL stores, not {backend}.")
    return backend


# ------------------------------------------------------------------------------------ backup


def backup(settings: Settings, destination: Path) -> dict[str, Any]:
    """Write a backup of the store, its photos and its index to ``destination`` (a new or
    empty directory, or a new ``*.tar`` file); returns its manifest.

    Safe while servers run: the database is read from one snapshot, and photo files are only
    ever added or removed whole. Cost: a copy of the database and of every photo file.

    Raises:
        Conflict: ``destination`` exists (a file, or a directory that is not empty).
        InvalidInput: a database other than SQLite or PostgreSQL, or ``pg_dump`` missing.
    """
    archive = destination.suffix == ".tar"
    if destination.exists() and (archive or not destination.is_dir() or any(destination.iterdir())):
        raise Conflict(f"{destination} exists; back up to a new file or an empty folder.")
    url = settings.resolved_database_url
    kind = database_kind(url)
    destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=destination.parent, prefix=".reunite-backup-"))
    try:
        database_file = staging / DATABASE_FILES[kind]
        if kind == "sqlite":
            snapshot = _sqlite_snapshot(url, database_file)
        else:
            snapshot = _postgresql_snapshot(url, database_file)
        missing = _copy_photos(photo_files_of(settings), staging / "photos", snapshot.photo_files)
        _copy_index(settings.index_dir, staging / "index")
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "created_at": datetime.now(UTC).isoformat(),
            "reunite_version": __version__,
            "database": {"kind": kind, "file": database_file.name, "revision": snapshot.revision},
            "counts": snapshot.counts | {"photo_files": len(snapshot.photo_files) - len(missing)},
            "missing_photos": missing,
            "files": {
                path.relative_to(staging).as_posix(): {
                    "sha256": _sha256_of(path),
                    "bytes": path.stat().st_size,
                }
                for path in sorted(staging.rglob("*"))
                if path.is_file()
            },
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        for path in staging.rglob("*"):  # the owner's only, as the store should be
            os.chmod(path, 0o700 if path.is_dir() else 0o600)
        if archive:
            _write_archive(staging, destination)
        else:
            if destination.exists():
                destination.rmdir()
            os.replace(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if missing:
        log.warning("backup: %d photo files were gone when copied (erased meanwhile)", len(missing))
    log.info("backup: %s written (%s)", destination, manifest["counts"])
    return manifest


def _sqlite_snapshot(url: str, target: Path) -> Snapshot:
    """Copy the SQLite database with its backup API, in one step (one consistent snapshot, even
    while others write), as a self-contained file (no write-ahead log)."""
    source_path = _sqlite_path(url)
    if not source_path.exists():
        raise InvalidInput(f"There is no store at {source_path} to back up.")
    with (
        closing(sqlite3.connect(source_path)) as source,
        closing(sqlite3.connect(target)) as copy,
    ):
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")
    engine = create_engine(f"sqlite:///{target.as_posix()}")
    try:
        with engine.connect() as connection:
            return _snapshot_of(connection)
    finally:
        engine.dispose()


def _postgresql_snapshot(url: str, target: Path) -> Snapshot:
    """``pg_dump -Fc`` of a snapshot exported from a repeatable-read transaction, from which
    the counts and the photo list are read too: all three agree exactly."""
    pg_dump = _tool("pg_dump")
    engine = create_engine(url)
    try:
        with (
            engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection,
            connection.begin(),
        ):
            exported = connection.scalar(text("SELECT pg_export_snapshot()"))
            snapshot = _snapshot_of(connection)
            _run(
                [pg_dump, "--format=custom", f"--snapshot={exported}", f"--file={target}"],
                url,
            )
    finally:
        engine.dispose()
    return snapshot


def _snapshot_of(connection: Connection) -> Snapshot:
    counts = _row_counts(connection, COUNTED_TABLES)
    revision = (
        connection.scalar(text("SELECT version_num FROM alembic_version"))
        if inspect(connection).has_table("alembic_version")
        else None
    )
    rows = connection.execute(
        select(PhotoRow.sha256, PhotoRow.format).distinct().where(privacy.live_photo())
    ).all()
    photos = sorted(photo_file_name(row.sha256, row.format) for row in rows)
    return Snapshot(counts, revision, photos)


def _copy_photos(files: PhotoFiles, target: Path, names: list[str]) -> list[str]:
    """Copy the named photo files (from the local folder or the bucket); returns those that
    were gone."""
    missing = []
    for name in names:
        (target / name).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            data = files.get(name)
        except FileNotFoundError:
            missing.append(name)
            continue
        (target / name).write_bytes(data)
    return missing


def _copy_index(index_dir: Path, target: Path) -> None:
    """Copy the index files its manifest names, and the manifest, under the index lock (no
    save replaces them half way). An unreadable manifest copies nothing: restore rebuilds."""
    if not (index_dir / MANIFEST_NAME).exists():
        return
    target.mkdir(mode=0o700)
    with DirectoryLock(index_dir).held():
        try:
            names = [*read_manifest(index_dir).files, MANIFEST_NAME]
        except IndexUnusable as exc:
            log.warning("backup: the index is not copied (%s)", exc)
            return
        for name in names:
            if (index_dir / name).exists():
                shutil.copyfile(index_dir / name, target / name)


def _write_archive(staging: Path, destination: Path) -> None:
    """An uncompressed tar of the staging folder, manifest first, written atomically."""
    partial = destination.with_name(f".{destination.name}.partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
        archive.add(staging / MANIFEST, arcname=MANIFEST, filter=_anonymous)
        for path in sorted(staging.rglob("*")):
            if path != staging / MANIFEST:
                name = path.relative_to(staging).as_posix()
                archive.add(path, arcname=name, recursive=False, filter=_anonymous)
    os.chmod(partial, 0o600)
    os.replace(partial, destination)


def _anonymous(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """An archive member readable by its owner only, with no user or group names."""
    member.mode = 0o700 if member.isdir() else 0o600
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member


# ----------------------------------------------------------------------------------- restore


def restore(settings: Settings, source: Path, *, force: bool = False) -> dict[str, Any]:
    """Restore a backup (a directory or a ``.tar``) into the store, photos folder and index of
    ``settings``; returns what was restored and how the index was made ready.

    Stop the servers first. With ``force``, an existing store is replaced, and the photos, face
    crops and index files already there are deleted first.

    Raises:
        InvalidInput: not a backup, a file that does not match the manifest, a database kind
            other than the store's, or ``pg_restore`` missing.
        Conflict: the store (or photos folder) is not empty and ``force`` is not given.
    """
    from reunite.live_index import LiveIndex  # FAISS: only for a restore

    url = settings.resolved_database_url
    kind = database_kind(url)
    with _unpacked(source, settings.data_dir) as folder:
        manifest = _checked_manifest(folder)
        if manifest["database"]["kind"] != kind:
            raise InvalidInput(
                f"The backup holds a {manifest['database']['kind']} database; this store is "
                f"{kind}. Restore it into a {manifest['database']['kind']} store."
            )
        occupied = _occupied(settings)
        if occupied and not force:
            raise Conflict(
                f"The target is not empty ({occupied}). Restore into an empty data folder and "
                "database, or pass --force to replace what is there."
            )
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        files = photo_files_of(settings)
        _remove_photo_files(settings, files)
        # Crops are named by face ids of the old store.
        shutil.rmtree(settings.data_dir / "crops", ignore_errors=True)
        database_file = folder / manifest["database"]["file"]
        if kind == "sqlite":
            _restore_sqlite(database_file, _sqlite_path(url))
        else:
            _run([_tool("pg_restore"), *PG_RESTORE_OPTIONS, str(database_file)], url, dbname=True)
        photos = [name for name in manifest["files"] if name.startswith("photos/")]
        for name in photos:
            files.put(
                PurePosixPath(name).relative_to("photos").as_posix(), (folder / name).read_bytes()
            )
        _restore_index(folder / "index", settings.index_dir)
    if isinstance(files, LocalPhotoFiles):
        settings.photos_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = Store(url)  # migrates the schema if the backup is older
    try:
        with store.engine.connect() as connection:
            counts = _snapshot_of(connection).counts
        live = LiveIndex(settings, store, write_lock=threading.RLock())
        report = live.make_ready()
        live.save_at_shutdown()
    finally:
        store.close()
    expected = {k: v for k, v in manifest["counts"].items() if k in counts}
    if counts != expected:
        log.warning("restore: row counts %s differ from the backup's %s", counts, expected)
    log.info("restore: %s restored (%s); index %s", source, counts, report.how)
    return {
        "restored_from": str(source),
        "created_at": manifest["created_at"],
        "database": kind,
        "counts": counts | {"photo_files": len(photos)},
        "index": {"how": report.how, "reason": report.reason, "counts": report.counts},
    }


@contextmanager
def _unpacked(source: Path, beside: Path) -> Iterator[Path]:
    """The backup's folder: ``source`` itself, or a ``.tar`` unpacked into a temporary folder
    (regular files and folders only, every path inside the folder)."""
    if source.is_dir():
        yield source
        return
    if not source.is_file() or not tarfile.is_tarfile(source):
        raise InvalidInput(f"{source} is neither a backup folder nor a .tar backup.")
    beside.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=beside.parent, prefix=".reunite-restore-"))
    try:
        with tarfile.open(source) as archive:
            for member in archive:
                path = PurePosixPath(member.name)
                if path.is_absolute() or ".." in path.parts:
                    raise InvalidInput(f"The archive has an unsafe path: {member.name!r}.")
                target = folder.joinpath(*path.parts)
                if member.isdir():
                    target.mkdir(mode=0o700, parents=True, exist_ok=True)
                elif member.isfile():
                    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                    extracted = archive.extractfile(member)
                    assert extracted is not None  # a regular file always has contents
                    with extracted, target.open("wb") as out:
                        shutil.copyfileobj(extracted, out, CHUNK)
                else:
                    raise InvalidInput(f"The archive holds a link or device: {member.name!r}.")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _checked_manifest(folder: Path) -> dict[str, Any]:
    """The backup's manifest, after checking every file it lists (size and SHA-256)."""
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{folder} holds no readable {MANIFEST}: not a backup.") from exc
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise InvalidInput(
            f"Not a reunite backup of version {VERSION} (format {manifest.get('format')!r}, "
            f"version {manifest.get('version')!r})."
        )
    for name, facts in manifest["files"].items():
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            raise InvalidInput(f"The manifest names an unsafe path: {name!r}.")
        file = folder.joinpath(*path.parts)
        if not file.is_file() or file.stat().st_size != facts["bytes"]:
            raise InvalidInput(f"The backup's file {name} is missing or has the wrong size.")
        if _sha256_of(file) != facts["sha256"]:
            raise InvalidInput(f"The backup's file {name} does not match its SHA-256 (damaged).")
    if manifest["database"]["file"] not in manifest["files"]:
        raise InvalidInput("The backup holds no database file.")
    return manifest


def _occupied(settings: Settings) -> str | None:
    """What makes the target not empty (``"3 cases, photo files"``), or None."""
    found = []
    url = settings.resolved_database_url
    if make_url(url).get_backend_name() != "sqlite" or _sqlite_path(url).exists():
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                counts = _row_counts(connection, OCCUPYING_TABLES)
                found += [f"{rows} {table}" for table, rows in counts.items() if rows]
        finally:
            engine.dispose()
    if photo_files_of(settings).names():
        found.append("photo files")
    return ", ".join(found) or None


def _remove_photo_files(settings: Settings, files: PhotoFiles) -> None:
    """Delete every photo file there is (a forced restore replaces them)."""
    if isinstance(files, LocalPhotoFiles):
        shutil.rmtree(settings.photos_dir, ignore_errors=True)
        return
    for name in files.names():
        files.delete(name)


def _restore_sqlite(snapshot: Path, target: Path) -> None:
    """Copy the snapshot into the store's file with the backup API (which keeps the file and
    its write-ahead log consistent, whatever was there)."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with closing(sqlite3.connect(snapshot)) as source, closing(sqlite3.connect(target)) as store:
        source.backup(store)
        store.execute("PRAGMA journal_mode=WAL")


def _restore_index(source: Path, index_dir: Path) -> None:
    """Replace the index files with the backup's (none in the backup: the service rebuilds)."""
    index_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with DirectoryLock(index_dir).held():
        for path in [index_dir / MANIFEST_NAME, *index_dir.glob("*.faiss")]:
            path.unlink(missing_ok=True)
        if source.is_dir():
            for path in sorted(source.glob("*.faiss")):
                shutil.copyfile(path, index_dir / path.name)
            if (source / MANIFEST_NAME).exists():  # the manifest last
                shutil.copyfile(source / MANIFEST_NAME, index_dir / MANIFEST_NAME)


# ----------------------------------------------------------------------------------- helpers


def _row_counts(connection: Connection, tables: Iterable[str]) -> dict[str, int]:
    """Rows in each of ``tables`` that the database has (the others are left out)."""
    present = set(inspect(connection).get_table_names())
    return {
        table: int(connection.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
        for table in tables
        if table in present
    }


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise InvalidInput("An in-memory SQLite store cannot be backed up or restored.")
    return Path(database)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise InvalidInput(
            f"{name} is not installed; install the PostgreSQL client tools (Debian: "
            "postgresql-client) of the server's version or newer."
        )
    return found


def _run(command: list[str], url: str, *, dbname: bool = False) -> None:
    """Run a PostgreSQL tool against ``url``, the connection given in ``PG*`` variables (never
    on the command line, where other users could read the password).

    Raises ``ReuniteError`` with the tool's last words when it fails.
    """
    parsed = make_url(url)
    env = dict(os.environ)
    for variable, value in (
        ("PGHOST", parsed.host),
        ("PGPORT", parsed.port),
        ("PGUSER", parsed.username),
        ("PGPASSWORD", parsed.password),
        ("PGDATABASE", parsed.database),
        ("PGSSLMODE", parsed.query.get("sslmode")),
    ):
        if value is not None:
            env[variable] = str(value)
    if dbname:
        command = [*command[:-1], f"--dbname={parsed.database}", command[-1]]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ReuniteError(
            f"{Path(command[0]).name} failed (exit {done.returncode}): "
            f"{done.stderr.strip()[-2000:]}"
        )
