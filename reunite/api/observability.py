"""Logs, request ids and Prometheus metrics for the HTTP service.

Every request gets an id (the caller's ``X-Request-ID`` when it is a plain token, else a new
one), returned in ``X-Request-ID`` and attached to every log line written while it is handled.
Logs are text or, with ``REUNITE_LOG_FORMAT=json``, one JSON object a line. Like everything in
reunite they carry ids only: never names, images or embeddings.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reunite import webhooks
from reunite.service import Reunite

REQUEST_ID_HEADER = "X-Request-ID"
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_CLEAN_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
access_log = logging.getLogger("reunite.access")


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for extra in ("method", "route", "status", "duration_ms", "principal"):
            if hasattr(record, extra):
                entry[extra] = getattr(record, extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """Send reunite's and uvicorn's logs to stderr in ``text`` or ``json`` form."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class ServiceCollector(Collector):
    """Metrics read from the service when Prometheus scrapes: counts, index size, backlog."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        service: Reunite | None = getattr(self.app.state, "service", None)
        if service is None:
            return
        for name, help_text in (
            ("enrollments", "Photos enrolled into cases."),
            ("searches", "Ad-hoc photo searches."),
            ("candidates", "Candidates proposed."),
        ):
            counter = CounterMetricFamily(f"reunite_{name}", help_text)
            counter.add_metric([], service.stats[name])
            yield counter
        faces = GaugeMetricFamily("reunite_index_faces", "Faces in the index.", labels=["kind"])
        for kind, count in service.index_report.counts.items():
            faces.add_metric([kind], service.index.count(kind) if service.ready else count)
        yield faces
        if service.live.ready_after_s is not None:
            ready = GaugeMetricFamily(
                "reunite_index_ready_seconds",
                "Seconds from this worker's launch to its index being loaded and caught up.",
            )
            ready.add_metric([], service.live.ready_after_s)
            yield ready
            build = GaugeMetricFamily(
                "reunite_index_build_info",
                "The index build this worker searches (1, labelled with its id).",
                labels=["build"],
            )
            build.add_metric([service.index.build_id], 1)
            yield build
        backlog = GaugeMetricFamily(
            "reunite_webhook_backlog", "Webhook events waiting for delivery."
        )
        backlog.add_metric([], webhooks.webhook_backlog(service.store))
        yield backlog


def install_observability(app: FastAPI) -> CollectorRegistry:
    """Request ids, access logs and request metrics for ``app``; returns its metric registry."""
    registry = CollectorRegistry()
    requests = Counter(
        "reunite_http_requests",
        "HTTP requests answered.",
        ["method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "reunite_http_request_duration_seconds",
        "Time to answer HTTP requests.",
        ["method", "route"],
        registry=registry,
    )
    registry.register(ServiceCollector(app))

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = offered if _CLEAN_ID.match(offered) else uuid.uuid4().hex
        token = _request_id.set(request_id)
        started = time.perf_counter()
        try:
            response = await call_next(request)
            elapsed = time.perf_counter() - started
            route = getattr(request.scope.get("route"), "path", "unmatched")
            requests.labels(request.method, route, str(response.status_code)).inc()
            latency.labels(request.method, route).observe(elapsed)
            principal = getattr(request.state, "principal", None)
            access_log.info(
                "%s %s %d %.1f ms",
                request.method,
                route,
                response.status_code,
                elapsed * 1000,
                extra={
                    "method": request.method,
                    "route": route,
                    "status": response.status_code,
                    "duration_ms": round(elapsed * 1000, 1),
                    "principal": principal.name if principal else None,
                },
            )
            response.headers[REQUEST_ID_HEADER] = request_id
            return response
        finally:
            _request_id.reset(token)

    return registry
