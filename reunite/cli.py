"""The ``reunite`` command line: a thin layer over ``Reunite``; errors become exit codes here.

Exit codes: 0 success; 1 some items of a batch failed (each is reported); 2 bad usage;
3 not found; 4 invalid input (unreadable file, bad photo, no face, bad field); 5 conflict
(a non-empty store to restore over); 6 index unusable; 7 unsafe configuration (``serve`` with
a weak REUNITE_SECRET_KEY in production).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import getpass
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reunite import errors, imaging, importing
from reunite.batch import prepared_photos
from reunite.config import Settings
from reunite.service import Enrollment, Reunite
from reunite.store import Case

EXIT_CODES: dict[type[errors.ReuniteError], int] = {
    errors.NotFound: 3,
    errors.InvalidInput: 4,
    errors.Conflict: 5,
    errors.IndexUnusable: 6,
    errors.UnsafeConfiguration: 7,
}
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
MIN_SAME_PAIRS, MIN_DIFFERENT_PAIRS = 20, 100
"""Least evidence ``reunite calibrate`` fits on: fewer pairs make a curve that means nothing."""
MANIFEST_CASE_COLUMNS = importing.CASE_COLUMNS


def exit_code_of(error: errors.ReuniteError) -> int:
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.run(args))
    except errors.ReuniteError as exc:
        print(f"error ({exc.code}): {exc.message}", file=sys.stderr)
        return exit_code_of(exc)
    except OSError as exc:
        print(f"error (unreadable_file): {exc}", file=sys.stderr)
        return EXIT_CODES[errors.InvalidInput]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reunite",
        description="Face matching to reunite lost people with their families. Settings come "
        "from REUNITE_* environment variables (REUNITE_DATA_DIR, REUNITE_INDEX_DIR, "
        "REUNITE_DATABASE_URL, ...).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (ids only)")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="serve the HTTP API", description="Serve the HTTP API (docs at /docs)."
    )
    serve.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default 1, or REUNITE_WORKERS); each loads the index",
    )
    serve.set_defaults(run=_serve)

    enroll = commands.add_parser(
        "enroll",
        help="enroll a case from a folder of photos, or many from a CSV manifest",
        description="Enroll one case from the photos in FOLDER (facts from the options), or "
        "every case of a CSV manifest (--manifest) whose columns are "
        f"{', '.join(MANIFEST_CASE_COLUMNS)} and photos (paths relative to the manifest, "
        "separated by ';'). A case whose agency and external_ref already exist is reused, and "
        "photos already enrolled are skipped, so a run can be repeated safely. Each photo must "
        "show one face. Prints one JSON line per photo (or per bad row); exits 1 if any failed.",
    )
    source = enroll.add_mutually_exclusive_group(required=True)
    source.add_argument("folder", nargs="?", type=Path, help="folder of JPEG/PNG/WebP photos")
    source.add_argument("--manifest", type=Path, help="CSV manifest of cases")
    enroll.add_argument("--kind", choices=["missing", "found"], help="case kind (folder mode)")
    enroll.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes that decode and embed photos (default: one per core)",
    )
    for column in MANIFEST_CASE_COLUMNS[1:]:
        enroll.add_argument(f"--{column.replace('_', '-')}", dest=column, help=f"case {column}")
    enroll.set_defaults(run=_enroll)

    import_cases = commands.add_parser(
        "import",
        help="import an archive of cases from a CSV or JSON-lines manifest",
        description="Create or update every case of MANIFEST and enroll its photos. MANIFEST "
        "is a .csv file (columns: "
        f"{', '.join(MANIFEST_CASE_COLUMNS)}, photos; photos separated by ';') or a .jsonl "
        "file (one JSON object a line with the same keys, photos a list). Photo paths are "
        "relative to the manifest's folder. A case is found again by agency and external_ref, "
        "and photos already enrolled in their case are skipped before detection, so running it "
        "again changes nothing, and an interrupted run resumes where it stopped. Bad rows and "
        "photos are written to the report (row, external_ref, photo, code, reason) and the run "
        "goes on. Prints a summary as one JSON line; exits 1 if any row or photo failed. "
        "Shows a progress bar on a terminal, else a progress line every 10 s.",
    )
    import_cases.add_argument("manifest", type=Path, help="the .csv or .jsonl manifest")
    import_cases.add_argument(
        "--report",
        type=Path,
        default=None,
        help="CSV of the rows and photos that failed (default: <manifest>.report.csv)",
    )
    import_cases.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes that decode and embed photos (default: one per core)",
    )
    import_cases.set_defaults(run=_import_cases)

    search = commands.add_parser(
        "search",
        help="search a photo against enrolled cases",
        description="Find candidate cases for every face in PHOTO. Stores only an audit record.",
    )
    search.add_argument("photo", type=Path, help="JPEG, PNG or WebP photo")
    search.add_argument("--kind", choices=["missing", "found", "all"], default="all")
    search.add_argument("-k", type=int, default=None, help="cases per face (REUNITE_TOP_K)")
    search.add_argument(
        "--tolerance", type=float, default=None, help="max L2 distance (REUNITE_TOLERANCE)"
    )
    search.add_argument("--json", action="store_true", help="print JSON instead of a table")
    search.set_defaults(run=_search)

    users = commands.add_parser(
        "users", help="manage staff accounts", description="Manage staff and admin accounts."
    )
    user_commands = users.add_subparsers(required=True, metavar="ACTION")
    create_user = user_commands.add_parser(
        "create",
        help="create an account",
        description="Create a staff or admin account. The password is asked for twice on a "
        "terminal, or read from standard input with --password-stdin. Only an argon2 hash of "
        "it is stored.",
    )
    create_user.add_argument("username", help="2-64 letters, digits or _ . - @")
    create_user.add_argument("--role", choices=["staff", "admin"], required=True)
    create_user.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    create_user.set_defaults(run=_create_user)
    disable_user = user_commands.add_parser(
        "disable",
        help="disable an account",
        description="Disable an account and end its sessions at once.",
    )
    disable_user.add_argument("username")
    disable_user.set_defaults(run=_disable_user)

    keys = commands.add_parser(
        "keys", help="manage API keys", description="Manage API keys for machine clients."
    )
    key_commands = keys.add_subparsers(required=True, metavar="ACTION")
    create_key = key_commands.add_parser(
        "create",
        help="create a key (printed once)",
        description="Create an API key and print it once; only its hash is stored. Clients "
        "send it as 'Authorization: Bearer <key>'.",
    )
    create_key.add_argument("--role", choices=["police", "staff", "admin"], required=True)
    create_key.add_argument("--agency", help="the police agency's code (police keys only)")
    create_key.add_argument("--label", help="a note on who holds the key")
    create_key.add_argument(
        "--expires-in-days", type=int, default=None, help="the key stops working after this"
    )
    create_key.set_defaults(run=_create_key)
    list_keys = key_commands.add_parser(
        "list", help="list keys (prefixes only)", description="List keys by prefix and state."
    )
    list_keys.set_defaults(run=_list_keys)
    revoke_key = key_commands.add_parser(
        "revoke", help="revoke a key", description="Revoke a key by its prefix, at once."
    )
    revoke_key.add_argument("prefix", help="the 8 characters after 'rk_'")
    revoke_key.set_defaults(run=_revoke_key)

    calibrate = commands.add_parser(
        "calibrate",
        help="fit what distances mean from this deployment's evidence",
        description="Fit the distance -> P(same person) mapping from labelled photos (a folder "
        "with one sub-folder per person) and/or the review decisions already recorded "
        "(confirmed and rejected candidates), suggest a tolerance, print the expected "
        "true-match and false-match rates there, and write the calibration file the service "
        "uses (REUNITE_CALIBRATION_PATH); the previous file is kept beside it for rollback. "
        "Restart the service to use it.",
    )
    calibrate.add_argument("--photos", type=Path, help="folder of sub-folders, one per person")
    calibrate.add_argument(
        "--decisions", action="store_true", help="use confirmed and rejected candidates"
    )
    calibrate.add_argument(
        "--max-false-match-rate",
        type=float,
        default=0.01,
        help="share of different-person pairs the suggested tolerance may accept (0.01)",
    )
    calibrate.add_argument("--cache-dir", type=Path, default=Path(".cache/embeddings"))
    calibrate.set_defaults(run=_calibrate)

    migrate = commands.add_parser(
        "migrate",
        help="bring the store's schema up to date",
        description="Apply the schema migrations this version has and the store lacks (every "
        "process also does so when it opens the store). Prints the revision.",
    )
    migrate.set_defaults(run=_migrate)

    reindex = commands.add_parser(
        "reindex",
        help="re-embed stale faces, then rebuild the FAISS index from the store",
        description="Embed again every face made by another model or pipeline version (or "
        "every face, with --all), from its stored photo, then build a fresh FAISS index from "
        "the store and save it atomically as a new build. Running servers keep answering and "
        "switch to it within REUNITE_INDEX_SYNC_INTERVAL_S. Interrupted, it resumes where it "
        "stopped. Prints a JSON summary; exit 1 if some faces could not be embedded again.",
    )
    reindex.add_argument("--all", action="store_true", help="re-embed every face")
    reindex.add_argument(
        "--workers", type=int, default=None, help="embedding processes (default: one per core)"
    )
    reindex.add_argument(
        "--ray-address",
        default=None,
        help="embed on a Ray cluster instead: 'auto' or 'ray://HOST:PORT' (needs the ray extra)",
    )
    reindex.add_argument(
        "--index-type",
        choices=["auto", "flat", "hnsw"],
        default="auto",
        help="flat (exact) or hnsw (approximate); auto: by size (REUNITE_APPROXIMATE_MIN_FACES)",
    )
    reindex.add_argument(
        "--skip-reembed", action="store_true", help="only rebuild the index from the store"
    )
    reindex.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="faces written per transaction (at most this many are redone after a kill)",
    )
    reindex.set_defaults(run=_reindex)

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
    purge.set_defaults(run=_purge)

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
    backup.set_defaults(run=_backup)

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
    restore.set_defaults(run=_restore)
    return parser


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from reunite.api import create_app
    from reunite.api.auth import session_secret
    from reunite.api.observability import configure_logging
    from reunite.device import chosen_devices

    overrides = {
        k: v
        for k, v in (("host", args.host), ("port", args.port), ("workers", args.workers))
        if v is not None
    }
    settings = Settings(**overrides)
    configure_logging(settings.log_format)  # INFO: says how the index was made ready
    chosen_devices(settings.device)  # a bad REUNITE_DEVICE stops here, with its reason
    # Made here, once (so several workers do not race to create them), and checked: a weak
    # session key stops the start with its reason (exit 7), before any worker starts.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    session_secret(settings)
    if settings.workers == 1:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            access_log=False,
            log_config=None,
        )
        return 0
    # Several processes: each builds its app from the environment.
    uvicorn.run(
        "reunite.api:app_from_environment",
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_config=None,
    )
    return 0


def _enroll(args: argparse.Namespace) -> int:
    if args.manifest:
        jobs = list(_manifest_jobs(args.manifest))
    else:
        if not args.kind:
            raise errors.InvalidField("--kind is required when enrolling a folder.")
        fields = {c: getattr(args, c) for c in MANIFEST_CASE_COLUMNS[1:] if getattr(args, c)}
        photos = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        if not photos:
            raise errors.InvalidInput(f"No .jpg, .jpeg, .png or .webp files in {args.folder}.")
        jobs = [({"kind": args.kind, **fields}, photos)]
    failures = 0
    with Reunite.open(Settings()) as service:
        cases: list[Case | None] = []
        for row, (fields, photos) in enumerate(jobs, start=1):
            try:
                case = _existing_or_new_case(service, fields)
            except (errors.InvalidInput, errors.Conflict) as exc:
                failures += 1
                cases.append(None)
                print(json.dumps({"row": row, "error": exc.code, "message": exc.message}))
                continue
            cases.append(case)
            if not photos:
                print(json.dumps({"row": row, "case_id": case.id, "photos": 0}))
        wanted = [
            (case, path)
            for case, (_, photos) in zip(cases, jobs, strict=True)
            if case is not None
            for path in photos
        ]
        # Photos already in their case are answered from the store, not detected again.
        enrolled = {case.id: service.enrolled_sha256s(case.id) for case, _ in wanted}
        known = [
            _existing_enrollment(service, case.id, path, enrolled[case.id]) for case, path in wanted
        ]
        prepared = iter(
            prepared_photos(
                [path for (_, path), done in zip(wanted, known, strict=True) if done is None],
                pipeline=service.pipeline,
                max_bytes=service.settings.max_upload_bytes,
                max_pixels=service.settings.max_pixels,
                workers=args.workers,
            )
        )
        for (case, path), result in zip(wanted, known, strict=True):
            outcome: dict[str, Any] = {"case_id": case.id, "photo": str(path)}
            if result is None:
                ready = next(prepared)
                try:
                    if ready.photo is not None:
                        result = service.enroll_prepared(case.id, ready.photo, actor=_actor())
                    else:
                        outcome |= {"error": ready.code, "message": ready.message}
                except (errors.InvalidInput, errors.Conflict) as exc:
                    outcome |= {"error": exc.code, "message": exc.message}
            if result is None:
                failures += 1
            else:
                outcome |= {
                    "photo_id": result.photo.id,
                    "created": result.created,
                    "new_candidate_ids": [v.candidate.id for v in result.new_candidates],
                }
            print(json.dumps(outcome, ensure_ascii=False))
    return 1 if failures else 0


def _existing_enrollment(
    service: Reunite, case_id: int, path: Path, sha256s: set[str]
) -> Enrollment | None:
    """The case's enrollment of this photo if its bytes are among ``sha256s`` (enrolled
    already: no detection needed), else None (also when the file cannot be read: its
    preparation says why)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if imaging.sha256_hex(data) not in sha256s:
        return None
    return service.enroll_photo(case_id, data, actor=_actor())


