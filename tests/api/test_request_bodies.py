"""Bodies over raw sockets against a real server: read only from known callers, only as fast as
they come (and no slower than a minimum rate), only a few at once per caller; headers that never
finish are cut off; connections past the limit are answered 503."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from reunite.api.gate import BodyGate
from reunite.upload_slots import UploadSlots
from tests.server import Server, cli

HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
MAX_UPLOADS = 2
MIN_BYTES_PER_S = 1_000_000  # after the grace: a 3 MB body must be done within 3 s
RATE_GRACE_S = 2.0
MAX_CONNECTIONS = 6  # more than any other test here opens at once
MARGIN_S = 3.0
PASSWORD = "correct horse battery"
BOUNDARY = "reunite-test-boundary"


class Setup:
    def __init__(self, server: Server, spool: Path, session: dict[str, str]) -> None:
        self.server = server
        self.spool = spool
        self.cookie = session["cookie"]
        self.csrf = session["csrf"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    workdir = tmp_path_factory.mktemp("bodies")
    spool = workdir / "spool"  # the server's temporary files, and only its
    spool.mkdir()
    settings = {
        "REUNITE_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "REUNITE_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "REUNITE_MAX_UPLOADS_PER_CLIENT": str(MAX_UPLOADS),
        "REUNITE_MIN_BODY_BYTES_PER_S": str(MIN_BYTES_PER_S),
        "REUNITE_BODY_RATE_GRACE_S": str(RATE_GRACE_S),
        "REUNITE_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "TMPDIR": str(spool),
    }
    cli(workdir, "users", "create", "anna", "--role", "staff", "--password-stdin",
        stdin=PASSWORD + "\n", **settings)  # fmt: skip
    server = Server(workdir, **settings)
    try:
        signed = httpx2.post(
            f"{server.url}/api/v1/session", json={"username": "anna", "password": PASSWORD}
        )
        assert signed.status_code == 200, signed.text
        cookie = "; ".join(f"{k}={v}" for k, v in signed.cookies.items())
        yield Setup(server, spool, {"cookie": cookie, "csrf": signed.json()["csrf_token"]})
    finally:
        log = server.stop()
    assert "does not use reunite's HTTP protocol" not in log  # one process: its protocol too


def connect(setup: Setup) -> socket.socket:
    return socket.create_connection(("127.0.0.1", setup.server.port), timeout=10)


def send_headers(
    setup: Setup, path: str, length: int, content_type: str, **headers: str
) -> socket.socket:
    """A connection that has sent a POST's headers (declaring ``length`` bytes) and no body."""
    sock = connect(setup)
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}"]
    lines += [f"Content-Type: {content_type}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    return sock


def answer(sock: socket.socket, timeout_s: float = 10.0) -> tuple[int, bytes]:
    """The status and whole answer of the server (0 if it closes without a word)."""
    sock.settimeout(timeout_s)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    if not data:
        return 0, b""
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.startswith(b"content-length:")
        ),
        0,
    )
    while len(data) < len(head) + 4 + length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]), data


def multipart_start(field: str = "file") -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name={field!r}; filename="p.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        )
        .encode("latin-1")
        .replace(b"'", b'"')
    )


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
LARGE = 190_000_000
UPLOAD = 10_000_000  # within the limit on a photo


@pytest.mark.parametrize("path", ["/intake", "/search"])
def test_a_page_without_a_session_is_sent_to_sign_in_before_its_body(setup, path):
    sock = send_headers(setup, path, LARGE, MULTIPART, Accept="text/html")
    status, head = answer(sock)
    sock.close()
    assert status == 303
    assert b"location: /login?next=" in head.lower()


@pytest.mark.parametrize("path", ["/api/v1/search", "/api/v1/cases/1/photos"])
@pytest.mark.parametrize("authorization", [None, "Bearer rk_not_a_key"])
def test_the_api_without_a_valid_key_answers_401_before_the_body(setup, path, authorization):
    extra = {"Authorization": authorization} if authorization else {}
    sock = send_headers(setup, path, LARGE, MULTIPART, **extra)
    status, head = answer(sock)
    sock.close()
    assert status == 401
    assert b"not_authenticated" in head
    assert b'www-authenticate: bearer realm="reunite"' in head.lower()


