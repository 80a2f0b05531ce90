"""Operations endpoints: liveness (``/healthz``), readiness (``/readyz``) and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from reunite import access
from reunite.api.routes import Caller
from reunite.api.schemas import ReadyOut
from reunite.errors import NotReady
from reunite.service import Reunite


def operations_router(registry: CollectorRegistry) -> APIRouter:
    """The three operations endpoints; ``/metrics`` exports ``registry``."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    def healthz() -> dict[str, str]:
        """Liveness: answers while the process serves (no key needed)."""
        return {"status": "ok"}

    @router.get("/readyz")
    def readyz(request: Request, _caller: Caller) -> ReadyOut:
        """Readiness: 503 until the face index is loaded, then 200."""
        service: Reunite = request.app.state.service
        if not service.ready:
            raise NotReady("The face index is still loading.")
        return ReadyOut(
            status="ready",
            index_faces=service.index.count(),
            index_ready_after_s=service.live.ready_after_s,
            index_build=service.index.build_id,
            index_built_at=service.index.built_at,
        )

    @router.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Metrics"}},
    )
    def metrics(caller: Caller) -> PlainTextResponse:
        """Prometheus metrics (admins): requests, latencies, enrollments, searches, index size,
        webhook backlog."""
        access.check_role(caller)
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
