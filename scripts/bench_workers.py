"""Memory and start time of ``reunite serve`` with 1 and with 4 API workers over one index.

    .venv/bin/python scripts/bench_workers.py [--faces 100000] [--index-type hnsw]

Builds a scratch store of ``--faces`` synthetic faces (LFW-shaped, as scripts/bench_search.py)
and their index (``rebuild_index``), then starts ``reunite serve --workers 1``, ``--workers 4``
(a supervisor that forks its workers) and, for comparison in the same run, 4 workers the way
``reunite serve`` ran them before (uvicorn's supervisor, which spawns each worker into a fresh
interpreter: ``uvicorn.run`` with the app factory and the same options) over it. For each it
prints:

* ready s: the slowest worker's launch-to-ready time, as it logged it (``index: ready``), and
  the wall time from starting the server until every worker had logged it;
* PSS MB: the proportional memory of every process of the server (supervisor and workers),
  summed from ``/proc/<pid>/smaps`` once all are ready;
* charged MB: PSS with the index files counted whole, once: a mapped file's pages count only
  once a process touches them, so this is the PSS less what the processes' mappings of the
  index files hold, plus the files' size (what the machine holds after searches have touched
  the whole index).

and the ratio of the 4-worker figures to the 1-worker ones. Per process it also prints the PSS
and the private memory (pages no other process maps: what each process adds on its own).
Target: charged MB of 4 workers at most 1.3x that of 1 worker; ready in at most 10 s at 1M
faces.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reunite.config import Settings
from reunite.galleries import SHAPES, gallery

READY = re.compile(rb"index: ready ([0-9.]+) s after launch")
SPAWNED = """
import sys, uvicorn
from reunite.api.auth import session_secret
from reunite.api.connections import PROTOCOL
from reunite.api.observability import configure_logging
from reunite.config import Settings
from reunite.device import chosen_devices
settings = Settings()
configure_logging(settings.log_format)
chosen_devices(settings.device)
session_secret(settings)
uvicorn.run(
    "reunite.app:app_from_environment", factory=True, workers=settings.workers,
    host=settings.host, port=int(sys.argv[1]), http=PROTOCOL,
    limit_concurrency=settings.max_connections + 1, access_log=False, log_config=None,
)
"""
"""How ``reunite serve --workers N`` ran before its workers were forked (commit a7933d1's
``serve_api``: the same checks and imports, then uvicorn 0.54's ``Multiprocess``, which spawns
them), for the baseline row."""
CHUNK_FACES = 1_000_000
LOADED = re.compile(rb"after launch, loaded in ([0-9.]+) s")


def scratch_store(workdir: Path, faces: int, shape: str, stats: Path, index_type: str) -> None:
    """A store of ``faces`` synthetic faces of one missing case, and its saved index."""
    from reunite.faces import MODEL_NAME
    from reunite.service import Reunite
    from reunite.store import FaceRow, PhotoRow, embedding_bytes

    settings = Settings(data_dir=workdir / "data", index_dir=workdir / "index")
    with Reunite.open(settings, load_index=False) as service:
        case = service.create_case({"kind": "missing"}, actor="bench")
        with service.store.transaction() as session:
            photo = PhotoRow(
                case_id=case.id, sha256="0" * 64, format="JPEG", width=1, height=1, byte_size=1
            )
            session.add(photo)
            session.flush()
            photo_id = photo.id
        row = {"photo_id": photo_id, "case_id": case.id, "kind": "missing", "top": 0}
        row |= {"right": 1, "bottom": 1, "left": 0, "model": MODEL_NAME, "pipeline": "synthetic"}
        row |= {"face_width_px": 1, "sharpness": 0.0}
        for chunk, first in enumerate(range(0, faces, CHUNK_FACES)):
            # Drawn a million at a time (as scripts/bench_search.py): 10M at once would hold
            # several copies of 5 GB. Up to 1M faces, the same gallery as one draw.
            seed = faces if chunk == 0 else faces * 1000 + chunk
            count = min(CHUNK_FACES, faces - first)
            vectors = gallery(shape, count, stats_path=stats, seed=seed)
            for start in range(0, count, 50_000):
                with service.store.transaction() as session:
                    session.execute(
                        FaceRow.__table__.insert(),
                        [
                            row | {"embedding": embedding_bytes(v)}
                            for v in vectors[start : start + 50_000]
                        ],
                    )
            del vectors
        started = time.perf_counter()
        service.rebuild_index(index_type)  # type: ignore[arg-type]
        print(f"{faces:,} faces stored, index built in {time.perf_counter() - started:.0f} s")


def server_pids(group: int) -> list[int]:
    """The processes of a process group (the server and its workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group:
                pids.append(int(entry.name))
    return pids


def memory_mb(pid: int, index_dir: Path) -> tuple[float, float, float]:
    """(PSS, PSS of its mappings of the index files, private) of one process, MB."""
    pss = mapped = private = 0
    in_index = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            in_index = len(fields) >= 6 and fields[5].startswith(str(index_dir))
        elif fields and fields[0] == "Pss:":
            pss += int(fields[1])
            mapped += int(fields[1]) if in_index else 0
        elif fields and fields[0] in ("Private_Clean:", "Private_Dirty:") and not in_index:
            private += int(fields[1])
    return pss / 1024, mapped / 1024, private / 1024


def measure(workdir: Path, workers: int, spawned: bool = False) -> dict[str, float]:
    """Start a server of ``workers`` processes (forked, or ``spawned`` as before), wait until
    each is ready, read its memory, stop it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = os.environ | {
        "REUNITE_DATA_DIR": str(workdir / "data"),
        "REUNITE_INDEX_DIR": str(workdir / "index"),
        "REUNITE_WORKERS": str(workers),
    }
    log_path = workdir / f"serve-{workers}{'-spawned' if spawned else ''}.log"
    command = ["-c", SPAWNED, str(port)] if spawned else ["-m", "reunite.cli", "serve"]
    started = time.monotonic()
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, *command, *([] if spawned else ["--port", str(port)])],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        while len(READY.findall(log_path.read_bytes())) < workers:
            if server.poll() is not None or time.monotonic() - started > 600:
                raise SystemExit(f"server failed:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        wall = time.monotonic() - started
        time.sleep(3)  # settle: the sync threads' first rounds
        logged = max(float(s) for s in READY.findall(log_path.read_bytes()))
        loads = [float(s) for s in LOADED.findall(log_path.read_bytes())]
        figures = [memory_mb(pid, workdir / "index") for pid in server_pids(server.pid)]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    files_mb = sum(p.stat().st_size for p in (workdir / "index").glob("*.faiss")) / 2**20
    pss = sum(p for p, _, _ in figures)
    charged = pss - sum(m for _, m, _ in figures) + files_mb
    per_process = " ".join(f"{p:.0f}/{q:.0f}" for p, _, q in sorted(figures, reverse=True))
    print(f"  {workers} workers, PSS/private MB (index files aside) per process: {per_process}")
    print(f"  index loaded and caught up in (s, per worker): {' '.join(f'{t:.2f}' for t in loads)}")
    return {"ready_s": logged, "wall_s": wall, "pss_mb": pss, "charged_mb": charged}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--index-type", choices=("flat", "hnsw", "auto"), default="hnsw")
    parser.add_argument("--shape", choices=SHAPES, default="lfw")
    parser.add_argument("--stats", type=Path, default=Path("models/embedding_stats.npz"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as scratch:
        workdir = Path(scratch)
        scratch_store(workdir, args.faces, args.shape, args.stats, args.index_type)
        files_mb = sum(p.stat().st_size for p in (workdir / "index").glob("*.faiss")) / 2**20
        print(f"index files: {files_mb:.0f} MB")
        print(f"{'workers':>9} {'ready s':>8} {'wall s':>7} {'PSS MB':>8} {'charged MB':>11}")
        rows = {}
        for name, workers, spawned in (("1", 1, False), ("4", 4, False), ("4 spawned", 4, True)):
            rows[name] = row = measure(workdir, workers, spawned)
            print(
                f"{name:>9} {row['ready_s']:>8.2f} {row['wall_s']:>7.2f} "
                f"{row['pss_mb']:>8.0f} {row['charged_mb']:>11.0f}"
            )
        for name in ("4", "4 spawned"):
            ratio = {k: rows[name][k] / rows["1"][k] for k in ("pss_mb", "charged_mb")}
            print(
                f"{name} workers / 1 worker: PSS {ratio['pss_mb']:.2f}x, "
                f"charged {ratio['charged_mb']:.2f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
