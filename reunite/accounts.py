"""Accounts: staff and admin users (argon2id passwords) and API keys for machine clients.

Password hashing is deliberately slow (about 50 ms and 64 MiB per check with argon2-cffi's
defaults), so a stolen database does not yield passwords cheaply. API keys are 256-bit random
strings, so one fast SHA-256 is enough: only that hash is stored, and the key is shown once.

Key format: ``rk_<prefix>_<secret>``; the 8-character prefix identifies the key in lists and
logs and is not secret.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from reunite.access import ROLES as KEY_ROLES
from reunite.access import USER_ROLES as ROLES
from reunite.errors import Conflict, InvalidField, NotAuthenticated, NotFound
from reunite.store import ApiKey, User, utc_now

MIN_PASSWORD_CHARS = 10
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-@]{2,64}$")

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """A hash to check unknown users' passwords against, so that sign-in takes the same time
    for them. Made on first use, not at import: the ``reunite keys`` commands never need it."""
    return _hasher.hash("not a real password: keeps sign-in time the same for unknown users")


def new_user(session: Session, username: str, password: str, role: str) -> User:
    """Add an account. Raises ``InvalidField`` (bad name, role or short password), ``Conflict``."""
    if not USERNAME_PATTERN.match(username):
        raise InvalidField("A username is 2-64 letters, digits or _ . - @.")
    if role not in ROLES:
        raise InvalidField(f"role must be one of {list(ROLES)}, not {role!r}.")
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidField(f"A password needs at least {MIN_PASSWORD_CHARS} characters.")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"There is already a user named {username!r}.")
    user = User(username=username, password_hash=_hasher.hash(password), role=role)
    session.add(user)
    session.flush()
    return user


def authenticated_user(session: Session, username: str, password: str) -> User:
    """The enabled user with this name and password. Raises ``NotAuthenticated`` otherwise.

    Takes the same time whether or not the user exists (one argon2 verification).
    """
    user = session.scalar(select(User).where(User.username == username))
    try:
        _hasher.verify(user.password_hash if user else _dummy_hash(), password)
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
) -> tuple[ApiKey, str]:
    """A new key row and the key itself (shown once; only its hash is stored).

    Police keys need an agency; other roles take none.
    """
    if role not in KEY_ROLES:
        raise InvalidField(f"role must be one of {list(KEY_ROLES)}, not {role!r}.")
    if (role == "police") != bool(agency):
        raise InvalidField("A police key needs --agency; other roles take none.")
    while True:
        prefix = secrets.token_hex(4)
        if session.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix)) is None:
            break
    key = f"rk_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
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


def api_key_for(session: Session, key: str) -> ApiKey:
    """The usable key row for a presented key. Raises ``NotAuthenticated`` (unknown, malformed,
    revoked or expired), with a message that does not tell which."""
    match = KEY_PATTERN.match(key)
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == match.group(1))) if match else None
    if row is None or not hmac.compare_digest(row.key_sha256, key_sha256(key)):
        raise NotAuthenticated("The API key is not valid.")
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= utc_now()):
        raise NotAuthenticated("The API key is not valid.")
    return row


def revoke_api_key(session: Session, prefix: str) -> ApiKey:
    """Revoke a key by its prefix (idempotent). Raises ``NotFound``."""
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None:
        raise NotFound(f"There is no key with prefix {prefix!r}.")
    if row.revoked_at is None:
        row.revoked_at = utc_now()
    return row


def api_keys(session: Session) -> list[ApiKey]:
    """Every key, oldest first (prefixes only; the keys themselves are never stored)."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))
