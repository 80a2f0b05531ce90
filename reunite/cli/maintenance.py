"""``reunite purge``, ``reunite backup`` and ``reunite restore``: retention and safe copies."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from reunite.cli.shared import actor, loaded_settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``purge``, ``backup`` and ``restore``."""
    purge = commands.add_parser(
        "purge",
        help="erase the biometric data of cases closed longer than REUNITE_RETENTION_DAYS",
        description="Erase the photos (files), face crops and embeddings of every case closed "
        "more than REUNITE_RETENTION_DAYS days ago (365 by default; 0 turns retention off). "
        "The case record, its candidates and their decisions stay. A case counts as closed "
        "from the audit event that closed it. Safe while servers run: they drop the faces "
        "within REUNITE_INDEX_SYNC_INTERVAL_S. Run it daily (cron, a systemd timer). Prints "
        "one JSON object: the cases (ids, closing times, counts) and the totals.",
    )
    purge.add_argument(
        "--dry-run", action="store_true", help="print what would be erased; change nothing"
    )
    purge.set_defaults(run=purge_expired)

    backup = commands.add_parser(
        "backup",
        help="write a consistent backup of the store, photos and index",
        description="Write a backup to DEST: a new (or empty) folder, or a new file ending in "
        ".tar. It holds one consistent snapshot of the database (SQLite: its backup API; "
        "PostgreSQL: pg_dump -Fc, which must be installed), the photo files it names, the "
        "index files, and manifest.json (version, time, database kind, counts, SHA-256 of "
        "every file). Safe while servers run. The backup holds every name and photo: keep it "
        "safe and let it expire. Prints the manifest's summary as JSON.",
    )
    backup.add_argument("destination", type=Path, help="a new folder, or a new FILE.tar")
    backup.set_defaults(run=write_backup)

    restore = commands.add_parser(
        "restore",
        help="restore a backup into this data folder and database",
        description="Restore the backup at SOURCE (a folder or a .tar written by reunite "
        "backup) into the store, photos folder and index of the current settings, after "
        "checking every file against its manifest, then open the service there (the schema "
        "is migrated, the index caught up or rebuilt). Refuses a store that holds cases, "
        "photos, users or keys, or a photos folder with files (exit 5), unless --force. Stop "
        "the servers first. Prints what was restored as JSON.",
    )
    restore.add_argument("source", type=Path, help="a backup folder or .tar file")
    restore.add_argument(
        "--force",
        action="store_true",
        help="replace a store that is not empty (its photos, crops and index files too)",
    )
    restore.set_defaults(run=restore_backup)


def purge_expired(args: argparse.Namespace) -> int:
    """Erase (or, dry, list) the biometrics of cases closed past retention; prints a summary."""
    from reunite.service import Reunite

    with Reunite.open(loaded_settings(), load_index=not args.dry_run) as service:
        report = service.purge_expired(actor=actor(), dry_run=args.dry_run)
    print(json.dumps(report.summary()))
    return 0


def write_backup(args: argparse.Namespace) -> int:
    """Write a backup to the destination; prints the manifest's summary."""
    from reunite.backup import backup

    manifest = backup(loaded_settings(), args.destination)
    summary = {k: v for k, v in manifest.items() if k not in ("files", "missing_photos")}
    files = manifest["files"]
    print(
        json.dumps(
            summary
            | {
                "destination": str(args.destination),
                "files": len(files),
                "bytes": sum(f["bytes"] for f in files.values()),
                "missing_photos": len(manifest["missing_photos"]),
            }
        )
    )
    return 0


def restore_backup(args: argparse.Namespace) -> int:
    """Restore a backup into the current settings' store; prints what was restored."""
    from reunite.backup import restore

    print(json.dumps(restore(loaded_settings(), args.source, force=args.force)))
    return 0
