"""Search latency of the face index today (exact, flat L2): median and p99 for one query and
per query in batches, at 10k, 100k and 1M random 128-d faces of one kind.

    .venv/bin/python scripts/bench_search.py [--sizes 10000,100000,1000000] [--queries 200]

This is the baseline the approximate index (issue: speed) must beat; recall@10 of exact search
is 1 by definition.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import faiss
import numpy as np

from reunite.index import FaceIndex


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads")
    print(
        f"{'faces':>9} {'build s':>8} {'1 query median ms':>18} {'p99 ms':>7} "
        f"{'batched ms/query':>17}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        vectors = rng.normal(0, 0.09, (size, 128)).astype(np.float32)
        index = FaceIndex("bench")
        started = time.perf_counter()
        index.add("missing", np.arange(1, size + 1), vectors)
        build_s = time.perf_counter() - started
        probes = vectors[rng.integers(0, size, args.queries)] + rng.normal(
            0, 0.02, (args.queries, 128)
        ).astype(np.float32)
        latencies = []
        for probe in probes:
            started = time.perf_counter()
            index.search("missing", probe, 10)
            latencies.append((time.perf_counter() - started) * 1000)
        latencies.sort()
        raw = index._indexes["missing"]
        started = time.perf_counter()
        for start in range(0, len(probes), args.batch):
            raw.search(probes[start : start + args.batch], 10)
        batched = (time.perf_counter() - started) * 1000 / len(probes)
        print(
            f"{size:>9} {build_s:>8.2f} {statistics.median(latencies):>18.2f} "
            f"{latencies[int(0.99 * (len(latencies) - 1))]:>7.2f} {batched:>17.3f}"
        )
        del index, vectors
    return 0


if __name__ == "__main__":
    sys.exit(main())