def _manifest_jobs(path: Path) -> list[tuple[dict[str, str], list[Path]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except UnicodeDecodeError as exc:
        raise errors.InvalidInput(
            f"The manifest {path} is not UTF-8 text ({exc.reason} at byte {exc.start}). "
            "Save it as UTF-8 and run again."
        ) from exc
    jobs = []
    for row in rows:
        fields = {c: row[c].strip() for c in MANIFEST_CASE_COLUMNS if (row.get(c) or "").strip()}
        photos = [
            path.parent / p.strip() for p in (row.get("photos") or "").split(";") if p.strip()
        ]
        jobs.append((fields, photos))
    return jobs


def _existing_or_new_case(service: Reunite, fields: dict[str, Any]) -> Case:
    if fields.get("agency") and fields.get("external_ref"):
        try:
            return service.case_by_external_ref(fields["agency"], fields["external_ref"])
        except errors.NotFound:
            pass
    return service.create_case(fields, actor=_actor())


def _import_cases(args: argparse.Namespace) -> int:
    try:
        with (
            Reunite.open(Settings()) as service,
            progress_display("import", unit="photo") as progress,
        ):
            summary = importing.import_manifest(
                service,
                args.manifest,
                actor=_actor(),
                report=args.report,
                workers=args.workers,
                on_progress=progress,
            )
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
    print(json.dumps(dataclasses.asdict(summary), ensure_ascii=False))
    return 1 if summary.failed else 0


def _search(args: argparse.Namespace) -> int:
    kinds = ["missing", "found"] if args.kind == "all" else [args.kind]
    with Reunite.open(Settings()) as service:
        results = service.search_photo(
            args.photo.read_bytes(), actor=_actor(), kinds=kinds, k=args.k, tolerance=args.tolerance
        )
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "box": r.face.box._asdict(),
                        "candidates": [
                            {
                                "case_id": rc.case.id,
                                "kind": rc.case.kind,
                                "face_id": rc.match.face_id,
                                "distance": round(rc.match.distance, 4),
                                "similarity": round(rc.similarity, 4),
                            }
                            for rc in r.ranked
                        ],
                    }
                    for r in results
                ],
                ensure_ascii=False,
                indent=2,
            )
        )
        return 0
    for number, result in enumerate(results):
        print(f"face {number} at {tuple(result.face.box)} (top, right, bottom, left):")
        if not result.ranked:
            print("  no case within tolerance")
        for rank, rc in enumerate(result.ranked, start=1):
            print(
                f"  {rank:>2}. case {rc.case.id} ({rc.case.kind}) distance {rc.match.distance:.3f} "
                f"similarity {rc.similarity:.2f}"
            )
    return 0


