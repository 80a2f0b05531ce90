"""Accounts: staff and admin users (argon2id passwords) and API keys for machine clients.

Password hashing is deliberately slow (about 50 ms and 64 MiB per check with argon2-cffi's
defaults), so a stolen database does not yield passwords cheaply. API keys are 256-bit random
strings, so one fast SHA-256 is enough: only that hash is stored, and the key is shown once.

Key format: ``rk_<prefix>_<secret>``; the 8-character prefix identifies the key in lists and
logs and is not secret.

The functions over a ``Store`` each run one transaction and audit what they change; those over
a ``Session`` are their parts, for callers already in a transaction.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import unicodedata
from datetime import datetime
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from reunite import audit
from reunite.access import ROLES, USER_ROLES
from reunite.errors import Conflict, InvalidField, NotAuthenticated, NotFound
from reunite.store import ApiKeyRow, Store, UserRow, utc_now

MIN_PASSWORD_CHARS = 10
"""The least length of a new password unless a caller passes another (REUNITE_MIN_PASSWORD_LENGTH
in the command line)."""
COMMON_PASSWORDS_PATH = Path(__file__).resolve().parent / "data" / "common_passwords.txt"
"""Passwords refused whatever their length, one a line, lowercase; shipped as package data."""
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-@]{2,64}$")
MAX_DISPLAY_NAME_CHARS = 100
"""The longest display name (the column is String(100))."""
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)

_hasher = PasswordHasher()


@functools.cache
def dummy_hash() -> str:
    """A hash to check unknown users' passwords against, so that sign-in takes the same time
    for them. Made once, not at import (the ``reunite keys`` commands never need it); the app
    makes it at start, so that even the first sign-in of an unknown user is not the slow one.
    Cost: one argon2 hash, about 50 ms."""
    return _hasher.hash("not a real password: keeps sign-in time the same for unknown users")


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, lowercase (read once)."""
    lines = COMMON_PASSWORDS_PATH.read_text(encoding="utf-8").splitlines()
    return frozenset(
        line.strip().lower() for line in lines if line.strip() and not line.startswith("#")
    )


def check_new_password(password: str, min_length: int = MIN_PASSWORD_CHARS) -> None:
    """Refuse a password too short or too common to be set. Raises ``InvalidField``, whose
    message never repeats the password."""
    if len(password) < min_length:
        raise InvalidField(
            f"A password needs at least {min_length} characters.",
            reason="password_too_short",
            min_length=min_length,
        )
    if password.strip().lower() in common_passwords():
        raise InvalidField(
            "That password is one of the most common ones; choose another.",
            reason="password_common",
        )


def checked_display_name(name: str) -> str:
    """``name`` trimmed, as a display name may be kept: 1-100 characters, none of them a control
    character (line breaks, tabs, direction overrides). Raises ``InvalidField``, whose message
    never repeats the name."""
    trimmed = name.strip()
    if not 1 <= len(trimmed) <= MAX_DISPLAY_NAME_CHARS:
        raise InvalidField(
            f"A display name is 1 to {MAX_DISPLAY_NAME_CHARS} characters.",
            reason="display_name_length",
            max_length=MAX_DISPLAY_NAME_CHARS,
        )
    if any(unicodedata.category(c) in ("Cc", "Cs") or c in _BIDI_CONTROLS for c in trimmed):
        raise InvalidField(
            "A display name cannot hold control characters (line breaks, tabs and the like).",
            reason="display_name_control",
        )
    return trimmed


def _check_role(role: str) -> None:
    if role not in USER_ROLES:
        raise InvalidField(f"role must be one of {list(USER_ROLES)}, not {role!r}.")


def new_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    *,
    min_password_length: int = MIN_PASSWORD_CHARS,
    display_name: str | None = None,
) -> UserRow:
    """Add an account. Raises ``InvalidField`` (bad name, display name or role, a password too
    short or common), ``Conflict``."""
    if not USERNAME_PATTERN.match(username):
        raise InvalidField("A username is 2-64 letters, digits or _ . - @.")
    _check_role(role)
    shown = checked_display_name(display_name) if display_name is not None else None
    check_new_password(password, min_password_length)
    if session.scalar(select(UserRow.id).where(UserRow.username == username)) is not None:
        raise Conflict(f"There is already a user named {username!r}.")
    user = UserRow(
        username=username, password_hash=_hasher.hash(password), role=role, display_name=shown
    )
    session.add(user)
    session.flush()
    return user


