"""Several API worker processes on one port, forked from one supervisor (``reunite serve
--workers N``).

The supervisor imports the whole app first (dlib's models are loaded when ``face_recognition``
is imported), freezes the objects it holds out of the garbage collector's reach
(``gc.freeze``), binds the listening socket and only then forks the workers: they share its
pages (the models, the code, the imported modules) copy-on-write instead of each loading its
own, as uvicorn's spawned workers did. Each worker builds its app (``create_app``) and serves
the shared socket with uvicorn; the kernel hands each new connection to one of them.

Fork-safety: before forking, the supervisor starts no thread of its own, opens no database and
runs nothing that starts an OpenMP (FAISS) pool; the store, the index and every thread of the
service are made in each worker, by the app's start-up. (The BLAS libraries that numpy and
OpenCV load start their thread pools at import; OpenBLAS stops them at a fork and the child
starts its own.)

The supervisor restarts a worker that exits unexpectedly (a crash, a SIGKILL), after a pause
that doubles while replacements keep dying young; it passes SIGTERM and SIGINT on to the
workers (uvicorn's graceful shutdown: the index is saved) and exits 0 once they have all
exited. A worker whose start-up fails (the store unreachable, say) stops the whole server: it
would fail the same way again.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from uvicorn.config import STARTUP_FAILURE

from reunite.api.connections import PROTOCOL
from reunite.app import create_app
from reunite.config import Settings

log = logging.getLogger(__name__)

FIRST_RESTART_PAUSE_S = 0.5
"""Pause before replacing a worker that died; doubled for each replacement that dies young."""

MAX_RESTART_PAUSE_S = 30.0

YOUNG_S = 30.0
"""A worker that dies sooner than this after its start counts as a crash loop (longer pause)."""

POLL_S = 0.2
"""How often the supervisor looks for exited workers and signals."""

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
PR_SET_PDEATHSIG = 1
"""Linux's ``prctl`` option: a signal the kernel sends this process when its parent dies."""

STARTUP_MODULES = (
    "alembic.command",  # the store's migrations (mako and pygments come with it)
    "alembic.config",
    "alembic.runtime.migration",
    "anyio._backends._asyncio",
    "sqlite3",
)
"""Modules every worker's start-up imports (the app's imports do not): imported by the
supervisor, before forking, they are shared too (13 MB a worker otherwise, measured)."""