def test_a_session_without_its_csrf_header_or_from_another_site_is_refused_before_the_body(
    setup,
):
    api = send_headers(setup, "/api/v1/search", LARGE, MULTIPART, Cookie=setup.cookie)
    page = send_headers(
        setup, "/search", LARGE, MULTIPART, Cookie=setup.cookie, Sec_Fetch_Site="cross-site"
    )
    api_status, api_answer = answer(api)
    assert (api_status, b'"reason":"csrf"' in api_answer) == (403, True)
    assert answer(page)[0] == 403
    api.close()
    page.close()


def test_a_large_sign_in_is_refused_413(setup):
    sock = send_headers(setup, "/login", 5_000_000, "application/x-www-form-urlencoded")
    status, head = answer(sock)
    sock.close()
    assert status == 413, head
    chunked = connect(setup)  # no length said: counted as it comes
    chunked.sendall(
        b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
    )
    piece = b"a" * 65536
    for _ in range(80):  # 5 MiB, well over the sign-in limit
        try:
            chunked.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        except OSError:
            break  # the server answered and closed
    assert answer(chunked)[0] == 413
    chunked.close()


@pytest.mark.parametrize("sent", [b"", b"POST /api/v1/search HTTP/1.1\r\nHost: x\r\n"])
def test_headers_that_stall_are_cut_off_within_the_header_timeout(setup, sent):
    sock = connect(setup)
    started = time.monotonic()
    sock.sendall(sent)
    status, _ = answer(sock, timeout_s=HEADER_TIMEOUT_S + MARGIN_S + 5)
    waited = time.monotonic() - started
    sock.close()
    assert status == 408
    assert HEADER_TIMEOUT_S * 0.8 <= waited <= HEADER_TIMEOUT_S + MARGIN_S


def spooled_files(setup: Setup) -> int:
    """How many of the server's open files are temporary files in its spool folder."""
    fds = Path(f"/proc/{setup.server.process.pid}/fd")
    count = 0
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            count += os.readlink(fd).startswith(str(setup.spool))
    return count


def test_a_body_that_stalls_is_answered_408_and_its_spooled_file_freed(setup):
    assert spooled_files(setup) == 0
    sock = send_headers(setup, "/api/v1/search", UPLOAD, MULTIPART, **setup.server.auth)
    sock.sendall(multipart_start() + b"\xff" * 3_000_000)  # over what is kept in memory
    deadline = time.monotonic() + 5
    while spooled_files(setup) == 0:
        assert time.monotonic() < deadline, "the upload was never spooled to a file"
        time.sleep(0.1)
    stalled = time.monotonic()
    status, head = answer(sock, timeout_s=BODY_TIMEOUT_S + MARGIN_S + 5)
    assert status == 408, head
    assert time.monotonic() - stalled <= BODY_TIMEOUT_S + MARGIN_S
    deadline = time.monotonic() + MARGIN_S
    while spooled_files(setup):  # freed, though this client still holds its connection open
        assert time.monotonic() < deadline, "the stalled upload's file is still open"
        time.sleep(0.1)
    sock.close()


def test_a_body_that_trickles_is_answered_408_and_its_spooled_file_freed(setup):
    # A byte now and then keeps the body timeout away; the minimum rate does not.
    sock = send_headers(setup, "/api/v1/search", UPLOAD, MULTIPART, **setup.server.auth)
    began = time.monotonic()
    sock.sendall(multipart_start() + b"\xff" * 3_000_000)  # spooled; 1 MB/s allows 3 s for it
    cut_by = max(RATE_GRACE_S, 3_000_000 / MIN_BYTES_PER_S) + MARGIN_S
    sock.settimeout(0.25)
    while time.monotonic() - began < cut_by:  # 4 kB/s: far under the minimum, never stalled
        try:
            sock.sendall(b"\xff" * 1000)
            if sock.recv(1, socket.MSG_PEEK):
                break  # answered
        except TimeoutError:
            continue
        except OSError:
            break  # answered and closed
    status, head = answer(sock, timeout_s=1)
    assert status == 408, head
    assert b"slower than" in head
    assert time.monotonic() - began <= cut_by
    deadline = time.monotonic() + MARGIN_S
    while spooled_files(setup):
        assert time.monotonic() < deadline, "the trickling upload's file is still open"
        time.sleep(0.1)
    sock.close()