def _create_user(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            raise errors.InvalidField("The two passwords differ.")
    with Reunite.open(Settings(), load_index=False) as service:
        user = service.create_user(args.username, password, args.role, actor=_actor())
    print(f"user {user.id} created: {user.username} ({user.role})")
    return 0


def _disable_user(args: argparse.Namespace) -> int:
    with Reunite.open(Settings(), load_index=False) as service:
        user = service.disable_user(args.username, actor=_actor())
    print(f"user {user.id} disabled: {user.username}")
    return 0


def _create_key(args: argparse.Namespace) -> int:
    expires_at = None
    if args.expires_in_days is not None:
        if args.expires_in_days < 1:
            raise errors.InvalidField("--expires-in-days must be 1 or more.")
        expires_at = datetime.now(UTC) + timedelta(days=args.expires_in_days)
    with Reunite.open(Settings(), load_index=False) as service:
        row, key = service.create_api_key(
            args.role,
            agency=args.agency,
            label=args.label,
            expires_at=expires_at,
            actor=_actor(),
        )
    print(key)
    print(
        f"key {row.prefix} ({row.role}{', agency ' + row.agency if row.agency else ''}) "
        "created; it is shown only now.",
        file=sys.stderr,
    )
    return 0


def _list_keys(args: argparse.Namespace) -> int:
    with Reunite.open(Settings(), load_index=False) as service:
        rows = service.api_keys()
    now = datetime.now(UTC)
    for row in rows:
        state = (
            "revoked"
            if row.revoked_at
            else "expired"
            if row.expires_at and row.expires_at <= now
            else "active"
        )
        expires = row.expires_at.date().isoformat() if row.expires_at else "never"
        print(
            f"{row.prefix}  {row.role:<6} {row.agency or '-':<12} {state:<8} "
            f"expires {expires}  {row.label or ''}".rstrip()
        )
    return 0


def _revoke_key(args: argparse.Namespace) -> int:
    with Reunite.open(Settings(), load_index=False) as service:
        row = service.revoke_api_key(args.prefix, actor=_actor())
    print(f"key {row.prefix} revoked")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    import numpy as np

    from reunite import evaluation
    from reunite.faces import MODEL_NAME

    if not args.photos and not args.decisions:
        raise errors.InvalidField("Give --photos DIR, --decisions, or both.")
    if not 0 < args.max_false_match_rate < 1:
        raise errors.InvalidField("--max-false-match-rate must be between 0 and 1.")
    settings = Settings()
    distances: list[float] = []
    same: list[bool] = []
    sources = []
    with Reunite.open(settings, load_index=False) as service:
        pipeline = service.pipeline
        if args.decisions:
            found_d, found_same = service.decided_pairs()
            distances += found_d
            same += found_same
            sources.append(f"{len(found_d)} review decisions")
    if args.photos:
        if not args.photos.is_dir():
            raise errors.InvalidInput(f"{args.photos} is not a folder.")
        photo_d, photo_same = evaluation.labelled_folder_pairs(
            args.photos, cache_dir=args.cache_dir, pipeline=pipeline
        )
        distances += photo_d.tolist()
        same += photo_same.tolist()
        sources.append(f"{len(photo_d)} photo pairs from {args.photos}")
    d, s = np.array(distances), np.array(same, dtype=bool)
    if s.sum() < MIN_SAME_PAIRS or (~s).sum() < MIN_DIFFERENT_PAIRS:
        raise errors.InvalidInput(
            f"Calibration needs at least {MIN_SAME_PAIRS} same-person and "
            f"{MIN_DIFFERENT_PAIRS} different-person pairs; found {int(s.sum())} and "
            f"{int((~s).sum())}. Add labelled photos (--photos) or wait for more decisions."
        )
    fitted = evaluation.fitted_calibration(
        d, s, model=MODEL_NAME, pipeline=pipeline.version, fitted_on=", ".join(sources)
    )
    tolerance = evaluation.suggested_tolerance(d, s, max_false_match_rate=args.max_false_match_rate)
    point = evaluation.operating_point(d, s, tolerance)
    calibration = dataclasses.replace(
        fitted,
        suggested_tolerance=tolerance,
        checks=evaluation.calibration_checks(fitted, d, s) | point,
    )
    kept = calibration.save(settings.calibration_path)
    print(
        f"fitted on {', '.join(sources)}: P(same)=0.5 at distance {calibration.midpoint:.3f}\n"
        f"suggested tolerance {tolerance:.3f}: true-match rate {point['true_match_rate']:.3f}, "
        f"false-match rate {point['false_match_rate']:.3f} on these pairs\n"
        f"written to {settings.calibration_path}"
        + (f" (previous kept as {kept})" if kept else "")
        + f"; set REUNITE_TOLERANCE={tolerance:.2f} to use the suggested tolerance"
    )
    return 0


def _migrate(_args: argparse.Namespace) -> int:
    from reunite.store import Store

    store = Store(Settings().resolved_database_url)  # opening migrates
    try:
        print(f"schema at revision {store.revision}")
    finally:
        store.close()
    return 0


def _reindex(args: argparse.Namespace) -> int:
    from reunite.reembedding import ReembedReport, reembed_faces

    summary: dict[str, Any] = {}
    embedded = ReembedReport()
    with Reunite.open(Settings(), load_index=False) as service:
        if not args.skip_reembed:
            with progress_display("re-embedding", unit="face") as progress:
                embedded = reembed_faces(
                    service,
                    everything=args.all,
                    workers=args.workers,
                    ray_address=args.ray_address,
                    progress=progress,
                    batch_size=args.batch_size,
                )
            summary["reembed"] = {
                "faces": embedded.total,
                "reembedded": embedded.reembedded,
                "failed": [
                    {"face_id": i, "error": code, "message": message}
                    for i, code, message in embedded.failed
                ],
                "resumed_after_face_id": embedded.resumed_after_face_id,
                "seconds": round(embedded.seconds, 1),
                "faces_per_s": round(embedded.total / embedded.seconds, 2)
                if embedded.seconds
                else None,
            }
        started = time.perf_counter()
        report = service.rebuild_index(args.index_type)
        summary["index"] = {
            "counts": report.counts,
            "params": service.index.params,
            "build_id": service.index.build_id,
            "seconds": round(time.perf_counter() - started, 1),
        }
    print(json.dumps(summary, ensure_ascii=False))
    return 1 if embedded.failed else 0


def _purge(args: argparse.Namespace) -> int:
    with Reunite.open(Settings(), load_index=not args.dry_run) as service:
        report = service.purge_expired(actor=_actor(), dry_run=args.dry_run)
    print(json.dumps(report.summary()))
    return 0


def _backup(args: argparse.Namespace) -> int:
    from reunite.backup import backup

    manifest = backup(Settings(), args.destination)
    summary = {k: v for k, v in manifest.items() if k not in ("files", "missing_photos")}
    print(
        json.dumps(
            summary
            | {
                "destination": str(args.destination),
                "files": len(manifest["files"]),
                "bytes": sum(f["bytes"] for f in manifest["files"].values()),
                "missing_photos": len(manifest["missing_photos"]),
            }
        )
    )
    return 0


def _restore(args: argparse.Namespace) -> int:
    from reunite.backup import restore

    print(json.dumps(restore(Settings(), args.source, force=args.force)))
    return 0


@contextmanager
def progress_display(label: str, *, unit: str) -> Iterator[Callable[[int, int], None]]:
    """A progress callback (done, total): a bar with rate and ETA on a terminal, else a log
    line every 10 seconds (and at the end)."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        with tqdm(desc=label, unit=unit, dynamic_ncols=True) as bar:

            def advance(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            yield advance
        return
    started = time.monotonic()
    last_shown = [started]

    def log_line(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last_shown[0] >= 10 or done >= total:
            last_shown[0] = now
            rate = done / max(now - started, 1e-9)
            eta = (total - done) / rate if rate else float("inf")
            print(
                f"{label}: {done}/{total} {unit}s, {rate:.1f}/s, about {eta:.0f} s left",
                file=sys.stderr,
                flush=True,
            )

    yield log_line


if __name__ == "__main__":
    sys.exit(main())
build_parser = _parser
