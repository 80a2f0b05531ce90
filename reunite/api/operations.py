"""Operations endpoints: liveness (``/healthz``), readiness (``/readyz``) and ``/metrics``."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from reunite import access
from reunite.api.examples import examples
from reunite.api.routes import Caller
from reunite.errors import NotReady
from reunite.service import Reunite


class ReadyOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "status": "ready",
                "index_faces": 15230,
                "index_ready_after_s": 2.4,
                "index_build": "4be05c1f9a2d4e7b8c3a1f0e6d5b4c3a",
                "index_built_at": "2026-11-29T09:20:11.512000+00:00",
            }
        )
    )

    status: Literal["ready"]
    index_faces: int
    index_ready_after_s: float | None = Field(
        None, description="Seconds from this worker's launch to its index being ready."
    )
    index_build: str = Field(
        "", description="The build this worker searches (a new one per `reunite reindex`)."
    )
    index_built_at: str = Field("", description="When that build was started (ISO 8601, UTC).")


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
