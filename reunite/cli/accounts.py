"""``reunite users`` and ``reunite keys``: staff accounts and API keys.

Light by design: these work on the store directly (``reunite.store`` and ``reunite.accounts``),
never through the service, so they answer without loading dlib, FAISS or the index. Each change
is audited by ``reunite.accounts``, as the API's are.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from reunite import errors
from reunite.access import ROLES, USER_ROLES
from reunite.cli.shared import actor, loaded_settings, opened_store

if TYPE_CHECKING:
    from reunite.store import ApiKeyRow, Store


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``users`` and ``keys`` with their actions."""
    _register_users(commands)
    _register_keys(commands)


def _register_users(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = commands.add_parser(
        "users", help="manage staff accounts", description="Manage staff and admin accounts."
    )
    actions = users.add_subparsers(required=True, metavar="ACTION", help="what to do")
    create = actions.add_parser(
        "create",
        help="create an account",
        description="Create a staff or admin account. The password is asked for twice on a "
        "terminal, or read from standard input with --password-stdin. Only an argon2 hash of "
        "it is stored.",
    )
    create.add_argument("username", help="2-64 letters, digits or _ . - @")
    create.add_argument("--role", choices=USER_ROLES, required=True, help="what the account may do")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    create.add_argument(
        "--display-name",
        metavar="NAME",
        help="how the pages name the person (1-100 characters; default: the username)",
    )
    create.set_defaults(run=create_user)
    disable = actions.add_parser(
        "disable",
        help="disable an account",
        description="Disable an account and end its sessions at once.",
    )
    disable.add_argument("username", help="the account's name")
    disable.set_defaults(run=disable_user)
    listing = actions.add_parser(
        "list",
        help="list accounts",
        description="List accounts, oldest first: id, username, role, state, the day created "
        "and the display name (if any).",
    )
    listing.set_defaults(run=list_users)
    enable = actions.add_parser(
        "enable", help="enable an account", description="Enable a disabled account again."
    )
    enable.add_argument("username", help="the account's name")
    enable.set_defaults(run=enable_user)
    reset = actions.add_parser(
        "reset-password",
        help="set a new password",
        description="Give an account a new password and end its sessions. The password is "
        "asked for twice on a terminal, or read from standard input with --password-stdin; it "
        "is never printed.",
    )
    reset.add_argument("username", help="the account's name")
    reset.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    reset.set_defaults(run=reset_password)
    set_role = actions.add_parser(
        "set-role",
        help="change an account's role",
        description="Change what an account may do; it applies from the user's next request.",
    )
    set_role.add_argument("username", help="the account's name")
    set_role.add_argument("role", choices=USER_ROLES, help="the new role")
    set_role.set_defaults(run=set_role_of_user)
    set_name = actions.add_parser(
        "set-display-name",
        help="change the name the pages show",
        description="Change how the pages name an account's person (in the header and in "
        "decision histories): 1-100 characters, trimmed, no control characters.",
    )
    set_name.add_argument("username", help="the account's name")
    set_name.add_argument("display_name", metavar="NAME", help="the new display name")
    set_name.set_defaults(run=set_display_name_of_user)


def _register_keys(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser(
        "keys", help="manage API keys", description="Manage API keys for machine clients."
    )
    actions = keys.add_subparsers(required=True, metavar="ACTION", help="what to do")
    create = actions.add_parser(
        "create",
        help="create a key (printed once)",
        description="Create an API key and print it once; only its hash is stored. Clients "
        "send it as 'Authorization: Bearer <key>'.",
    )
    create.add_argument("--role", choices=ROLES, required=True, help="what the key may do")
    create.add_argument("--agency", help="the police agency's code (police keys only)")
    create.add_argument("--label", help="a note on who holds the key")
    create.add_argument(
        "--expires-in-days", type=int, default=None, help="the key stops working after this"
    )
    create.set_defaults(run=create_key)
    listing = actions.add_parser(
        "list", help="list keys (prefixes only)", description="List keys by prefix and state."
    )
    listing.set_defaults(run=list_keys)
    revoke = actions.add_parser(
        "revoke", help="revoke a key", description="Revoke a key by its prefix, at once."
    )
    revoke.add_argument("prefix", help="the 8 characters after 'rk_'")
    revoke.set_defaults(run=revoke_key)


@contextmanager
def _store() -> Iterator[Store]:
    """The store of the current settings, its folders made if new (as the service makes them)."""
    settings = loaded_settings()
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not settings.photo_store:
        settings.photos_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with opened_store(settings) as store:
        yield store


def _new_password(args: argparse.Namespace) -> str:
    """The password from standard input (--password-stdin), or typed twice on the terminal."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != password:
        raise errors.InvalidField("The two passwords differ.")
    return password


def create_user(args: argparse.Namespace) -> int:
    from reunite import accounts

    password = _new_password(args)
    min_length = loaded_settings().min_password_length
    with _store() as store:
        user = accounts.create_user(
            store,
            args.username,
            password,
            args.role,
            actor=actor(),
            min_password_length=min_length,
            display_name=args.display_name,
        )
    print(f"user {user.id} created: {user.username} ({user.role})")
    return 0


def list_users(_args: argparse.Namespace) -> int:
    from reunite import accounts

    with _store() as store:
        rows = accounts.users(store)
    for row in rows:
        state = "disabled" if row.disabled else "enabled"
        print(
            f"{row.id:>4}  {row.username:<24} {row.role:<5} {state:<8} "
            f"created {row.created_at.date().isoformat()}  {row.display_name or ''}".rstrip()
        )
    return 0


def enable_user(args: argparse.Namespace) -> int:
    from reunite import accounts

    with _store() as store:
        user = accounts.enable_user(store, args.username, actor=actor())
    print(f"user {user.id} enabled: {user.username}")
    return 0


def reset_password(args: argparse.Namespace) -> int:
    from reunite import accounts

    password = _new_password(args)
    min_length = loaded_settings().min_password_length
    with _store() as store:
        user = accounts.reset_password(
            store, args.username, password, actor=actor(), min_password_length=min_length
        )
    print(f"user {user.id} has a new password; their sessions have ended: {user.username}")
    return 0


def set_role_of_user(args: argparse.Namespace) -> int:
    from reunite import accounts

    with _store() as store:
        user = accounts.set_user_role(store, args.username, args.role, actor=actor())
    print(f"user {user.id} is now {user.role}: {user.username}")
    return 0


def set_display_name_of_user(args: argparse.Namespace) -> int:
    from reunite import accounts

    with _store() as store:
        user = accounts.set_display_name(store, args.username, args.display_name, actor=actor())
    print(f"user {user.id} has a new display name: {user.username}")
    return 0


def disable_user(args: argparse.Namespace) -> int:
    from reunite import accounts

    with _store() as store:
        user = accounts.disable_user(store, args.username, actor=actor())
    print(f"user {user.id} disabled: {user.username}")
    return 0


def create_key(args: argparse.Namespace) -> int:
    from reunite import accounts

    expires_at = None
    if args.expires_in_days is not None:
        if args.expires_in_days < 1:
            raise errors.InvalidField("--expires-in-days must be 1 or more.")
        expires_at = datetime.now(UTC) + timedelta(days=args.expires_in_days)
    with _store() as store:
        row, key = accounts.create_api_key(
            store,
            args.role,
            agency=args.agency,
            actor=actor(),
            label=args.label,
            expires_at=expires_at,
        )
    print(key)
    print(
        f"key {row.prefix} ({row.role}{', agency ' + row.agency if row.agency else ''}) "
        "created; it is shown only now.",
        file=sys.stderr,
    )
    return 0


def _state(row: ApiKeyRow, now: datetime) -> str:
    if row.revoked_at:
        return "revoked"
    if row.expires_at and row.expires_at <= now:
        return "expired"
    return "active"


def list_keys(_args: argparse.Namespace) -> int:
    from reunite import accounts

    with _store() as store:
        rows = accounts.api_keys(store)
    now = datetime.now(UTC)
    for row in rows:
        expires = row.expires_at.date().isoformat() if row.expires_at else "never"
        print(
            f"{row.prefix}  {row.role:<6} {row.agency or '-':<12} {_state(row, now):<8} "
            f"expires {expires}  {row.label or ''}".rstrip()
        )
    return 0


def revoke_key(args: argparse.Namespace) -> int:
    from reunite import accounts

    with _store() as store:
        row = accounts.revoke_api_key(store, args.prefix, actor=actor())
    print(f"key {row.prefix} revoked")
    return 0
