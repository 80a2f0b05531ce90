"""``reunite rematch``: match open cases again after the matching rules changed."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from reunite.cli.shared import loaded_settings, progress_display


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``rematch``."""
    rematch = commands.add_parser(
        "rematch",
        help="match open cases again after the matching rules changed",
        description="After a change of a matching setting (tolerance, cross-age tolerance, "
        "photo age gap, top_k, case scoring, cohort size, min score, age margin, found before "
        "missing days), the calibration or the model: match every open or matched case whose "
        "candidates were made by other rules again, one case per transaction, in id order. "
        "New candidates are proposed (audited, with webhooks); pending candidates that today's "
        "rules no longer propose are kept and flagged no_longer_proposed (superseded), and "
        "flagged ones proposed again are restored; confirmed and rejected candidates are never "
        "touched. Runs beside servers (they see the changes at once). Interrupted, it resumes "
        "with the cases not yet done. Prints a JSON summary.",
    )
    rematch.add_argument(
        "--limit",
        type=int,
        default=None,
        help="match at most this many cases in this run (the rest in the next runs)",
    )
    rematch.set_defaults(run=rematch_store)


def rematch_store(args: argparse.Namespace) -> int:
    """Match again the cases made by other rules; prints a summary."""
    from reunite.errors import InvalidField
    from reunite.rematching import rematch_cases
    from reunite.service import Reunite

    if args.limit is not None and args.limit < 1:
        raise InvalidField("--limit must be at least 1.")
    with (
        Reunite.open(loaded_settings()) as service,
        progress_display("re-matching", unit="case") as progress,
    ):
        report = rematch_cases(service.candidate_records, limit=args.limit, progress=progress)
    print(json.dumps(asdict(report), ensure_ascii=False))
    return 0
