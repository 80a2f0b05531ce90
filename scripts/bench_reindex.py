"""The two halves of ``reunite reindex``, measured: re-embedding stored faces (faces per second
with 1 worker and with every core) and building the index (seconds, peak memory, recall@10).

    .venv/bin/python scripts/bench_reindex.py [--lfw 400] [--sizes 100000,1000000]

Re-embedding: LFW photos (250 px) and the larger sample photos are enrolled into a scratch store
with an older pipeline (no upsampling), then ``reembed_faces`` embeds them again with the
current one, once with 1 worker and once with every core, on copies of the same store.

Index build: ``FaceIndex`` over synthetic galleries shaped like real embeddings (see
scripts/bench_search.py; ``--shape isotropic`` for round Gaussian ones), exact (Flat) and HNSW
as ``reunite reindex`` builds them, each in a fresh process so that its peak memory is its own
("before MB": that process with its gallery generated, before the build).
Targets (2 cores): 1.8x with 2 workers; 1M faces as HNSW in under 5 minutes, recall@10 >= 0.99,
peak memory under 2 GB.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from reunite.config import Settings
from reunite.galleries import SHAPES, gallery
from reunite.index import FaceIndex

# The re-embedding half imports reunite.service (and so dlib's models) inside its functions:
# the index builds run in fresh processes that re-import this module, and must not carry the
# models into their peak memory.


def scratch_store(photos: list[Path], workdir: Path) -> Path:
    """A store with each photo enrolled (its first face) by the older pipeline."""
    from reunite.service import Reunite

    settings = Settings(data_dir=workdir / "data", index_dir=workdir / "index", upsample_times=0)
    with Reunite.open(settings) as service:
        case = service.create_case({"kind": "missing"}, actor="bench")
        for path in photos:
            try:
                service.enroll_photo(case.id, path.read_bytes(), actor="bench", face_index=0)
            except Exception as exc:  # a photo without a face is left out of the benchmark
                print(f"  skipped {path.name}: {exc}", file=sys.stderr)
    return workdir


def reembed_rate(store: Path, workers: int) -> tuple[int, float]:
    """(faces, faces per second) re-embedding a copy of ``store`` with ``workers``."""
    from reunite.reembedding import reembed_faces
    from reunite.service import Reunite

    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "store"
        shutil.copytree(store, copy)
        settings = Settings(data_dir=copy / "data", index_dir=copy / "index")
        with Reunite.open(settings, load_index=False) as service:
            report = reembed_faces(service, workers=workers)
    return report.reembedded, report.reembedded / report.seconds


def build(job: tuple[int, str, str, Path]) -> dict[str, Any]:
    """In a fresh process: build one index; its seconds, peak memory and parameters."""
    size, index_type, shape, stats_path = job
    vectors = gallery(shape, size, stats_path=stats_path, seed=size)
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    index = FaceIndex("bench")
    index.add("missing", np.arange(1, size + 1), vectors)
    del vectors
    params = index.optimize("missing", min_faces=0 if index_type == "hnsw" else sys.maxsize)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"s": seconds, "peak_mb": peak_mb, "vectors_mb": size * 512 / 2**20, "params": params,
            "baseline_mb": baseline_mb}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces-dir", type=Path, default=Path("../shared/faces"))
    parser.add_argument("--lfw", type=int, default=400, help="LFW photos to re-embed")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--shape", choices=SHAPES, default="lfw")
    parser.add_argument("--stats", type=Path, default=Path("models/embedding_stats.npz"))
    parser.add_argument("--skip-reembed", action="store_true")
    args = parser.parse_args()
    cores = os.cpu_count() or 1

    if not args.skip_reembed:
        lfw = sorted((args.faces_dir / "lfw").glob("*/*.jpg"))
        sets = {
            "lfw_250px": lfw[:: max(1, len(lfw) // args.lfw)][: args.lfw],
            "samples": sorted((args.faces_dir / "samples").glob("*.jp*g")),
        }
        print(f"re-embedding, {cores} cores")
        many_label = f"{cores} workers/s"
        print(f"{'set':<10} {'faces':>6} {'1 worker/s':>11} {many_label:>12} {'ratio':>6}")
        for name, photos in sets.items():
            with tempfile.TemporaryDirectory() as scratch:
                store = scratch_store(photos, Path(scratch))
                faces, one = reembed_rate(store, 1)
                _, many = reembed_rate(store, cores)
            ratio = many / one
            print(f"{name:<10} {faces:>6} {one:>11.2f} {many:>12.2f} {ratio:>6.2f}", flush=True)

    print(f"\nindex build ({args.shape} shape), each in a fresh process")
    print(
        f"{'faces':>9} {'index':>6} {'build s':>8} {'peak MB':>8} {'before MB':>9} "
        f"{'vectors MB':>10}  params"
    )
    context = multiprocessing.get_context("spawn")
    for size in (int(s) for s in args.sizes.split(",")):
        for index_type in ("flat", "hnsw"):
            with context.Pool(1) as pool:
                [result] = pool.map(build, [(size, index_type, args.shape, args.stats)])
            print(
                f"{size:>9} {index_type:>6} {result['s']:>8.1f} {result['peak_mb']:>8.0f} "
                f"{result['baseline_mb']:>9.0f} {result['vectors_mb']:>10.0f}  {result['params']}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
