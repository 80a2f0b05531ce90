"""Search latency and recall@10 of the face index, exact and approximate, at 10k to 10M faces
of one kind, one query at a time and in batches, with each approximate index's build time, file
size and resident memory once mapped as a server maps it.

    .venv/bin/python scripts/bench_search.py [--sizes 10000,100000,1000000] [--queries 300]
    .venv/bin/python scripts/bench_search.py --sizes 10000000 --approximate auto
    .venv/bin/python scripts/bench_search.py --sizes 1000000 --approximate hnsw,ivfpq
    .venv/bin/python scripts/bench_search.py --shape isotropic   # the harder, unrealistic case

Galleries are synthetic, shaped like real dlib embeddings (``--shape lfw``, the default): people
drawn from the between-person spread measured on LFW (models/embedding_stats.npz), three photos
each around them, drawn a million at a time (10M faces are 5.1 GB of float32). ``--shape
isotropic`` draws people from a round Gaussian instead, which uses all 128 dimensions equally,
unlike real embeddings, and makes any approximate index work much harder. Probes are stored
photos, moved a little; recall@10 compares the approximate top 10 with the exact top 10 (the
baseline, searched in the same run) on the same probes.

``--approximate``: ``auto`` builds what the service would at that size (``FaceIndex.optimize``
with its thresholds: HNSW graphs, compressed past ``COMPRESSED_MIN_FACES``); ``hnsw`` and
``ivfpq`` force one kind; each is built from a fresh exact index. Every approximate index is
saved, dropped, and mapped again (``load(mapped=True)``) before it is timed; ``resident`` is
what of its file is in memory after the queries (pages touched, shared by the processes that
map it, by ``mincore``) plus what the load added to this process's own memory. Each is timed
twice: ``cold``, its file dropped from the page cache first (every page a search touches is read
from disk), and ``warm``, once the whole file has been read (as a server's first load does, to
checksum it). Peak memory is
the process's so far (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import mmap
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from reunite.galleries import SHAPES, gallery
from reunite.index import KINDS, FaceIndex

BATCH = 64
CHUNK_FACES = 1_000_000
"""Galleries are drawn and added this many faces at a time (one chunk up to 1M: the same
gallery as before chunks)."""
PAGE = mmap.PAGESIZE


def timed_searches(index: FaceIndex, probes: np.ndarray) -> tuple[list[float], list[set[int]]]:
    """Single-query latencies (ms, sorted) and each probe's top-10 ids."""
    latencies, found = [], []
    for probe in probes:
        started = time.perf_counter()
        hits = index.search("missing", probe, 10)
        latencies.append((time.perf_counter() - started) * 1000)
        found.append({face_id for face_id, _ in hits})
    return sorted(latencies), found


def batched_ms_per_query_and_found(
    index: FaceIndex, probes: np.ndarray
) -> tuple[float, list[set[int]]]:
    """Milliseconds per query searching ``BATCH`` probes at a time, and each probe's top 10."""
    found: list[set[int]] = []
    started = time.perf_counter()
    for start in range(0, len(probes), BATCH):
        rows = index.search_many("missing", probes[start : start + BATCH], 10)
        found += [{face_id for face_id, _ in row} for row in rows]
    return (time.perf_counter() - started) * 1000 / len(probes), found


def exact_index_and_probes(
    args: argparse.Namespace, size: int, queries: int
) -> tuple[FaceIndex, np.ndarray]:
    """An exact index of a ``size``-face gallery (drawn ``CHUNK_FACES`` at a time) and
    ``queries`` probes near its faces (the same for every build of this size)."""
    rng = np.random.default_rng(size)
    picks = np.sort(rng.integers(0, size, queries))
    index, rows = FaceIndex("bench"), []
    for chunk, start in enumerate(range(0, size, CHUNK_FACES)):
        count = min(CHUNK_FACES, size - start)
        seed = size if chunk == 0 else size * 1000 + chunk
        vectors = gallery(args.shape, count, stats_path=args.stats, seed=seed)
        index.add("missing", np.arange(start + 1, start + count + 1), vectors)
        rows.append(vectors[picks[(picks >= start) & (picks < start + count)] - start])
        del vectors
    probes = np.concatenate(rows) + rng.normal(0, 0.01, (queries, 128)).astype(np.float32)
    return index, probes[rng.permutation(queries)]


def resident_mb_of_files(paths: list[Path]) -> float:
    """Megabytes of ``paths`` in the page cache now (``mincore``): shared by every process."""
    libc = ctypes.CDLL(None, use_errno=True)
    total = 0
    for path in paths:
        size = path.stat().st_size
        with path.open("rb") as handle:
            view = mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_COPY)  # maps, reads none
        pages = (size + PAGE - 1) // PAGE
        vec = (ctypes.c_ubyte * pages)()
        start = ctypes.c_char.from_buffer(view)
        if libc.mincore(ctypes.c_void_p(ctypes.addressof(start)), ctypes.c_size_t(size), vec):
            raise OSError(ctypes.get_errno(), "mincore")
        del start
        view.close()
        total += int((np.frombuffer(bytes(vec), np.uint8) & 1).sum()) * PAGE
    return total / 2**20


