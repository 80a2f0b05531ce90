"""``reunite enroll``, ``reunite import`` and ``reunite search``: cases and their photos.

The service, dlib and FAISS are imported inside each command, never at module level, so that
``reunite --help`` and the light commands do not pay for them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reunite import errors
from reunite.cli.shared import actor, loaded_settings, progress_display

if TYPE_CHECKING:
    from reunite.enrollment import Enrollment
    from reunite.search import FaceResult
    from reunite.service import Reunite
    from reunite.store import CaseRow

CASE_COLUMNS = (
    "kind",
    "agency",
    "external_ref",
    "name",
    "sex",
    "birth_date",
    "birth_year_min",
    "birth_year_max",
    "date_missing",
    "date_found",
    "place",
    "description",
    "contact",
)
"""The facts of a case: ``reunite.manifests.CASE_COLUMNS`` (a test keeps them equal), written
out so that building the parser does not import the store."""
FACE_CHOICES = ("refuse", "largest", "central")
"""``reunite.enrollment.FACE_CHOICES`` (a test keeps them equal), written out for the same
reason."""
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``enroll``, ``import`` and ``search``."""
    _register_enroll(commands)
    _register_import(commands)
    _register_search(commands)


def _register_enroll(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    enroll = commands.add_parser(
        "enroll",
        help="enroll a case from a folder of photos",
        description="Enroll one case from the photos in FOLDER, its facts from the options. "
        "A case whose agency and external_ref already exist is reused, and photos already "
        "enrolled are skipped, so a run can be repeated safely. Each photo must show one face. "
        "Prints one JSON line per photo; exits 1 if any failed. To enroll many cases from a "
        "manifest, use 'reunite import'.",
    )
    enroll.add_argument("folder", type=Path, help="folder of JPEG/PNG/WebP photos")
    enroll.add_argument("--kind", choices=["missing", "found"], help="case kind (required)")
    enroll.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes that decode and embed photos (default: one per core)",
    )
    for column in CASE_COLUMNS[1:]:
        enroll.add_argument(f"--{column.replace('_', '-')}", dest=column, help=f"case {column}")
    enroll.set_defaults(run=enroll_folder)


