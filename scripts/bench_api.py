"""Photo searches per second and p50/p99 latency against a running server on loopback, with
1, 4 and 16 concurrent clients, and how near the throughput comes to what the CPUs allow.

    .venv/bin/python scripts/bench_api.py --url http://127.0.0.1:8000 --key rk_... \
        [--seconds 20] [--pid SERVER_PID] [--cores 2]

Each client posts sample photos (../shared/faces/samples, round robin) to /api/v1/search.
Each worker process decodes and runs dlib in its thread pool, one photo at a time in dlib.

With ``--pid`` (the ``reunite serve`` process) the script also reads the CPU time the server's
processes spent (from /proc), and prints the CPU seconds per photo and the *CPU limit*:
``cores / (CPU seconds per photo)``, the most photos a second these cores could search. The
CPU seconds per photo are those of the 1-client run (nothing waits then); the last column is
each run's throughput as a share of that limit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx2


def tree_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` and its live descendants (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def searched(
    url: str, headers: dict[str, str], photos: list[bytes], clients: int, seconds: float
) -> tuple[list[float], int, float]:
    """(latencies of the answered searches in ms, sorted; errors; wall seconds) of ``clients``
    threads posting ``photos`` round robin for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(offset: int) -> None:
        nonlocal errors
        with httpx2.Client(base_url=url, headers=headers, timeout=120) as http:
            n = offset
            while time.monotonic() < deadline:
                photo = photos[n % len(photos)]
                n += 1
                started = time.perf_counter()
                response = http.post(
                    "/api/v1/search", files={"file": ("p.jpg", photo, "image/jpeg")}
                )
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    if response.status_code == 200:
                        latencies.append(elapsed)
                    else:
                        errors += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(latencies), errors, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", required=True, help="an API key (admin or staff)")
    parser.add_argument("--faces-dir", type=Path, default=Path("../shared/faces"))
    parser.add_argument("--seconds", type=float, default=20.0, help="per concurrency level")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--pid", type=int, help="the server's process id, to read its CPU time")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="cores it may use")
    args = parser.parse_args()
    photos = [
        p.read_bytes()
        for p in sorted((args.faces_dir / "samples").glob("*.jpg"))
        if p.stat().st_size < 600_000
    ]
    headers = {"Authorization": f"Bearer {args.key}"}
    print(
        f"{'clients':>7} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}"
        f" {'CPU s/photo':>11} {'of limit':>8}"
    )
    cpu_per_photo_s: float | None = None
    for clients in (int(c) for c in args.clients.split(",")):
        cpu_before_s = tree_cpu_s(args.pid) if args.pid else 0.0
        latencies, errors, wall = searched(args.url, headers, photos, clients, args.seconds)
        cpu_s = tree_cpu_s(args.pid) - cpu_before_s if args.pid else float("nan")
        photo_cpu_s = cpu_s / max(1, len(latencies))
        if cpu_per_photo_s is None and args.pid:
            cpu_per_photo_s = photo_cpu_s  # the first (fewest clients) run sets the limit
        limit = args.cores / cpu_per_photo_s if cpu_per_photo_s else float("nan")
        p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan")
        print(
            f"{clients:>7} {len(latencies):>8} {len(latencies) / wall:>7.2f} "
            f"{statistics.median(latencies) if latencies else float('nan'):>7.0f} {p99:>7.0f} "
            f"{errors:>6} {photo_cpu_s:>11.3f} {len(latencies) / wall / limit:>8.0%}"
        )
    if cpu_per_photo_s:
        print(
            f"CPU limit: {args.cores} cores / {cpu_per_photo_s:.3f} s = "
            f"{args.cores / cpu_per_photo_s:.2f} photos/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