def test_connections_past_the_limit_are_answered_503(setup):
    idle = [connect(setup) for _ in range(MAX_CONNECTIONS)]  # open, saying nothing yet
    time.sleep(0.3)  # all taken in (the header timeout cuts them only after 2 s)
    extra = connect(setup)
    extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _ = answer(extra)
    extra.close()
    for sock in idle:
        sock.close()
    assert status == 503
    deadline = time.monotonic() + MARGIN_S
    while httpx2.get(f"{setup.server.url}/healthz").status_code != 200:  # room again
        assert time.monotonic() < deadline, "the closed connections' places were not freed"
        time.sleep(0.1)


def test_a_caller_may_send_only_a_few_large_bodies_at_once(setup):
    uploads = []
    for _ in range(MAX_UPLOADS):
        sock = send_headers(setup, "/api/v1/search", UPLOAD, MULTIPART, **setup.server.auth)
        sock.sendall(multipart_start())
        uploads.append(sock)
    time.sleep(0.5)  # both have been taken in
    extra = send_headers(setup, "/api/v1/search", UPLOAD, MULTIPART, **setup.server.auth)
    status, head = answer(extra, timeout_s=BODY_TIMEOUT_S / 2)
    extra.close()
    assert status == 429
    assert b"retry-after: 5" in head.lower()
    assert b'"retry_after_s":5' in head
    small = httpx2.post(  # a small body is not an upload: it still passes
        f"{setup.server.url}/api/v1/cases", json={"kind": "missing"}, headers=setup.server.auth
    )
    assert small.status_code == 201, small.text
    for sock in uploads:
        sock.close()  # the uploads end, and free their places
    time.sleep(0.5)
    again = send_headers(setup, "/api/v1/search", UPLOAD, MULTIPART, **setup.server.auth)
    assert answer(again, timeout_s=BODY_TIMEOUT_S + MARGIN_S)[0] == 408  # let in, then timed out
    again.close()


def test_the_body_timeout_ends_with_the_body(tmp_path):
    # After the whole body came, an application may wait on ``receive`` for a disconnect for
    # as long as its answer takes (a slow search); that wait is not a stalled body.
    sent: list[dict] = []

    async def slow_answer(scope, receive, send):  # type: ignore[no-untyped-def]
        assert (await receive())["body"] == b"username=a"
        listener = asyncio.create_task(receive())
        await asyncio.sleep(0.3)
        listener.cancel()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    arriving = iter([{"type": "http.request", "body": b"username=a", "more_body": False}])

    async def client_receive() -> dict:
        for message in arriving:
            return message
        await asyncio.Event().wait()  # then the client stays connected, sending nothing
        return {}

    async def client_send(message: dict) -> None:
        sent.append(message)

    gate = BodyGate(slow_answer, body_timeout_s=0.1, uploads=UploadSlots(tmp_path, 1, b"k"))
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/login",
        "headers": [(b"content-length", b"10")],
    }
    asyncio.run(gate(scope, client_receive, client_send))  # type: ignore[arg-type]
    assert sent[0]["status"] == 200


def test_the_header_timeout_holds_for_a_further_request_on_a_kept_connection(setup):
    sock = connect(setup)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer(sock)[0] == 200
    time.sleep(HEADER_TIMEOUT_S * 0.75)  # idle between requests: not the header timeout's
    started = time.monotonic()
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and no more
    status, _ = answer(sock, timeout_s=HEADER_TIMEOUT_S + MARGIN_S + 5)
    waited = time.monotonic() - started
    sock.close()
    assert status == 408
    assert HEADER_TIMEOUT_S * 0.8 <= waited <= HEADER_TIMEOUT_S + MARGIN_S
