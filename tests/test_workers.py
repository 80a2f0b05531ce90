"""``reunite serve --workers N`` as real processes: workers forked from one supervisor that
loaded dlib's models (their memory shared), replaced when they die, stopped together."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from reunite.index import read_manifest
from tests.server import Server, free_port, settings_env


def children_of(pid: int) -> set[int]:
    """The processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def memory_kb(pid: int) -> dict[str, int]:
    """``/proc/<pid>/smaps_rollup``'s figures, kB."""
    lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    return {line.split()[0].rstrip(":"): int(line.split()[1]) for line in lines}


def enrolled_case(server: Server, sample, photo: str) -> int:
    api = f"{server.url}/api/v1"
    case = httpx2.post(f"{api}/cases", json={"kind": "missing"}, headers=server.auth).json()
    files = {"file": (photo, sample(photo), "image/jpeg")}
    done = httpx2.post(
        f"{api}/cases/{case['id']}/photos", files=files, timeout=60, headers=server.auth
    )
    assert done.status_code == 201, done.text
    return int(case["id"])


def found_cases(server: Server, sample, photo: str) -> set[int]:
    """The cases a search for ``photo`` lists, on a new connection (either worker answers)."""
    files = {"file": (photo, sample(photo), "image/jpeg")}
    found = httpx2.post(f"{server.url}/api/v1/search", files=files, timeout=60, headers=server.auth)
    assert found.status_code == 200, found.text
    return {c["case"]["id"] for face in found.json()["faces"] for c in face["candidates"]}


def test_workers_are_forked_from_the_supervisor_and_share_its_memory(tmp_path):
    server = Server(tmp_path, REUNITE_WORKERS="2")
    try:
        server.wait_until_workers_ready()
        workers = children_of(server.process.pid)
        assert len(workers) == 2
        for pid in workers:
            # Forked, not spawned: the supervisor's command line, not multiprocessing's.
            assert (
                Path(f"/proc/{pid}/cmdline").read_bytes()
                == Path(f"/proc/{server.process.pid}/cmdline").read_bytes()
            )
            # dlib's models and the modules the supervisor loaded are shared copy-on-write:
            # most of a worker's anonymous memory is shared (a spawned worker shares none).
            memory = memory_kb(pid)
            assert memory["Pss_Anon"] < 0.75 * memory["Anonymous"], memory
            assert memory["Anonymous"] - memory["Private_Dirty"] > 100 * 1024, memory
        # A hangup (a closed terminal, or SIGHUP to the process group) stops no one.
        os.killpg(server.process.pid, signal.SIGHUP)
        time.sleep(1)
        assert sorted(children_of(server.process.pid)) == sorted(workers)
        server.wait_until_workers_ready()
        # A supervisor killed outright leaves no orphan worker holding the port.
        server.process.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 20
        while [pid for pid in workers if running(pid)]:
            assert time.monotonic() < deadline, "workers outlived their supervisor"
            time.sleep(0.1)
        with socket.create_server(("127.0.0.1", server.port)):
            pass  # the port is free again
    finally:
        log = server.stop()
    assert f"with 2 worker processes (supervisor {server.process.pid})" in log
    assert log.count("Application shutdown complete") == 2  # they stopped gracefully


def test_a_killed_worker_is_replaced_and_the_server_keeps_answering(tmp_path, sample):
    server = Server(tmp_path, REUNITE_WORKERS="2", REUNITE_INDEX_SYNC_INTERVAL_S="0.5")
    try:
        server.wait_until_workers_ready()
        case = enrolled_case(server, sample, "obama.jpg")
        before = children_of(server.process.pid)
        killed = min(before)
        os.kill(killed, signal.SIGKILL)

        deadline = time.monotonic() + 30
        while len(children_of(server.process.pid) - before) < 1:
            assert time.monotonic() < deadline, "no worker replaced the killed one"
            assert server.process.poll() is None, server.log_path.read_text()
            time.sleep(0.1)
        after = children_of(server.process.pid)
        assert killed not in after and len(after) == 2
        server.wait_until_workers_ready()
        # Both workers, the replacement included, answer real searches from the index.
        assert all(case in found_cases(server, sample, "obama2.jpg") for _ in range(6))
        assert httpx2.get(f"{server.url}/healthz").status_code == 200
    finally:
        log = server.stop()
    assert server.process.returncode == 0
    assert f"worker {killed} exited unexpectedly (killed by SIGKILL)" in log
    assert len(set(re.findall(r"Started server process \[(\d+)\]", log))) == 3  # 2, then 1 new


def test_sigterm_stops_every_process_saves_the_index_and_exits_0(tmp_path, sample):
    server = Server(tmp_path, REUNITE_WORKERS="2", REUNITE_INDEX_SAVE_EVERY="100000")
    server.wait_until_workers_ready()
    enrolled_case(server, sample, "obama.jpg")  # in a worker's delta only: saved at shutdown
    processes = {server.process.pid} | children_of(server.process.pid)
    assert len(processes) == 3
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    assert time.monotonic() - started < 15
    assert not [pid for pid in processes if Path(f"/proc/{pid}").exists()]
    log = server.stop()
    assert log.count("Application shutdown complete") == 2
    assert read_manifest(tmp_path / "index").counts["missing"] == 1


def test_a_server_that_cannot_start_says_why_and_exits_non_zero(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "reunite.cli", "serve", "--workers", "2", "--port", str(port)],
            env=settings_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 3
    [line] = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert f"cannot listen on 127.0.0.1 port {port}" in line

    # The workers' start-up fails (the store cannot be opened): the server stops, once.
    (tmp_path / "a-file").write_text("")
    env = settings_env(tmp_path, REUNITE_DATABASE_URL=f"sqlite:///{tmp_path}/a-file/store.db")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "reunite.cli",
            "serve",
            "--workers",
            "2",
            "--port",
            str(free_port()),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    assert "could not start (see above); stopping the server" in done.stderr
    assert "exited unexpectedly" not in done.stderr
