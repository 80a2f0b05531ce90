"""The ``reunite`` command line: one module per group of commands, each adding its own
subparser (``register``); errors become exit codes here, in one place.

Commands import the service, dlib and FAISS inside the function that needs them, so that
``reunite --help``, ``--version``, ``keys``, ``users``, ``agencies`` and ``migrate`` answer at
once.

Exit codes: 0 success; 1 some items of a batch failed (each is reported); 2 bad usage;
3 not found; 4 invalid input (unreadable file, bad photo, no face, bad field); 5 conflict
(a non-empty store to restore over); 6 index unusable; 7 unsafe configuration (``serve`` with
a weak REUNITE_SECRET_KEY in production); 8 bad configuration (a REUNITE_* value that is not
valid: one line names the variable and what is wrong).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from reunite import __version__, errors
from reunite.cli import (
    accounts,
    agencies,
    calibrate,
    cases,
    index,
    maintenance,
    rematching,
    serve,
)
from reunite.files import restrict_new_files

EXIT_CODES: dict[type[errors.ReuniteError], int] = {
    errors.NotFound: 3,
    errors.InvalidInput: 4,
    errors.Conflict: 5,
    errors.IndexUnusable: 6,
    errors.UnsafeConfiguration: 7,
    errors.BadConfiguration: 8,
    errors.Overloaded: 9,
    errors.PhotoStoreUnavailable: 10,
    errors.StoreUnavailable: 11,
}
COMMAND_MODULES = (serve, cases, accounts, agencies, calibrate, index, rematching, maintenance)
"""Each adds its commands to the parser, in this order in ``--help``."""


def exit_code_of(error: errors.ReuniteError) -> int:
    """The exit code of an error: its closest class in ``EXIT_CODES``, else 1."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 1


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every command and option, each with its help."""
    parser = argparse.ArgumentParser(
        prog="reunite",
        description="Face matching to reunite lost people with their families. Settings come "
        "from REUNITE_* environment variables (REUNITE_DATA_DIR, REUNITE_INDEX_DIR, "
        "REUNITE_DATABASE_URL, ...). Relative paths in them (REUNITE_DATA_DIR, "
        "REUNITE_INDEX_DIR) are resolved against the folder the command starts in, once, at "
        "start.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (ids only)")
    parser.add_argument(
        "--version",
        action="version",
        version=f"reunite {__version__}",
        help="print the version and exit",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND", help="what to do")
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (see the module's docstring)."""
    args = build_parser().parse_args(argv)
    restrict_new_files()  # biometric data: whatever this command writes is owner-only
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.run(args))
    except OSError as exc:
        return _failed(errors.UnreadableFile(str(exc)))
    except errors.ReuniteError as exc:
        return _failed(exc)


def _failed(error: errors.ReuniteError) -> int:
    """Say why on one line of standard error; return the error's exit code."""
    print(f"error ({error.code}): {error.message}", file=sys.stderr)
    return exit_code_of(error)
