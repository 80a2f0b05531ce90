"""The composition root: ``create_app`` builds the web application from the HTTP API and the
staff pages over one ``Reunite`` service.

Layers point one way: the library (``reunite/*.py``) <- the API (``reunite.api``) <- the staff
pages (``reunite.web``) <- this module. Only this module knows both the API and the pages.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import Scope

from reunite import __version__, accounts, upload_slots
from reunite.api import auth
from reunite.api.errors import UnexpectedErrors, install_error_handlers
from reunite.api.gate import OPEN_BODY_ROUTES, BodyGate
from reunite.api.limits import BodyLimit, RateLimiter
from reunite.api.observability import configure_logging, install_observability
from reunite.api.openapi import API_DESCRIPTION, install_openapi
from reunite.api.operations import operations_router
from reunite.api.routes import router as api_router
from reunite.api.security import SecurityHeaders
from reunite.api.sign_ins import SignInGuard
from reunite.config import Settings
from reunite.errors import StoreUnavailable
from reunite.faces import FaceFinder, faces_in_image
from reunite.files import close_own_folders, loose_paths, restrict_new_files
from reunite.service import Reunite
from reunite.upload_slots import UploadSlots
from reunite.web import MAX_INTAKE_PHOTOS, install_pages
from reunite.web.pages import refused_page, too_large_page
from reunite.webhook_delivery import WebhookWorker

log = logging.getLogger(__name__)

MULTIPART_OVERHEAD_BYTES = 1024 * 1024
"""Room above ``max_upload_bytes`` for multipart headers and form fields."""

INDEX_THREAD_WAIT_S = 10.0
"""At stop, how long to wait for the index thread to finish what it is doing (a sync, a
save). Past it (a build still downloading or being built, a database that does not answer) the
server stops without saving its index, once no save is under way: the next start catches it up
from the store, or builds it again if it was still being built."""
SIGN_IN_BODY_BYTES = 8 * 1024
"""Largest body of a sign-in (a name, a password, a CSRF token): the routes anyone may send to."""


def create_app(settings: Settings | None = None, *, finder: FaceFinder = faces_in_image) -> FastAPI:
    """The FastAPI app: API, staff pages, metrics, and the webhook worker.

    At start-up the store opens at once and the index loads in the background: ``/healthz``
    answers from the start, ``/readyz`` and the endpoints that need the index answer 503 until
    it is loaded. At shutdown the worker stops and the index is saved.

    Raises:
        UnsafeConfiguration: in production, a weak session key (see ``api.security``).
    """
    settings = settings or Settings()
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    session_key = auth.session_secret(settings)  # checked: refuses a weak key in production

    app = FastAPIOffline(  # FastAPI, with the /docs assets served locally
        title="reunite",
        version=__version__,
        summary="Face matching to reunite lost people with their families.",
        description=API_DESCRIPTION,
        lifespan=lifespan_of(settings, finder),
    )
    app.state.rate_limiter = RateLimiter(
        per_minute=settings.rate_limit_per_minute, burst=settings.rate_limit_burst
    )
    app.state.sign_in_guard = SignInGuard(
        per_minute=settings.sign_in_attempts_per_minute,
        max_pause_s=settings.sign_in_max_pause_s,
        secret=session_key,
    )
    install_error_handlers(app)
    app.include_router(auth.router)
    app.include_router(api_router)
    install_pages(app)
    install_openapi(app)

    app.add_middleware(UnexpectedErrors)  # innermost: a 500 passes through all of the below
    app.add_middleware(
        BodyLimit,
        limit_of=lambda scope: body_limit_bytes(scope, settings),
        answer_of=too_large_page,  # a page for a browser's form, else a problem
    )
    app.add_middleware(  # inside the session middleware: it needs the session, decoded
        BodyGate,
        body_timeout_s=settings.body_timeout_s,
        min_bytes_per_s=settings.min_body_bytes_per_s,
        rate_grace_s=settings.body_rate_grace_s,
        uploads=UploadSlots(
            settings.data_dir / upload_slots.FOLDER,
            settings.max_uploads_per_client,
            secret=session_key.encode("utf-8"),
        ),
        page_answer=refused_page,  # a redirect to sign in, or a page for a browser
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_key,
        session_cookie=auth.SESSION_COOKIE,
        max_age=settings.session_max_age_s,
        same_site="lax",
        https_only=settings.secure_cookies,
    )
    app.add_middleware(SecurityHeaders)  # on every answer, errors included
    registry = install_observability(app)  # outermost: every answer gets its id and metrics
    app.include_router(operations_router(registry))
    return app


def body_limit_bytes(scope: Scope, settings: Settings) -> int:
    """Largest request body, bytes: a photo (or several on a page form), a JSON body, or a
    sign-in."""
    if (scope.get("method"), scope.get("path")) in OPEN_BODY_ROUTES:
        return SIGN_IN_BODY_BYTES
    headers = dict(scope.get("headers", []))
    content_type = headers.get(b"content-type", b"").decode("latin-1")
    if not content_type.startswith("multipart/"):
        return settings.max_json_bytes
    photos = 1 if scope.get("path", "").startswith("/api/") else MAX_INTAKE_PHOTOS
    return settings.max_upload_bytes * photos + MULTIPART_OVERHEAD_BYTES


def app_from_environment() -> FastAPI:
    """``create_app`` with settings from the environment, for a server started without
    ``reunite serve`` (``uvicorn --factory reunite.app:app_from_environment``): a spawned
    process starts with logging unset and the default umask."""
    restrict_new_files()
    settings = Settings()
    configure_logging(settings.log_format)  # a spawned worker starts with logging unset
    return create_app(settings)


CONNECTIONS_MODULE = "reunite.api.connections"
"""The module of reunite's HTTP protocol (``HeaderTimeoutH11Protocol``). uvicorn imports it
before building the app when it is the ``http`` protocol, and ``reunite serve`` names it;
nothing else in the package imports it (this module must not), so its absence at start means
the server runs another protocol."""


def _warn_without_our_protocol() -> None:
    """Say, once at start, if the server was started without reunite's HTTP protocol (plain
    ``uvicorn reunite.app:...``): it then has no header timeout and no connection limit."""
    if CONNECTIONS_MODULE in sys.modules:
        return
    log.warning(
        "connections: this server does not use reunite's HTTP protocol, so a client that never "
        "finishes its request headers holds its connection for ever; run `reunite serve`, or "
        "give uvicorn --http %s:HeaderTimeoutH11Protocol (and --limit-concurrency)",
        CONNECTIONS_MODULE,
    )


def lifespan_of(
    settings: Settings, finder: FaceFinder
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's start and stop: the store opened at once, the index loaded and kept in step
    by a thread of its own, the webhook worker; at stop, the worker stopped, then the index
    saved once its thread is done (waiting at most ``INDEX_THREAD_WAIT_S``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("data in %s, index in %s", settings.data_dir, settings.index_dir)
        _warn_without_our_protocol()
        service = await run_in_threadpool(Reunite.open, settings, finder=finder, load_index=False)
        await run_in_threadpool(accounts.dummy_hash)  # sign-in takes as long for every name
        app.state.service = service
        stop_syncing = threading.Event()
        loader = threading.Thread(  # a daemon: a stop need not wait for a download to end
            target=_load_and_sync_index,
            args=(service, stop_syncing),
            name="index-sync",
            daemon=True,
        )
        loader.start()
        worker = WebhookWorker(service.store, settings)
        app.state.webhook_worker = worker
        service.on_outbox = worker.wake
        worker.start()
        try:
            yield
        finally:
            # One delivery may take up to four timeouts (connect, write, read, pool).
            await run_in_threadpool(worker.stop, 4 * settings.webhook_timeout_s + 5)
            stop_syncing.set()
            await run_in_threadpool(loader.join, INDEX_THREAD_WAIT_S)
            if loader.is_alive():
                log.warning(
                    "index: still loading or fetching a build after %.0f s; stopping without "
                    "saving it (the next start catches it up from the store)",
                    INDEX_THREAD_WAIT_S,
                )
                await run_in_threadpool(_close_between_saves, service)
            else:
                await run_in_threadpool(service.close)

    return lifespan


def _close_between_saves(service: Reunite) -> None:
    """Close the store without saving the index, once no save is under way (one is waited
    for; none starts after), so that the exit cuts no index file off half-way."""
    service.live.saving.acquire()  # held until the process exits
    service.store.close()


def _load_and_sync_index(service: Reunite, stop: threading.Event) -> None:
    """Load the index, then keep it in step with other processes until ``stop`` is set."""
    try:
        report = service.make_ready()
    except Exception:  # the thread must say why, or the service would stay "not ready" silently
        log.exception("index: loading failed; the service stays not ready")
        return
    log.info("index ready (%s: %s), counts %s", report.how, report.reason, report.counts)
    _warn_about_loose_files(service.settings)
    while not stop.wait(service.settings.index_sync_interval_s):
        try:
            service.sync_index()
        except StoreUnavailable:  # the database is down or restarting: one line, no traceback
            log.warning("index: sync with the store failed (database unreachable); retrying")
        except Exception:  # keep syncing: a failed round (database busy, disk full) is retried
            log.exception("index: sync with the store failed; retrying")


def _warn_about_loose_files(settings: Settings) -> None:
    """Say, once at start, if files under the data or index folder are open to others (made
    by an older version, a copy or a restore under a wide umask). New files are owner-only;
    the two folders themselves are closed first (a fresh checkout makes them 0755)."""
    folders = [settings.data_dir, settings.index_dir]
    for folder in close_own_folders(folders):
        log.info("made %s owner-only (0700): it holds biometric data", folder)
    count, examples = loose_paths(folders)
    if count:
        log.warning(
            "%d files or folders under the data and index folders are readable by others "
            "(e.g. %s); they hold biometric data: chmod -R go-rwx %s %s",
            count,
            ", ".join(str(p) for p in examples),
            settings.data_dir,
            settings.index_dir,
        )
