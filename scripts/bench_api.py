"""Photo searches per second and p50/p99 latency against a running server on loopback, with
1, 4 and 16 concurrent clients.

    .venv/bin/python scripts/bench_api.py --url http://127.0.0.1:8000 --key rk_... [--seconds 20]

Each client posts sample photos (../shared/faces/samples, round robin) to /api/v1/search.
The server answers from one process; decoding and dlib run in its thread pool.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", required=True, help="an API key (admin or staff)")
    parser.add_argument("--faces-dir", type=Path, default=Path("../shared/faces"))
    parser.add_argument("--seconds", type=float, default=20.0, help="per concurrency level")
    parser.add_argument("--clients", default="1,4,16")
    args = parser.parse_args()
    photos = [
        p.read_bytes()
        for p in sorted((args.faces_dir / "samples").glob("*.jpg"))
        if p.stat().st_size < 600_000
    ]
    headers = {"Authorization": f"Bearer {args.key}"}
    print(f"{'clients':>7} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
    for clients in (int(c) for c in args.clients.split(",")):
        latencies: list[float] = []
        errors = 0
        lock = threading.Lock()
        deadline = time.monotonic() + args.seconds

        def client(
            offset: int,
            deadline: float = deadline,
            lock: threading.Lock = lock,
            latencies: list[float] = latencies,
        ) -> None:
            nonlocal errors
            with httpx2.Client(base_url=args.url, headers=headers, timeout=120) as http:
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
        wall = time.perf_counter() - started
        latencies.sort()
        p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan")
        print(
            f"{clients:>7} {len(latencies):>8} {len(latencies) / wall:>7.2f} "
            f"{statistics.median(latencies) if latencies else float('nan'):>7.0f} {p99:>7.0f} "
            f"{errors:>6}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
