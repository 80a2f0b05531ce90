"""Browser-facing protections: security headers on every response, and the secret-key check.

Every response gets::

    Content-Security-Policy    pages: scripts, styles, fonts and images from this origin only
                               (images also as data: URLs: the searched photo is shown inline);
                               no frames, forms post only here
    X-Content-Type-Options     nosniff
    X-Frame-Options            DENY (and frame-ancestors 'none' in the policy)
    Referrer-Policy            no-referrer (page addresses carry case ids)
    Permissions-Policy         camera, microphone, geolocation, payment, USB: none (the intake
                               page takes photos from files; it never opens the camera)
    Cache-Control              no-store, unless the response set its own (the static assets):
                               pages and API answers carry names, photos and face crops

The interactive API documents (``/docs``, ``/redoc``) come with inline scripts and, for ReDoc,
styles and workers made at run time. Their pages get a policy of their own: each inline script
allowed by its SHA-256 hash (computed from the page as it is sent), inline styles, ``blob:``
workers. No other page gets those.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reunite.config import Settings
from reunite.errors import UnsafeConfiguration

log = logging.getLogger(__name__)

PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
DOCS_POLICY = (
    "default-src 'none'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
CACHEABLE_PREFIXES = ("/static/", "/static-offline-docs/")
"""Static assets (no personal data): the browser may keep them."""

HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def inline_script_hashes(html: bytes) -> list[str]:
    """CSP sources (``'sha256-...'``) for each inline ``<script>`` of a page."""
    return [
        f"'sha256-{base64.b64encode(hashlib.sha256(body).digest()).decode('ascii')}'"
        for body in _INLINE_SCRIPT.findall(html)
    ]


class SecurityHeaders:
    """ASGI middleware adding the headers above to every HTTP response. Costs a dictionary
    update a response; the documents' pages (a few kB) are read whole to hash their scripts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path in DOCS_PATHS:
            await self._docs_page(scope, receive, send)
            return
        cacheable = path.startswith(CACHEABLE_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _with_headers(message["headers"], PAGE_POLICY, cacheable)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _docs_page(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message | None = None
        body = bytearray()

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False) and start is not None:
                    scripts = ["'self'", *inline_script_hashes(bytes(body))]
                    policy = DOCS_POLICY.format(scripts=" ".join(scripts))
                    headers = _with_headers(start["headers"], policy, cacheable=False)
                    await send({**start, "headers": headers})
                    await send({"type": "http.response.body", "body": bytes(body)})
                return
            await send(message)

        await self.app(scope, receive, collect)


def _with_headers(
    headers: list[tuple[bytes, bytes]], policy: str, cacheable: bool
) -> list[tuple[bytes, bytes]]:
    present = {name.lower() for name, _ in headers}
    added = {"content-security-policy": policy, **HEADERS}
    if not cacheable:
        added["cache-control"] = "no-store"
    return list(headers) + [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in added.items()
        if name.encode("latin-1") not in present
    ]


# ------------------------------------------------------------------------------ secrets

MIN_SECRET_KEY_CHARS = 32
WEAK_SECRET_WORDS = (
    "changeme",
    "secret",
    "password",
    "example",
    "insecure",
    "default",
    "placeholder",
    "reunite",
)
"""A key containing one of these (ignoring case and punctuation) was typed by a person or copied
from an example, not drawn at random."""
MIN_DISTINCT_CHARS = 10


def secret_key_weakness(key: str) -> str | None:
    """Why ``key`` is too weak to sign sessions, or None when it is acceptable."""
    if len(key) < MIN_SECRET_KEY_CHARS:
        return f"it has {len(key)} characters; at least {MIN_SECRET_KEY_CHARS} are needed"
    folded = re.sub(r"[^a-z0-9]", "", key.lower())
    for word in WEAK_SECRET_WORDS:
        if word in folded:
            return f"it contains {word!r}, a placeholder, not a random key"
    if len(set(key)) < MIN_DISTINCT_CHARS:
        return f"it uses only {len(set(key))} distinct characters, not a random key"
    return None


def check_secret_key(settings: Settings, key: str) -> None:
    """Refuse a weak session key in production (``REUNITE_ENVIRONMENT=production``, the
    default); in development, only warn.

    Raises:
        UnsafeConfiguration: the key is shorter than 32 characters or a known weak value.
    """
    weakness = secret_key_weakness(key)
    if weakness is None:
        return
    where = "REUNITE_SECRET_KEY" if settings.secret_key else f"{settings.data_dir}/secret_key"
    if settings.environment == "development":
        log.warning("the session key (%s) is weak: %s (allowed in development)", where, weakness)
        return
    raise UnsafeConfiguration(
        f"The session key ({where}) is weak: {weakness}. Unset REUNITE_SECRET_KEY to use a "
        "random key kept in the data folder, or set one made with "
        "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`. "
        "(REUNITE_ENVIRONMENT=development allows a weak key.)"
    )
