"""The graph kind of index: HNSW graphs over the full vectors, for kinds of 10k to 2M faces
(``reunite.index`` chooses), and how a kind is split into parts searched side by side.

A kind past ``HNSW_FACES_PER_PART`` faces becomes several graphs (*parts*, at most one per CPU
thread), searched at once on threads of their own, their top 10s merged. At 1M faces on two
cores, two graphs of 500k answer in 1.3 ms at the median (recall@10 0.992, efSearch 320) where
one graph of 1M took 2.5 ms (0.994, efSearch 640): each half needs a shorter walk, and the two
walks run side by side. ``efSearch`` is raised step by step until a sample of queries finds the
target share of their exact top 10 (``compressed_index.sample_recall``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np

from reunite.compressed_index import first_step_reaching

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 120
HNSW_FACES_PER_PART = 500_000
"""A graph kind gets one part per this many faces (rounded up), at most one per CPU thread."""
EF_SEARCH_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 320, 384, 448, 512, 640, 768, 1024)
"""``efSearch`` values tried in turn until the recall is reached (finer steps where a large
graph usually lands: each step costs latency in proportion)."""
HNSW_MAX_EF_SEARCH = EF_SEARCH_STEPS[-1]


def graphs_of(ids: np.ndarray, vectors: np.ndarray, parts: int | None) -> list[faiss.IndexIDMap]:
    """HNSW graphs of these faces: ``parts`` of them, by default ``graph_parts``."""
    count = graph_parts(len(ids)) if parts is None else max(1, min(parts, len(ids)))
    graphs: list[faiss.IndexIDMap] = []
    for start, end in row_ranges(len(ids), count):  # row slices: views, no copies
        hnsw = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_M)
        hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        part = faiss.IndexIDMap2(hnsw)
        part.add_with_ids(vectors[start:end], ids[start:end])
        graphs.append(part)
    return graphs


def graph_parts(faces: int, threads: int | None = None) -> int:
    """How many HNSW graphs hold ``faces`` faces: one per ``HNSW_FACES_PER_PART`` (rounded
    up), at most one per thread (they are searched in parallel; by default FAISS's thread
    count, which follows ``OMP_NUM_THREADS`` or the CPUs), at least one."""
    threads = faiss.omp_get_max_threads() if threads is None else threads
    return max(1, min(math.ceil(faces / HNSW_FACES_PER_PART), threads))


def row_ranges(total: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous (start, end) ranges covering ``range(total)``, sizes within one."""
    return list(itertools.pairwise(total * i // parts for i in range(parts + 1)))


def set_ef_search(parts: list[faiss.IndexIDMap], ef_search: int) -> None:
    for part in parts:
        graph: Any = faiss.downcast_index(part.index)
        graph.hnsw.efSearch = ef_search


def tuned_graph_params(
    graphs: list[faiss.IndexIDMap],
    recall_of: Callable[[], tuple[float, float]],
    target_recall: float,
) -> dict[str, Any] | None:
    """Raise the graphs' ``efSearch`` through ``EF_SEARCH_STEPS`` until ``recall_of()``
    (recall@10 and its lower bound) has its bound at ``target_recall``; returns the manifest's
    parameters, or None when ``HNSW_MAX_EF_SEARCH`` falls short."""
    found = first_step_reaching(
        EF_SEARCH_STEPS, lambda ef: set_ef_search(graphs, ef), recall_of, target_recall
    )
    if found is None:
        return None
    ef_search, measured = found
    params = {"type": "hnsw", "M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION}
    return params | {"ef_search": ef_search, **measured}
