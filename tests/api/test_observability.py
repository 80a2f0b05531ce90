"""Readiness, metrics, request ids and structured logs."""

import json

import httpx2

from reunite.index import read_manifest
from tests.api.test_routes import API, create, upload
from tests.server import Server


def test_readyz_and_metrics(client, sample):
    ready = client.get("/readyz")
    assert ready.status_code == 200
    answer = ready.json()
    assert {k: answer[k] for k in ("status", "index_faces")} == {
        "status": "ready",
        "index_faces": 0,
    }
    # Launch to ready: this test process's age when the app's index became ready.
    assert 0 < answer["index_ready_after_s"] < 3600
    manifest = read_manifest(client.app.state.service.settings.index_dir)
    assert (answer["index_build"], answer["index_built_at"]) == (
        manifest.build_id,
        manifest.built_at,
    )
    case = create(client, "missing")
    upload(client, case["id"], sample("obama.jpg"))
    client.post(f"{API}/search", files={"file": ("b.jpg", sample("biden.jpg"), "image/jpeg")})
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    for line in (
        'reunite_index_faces{kind="missing"} 1.0',
        "reunite_enrollments_total 1.0",
        "reunite_searches_total 1.0",
        "reunite_webhook_backlog 0.0",
        f"reunite_index_ready_seconds {float(answer['index_ready_after_s'])}",
        f'reunite_index_build_info{{build="{manifest.build_id}"}} 1.0',
    ):
        assert line in text, line
    assert (
        'reunite_http_requests_total{method="POST",route="/api/v1/cases",status="201"} 1.0' in text
    )
    assert "reunite_http_request_duration_seconds_bucket" in text


def test_the_service_is_not_ready_until_its_index_is_loaded(settings, finder, sample):
    from reunite.errors import NotReady
    from reunite.service import Reunite

    service = Reunite.open(settings, finder=finder, load_index=False)
    try:
        case = service.create_case({"kind": "missing"}, actor="t")  # the store works at once
        try:
            service.enroll_photo(case.id, sample("obama.jpg"), actor="t")
        except NotReady:
            pass
        else:
            raise AssertionError("enrolled before the index was loaded: candidates would be lost")
        service.make_ready()
        assert service.enroll_photo(case.id, sample("obama.jpg"), actor="t").created
    finally:
        service.close()


def test_request_ids_and_json_logs_without_names(tmp_path, sample):
    server = Server(tmp_path, REUNITE_LOG_FORMAT="json")
    try:
        with httpx2.Client(base_url=server.url, headers=server.auth, timeout=60) as http:
            case = http.post(
                f"{API}/cases",
                json={"kind": "missing", "name": "李建国", "contact": "13800000000"},
                headers={"X-Request-ID": "trace-123"},
            )
            assert case.headers["x-request-id"] == "trace-123"
            enrolled = http.post(
                f"{API}/cases/{case.json()['id']}/photos",
                files={"file": ("obama.jpg", sample("obama.jpg"), "image/jpeg")},
            )
            assert enrolled.status_code == 201
            assert len(enrolled.headers["x-request-id"]) == 32  # made up when not sent
    finally:
        log = server.stop()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert lines, log
    traced = [entry for entry in lines if entry["request_id"] == "trace-123"]
    assert any(e.get("route") == "/api/v1/cases" and e.get("status") == 201 for e in traced)
    assert any("case" in e["message"] and "created" in e["message"] for e in traced)
    for secret in ("李建国", "13800000000", "obama.jpg"):
        assert secret not in log


def test_a_500_passes_through_the_same_middleware_as_any_answer(tmp_path):
    """A real fault (the cases table gone from under a running server): the 500 still carries
    the caller's request id, the security headers and no-store, is logged as an access line and
    counted in the metrics."""
    import sqlite3

    server = Server(tmp_path, REUNITE_LOG_FORMAT="json")
    try:
        with httpx2.Client(base_url=server.url, headers=server.auth, timeout=60) as http:
            assert http.get(f"{API}/cases").status_code == 200
            with sqlite3.connect(tmp_path / "data" / "reunite.db") as db:
                db.execute("ALTER TABLE cases RENAME TO cases_damaged")
            broken = http.get(f"{API}/cases", headers={"X-Request-ID": "trace-500"})
            metrics = http.get("/metrics").text
    finally:
        log = server.stop()
    assert broken.status_code == 500
    assert broken.json()["code"] == "internal_error"
    assert broken.headers["x-request-id"] == "trace-500"
    assert broken.headers["cache-control"] == "no-store"
    assert broken.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" in broken.headers
    assert 'route="/api/v1/cases",status="500"' in metrics
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    traced = [entry for entry in lines if entry["request_id"] == "trace-500"]
    assert any(e.get("status") == 500 and e.get("route") == "/api/v1/cases" for e in traced), log
