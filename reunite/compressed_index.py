"""The compressed kind of index, for kinds of millions of faces, and the recall measure shared
by every approximate kind (``reunite.index``).

An HNSW graph of 10M faces would need about 8 GB and hours to build on two cores. Past
``COMPRESSED_MIN_FACES`` a kind becomes instead an IVF index (its faces sorted into
``nlist`` clusters, whose centres are compared exactly with each query) holding 4-bit
fast-scan PQ codes (32 bytes per face, scanned with SIMD), wrapped in ``IndexRefineFlat``: each
search takes the ``refine_factor`` x k nearest by code from the ``nprobe`` nearest clusters,
and re-ranks that shortlist exactly from the full float32 vectors, so the distances returned
are true (squared) L2 ones. Saved and mapped (``IO_FLAG_MMAP_IFC``), the full vectors stay in
the file's pages, which become resident only as searches touch them, shared by every process
that maps the file.

``nprobe`` is raised step by step until a sample of queries finds the target share of their
exact top 10 (``sample_recall``, the same test as HNSW's ``efSearch``). Synthetic LFW-shaped
galleries need many clusters probed (the ranks 4-10 of a top 10 are strangers at near-equal
distances, spread over the whole space): see docs/operations.md "Speed" for the figures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import faiss
import numpy as np

COMPRESSED_MIN_FACES = 2_000_000
"""Kinds of this many faces or more become compressed (``FaceIndex.optimize``): past it an
HNSW graph takes over 0.8 GB per million faces and, on two cores, several minutes per
million to build (hours at 10M), where this kind builds in minutes."""
FACES_PER_LIST = 600
"""About this many faces per IVF cluster (``compressed_lists``), up to ``MAX_LISTS``."""
MAX_LISTS = 4096
"""More clusters would not scan less for the same recall (on LFW-shaped data about a fixed
share of the faces must be scanned), and k-means costs clusters x training faces: 16,384 x
1M training faces would be about 10^14 flops, most of an hour on two cores (an estimate)."""
KMEANS_ITERATIONS = 10
CODES = "PQ64x4fs"
"""64 sub-vectors of 2 dimensions, 4 bits each: 32 bytes per face, scanned with SIMD. (At 1M
LFW-shaped faces, 32 sub-vectors lost up to 0.03 of recall@10 to the codes, with any
shortlist; 64 lose none past a shortlist of 50 x k.)"""
REFINE_FACTOR = 50
"""The shortlist re-ranked exactly: this many times k, nearest by code."""
TRAINING_POINTS_PER_LIST = 32
"""k-means of the clusters runs on this many faces per cluster (a random subsample)."""
NPROBE_STEPS = (16, 32, 64, 96, 128, 192, 256, 384, 512, 640, 768, 1024, 1536, 2048, 3072, 4096)
"""``nprobe`` values tried in turn (those below ``nlist``) until the recall is reached."""

SINGLE_QUERY_SCAN = 15
"""FAISS's fast-scan implementation for a single query (``implem`` 15): its clusters are
scanned on every thread, where the default scans them all on one. At 1M faces on two cores,
3.6 -> 2.3 ms a search at the median; batches keep the default, which spreads the queries over
the threads instead (0.81 ms a query in batches of 64, against 1.02). The answers are the
default's but for ties in the codes' distances at the edge of the shortlist, which the threads
break in the order they finish: at 1M, one probe in 300 had its rank-9 face in some of 20 runs
and not in others (none at 10M in 8 runs of 300). See docs/operations.md "Speed"."""


def compressed_lists(faces: int) -> int:
    """The number of IVF clusters for ``faces`` faces: a power of two near one per
    ``FACES_PER_LIST`` faces, between 64 and ``MAX_LISTS``."""
    wanted = max(faces // FACES_PER_LIST, 1)
    return int(min(max(2 ** round(math.log2(wanted)), 64), MAX_LISTS))


def compressed_index_and_seconds(
    ids: np.ndarray, vectors: np.ndarray, *, seed: int = 0
) -> tuple[faiss.IndexIDMap, dict[str, float]]:
    """A compressed index of ``vectors`` (n, dim) float32 under ``ids``, trained on a
    subsample then filled, and the seconds each step took (``train_s``, ``add_s``). Cost:
    about 32 bytes of codes plus the 4 * dim bytes of the full vector per face (a copy of
    ``vectors``); k-means on ``TRAINING_POINTS_PER_LIST`` faces per cluster, then every face
    compared with every centre, sent to its nearest and encoded (see docs/operations.md "Speed"
    for the seconds at 1M and 10M)."""
    started = time.perf_counter()
    dim = vectors.shape[1]
    nlist = compressed_lists(len(vectors))
    base = faiss.index_factory(dim, f"IVF{nlist},{CODES}")  # the centres searched exactly
    ivf: Any = faiss.extract_index_ivf(base)
    ivf.cp.max_points_per_centroid = TRAINING_POINTS_PER_LIST
    ivf.cp.seed = seed
    ivf.cp.niter = KMEANS_ITERATIONS
    ivf.clustering_index = faiss.IndexFlatL2(dim)  # k-means by brute force, not via a graph
    rng = np.random.default_rng(seed)
    sample = min(len(vectors), max(nlist * TRAINING_POINTS_PER_LIST, 65_536))
    picks = np.sort(rng.choice(len(vectors), sample, replace=False))
    index = faiss.IndexIDMap(faiss.IndexRefineFlat(base))
    index.train(vectors[picks])
    trained = time.perf_counter()
    # One call: the full vectors' storage is allocated once at its size. Added a million at a
    # time it grew by doubling, old and new copies held together (peak 14.4 GB at 10M faces).
    index.add_with_ids(vectors, ids)
    seconds = {"train_s": trained - started, "add_s": time.perf_counter() - trained}
    return index, {name: round(value, 1) for name, value in seconds.items()}


def set_compressed_search(index: Any, nprobe: int, refine_factor: int = REFINE_FACTOR) -> None:
    """Search ``index`` (as made by ``compressed_index``) probing ``nprobe`` clusters and
    re-ranking ``refine_factor`` x k faces exactly."""
    refined: Any = faiss.downcast_index(index.index)
    refined.k_factor = refine_factor
    ivf: Any = faiss.extract_index_ivf(refined.base_index)
    ivf.nprobe = nprobe
    quantizer: Any = faiss.downcast_index(ivf.quantizer)
    if hasattr(quantizer, "hnsw"):  # built before 2026-12-02: the centres in a graph
        quantizer.hnsw.efSearch = max(2 * nprobe, 64)  # finds the nprobe nearest centres


def set_scan_for(index: Any, queries: int) -> None:
    """Make a compressed index scan its clusters on every thread when it searches a single
    query (``SINGLE_QUERY_SCAN``), and spread ``queries`` over the threads otherwise."""
    refined: Any = faiss.downcast_index(index.index)
    fast_scan: Any = faiss.downcast_index(refined.base_index)
    fast_scan.implem = SINGLE_QUERY_SCAN if queries == 1 else 0


def compressed_vectors(index: Any) -> np.ndarray:
    """The full vectors of a compressed index, in insertion order (the order of its id map):
    a view of its storage, no copy."""
    refined: Any = faiss.downcast_index(index.index)
    flat: Any = faiss.downcast_index(refined.refine_index)
    return faiss.rev_swig_ptr(flat.get_xb(), int(index.ntotal) * index.d).reshape(-1, index.d)


def compressed_lists_of(index: Any) -> int:
    """The number of IVF clusters of a compressed index."""
    refined: Any = faiss.downcast_index(index.index)
    return int(faiss.extract_index_ivf(refined.base_index).nlist)


def tuned_compressed_params(
    index: Any, recall_of: Callable[[], tuple[float, float]], target_recall: float
) -> dict[str, Any] | None:
    """Raise ``nprobe`` through ``NPROBE_STEPS`` until ``recall_of()`` (recall@10 and its
    lower bound, ``sample_recall``) has its bound at ``target_recall``; returns the manifest's
    parameters, or None when even every cluster probed falls short. Cost: one sample search
    per step, each dearer than the last."""
    nlist = compressed_lists_of(index)
    steps = [n for n in NPROBE_STEPS if n < nlist] + [nlist]
    found = first_step_reaching(
        steps, lambda nprobe: set_compressed_search(index, nprobe), recall_of, target_recall
    )
    if found is None:
        return None
    nprobe, measured = found
    params = {"type": "ivfpq", "nlist": nlist, "nprobe": nprobe, "codes": CODES}
    return params | {"refine_factor": REFINE_FACTOR, **measured}


def first_step_reaching(
    steps: Sequence[int],
    apply: Callable[[int], None],
    recall_of: Callable[[], tuple[float, float]],
    target_recall: float,
) -> tuple[int, dict[str, float]] | None:
    """The first of ``steps`` (each ``apply``-ed in turn, cheapest first) at which
    ``recall_of()``'s lower bound reaches ``target_recall``, with the manifest's
    ``recall_at_10`` and ``recall_lower_bound``; None when none does."""
    for step in steps:
        apply(step)
        recall, bound = recall_of()
        if bound >= target_recall:
            return step, {"recall_at_10": round(recall, 4), "recall_lower_bound": round(bound, 4)}
    return None


def sample_recall(
    searched: Any, queries: np.ndarray, truth_ids: np.ndarray, top: int
) -> tuple[float, float]:
    """The share of each query's exact top ``top`` (``truth_ids``, one row per query) that
    ``searched`` finds, and that share less two standard errors (``recall_lower_bound``)."""
    _, found = searched.search(queries, top)
    recall = float(
        np.mean([len(set(a) & set(b)) / top for a, b in zip(found, truth_ids, strict=True)])
    )
    return recall, recall_lower_bound(recall, len(queries) * top)


def recall_lower_bound(recall: float, trials: int) -> float:
    """``recall`` (a share of ``trials`` neighbours looked for: 10 per query for a top 10) less
    two standard errors of a proportion.

    Tuning stops at the first step whose bound reaches the target: stopping at the first step
    that merely touches it overshoots, and other queries then find a little less.
    """
    return recall - 2 * math.sqrt(recall * (1 - recall) / trials)
