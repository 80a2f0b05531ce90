"""Who is calling: an API key (``Authorization: Bearer rk_...``) or a staff session.

Machine clients send a key; people sign in and get a session cookie (Starlette's
``SessionMiddleware``, signed with itsdangerous, ``SameSite=Lax``, HTTP-only) that holds the user
id and a CSRF token. Every state-changing request made with a session must carry that token:
forms in a hidden ``csrf_token`` field, API calls in the ``X-CSRF-Token`` header. Requests with
a key need no CSRF token (a browser never sends one on its own).

``principal`` is the one dependency every ``/api/v1`` endpoint uses: it authenticates, spends one
request from the caller's rate limit, and checks the CSRF token where one is due.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from reunite import accounts
from reunite.access import Principal
from reunite.api.limits import RateLimiter
from reunite.api.security import check_secret_key
from reunite.api.sign_ins import DEVICE_COOKIE, DEVICE_MAX_AGE_S, SignInGuard
from reunite.config import Settings
from reunite.errors import Forbidden, NotAuthenticated
from reunite.files import write_atomically
from reunite.service import Reunite
from reunite.store import UserRow

SESSION_COOKIE = "reunite_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"

router = APIRouter(prefix="/api/v1", tags=["session"])


def session_secret(settings: Settings) -> str:
    """``REUNITE_SECRET_KEY``, or a random key made once and kept (mode 0600) in
    ``<data_dir>/secret_key``.

    Raises:
        UnsafeConfiguration: in production, a key shorter than 32 characters or a known weak
        value (``api.security.check_secret_key``).
    """
    if settings.secret_key:
        key = settings.secret_key
    else:
        path = settings.data_dir / "secret_key"
        if not path.exists():
            write_atomically(path, secrets.token_urlsafe(48).encode("ascii"))
            os.chmod(path, 0o600)
        key = Path(path).read_text(encoding="ascii").strip()
    check_secret_key(settings, key)
    return key


def service_of(request: Request) -> Reunite:
    return request.app.state.service  # type: ignore[no-any-return]


bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `reunite keys create`, sent as `Authorization: Bearer rk_...`.",
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    x_csrf_token: Annotated[str | None, Header(alias=CSRF_HEADER, include_in_schema=False)] = None,
) -> Principal:
    """Dependency: the authenticated caller (401 if none), within its rate limit (429)."""
    service = service_of(request)
    if credentials is not None:
        key = accounts.api_key(service.store, credentials.credentials)
        who = Principal(name=f"key:{key.prefix}", role=key.role, agency=key.agency)
    else:
        user = session_user(request)
        if user is None:
            raise NotAuthenticated(
                "Send an API key (Authorization: Bearer rk_...) or sign in first."
            )
        who = Principal(name=f"user:{user.username}", role=user.role)
        if request.method not in SAFE_METHODS:
            check_csrf(request, x_csrf_token)
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.take(who.name)
    request.state.principal = who
    return who


def session_user(request: Request) -> UserRow | None:
    """The signed-in user, or None. A session whose user was disabled is cleared."""
    user_id = request.session.get("user_id")
    if user_id is None:
        return None
    try:
        user = accounts.user(service_of(request).store, int(user_id))
    except NotAuthenticated:
        request.session.clear()
        return None
    if request.session.get("epoch") != user.session_epoch:  # signed out since, or disabled
        request.session.clear()
        return None
    return user


def csrf_token(request: Request) -> str:
    """This session's CSRF token (made at sign-in)."""
    return str(request.session.get("csrf", ""))


def check_csrf(request: Request, sent: str | None) -> None:
    """Raise ``Forbidden`` unless ``sent`` is this session's CSRF token."""
    expected = csrf_token(request)
    if not (expected and sent and hmac.compare_digest(expected, sent)):
        raise Forbidden(
            "The form or request is stale (CSRF token missing or wrong); reload it.",
            reason="csrf",
        )


def limit_sign_ins(request: Request, username: str) -> None:
    """Spend a sign-in attempt for the client address, and refuse while ``username`` is paused
    after wrong passwords, unless this browser signed in as it before or is signed in as it
    now (429 either way; see ``api.sign_ins``)."""
    guard: SignInGuard = request.app.state.sign_in_guard
    signed_in = session_user(request)
    trusted = (signed_in is not None and signed_in.username == username) or guard.trusts(
        request.cookies.get(DEVICE_COOKIE), username
    )
    address = request.client.host if request.client else "-"
    guard.check(address, username, trusted_device=trusted)


def signed_in_user(request: Request, username: str, password: str) -> UserRow:
    """The user with this username and password, the guessing limits spent and kept (see
    ``limit_sign_ins``). Raises ``NotAuthenticated`` or ``RateLimited``."""
    guard: SignInGuard = request.app.state.sign_in_guard
    limit_sign_ins(request, username)
    try:
        user = accounts.signed_in_user(service_of(request).store, username, password)
    except NotAuthenticated:
        guard.failed(username)
        raise
    guard.succeeded(username)
    return user


def remember_device(request: Request, response: Response, username: str) -> None:
    """Mark this browser as one that signed in as ``username`` (the device cookie)."""
    guard: SignInGuard = request.app.state.sign_in_guard
    settings: Settings = service_of(request).settings
    response.set_cookie(
        DEVICE_COOKIE,
        guard.device_cookie(request.cookies.get(DEVICE_COOKIE), username),
        max_age=DEVICE_MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )


def start_session(request: Request, user: UserRow) -> str:
    """Put ``user`` in a fresh session (new CSRF token); returns the token."""
    request.session.clear()
    token = secrets.token_urlsafe(32)
    request.session.update({"user_id": user.id, "epoch": user.session_epoch, "csrf": token})
    return token


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(BaseModel):
    user_id: int
    username: str
    role: str
    csrf_token: str


@router.post("/session", responses={401: {"description": "Wrong username or password"}})
def sign_in(body: Credentials, request: Request, response: Response) -> SessionOut:
    """Sign in; sets the session cookie. Send ``csrf_token`` back as ``X-CSRF-Token`` on writes."""
    user = signed_in_user(request, body.username, body.password)
    token = start_session(request, user)
    remember_device(request, response, user.username)
    return SessionOut(user_id=user.id, username=user.username, role=user.role, csrf_token=token)


@router.get("/session")
def current_session(request: Request) -> SessionOut:
    """The signed-in user and this session's CSRF token (401 without a session)."""
    user = session_user(request)
    if user is None:
        raise NotAuthenticated("Sign in first.")
    return SessionOut(
        user_id=user.id, username=user.username, role=user.role, csrf_token=csrf_token(request)
    )


@router.delete("/session", status_code=204)
def sign_out(request: Request) -> Response:
    """Sign out: ends every session of this user, on every device."""
    end_session(request)
    return Response(status_code=204)


def end_session(request: Request) -> None:
    user = session_user(request)
    if user is not None:
        accounts.sign_out(service_of(request).store, user.id)
    request.session.clear()
