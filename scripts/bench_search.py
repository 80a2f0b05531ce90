"""Search latency and recall@10 of the face index, exact and approximate (HNSW), at 10k,
100k and 1M faces of one kind, one query at a time and in batches.

    .venv/bin/python scripts/bench_search.py [--sizes 10000,100000,1000000] [--queries 300]
    .venv/bin/python scripts/bench_search.py --shape isotropic   # the harder, unrealistic case

Galleries are synthetic, shaped like real dlib embeddings (``--shape lfw``, the default): people
drawn from the between-person spread measured on LFW (models/embedding_stats.npz), three photos
each around them. ``--shape isotropic`` draws people from a round Gaussian instead, which uses
all 128 dimensions equally, unlike real embeddings, and makes any approximate index work much
harder. Probes are stored photos, moved a little; recall@10 compares the approximate top 10
with the exact top 10 on the same probes. Targets (2 cores): median under 1 ms at 100k and
under 2 ms at 1M, with recall@10 >= 0.99. Peak memory is the process's, at the end.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from reunite.galleries import SHAPES, gallery
from reunite.index import FaceIndex

BATCH = 64


def timed_searches(index: FaceIndex, probes: np.ndarray) -> tuple[list[float], list[set[int]]]:
    """Single-query latencies (ms, sorted) and each probe's top-10 ids."""
    latencies, found = [], []
    for probe in probes:
        started = time.perf_counter()
        hits = index.search("missing", probe, 10)
        latencies.append((time.perf_counter() - started) * 1000)
        found.append({face_id for face_id, _ in hits})
    return sorted(latencies), found


def batched_ms_per_query(index: FaceIndex, probes: np.ndarray) -> float:
    started = time.perf_counter()
    for start in range(0, len(probes), BATCH):
        index.search_many("missing", probes[start : start + BATCH], 10)
    return (time.perf_counter() - started) * 1000 / len(probes)


def report(size: int, kind: str, build_s: float, latencies: list[float], batched: float,
           recall: float, params: object = "") -> None:  # fmt: skip
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    print(
        f"{size:>9} {kind:>6} {build_s:>8.1f} {statistics.median(latencies):>10.3f} "
        f"{p99:>7.3f} {batched:>11.3f} {recall:>9.3f}  {params}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--shape", choices=SHAPES, default="lfw")
    parser.add_argument("--stats", type=Path, default=Path("models/embedding_stats.npz"))
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {args.shape} shape")
    print(
        f"{'faces':>9} {'index':>6} {'build s':>8} {'median ms':>10} {'p99 ms':>7} "
        f"{'batch ms/q':>11} {'recall@10':>9}  params"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        vectors = gallery(args.shape, size, stats_path=args.stats, seed=size)
        probes = vectors[rng.integers(0, len(vectors), args.queries)] + rng.normal(
            0, 0.01, (args.queries, 128)
        ).astype(np.float32)
        index = FaceIndex("bench")
        started = time.perf_counter()
        index.add("missing", np.arange(1, size + 1), vectors)
        build_s = time.perf_counter() - started
        del vectors  # the index holds its own copy
        exact_latencies, truth = timed_searches(index, probes)
        report(size, "exact", build_s, exact_latencies, batched_ms_per_query(index, probes), 1.0)
        started = time.perf_counter()
        params = index.optimize("missing", min_faces=0)
        build_s = time.perf_counter() - started
        latencies, found = timed_searches(index, probes)
        recall = float(np.mean([len(a & b) / 10 for a, b in zip(found, truth, strict=True)]))
        batched = batched_ms_per_query(index, probes)
        report(size, str(params["type"]), build_s, latencies, batched, recall, params)
        del index
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