def authenticated_user(session: Session, username: str, password: str) -> UserRow:
    """The enabled user with this name and password. Raises ``NotAuthenticated`` otherwise.

    Takes the same time whether or not the user exists (one argon2 verification).
    """
    user = session.scalar(select(UserRow).where(UserRow.username == username))
    try:
        _hasher.verify(user.password_hash if user else dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None or user.disabled:
        raise NotAuthenticated("Wrong username or password.")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


KEY_PATTERN = re.compile(r"^rk_([0-9a-f]{8})_([A-Za-z0-9_\-]{43})$")


def key_sha256(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_api_key(
    session: Session,
    role: str,
    *,
    agency: str | None,
    label: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKeyRow, str]:
    """A new key row and the key itself (shown once; only its hash is stored).

    Police keys need an agency; other roles take none.
    """
    if role not in ROLES:
        raise InvalidField(f"role must be one of {list(ROLES)}, not {role!r}.")
    if (role == "police") != bool(agency):
        raise InvalidField("A police key needs --agency; other roles take none.")
    while True:
        prefix = secrets.token_hex(4)
        if session.scalar(select(ApiKeyRow.id).where(ApiKeyRow.prefix == prefix)) is None:
            break
    key = f"rk_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKeyRow(
        prefix=prefix,
        key_sha256=key_sha256(key),
        role=role,
        agency=agency,
        label=label,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return row, key


def api_key_for(session: Session, key: str) -> ApiKeyRow:
    """The usable key row for a presented key. Raises ``NotAuthenticated`` (unknown, malformed,
    revoked or expired), with a message that does not tell which."""
    match = KEY_PATTERN.match(key)
    row = (
        session.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == match.group(1)))
        if match
        else None
    )
    if row is None or not hmac.compare_digest(row.key_sha256, key_sha256(key)):
        raise NotAuthenticated("The API key is not valid.")
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= utc_now()):
        raise NotAuthenticated("The API key is not valid.")
    return row


# ---------------------------------------------------------------- over a store


def create_user(
    store: Store,
    username: str,
    password: str,
    role: str,
    *,
    actor: str,
    min_password_length: int = MIN_PASSWORD_CHARS,
    display_name: str | None = None,
) -> UserRow:
    """Add a staff or admin account, audited (never the display name). Raises
    ``InvalidField`` or ``Conflict``."""
    with store.transaction() as session:
        user = new_user(
            session,
            username,
            password,
            role,
            min_password_length=min_password_length,
            display_name=display_name,
        )
        audit.record(session, actor, "user.create", None, user_id=user.id, role=role)
    return user


def signed_in_user(store: Store, username: str, password: str) -> UserRow:
    """The user with these credentials; sign-ins and failed ones are audited (by user id
    where the name exists; never the typed name, which may be a mistyped password).

    Raises ``NotAuthenticated``.
    """
    try:
        with store.transaction() as session:
            user = authenticated_user(session, username, password)
            audit.record(session, f"user:{user.username}", "user.sign_in", None, user_id=user.id)
        return user
    except NotAuthenticated:
        with store.transaction() as session:
            known = session.scalar(select(UserRow.id).where(UserRow.username == username))
            audit.record(session, "anonymous", "user.sign_in_failed", None, user_id=known)
        raise


def sign_out(store: Store, user_id: int) -> None:
    """End every session of the user (the session cookies carry an epoch this bumps)."""
    with store.transaction() as session:
        user = session.get(UserRow, user_id)
        if user is not None:
            user.session_epoch += 1
            audit.record(session, f"user:{user.username}", "user.sign_out", None, user_id=user_id)


def _named_user(session: Session, username: str) -> UserRow:
    """The user with this name, enabled or not. Raises ``NotFound``."""
    user = session.scalar(select(UserRow).where(UserRow.username == username))
    if user is None:
        raise NotFound(f"There is no user {username!r}.")
    return user


def users(store: Store) -> list[UserRow]:
    """Every account, enabled or not, oldest first (no password hashes are needed by callers,
    but the rows carry them: never print a row whole)."""
    with store.transaction() as session:
        return list(session.scalars(select(UserRow).order_by(UserRow.id)))


def _check_not_last_admin(session: Session, user: UserRow) -> None:
    """Refuse to take the last enabled admin away (by disabling or demoting it): nobody could
    manage accounts from the pages any more. Raises ``Conflict``.

    The enabled admins' rows are written (unchanged) before they are counted: that takes
    SQLite's write lock, or PostgreSQL's row locks, so that two admins disabling each other at
    the same moment cannot both succeed (the second one counts after the first commits)."""
    enabled_admin = (UserRow.role == "admin") & UserRow.disabled.is_(False)
    session.execute(update(UserRow).where(enabled_admin).values(role=UserRow.role))
    admins = list(session.scalars(select(UserRow.id).where(enabled_admin)))
    if admins == [user.id]:
        raise Conflict(
            "This is the last enabled admin account; make another account an admin first.",
            reason="last_admin",
        )


