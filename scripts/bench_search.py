"""Search latency and recall@10 of the face index, exact and approximate (HNSW), at 10k,
100k and 1M faces of one kind.

    .venv/bin/python scripts/bench_search.py [--sizes 10000,100000,1000000] [--queries 200]

Faces are synthetic but shaped like a gallery (people of 5 photos each, each photo near its
person's centre), because pure random vectors have no neighbours worth the name: on them any
approximate index needs to scan nearly everything to agree with exact search. Probes are
stored photos, moved a little. recall@10 compares with exact search on the same probes.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time

import faiss
import numpy as np

from reunite.index import FaceIndex


def gallery(size: int, rng: np.random.Generator) -> np.ndarray:
    people = size // 5
    centres = rng.normal(0, 0.09, (people, 128)).astype(np.float32)
    return (np.repeat(centres, 5, axis=0) + rng.normal(0, 0.035, (people * 5, 128))).astype(
        np.float32
    )


def timed_searches(index: FaceIndex, probes: np.ndarray) -> tuple[list[float], list[set[int]]]:
    latencies, found = [], []
    for probe in probes:
        started = time.perf_counter()
        hits = index.search("missing", probe, 10)
        latencies.append((time.perf_counter() - started) * 1000)
        found.append({face_id for face_id, _ in hits})
    return sorted(latencies), found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads")
    print(
        f"{'faces':>9} {'index':>10} {'build s':>8} {'median ms':>10} {'p99 ms':>7} "
        f"{'recall@10':>9}  params"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        vectors = gallery(size, rng)
        ids = np.arange(1, len(vectors) + 1)
        index = FaceIndex("bench")
        started = time.perf_counter()
        index.add("missing", ids, vectors)
        build_s = time.perf_counter() - started
        probes = vectors[rng.integers(0, len(vectors), args.queries)] + rng.normal(
            0, 0.01, (args.queries, 128)
        ).astype(np.float32)
        exact_latencies, truth = timed_searches(index, probes)
        p99 = int(0.99 * (args.queries - 1))
        print(
            f"{size:>9} {'exact':>10} {build_s:>8.2f} {statistics.median(exact_latencies):>10.2f} "
            f"{exact_latencies[p99]:>7.2f} {1.0:>9.3f}"
        )
        started = time.perf_counter()
        params = index.optimize("missing", min_faces=0)
        build_s = time.perf_counter() - started
        latencies, found = timed_searches(index, probes)
        recall = float(np.mean([len(a & b) / 10 for a, b in zip(found, truth, strict=True)]))
        print(
            f"{size:>9} {params['type']:>10} {build_s:>8.2f} {statistics.median(latencies):>10.2f} "
            f"{latencies[p99]:>7.2f} {recall:>9.3f}  {params}"
        )
        del index, vectors
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