def anonymous_mb() -> float:
    """This process's own resident memory (``RssAnon``), in megabytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0.0


def evicted(paths: list[Path]) -> None:
    """Drop ``paths`` from the page cache (they are written and synced), so that residency
    measured later counts only what loading and searching touched."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def report(size: int, kind: str, build_s: float, latencies: list[float], batched: float,
           recall: float, params: object = "") -> None:  # fmt: skip
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    print(
        f"{size:>9} {kind:>6} {build_s:>8.1f} {statistics.median(latencies):>10.3f} "
        f"{p99:>7.3f} {batched:>11.3f} {recall:>9.3f}  {params}",
        flush=True,
    )


def approximate_run(
    args: argparse.Namespace, size: int, choice: str, probes: np.ndarray, truth: list[set[int]]
) -> None:
    """Build ``choice`` at ``size`` faces from a fresh exact index, save it, map it again and
    time it; prints its line and its build, file and memory figures."""
    index, _ = exact_index_and_probes(args, size, 0)
    thresholds = {"auto": {}, "hnsw": {"compressed_min_faces": sys.maxsize},
                  "ivfpq": {"compressed_min_faces": 0}}[choice]  # fmt: skip
    started = time.perf_counter()
    params = index.optimize("missing", min_faces=0, **thresholds)
    build_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        started = time.perf_counter()
        index.save(Path(folder))
        save_s = time.perf_counter() - started
        del index
        gc.collect()
        files = [p for p in Path(folder).glob("missing*.faiss")]
        file_mb = sum(p.stat().st_size for p in files) / 2**20
        evicted(files)
        before = anonymous_mb()
        started = time.perf_counter()
        mapped, _ = FaceIndex.load(Path(folder), model="bench", dim=128, mapped=True, verify=False)
        load_s = time.perf_counter() - started
        latencies, found = timed_searches(mapped, probes)
        batched, _ = batched_ms_per_query_and_found(mapped, probes)
        recall = float(np.mean([len(a & b) / 10 for a, b in zip(found, truth, strict=True)]))
        report(size, "cold", build_s, latencies, batched, recall, params)
        own = anonymous_mb() - before
        shared = resident_mb_of_files(files)
        for path in files:  # as a server's first load does, checksumming them
            with path.open("rb") as handle:
                while handle.read(1 << 24):
                    pass
        latencies, found = timed_searches(mapped, probes)
        batched, _ = batched_ms_per_query_and_found(mapped, probes)
        recall = float(np.mean([len(a & b) / 10 for a, b in zip(found, truth, strict=True)]))
        report(size, "warm", build_s, latencies, batched, recall, params["type"])
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"{'':>9} {'':>6} build {build_s:.0f} s (optimize, the exact sample included), "
            f"save {save_s:.0f} s, mapped load {load_s:.1f} s; file {file_mb:.0f} MB; resident "
            f"after the queries {shared + own:.0f} MB ({shared:.0f} MB of the file's pages, "
            f"shared; {own:.0f} MB this process's own); peak process memory so far {peak:.0f} MB",
            flush=True,
        )
        del mapped
        gc.collect()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--shape", choices=SHAPES, default="lfw")
    parser.add_argument("--stats", type=Path, default=Path("models/embedding_stats.npz"))
    parser.add_argument("--approximate", default="auto", help="auto, hnsw, ivfpq; comma-separated")
    parser.add_argument(
        "--exact-single", type=int, default=None, help="time this many exact single queries"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="where index files are saved")
    args = parser.parse_args()
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {args.shape} shape, "
          f"load average {os.getloadavg()[0]:.1f} at the start")  # fmt: skip
    print(
        f"{'faces':>9} {'index':>6} {'build s':>8} {'median ms':>10} {'p99 ms':>7} "
        f"{'batch ms/q':>11} {'recall@10':>9}  params"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        started = time.perf_counter()
        index, probes = exact_index_and_probes(args, size, args.queries)
        build_s = time.perf_counter() - started
        latencies, _ = timed_searches(index, probes[: args.exact_single])
        batched, truth = batched_ms_per_query_and_found(index, probes)  # the exact top 10s
        report(size, "exact", build_s, latencies, batched, 1.0)
        del index
        gc.collect()
        for choice in args.approximate.split(","):
            approximate_run(args, size, choice, probes, truth)
    print(f"load average {os.getloadavg()[0]:.1f} at the end; kinds {', '.join(KINDS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
