"""Staff and admin accounts: creation and password checks (argon2id through argon2-cffi).

Hashing is deliberately slow (about 50 ms and 64 MiB per check with argon2-cffi's defaults), so
a stolen database does not yield passwords cheaply.
"""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from reunite.errors import Conflict, InvalidField, NotAuthenticated
from reunite.review import ROLES
from reunite.store import User

MIN_PASSWORD_CHARS = 10
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-@]{2,64}$")

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a real password: keeps sign-in time the same for unknown users")


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
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None or user.disabled:
        raise NotAuthenticated("Wrong username or password.")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user
