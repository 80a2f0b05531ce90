"""``reunite agencies``: the agencies an admin keeps for the intake form's list.

Light by design, like ``reunite users``: these work on the store through ``reunite.agencies``
(which audits each change), never through the service, so they load neither dlib nor FAISS.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from reunite.cli.shared import actor, loaded_settings, opened_store

if TYPE_CHECKING:
    from reunite.store import Store


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``agencies`` with its actions."""
    agencies = commands.add_parser(
        "agencies",
        help="manage the intake form's agencies",
        description="Manage the agencies staff choose from on the intake form. While the list "
        "is empty, the form's agency is free text.",
    )
    actions = agencies.add_subparsers(required=True, metavar="ACTION", help="what to do")
    listing = actions.add_parser(
        "list", help="list agencies", description="List agencies by code: code, state, name."
    )
    listing.set_defaults(run=list_agencies)
    add = actions.add_parser("add", help="add an agency", description="Add an agency.")
    add.add_argument("code", help="1-64 letters, digits or _ . - (no spaces), as cases carry it")
    add.add_argument("name", help="the name staff read (1-200 characters)")
    add.set_defaults(run=add_agency)
    rename = actions.add_parser(
        "rename", help="rename an agency", description="Give an agency a new name."
    )
    rename.add_argument("code", help="the agency's code")
    rename.add_argument("name", help="the new name (1-200 characters)")
    rename.set_defaults(run=rename_agency)
    retire = actions.add_parser(
        "retire",
        help="retire an agency",
        description="Take an agency off the intake form's list; its cases keep it.",
    )
    retire.add_argument("code", help="the agency's code")
    retire.add_argument("--undo", action="store_true", help="put a retired agency back on the list")
    retire.set_defaults(run=retire_agency)


@contextmanager
def _store() -> Iterator[Store]:
    """The store of the current settings, its data folder made if new."""
    settings = loaded_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with opened_store(settings) as store:
        yield store


def list_agencies(_args: argparse.Namespace) -> int:
    from reunite import agencies

    with _store() as store:
        rows = agencies.agencies(store)
    for row in rows:
        print(f"{row.code:<24} {'retired' if row.retired else 'active':<8} {row.name}")
    return 0


def add_agency(args: argparse.Namespace) -> int:
    from reunite import agencies

    with _store() as store:
        row = agencies.add_agency(store, args.code, args.name, actor=actor())
    print(f"agency {row.code} added")
    return 0


def rename_agency(args: argparse.Namespace) -> int:
    from reunite import agencies

    with _store() as store:
        row = agencies.rename_agency(store, args.code, args.name, actor=actor())
    print(f"agency {row.code} renamed")
    return 0


def retire_agency(args: argparse.Namespace) -> int:
    from reunite import agencies

    with _store() as store:
        row = agencies.retire_agency(store, args.code, actor=actor(), retired=not args.undo)
    print(f"agency {row.code} {'restored' if args.undo else 'retired'}")
    return 0
