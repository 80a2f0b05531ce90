"""A real ``reunite serve`` process on a free port, for tests that need a server."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(workdir: Path, *args: str, stdin: str | None = None, **env_settings: str) -> str:
    """Run ``reunite ARGS`` on the store in ``workdir``; returns its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "reunite.cli", *args],
        input=stdin,
        text=True,
        capture_output=True,
        check=True,
        env=settings_env(workdir, **env_settings),
    )
    return done.stdout


UNLIMITED_RATE = {"REUNITE_RATE_LIMIT_PER_MINUTE": "1000000", "REUNITE_RATE_LIMIT_BURST": "1000000"}
"""Settings for a server that many test requests hit at once from one key."""


def store_env(database_url: str | None) -> dict[str, str]:
    """The settings that point a server at ``database_url`` (None: the default SQLite file)."""
    return {"REUNITE_DATABASE_URL": database_url} if database_url else {}


def settings_env(workdir: Path, **env_settings: str) -> dict[str, str]:
    return {
        **os.environ,
        "REUNITE_DATA_DIR": str(workdir / "data"),
        "REUNITE_INDEX_DIR": str(workdir / "index"),
        **env_settings,
    }


class Server:
    """``reunite serve`` on a free port; ``auth`` holds an admin key's header for API calls.

    The server keeps its store in ``workdir`` and starts in ``cwd`` (default: this process's
    working directory)."""

    def __init__(self, workdir: Path, *, cwd: Path | None = None, **env_settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"server-{self.port}.log"
        key = cli(workdir, "keys", "create", "--role", "admin", **env_settings).strip()
        self.auth = {"Authorization": f"Bearer {key}"}
        env = settings_env(workdir, **env_settings)
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reunite.cli", "serve", "--port", str(self.port)],
            env=env,
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, workers included (see ``kill``)
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited: {self.log_path.read_text()}")
            try:
                ready = httpx2.get(f"{self.url}/readyz", headers=self.auth, timeout=1)
                if ready.status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.2)
        os.killpg(self.process.pid, signal.SIGKILL)  # leave no server behind the failure
        self.process.wait(timeout=30)
        self.log.close()
        pytest.fail(f"server did not answer /readyz within 60 s: {self.log_path.read_text()}")

    def ready(self) -> bool:
        """Whether the worker that takes this request (a new connection) answers /readyz."""
        return httpx2.get(f"{self.url}/readyz", headers=self.auth).status_code == 200

    def wait_until_workers_ready(self, timeout_s: float = 60) -> None:
        """Wait until every worker is ready: ten ready answers in a row."""
        deadline = time.monotonic() + timeout_s
        while not all(self.ready() for _ in range(10)):
            assert time.monotonic() < deadline, "the workers did not all get ready"
            time.sleep(0.2)

    def kill(self) -> str:
        """SIGKILL the server and every worker process: a crash, with no shutdown at all."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()
        return self.log_path.read_text()

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        self.log.close()
        return self.log_path.read_text()