def disable_user(store: Store, username: str, *, actor: str) -> UserRow:
    """Disable an account and end its sessions (idempotent), audited. Raises ``NotFound``, or
    ``Conflict`` for the last enabled admin."""
    with store.transaction() as session:
        user = _named_user(session, username)
        _check_not_last_admin(session, user)
        user.disabled = True
        user.session_epoch += 1
        audit.record(session, actor, "user.disable", None, user_id=user.id)
    return user


def enable_user(store: Store, username: str, *, actor: str) -> UserRow:
    """Enable a disabled account again (idempotent), audited. Raises ``NotFound``."""
    with store.transaction() as session:
        user = _named_user(session, username)
        user.disabled = False
        audit.record(session, actor, "user.enable", None, user_id=user.id)
    return user


def reset_password(
    store: Store,
    username: str,
    password: str,
    *,
    actor: str,
    min_password_length: int = MIN_PASSWORD_CHARS,
) -> UserRow:
    """Give an account a new password and end its sessions, audited (never the password).
    Raises ``NotFound`` or ``InvalidField`` (a password too short or common)."""
    check_new_password(password, min_password_length)
    with store.transaction() as session:
        user = _named_user(session, username)
        user.password_hash = _hasher.hash(password)
        user.session_epoch += 1
        audit.record(session, actor, "user.reset_password", None, user_id=user.id)
    return user


def set_user_role(store: Store, username: str, role: str, *, actor: str) -> UserRow:
    """Change an account's role (idempotent); it applies at the user's next request, as each
    request reads the user anew. Audited with both roles. Raises ``NotFound``, ``InvalidField``,
    or ``Conflict`` for demoting the last enabled admin."""
    _check_role(role)
    with store.transaction() as session:
        user = _named_user(session, username)
        if role != "admin":
            _check_not_last_admin(session, user)
        previous, user.role = user.role, role
        audit.record(
            session, actor, "user.set_role", None, user_id=user.id, role=role, previous=previous
        )
    return user


def set_display_name(store: Store, username: str, display_name: str, *, actor: str) -> UserRow:
    """Give an account the name pages show for it (trimmed; see ``checked_display_name``).
    Audited by user id only: the event never holds the name. Raises ``NotFound`` or
    ``InvalidField``."""
    shown = checked_display_name(display_name)
    with store.transaction() as session:
        user = _named_user(session, username)
        user.display_name = shown
        audit.record(session, actor, "user.set_display_name", None, user_id=user.id)
    return user


def user(store: Store, user_id: int) -> UserRow:
    """The enabled user with this id. Raises ``NotAuthenticated`` if absent or disabled."""
    with store.transaction() as session:
        row = session.get(UserRow, user_id)
    if row is None or row.disabled:
        raise NotAuthenticated("Your session has ended; please sign in again.")
    return row


def create_api_key(
    store: Store,
    role: str,
    *,
    agency: str | None,
    actor: str,
    label: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKeyRow, str]:
    """A new API key row and the key itself, which is shown once and never stored; audited."""
    with store.transaction() as session:
        row, key = new_api_key(session, role, agency=agency, label=label, expires_at=expires_at)
        audit.record(
            session,
            actor,
            "key.create",
            None,
            key_id=row.id,
            prefix=row.prefix,
            role=role,
            agency=agency,
        )
    return row, key


def api_key(store: Store, key: str) -> ApiKeyRow:
    """The usable key row for a presented key. Raises ``NotAuthenticated``."""
    with store.transaction() as session:
        return api_key_for(session, key)


def revoke_api_key(store: Store, prefix: str, *, actor: str) -> ApiKeyRow:
    """Revoke a key by prefix (idempotent); it stops working at once. Audited. Raises
    ``NotFound``."""
    with store.transaction() as session:
        row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix))
        if row is None:
            raise NotFound(f"There is no key with prefix {prefix!r}.")
        if row.revoked_at is None:
            row.revoked_at = utc_now()
        audit.record(session, actor, "key.revoke", None, key_id=row.id, prefix=prefix)
    return row


def api_keys(store: Store) -> list[ApiKeyRow]:
    """Every key, oldest first (prefixes only; the keys themselves are never stored)."""
    with store.transaction() as session:
        return list(session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id)))
