"""A real server whose PostgreSQL goes away and comes back: requests that need the database are
refused with 503 ``store_unavailable`` (never a 500, never a traceback), the command line exits
11 with one line, nothing acknowledged before is lost, and the server recovers by itself."""

import subprocess
import sys
import time
from pathlib import Path

import httpx2

from tests.conftest import postgres_database
from tests.relay import Relay
from tests.server import Server, settings_env
from tests.web.conftest import PASSWORD, create_user, csrf_token

API = "/api/v1"


def test_database_outage_is_a_503_and_the_server_recovers(tmp_path: Path, sample) -> None:
    with postgres_database() as url:
        host_port = url.split("@", 1)[1].split("/", 1)[0]
        relay = Relay(int(host_port.rsplit(":", 1)[1]))
        relayed = url.replace(host_port, f"127.0.0.1:{relay.port}")
        settings = {"REUNITE_DATABASE_URL": relayed, "REUNITE_INDEX_SYNC_INTERVAL_S": "0.5"}
        create_user(tmp_path, "staff1", "staff", **settings)
        server = Server(tmp_path, **settings)
        try:
            with (
                httpx2.Client(base_url=server.url, headers=server.auth, timeout=60) as http,
                httpx2.Client(base_url=server.url, timeout=60) as browser,
            ):
                browser.headers.update({"Accept-Language": "zh-CN", "Accept": "text/html"})
                login = {"username": "staff1", "password": PASSWORD}
                signed = browser.post(
                    "/login", data={**login, "csrf_token": csrf_token(browser, "/login")}
                )
                assert signed.status_code == 303, signed.text
                kept = http.post(f"{API}/cases", json={"kind": "missing"})
                assert kept.status_code == 201, kept.text

                relay.cut()
                for response in (
                    http.post(f"{API}/cases", json={"kind": "found"}),
                    http.get(f"{API}/cases/{kept.json()['id']}"),
                    http.post(f"{API}/search", files={"file": ("p.jpg", sample("obama.jpg"))}),
                ):
                    assert response.status_code == 503, response.text
                    assert response.json()["code"] == "store_unavailable"
                    assert "database cannot be reached" in response.json()["detail"]
                    assert response.headers["Retry-After"] == "5"
                assert http.get("/healthz").status_code == 200  # liveness: the process is fine
                page = browser.get("/review")
                assert page.status_code == 503 and "暂时无法连接数据库" in page.text, page.text
                command = subprocess.run(
                    [sys.executable, "-m", "reunite.cli", "users", "list"],
                    env=settings_env(tmp_path, REUNITE_DATABASE_URL=relayed),
                    capture_output=True,
                    text=True,
                )
                assert command.returncode == 11, command.stderr
                assert command.stderr.startswith("error (store_unavailable): The database")
                assert len(command.stderr.strip().splitlines()) == 1
                time.sleep(1.5)  # a few index syncs fail meanwhile

                relay.restore()
                deadline = time.monotonic() + 30
                while (again := http.get(f"{API}/cases/{kept.json()['id']}")).status_code != 200:
                    assert time.monotonic() < deadline, again.text
                    time.sleep(0.2)
                assert http.post(f"{API}/cases", json={"kind": "found"}).status_code == 201
                listed = http.get(f"{API}/cases").json()["items"]
                # the case acknowledged before the outage is there; the refused one is not
                assert sorted(case["kind"] for case in listed) == ["found", "missing"]
        finally:
            log = server.stop()
            relay.cut()
        assert "Traceback" not in log
        assert "database unreachable" in log  # the index sync said so, in one line each
        assert " 500 " not in log