def _register_import(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    import_cases = commands.add_parser(
        "import",
        help="import an archive of cases from a CSV or JSON-lines manifest",
        description="Create or update every case of MANIFEST and enroll its photos. MANIFEST "
        "is a .csv file (columns: "
        f"{', '.join(CASE_COLUMNS)}, photos; photos separated by ';') or a .jsonl "
        "file (one JSON object a line with the same keys, photos a list of paths or of "
        'objects {"path": ..., "taken_on": "YYYY-MM-DD"}). Photo paths are relative to the '
        "manifest's folder; path@YYYY-MM-DD gives the date a photo was taken (an undated "
        "photo counts as taken on the date missing or found). A case is found again by agency "
        "and external_ref, and photos already enrolled in their case are skipped before "
        "detection, so running it again changes nothing, and an interrupted run resumes where "
        "it stopped. Bad rows and photos are written to the report (row, external_ref, "
        "photo, code, reason) and the run goes on. Prints a summary as one JSON line; exits 1 "
        "if any row or photo failed. Shows a progress bar on a terminal, else a progress line "
        "every 10 s.",
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
    import_cases.add_argument(
        "--face",
        choices=FACE_CHOICES,
        default="refuse",
        help="a photo that shows several faces: refuse it (multiple_faces in the report), or "
        "enroll its largest face, or the face nearest the photo's centre; the choice is "
        "recorded and shown to reviewers (flag face_chosen_automatically)",
    )
    import_cases.set_defaults(run=import_manifest)


def _register_search(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    search = commands.add_parser(
        "search",
        help="search a photo against enrolled cases",
        description="Find candidate cases for every face in PHOTO. Stores only an audit record.",
    )
    search.add_argument("photo", type=Path, help="JPEG, PNG or WebP photo")
    search.add_argument(
        "--kind",
        choices=["missing", "found", "all"],
        default="all",
        help="which cases to search (default: all)",
    )
    search.add_argument("-k", type=int, default=None, help="cases per face (REUNITE_TOP_K)")
    search.add_argument(
        "--tolerance", type=float, default=None, help="max L2 distance (REUNITE_TOLERANCE)"
    )
    search.add_argument("--json", action="store_true", help="print JSON instead of a table")
    search.set_defaults(run=search_photo)


def enroll_folder(args: argparse.Namespace) -> int:
    """Enroll the folder's photos into one case (found again by agency and external_ref)."""
    from reunite.service import Reunite

    if not args.kind:
        raise errors.InvalidField("--kind is required when enrolling a folder.")
    fields = {c: getattr(args, c) for c in CASE_COLUMNS[1:] if getattr(args, c)}
    photos = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not photos:
        raise errors.InvalidInput(f"No .jpg, .jpeg, .png or .webp files in {args.folder}.")
    with Reunite.open(loaded_settings()) as service:
        try:
            case = _existing_or_new_case(service, {"kind": args.kind, **fields})
        except (errors.InvalidInput, errors.Conflict) as exc:
            print(json.dumps({"row": 1, "error": exc.code, "message": exc.message}))
            return 1
        failures = _enroll_photos(service, case, photos, workers=args.workers)
    return 1 if failures else 0


def _existing_or_new_case(service: Reunite, fields: dict[str, Any]) -> CaseRow:
    if fields.get("agency") and fields.get("external_ref"):
        try:
            return service.case_by_external_ref(fields["agency"], fields["external_ref"])
        except errors.NotFound:
            pass
    return service.create_case(fields, actor=actor())


def _enroll_photos(
    service: Reunite, case: CaseRow, photos: list[Path], *, workers: int | None
) -> int:
    """Enroll each photo, printing one JSON line for each; returns how many failed."""
    from reunite.batch import photo_results

    # Photos already in the case are answered from the store, not detected again.
    enrolled = service.enrolled_sha256s(case.id)
    known = [_existing_enrollment(service, case.id, path, enrolled) for path in photos]
    prepared = iter(
        photo_results(
            [path for path, done in zip(photos, known, strict=True) if done is None],
            pipeline=service.pipeline,
            max_bytes=service.settings.max_upload_bytes,
            max_pixels=service.settings.max_pixels,
            workers=workers,
        )
    )
    failures = 0
    for path, result in zip(photos, known, strict=True):
        outcome: dict[str, Any] = {"case_id": case.id, "photo": str(path)}
        if result is None:
            ready = next(prepared)
            try:
                if ready.photo is not None:
                    result = service.enroll_prepared(case.id, ready.photo, actor=actor())
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
    return failures


def _existing_enrollment(
    service: Reunite, case_id: int, path: Path, sha256s: set[str]
) -> Enrollment | None:
    """The case's enrollment of this photo if its bytes are among ``sha256s`` (enrolled
    already: no detection needed), else None (also when the file cannot be read: its
    preparation says why)."""
    from reunite import imaging

    try:
        data = path.read_bytes()
    except OSError:
        return None
    if imaging.sha256_hex(data) not in sha256s:
        return None
    return service.enroll_photo(case_id, data, actor=actor())


def import_manifest(args: argparse.Namespace) -> int:
    """Import every case of a manifest (``reunite.importing``); prints the summary."""
    from reunite import importing
    from reunite.service import Reunite

    try:
        with (
            Reunite.open(loaded_settings()) as service,
            progress_display("import", unit="photo") as progress,
        ):
            summary = importing.import_manifest(
                service,
                args.manifest,
                actor=actor(),
                report=args.report,
                workers=args.workers,
                on_progress=progress,
                face_choice=args.face,
            )
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
    print(json.dumps(dataclasses.asdict(summary), ensure_ascii=False))
    return 1 if summary.failed else 0


def search_photo(args: argparse.Namespace) -> int:
    """Print the candidate cases of every face in the photo (a table, or JSON)."""
    from reunite.service import Reunite

    kinds = ["missing", "found"] if args.kind == "all" else [args.kind]
    data = args.photo.read_bytes()
    with Reunite.open(loaded_settings()) as service:
        results = service.search_photo(
            data, actor=actor(), kinds=kinds, k=args.k, tolerance=args.tolerance
        )
    if args.json:
        print(json.dumps(_results_json(results), ensure_ascii=False, indent=2))
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


def _results_json(results: list[FaceResult]) -> list[dict[str, Any]]:
    return [
        {
            "box": r.face.box._asdict(),
            "candidates": [
                {
                    "case_id": rc.case.id,
                    "kind": rc.case.kind,
                    "face_id": rc.match.face_id,
                    "distance": round(rc.match.distance, 4),
                    "similarity": round(rc.similarity, 4),
                    "similarity_basis": rc.similarity_basis,
                }
                for rc in r.ranked
            ],
        }
        for r in results
    ]
