"""The HTTP API: ``create_app`` builds the FastAPI application over one ``Reunite`` service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from reunite import __version__
from reunite.api import auth
from reunite.api.errors import install_error_handlers, problem
from reunite.api.routes import router
from reunite.config import Settings
from reunite.faces import FaceFinder, faces_in_image
from reunite.service import Reunite
from reunite.web import MAX_INTAKE_PHOTOS, install_pages

log = logging.getLogger(__name__)

MULTIPART_OVERHEAD_BYTES = 1024 * 1024
"""Room above ``max_upload_bytes`` for multipart headers and form fields."""


def create_app(settings: Settings | None = None, *, finder: FaceFinder = faces_in_image) -> FastAPI:
    """The FastAPI app. The service (store, index) opens at start-up and closes at shutdown."""
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = await run_in_threadpool(Reunite.open, settings, finder=finder)
        report = service.index_report
        log.info("index ready (%s: %s), counts %s", report.how, report.reason, report.counts)
        app.state.service = service
        try:
            yield
        finally:
            await run_in_threadpool(service.close)

    app = FastAPIOffline(  # FastAPI, with the /docs assets served locally
        title="reunite",
        version=__version__,
        summary="Face matching to reunite lost people with their families.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(auth.router)
    app.include_router(router)
    install_pages(app)
    app.add_middleware(
        SessionMiddleware,
        secret_key=auth.session_secret(settings),
        session_cookie=auth.SESSION_COOKIE,
        max_age=settings.session_max_age_s,
        same_site="lax",
        https_only=settings.secure_cookies,
    )

    @app.middleware("http")
    async def refuse_oversized_bodies(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        declared = request.headers.get("content-length")
        # A page form may carry several photos; each is still held to max_upload_bytes.
        photos = 1 if request.url.path.startswith("/api/") else MAX_INTAKE_PHOTOS
        limit = settings.max_upload_bytes * photos + MULTIPART_OVERHEAD_BYTES
        if declared and declared.isdigit() and int(declared) > limit:
            return problem(
                413,
                "image_too_large",
                f"The request is {declared} bytes; the limit is {limit} bytes.",
            )
        return await call_next(request)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """Liveness: answers while the process serves."""
        return {"status": "ok"}

    return app