def uvicorn_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    """How ``reunite serve`` runs uvicorn, in every worker and in a single process: reunite's
    HTTP protocol, the connection limit, reunite's own logging."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=PROTOCOL,  # h11, with a timeout on request headers (REUNITE_HEADER_TIMEOUT_S)
        # uvicorn answers 503 once the open connections (this one counted) reach the limit.
        limit_concurrency=settings.max_connections + 1,
        access_log=False,
        log_config=None,
        lifespan="on",
    )


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (as uvicorn binds one), for the workers to share.

    Raises:
        OSError: the address is taken, not this machine's, or not an address.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


@dataclass
class Supervisor:
    """The workers of one server: which process serves which slot, and what to do next."""

    settings: Settings
    sock: socket.socket
    running: dict[int, tuple[int, float]] = field(default_factory=dict)
    """pid -> (slot, monotonic start time)."""
    due: dict[int, float] = field(default_factory=dict)
    """slot -> monotonic time its replacement starts."""
    pauses: dict[int, float] = field(default_factory=dict)
    """slot -> the pause before its next replacement."""
    served: set[int] = field(default_factory=set)
    """Slots whose first worker started (their later workers are replacements)."""
    signals: list[int] = field(default_factory=list)
    stopping: bool = False
    failed: bool = False

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)

    def start_worker(self, slot: int) -> None:
        """Fork one worker for ``slot``; in the child, serve and never return.

        The stop signals are held back around the fork: one that comes before the child has
        set its own handlers waits, and then stops it, rather than reaching the supervisor's
        handler in the child (and being lost there)."""
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            supervisor = os.getpid()
            pid = os.fork()
            if pid == 0:  # the worker
                stop_with(supervisor)
                os._exit(worker_exit_status(self.settings, self.sock))
            self.running[pid] = (slot, time.monotonic())
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def handle_signals(self) -> None:
        """Pass stop signals on: the first as SIGTERM (graceful), a later SIGINT as SIGINT
        (uvicorn then stops without waiting for open connections)."""
        while self.signals:
            signum = self.signals.pop(0)
            if signum == signal.SIGHUP:
                log.info("workers: SIGHUP ignored (stop and start the server to reload)")
                continue
            forwarded = signal.SIGINT if self.stopping and signum == signal.SIGINT else None
            if not self.stopping:
                log.info("workers: %s received, stopping the workers", signal.Signals(signum).name)
                self.stopping = True
                self.due.clear()
                forwarded = signal.SIGTERM
            if forwarded is not None:
                self.stop_workers(forwarded)

    def stop_workers(self, signum: int) -> None:
        """Send ``signum`` to every running worker."""
        for pid in self.running:
            with contextlib.suppress(ProcessLookupError):  # exited: reaped next round
                os.kill(pid, signum)

    def reap(self) -> None:
        """Note the workers that have exited; schedule a replacement for each that should not
        have, or stop the server when one could not start."""
        while self.running:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            if pid not in self.running:
                continue
            slot, started = self.running.pop(pid)
            if self.stopping:
                continue
            could_not_start = os.WIFEXITED(status) and os.WEXITSTATUS(status) == STARTUP_FAILURE
            if could_not_start and slot not in self.served:
                log.error(
                    "workers: worker %d could not start (see above); stopping the server", pid
                )
                self.failed = True
                self.stopping = True
                self.due.clear()
                self.stop_workers(signal.SIGTERM)
                continue
            # A replacement that cannot start (the database restarting, say) is tried again
            # after the doubling pause; only a first start that fails stops the server.
            self.served.add(slot)
            self.schedule_replacement(slot, pid, status, time.monotonic() - started)

    def schedule_replacement(self, slot: int, pid: int, status: int, lived_s: float) -> None:
        """Start another worker in ``slot`` after a pause: short after a worker that served a
        while, doubling (up to ``MAX_RESTART_PAUSE_S``) while replacements keep dying young."""
        pause = self.pauses.get(slot, FIRST_RESTART_PAUSE_S) if lived_s < YOUNG_S else 0.0
        pause = max(pause, FIRST_RESTART_PAUSE_S)
        self.pauses[slot] = min(2 * pause, MAX_RESTART_PAUSE_S)
        log.warning(
            "workers: worker %d exited unexpectedly (%s) after %.1f s; starting another in %.1f s",
            pid,
            exit_description(status),
            lived_s,
            pause,
        )
        self.due[slot] = time.monotonic() + pause

    def start_due_workers(self) -> None:
        now = time.monotonic()
        for slot, due in sorted(self.due.items()):
            if due <= now:
                del self.due[slot]
                self.start_worker(slot)

    def exit_status(self) -> int:
        """Start the workers, look after them until they have all exited; the exit status."""
        for slot in range(self.settings.workers):
            self.start_worker(slot)
        while self.running or (self.due and not self.stopping):
            self.handle_signals()
            self.reap()
            self.start_due_workers()
            time.sleep(POLL_S)
        log.info("workers: all stopped")
        return STARTUP_FAILURE if self.failed else 0


def preloaded_modules(settings: Settings) -> list[str]:
    """Import what the workers would each import at start (``STARTUP_MODULES`` and the
    store's database driver) without opening anything; the names imported."""
    names = [*STARTUP_MODULES]
    for name in names:
        importlib.import_module(name)
    try:
        names.append(make_url(settings.resolved_database_url).get_dialect().import_dbapi().__name__)
    except Exception:  # a bad URL or a missing driver: the workers' start-up says why
        log.debug("workers: the database driver was not preloaded", exc_info=True)
    return names


def served_exit_status(settings: Settings) -> int:
    """Serve with ``settings.workers`` forked worker processes until stopped; the exit status:
    0 once stopped by a signal, ``STARTUP_FAILURE`` (3) when the address cannot be bound or a
    worker cannot start."""
    try:
        sock = listening_socket(settings.host, settings.port)
    except OSError as exc:
        log.error("cannot listen on %s port %d: %s", settings.host, settings.port, exc)
        return STARTUP_FAILURE
    preloaded_modules(settings)
    supervisor = Supervisor(settings, sock)
    previous = {
        signum: signal.signal(signum, supervisor.on_signal)
        for signum in (*STOP_SIGNALS, signal.SIGHUP)
    }
    log.info(
        "serving on http://%s:%d with %d worker processes (supervisor %d)",
        settings.host,
        sock.getsockname()[1],
        settings.workers,
        os.getpid(),
    )
    gc.freeze()  # what is loaded now stays out of the collector's way: shared, not copied
    try:
        return supervisor.exit_status()
    finally:
        sock.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stop_with(supervisor: int) -> None:
    """In a forked worker: have the kernel send it SIGTERM (a graceful stop) when the
    supervisor dies, even SIGKILLed, so that no orphan worker keeps the port. Linux only; the
    signal is held back until the worker has set its handlers."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: nothing to do
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor:  # it died before the prctl
        os.kill(os.getpid(), signal.SIGTERM)


def worker_exit_status(settings: Settings, sock: socket.socket) -> int:
    """In a forked worker: serve on ``sock`` until told to stop; the exit status. It never
    raises, so that the child never returns into the supervisor's code."""
    try:
        for signum in STOP_SIGNALS:
            # Until uvicorn takes SIGTERM and SIGINT (while it serves), they stop the worker
            # at once: nothing is open yet, or (after) everything is closed and saved.
            signal.signal(signum, signal.SIG_DFL)
        # uvicorn leaves SIGHUP alone: a terminal's hangup (or one sent to the process group)
        # must not kill every worker at once, as the supervisor ignores it too.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        uvicorn.Server(uvicorn_config(create_app(settings), settings)).run(sockets=[sock])
        return 0
    except SystemExit as exc:
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        log.exception("workers: worker %d failed", os.getpid())
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def exit_description(status: int) -> str:
    """A wait status in words: ``exit status 1`` or ``killed by SIGKILL``."""
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.WEXITSTATUS(status)}"
