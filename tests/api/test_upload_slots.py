"""The per-caller cap on concurrent uploads holds across the worker processes of one server
(a real ``reunite serve --workers 2``, raw sockets), and a place frees when its upload ends."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

import httpx2

from reunite.upload_slots import FOLDER
from tests.server import UNLIMITED_RATE, Server

MAX_UPLOADS = 4
BOUNDARY = "reunite-test-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
UPLOAD = 10_000_000  # declared: a large body, within the limit on a photo
PART_START = (
    f"--{BOUNDARY}\r\nContent-Disposition: form-data; "
    'name="file"; filename="p.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
).encode("latin-1")


def upload_started(server: Server) -> socket.socket:
    """A connection that has sent a large search's headers and the start of its body."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    head = (
        f"POST /api/v1/search HTTP/1.1\r\nHost: x\r\nContent-Length: {UPLOAD}\r\n"
        f"Content-Type: {MULTIPART}\r\nAuthorization: {server.auth['Authorization']}\r\n\r\n"
    )
    sock.sendall(head.encode("latin-1") + PART_START)
    return sock


def first_answer(sock: socket.socket) -> bytes:
    """What the server says first (enough for the status line and a short problem)."""
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data or b"}" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def slot_files_open(folder: Path) -> dict[int, int]:
    """How many slot files each process has open, by process id (read from /proc)."""
    held: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd).startswith(str(folder) + "/"):
                        held[int(proc.name)] = held.get(int(proc.name), 0) + 1
    return held


def wait_for_slots(folder: Path, count: int) -> dict[int, int]:
    deadline = time.monotonic() + 10
    while sum((held := slot_files_open(folder)).values()) != count:
        assert time.monotonic() < deadline, f"not {count} uploads in flight: {held}"
        time.sleep(0.05)
    return held


def test_the_upload_cap_holds_across_worker_processes(tmp_path):
    server = Server(
        tmp_path,
        REUNITE_WORKERS="2",
        REUNITE_MAX_UPLOADS_PER_CLIENT=str(MAX_UPLOADS),
        REUNITE_BODY_TIMEOUT_S="60",  # the held uploads are ended by this test, not by time
        REUNITE_BODY_RATE_GRACE_S="60",
        **UNLIMITED_RATE,
    )
    folder = tmp_path / "data" / FOLDER
    try:
        server.wait_until_workers_ready()
        assert folder.stat().st_mode & 0o777 == 0o700
        uploads = [upload_started(server) for _ in range(MAX_UPLOADS)]
        wait_for_slots(folder, MAX_UPLOADS)
        for _ in range(6):  # new connections, taken by either worker: all refused
            extra = upload_started(server)
            answered = first_answer(extra)
            extra.close()
            assert answered.startswith(b"HTTP/1.1 429 "), answered
            assert b"uploads at once" in answered and b"retry-after: 5" in answered.lower()

        uploads.pop().close()  # one upload ends: its place is free, whichever worker had it
        wait_for_slots(folder, MAX_UPLOADS - 1)
        junk = b"\xff" * (1024 * 1024 + 1000)  # a large body, not a photo: refused once read
        for _ in range(4):  # one at a time, to either worker: each gets the free place
            sent = httpx2.post(
                f"{server.url}/api/v1/search",
                files={"file": ("p.jpg", junk, "image/jpeg")},
                headers=server.auth,
                timeout=30,
            )
            assert sent.status_code in (400, 415, 422), sent.text
        for sock in uploads:
            sock.close()
        wait_for_slots(folder, 0)
    finally:
        log = server.stop()
    assert "does not use reunite's HTTP protocol" not in log
    names = {p.name.rsplit(".", 1)[0] for p in folder.iterdir()}
    assert len(names) == 1 and all(len(n) == 32 for n in names)  # a keyed hash, not the key
