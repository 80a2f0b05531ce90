"""The FAISS index of face embeddings: one index per case kind, keyed by face id.

Each kind starts exact (flat L2: every face compared). ``optimize`` turns a kind with many faces
into an approximate HNSW graph, with ``efSearch`` raised until a sample of queries finds at
least the target share of the exact top 10 (recall@10); the parameters and the measured recall
go into the manifest. (IVF was measured too and never paid: the ranks 6-10 of a top 10 are
strangers at near-equal distances, and IVF had to scan almost every cluster to find them.)

The index is derived data: the SQL store is the source of truth, and ``Reunite`` rebuilds or
catches the index up from the store whenever the two disagree. Keeping one index per kind means a
search for ``missing`` faces never scans ``found`` ones.

FAISS's L2 indexes return *squared* distances; everything this module returns is the real L2
distance (the square root), the unit dlib's 0.6 threshold is stated in.

Files in the index directory, each replaced atomically (temp file, fsync, rename)::

    missing.faiss  found.faiss  manifest.json

``manifest.json`` is written last and names the model, the dimension, the counts, the last face id
and the SHA-256 of each index file, so a half-written or corrupted set is detected on load.

Several processes (API workers, servers on other machines, a ``reunite reindex`` run) may share
one index directory. Saves and loads take an exclusive ``flock`` on ``<dir>/.lock``
(``DirectoryLock``), so nobody reads a set that is half replaced. Each index carries a *build*
(``build_id``, ``built_at``): saving keeps the build, rebuilding from the store starts a new one.
A process never saves its index over a newer build, and adopts a newer build it finds on disk
(``Reunite.sync_index``): that is how a rebuilt index reaches running servers without a restart.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from reunite.errors import IndexUnusable
from reunite.files import write_atomically

KINDS = ("missing", "found")
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 120
HNSW_MAX_EF_SEARCH = 1024
EF_SEARCH_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 320, 384, 448, 512, 640, 768, 1024)
"""``efSearch`` values tried in turn until the recall is reached (finer steps where a large
graph usually lands: each step costs latency in proportion)."""
MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Manifest:
    """What an index directory holds: written last on save, checked first on load."""

    model: str
    dim: int
    counts: dict[str, int]
    last_face_id: int
    files: dict[str, str]
    saved_at: str
    format: int = FORMAT_VERSION
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per kind: ``{"type": "flat"}`` or ``{"type": "hnsw", "M", "ef_search", "recall_at_10"}``,
    plus ``removed``: tombstoned face ids of a graph."""
    build_id: str = ""
    """Which build this is: kept by saves, new for each index built from the store."""
    built_at: str = ""
    """When the build started from the store (ISO 8601, UTC): a later one is newer."""

    @property
    def count(self) -> int:
        return sum(self.counts.values())


class FaceIndex:
    """Embeddings of enrolled faces, searchable by kind. Thread-safe.

    Each kind is an exact flat index, or (after ``optimize`` on a large kind) an HNSW graph.
    FAISS cannot delete from an HNSW graph, so removed faces are kept as tombstones: skipped
    in results and in ``face_ids``, listed in the manifest, and dropped at the next rebuild.

    Cost (scripts/bench_search.py, two cores, LFW-shaped galleries): exact search, about
    0.035 ms per 1,000 faces of the searched kind per query (36 ms at 1M); HNSW, 0.34 ms at
    100k (recall@10 0.995) and 2.5 ms at 1M (0.994, efSearch 640). Memory: 0.5 KB per face
    exact, about 0.8 KB as a graph.
    """

    def __init__(self, model: str, dim: int = 128) -> None:
        self.model = model
        self.dim = dim
        self._indexes: dict[str, faiss.IndexIDMap2] = {kind: self._empty() for kind in KINDS}
        self._removed: dict[str, set[int]] = {kind: set() for kind in KINDS}
        self.params: dict[str, dict[str, Any]] = {kind: {"type": "flat"} for kind in KINDS}
        self.build_id = uuid.uuid4().hex
        self.built_at = datetime.now(UTC).isoformat()
        self._lock = threading.RLock()
        self._gpu: Any = None
        self._mirrors: dict[str, Any] = {}
        """GPU copies of exact kinds (``use_gpu``), made at their first search."""

    def use_gpu(self, wanted: bool) -> bool:
        """Search exact kinds on the first GPU when ``wanted`` and FAISS was built with CUDA
        and sees one; returns whether it does. The CPU index stays the one saved and changed
        (additions are mirrored; a removal drops the copy until the next search). HNSW graphs
        stay on the CPU. Without a GPU build of FAISS this returns False and changes nothing.
        """
        with self._lock:
            usable = wanted and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
            self._gpu = faiss.StandardGpuResources() if usable else None
            self._mirrors.clear()
            return usable

    def _searchable(self, kind: str) -> Any:
        """The index to search for ``kind``: its GPU copy where there is one, else itself."""
        index = self._indexes[kind]
        if self._gpu is None or self._graph(kind) or index.ntotal == 0:
            return index
        if kind not in self._mirrors:
            self._mirrors[kind] = faiss.index_cpu_to_gpu(self._gpu, 0, index)
        return self._mirrors[kind]

    def _empty(self) -> faiss.IndexIDMap2:
        return faiss.IndexIDMap2(faiss.IndexFlatL2(self.dim))

    def _graph(self, kind: str) -> bool:
        return bool(self.params[kind]["type"] == "hnsw")

    def count(self, kind: str | None = None) -> int:
        """Number of faces of ``kind`` (or of both kinds)."""
        with self._lock:
            kinds = KINDS if kind is None else (_checked_kind(kind),)
            return sum(int(self._indexes[k].ntotal) - len(self._removed[k]) for k in kinds)

    def face_ids(self, kind: str) -> np.ndarray:
        """The face ids held for ``kind``, int64, in insertion order."""
        with self._lock:
            kind = _checked_kind(kind)
            ids = faiss.vector_to_array(self._indexes[kind].id_map).astype(np.int64)
            if self._removed[kind]:
                ids = ids[~np.isin(ids, np.fromiter(self._removed[kind], np.int64))]
            return ids

    @property
    def last_face_id(self) -> int:
        """The largest face id held, or 0."""
        with self._lock:
            return max((int(ids.max()) for k in KINDS if (ids := self.face_ids(k)).size), default=0)

    def add(self, kind: str, face_ids: Iterable[int], vectors: np.ndarray) -> None:
        """Add faces of ``kind``; ``vectors`` is (n, dim), one row per id."""
        ids = np.asarray(list(face_ids), dtype=np.int64)
        matrix = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim))
        if len(ids) != len(matrix):
            raise ValueError(f"{len(ids)} ids for {len(matrix)} vectors")
        if len(ids):
            with self._lock:
                self._indexes[_checked_kind(kind)].add_with_ids(matrix, ids)
                if kind in self._mirrors:
                    self._mirrors[kind].add_with_ids(matrix, ids)

    def remove(self, face_ids: Iterable[int], kind: str | None = None) -> int:
        """Remove faces by id from ``kind`` (or from both kinds); returns how many were removed."""
        ids = np.asarray(list(face_ids), dtype=np.int64)
        if not len(ids):
            return 0
        kinds = KINDS if kind is None else (_checked_kind(kind),)
        removed = 0
        with self._lock:
            for k in kinds:
                if self._graph(k):
                    doomed = np.unique(ids[np.isin(ids, self.face_ids(k))])
                    self._removed[k] |= {int(i) for i in doomed}
                    removed += len(doomed)
                else:
                    gone = int(self._indexes[k].remove_ids(faiss.IDSelectorBatch(ids)))
                    if gone:
                        self._mirrors.pop(k, None)  # remade at the next search
                    removed += gone
        return removed

    def search(self, kind: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` faces of ``kind`` nearest ``vector``: (face id, L2 distance), nearest first."""
        return self.search_many(kind, np.asarray(vector).reshape(1, self.dim), k)[0]

    def search_many(self, kind: str, vectors: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """``search`` for each row of ``vectors`` (n, dim) at once: one call into FAISS, which
        spreads the queries over its threads. Cost per query falls with the batch size."""
        queries = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim))
        with self._lock:
            kind = _checked_kind(kind)
            index, removed = self._indexes[kind], self._removed[kind]
            if index.ntotal == 0 or k <= 0:
                return [[] for _ in queries]
            wanted = min(k + len(removed), int(index.ntotal))
            squared, ids = self._searchable(kind).search(queries, wanted)
        return [
            [
                (int(i), float(np.sqrt(max(float(d), 0.0))))
                for d, i in zip(row_d, row_i, strict=True)
                if i >= 0 and int(i) not in removed
            ][:k]
            for row_d, row_i in zip(squared, ids, strict=True)
        ]

    def optimize(
        self,
        kind: str,
        *,
        min_faces: int,
        target_recall: float = 0.99,
        sample_queries: int = 1000,
        seed: int = 0,
    ) -> dict[str, Any]:
        """Rebuild ``kind``: an HNSW graph if it holds at least ``min_faces`` faces, else exact
        (tombstones are dropped either way); returns the parameters, also kept in ``params``
        and the manifest.

        The graph's ``efSearch`` climbs ``EF_SEARCH_STEPS`` until ``sample_queries`` stored
        faces, slightly perturbed, find ``target_recall`` of their exact top 10 (1,000 queries
        measure it to about ±0.002); past 1,024 the graph is refused and the kind stays exact.
        Cost: about 12 s per 100,000 faces on two cores (about 250 s for 1M). Holds the index
        lock meanwhile.
        """
        kind = _checked_kind(kind)
        with self._lock:
            ids, vectors = self._ids_and_vectors(kind)
            if len(ids) < min_faces:
                self._replace(kind, self._empty(), ids, vectors, {"type": "flat"})
                return self.params[kind]
            hnsw = faiss.IndexHNSWFlat(self.dim, HNSW_M)
            hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            graph = faiss.IndexIDMap2(hnsw)
            graph.add_with_ids(vectors, ids)
            rng = np.random.default_rng(seed)
            picks = rng.choice(len(vectors), min(sample_queries, len(vectors)), False)
            queries = vectors[picks] + rng.normal(0, 0.01, (len(picks), self.dim)).astype(
                np.float32
            )
            _, truth = faiss.knn(queries, vectors, 10)  # brute force, no copy of the vectors
            truth_ids = ids[truth]
            recall = 0.0
            for ef_search in EF_SEARCH_STEPS:
                hnsw.hnsw.efSearch = ef_search
                _, found = graph.search(queries, 10)
                recall = float(
                    np.mean(
                        [len(set(a) & set(b)) / 10 for a, b in zip(found, truth_ids, strict=True)]
                    )
                )
                if _recall_lower_bound(recall, len(queries)) >= target_recall:
                    break
            params: dict[str, Any]
            if _recall_lower_bound(recall, len(queries)) < target_recall:
                params = {
                    "type": "flat",
                    "approximate_rejected": f"HNSW recall@10 {recall:.3f} at efSearch "
                    f"{HNSW_MAX_EF_SEARCH}",
                }
                self._replace(kind, self._empty(), ids, vectors, params)
                return params
            params = {
                "type": "hnsw",
                "M": HNSW_M,
                "ef_construction": HNSW_EF_CONSTRUCTION,
                "ef_search": ef_search,
                "recall_at_10": round(recall, 4),
                "faces": len(ids),
            }
            self._indexes[kind], self._removed[kind], self.params[kind] = graph, set(), params
            self._mirrors.pop(kind, None)
            return params

    def _replace(
        self,
        kind: str,
        index: faiss.IndexIDMap2,
        ids: np.ndarray,
        vectors: np.ndarray,
        params: dict[str, Any],
    ) -> None:
        index.add_with_ids(vectors, ids)
        self._indexes[kind], self._removed[kind], self.params[kind] = index, set(), params
        self._mirrors.pop(kind, None)

    def _ids_and_vectors(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """Every live face of ``kind``: (ids, vectors), in the same order."""
        index = self._indexes[kind]
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        vectors: np.ndarray
        if self._graph(kind):
            vectors = index.index.reconstruct_n(0, int(index.ntotal))
        else:  # a view of the flat index's own storage: no copy (512 MB per million faces)
            flat: Any = faiss.downcast_index(index.index)
            vectors = faiss.rev_swig_ptr(flat.get_xb(), int(index.ntotal) * self.dim).reshape(
                -1, self.dim
            )
        if self._removed[kind]:
            live = ~np.isin(ids, np.fromiter(self._removed[kind], np.int64))
            ids, vectors = ids[live], vectors[live]
        return ids, vectors

    def save(self, directory: Path) -> Manifest:
        """Write the index files and then the manifest, each atomically. Cost: O(faces) I/O."""
        directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            files = {}
            for kind in KINDS:
                name = f"{kind}.faiss"
                data = faiss.serialize_index(self._indexes[kind]).tobytes()
                write_atomically(directory / name, data)
                files[name] = hashlib.sha256(data).hexdigest()
            manifest = Manifest(
                model=self.model,
                dim=self.dim,
                counts={k: int(self._indexes[k].ntotal) for k in KINDS},
                last_face_id=self.last_face_id,
                files=files,
                saved_at=datetime.now(UTC).isoformat(),
                params={
                    k: dict(v) | ({"removed": sorted(self._removed[k])} if self._removed[k] else {})
                    for k, v in self.params.items()
                },
                build_id=self.build_id,
                built_at=self.built_at,
            )
        write_atomically(
            directory / MANIFEST_NAME, json.dumps(manifest.__dict__, indent=2).encode("utf-8")
        )
        return manifest

    @classmethod
    def load(cls, directory: Path, *, model: str, dim: int) -> tuple[FaceIndex, Manifest]:
        """Read an index saved by ``save``.

        Raises:
            IndexUnusable: files missing, corrupt, inconsistent, or made for another model/dim.
        """
        manifest = read_manifest(directory)
        if manifest.model != model or manifest.dim != dim:
            raise IndexUnusable(
                f"The index was built for model {manifest.model!r} (dim {manifest.dim}); "
                f"this service uses {model!r} (dim {dim})."
            )
        index = cls(model, dim)
        for kind in KINDS:
            name = f"{kind}.faiss"
            try:
                data = (directory / name).read_bytes()
            except OSError as exc:
                raise IndexUnusable(f"Index file {name} cannot be read ({exc}).") from exc
            if hashlib.sha256(data).hexdigest() != manifest.files.get(name):
                raise IndexUnusable(f"Index file {name} does not match its manifest (corrupt).")
            try:
                loaded = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
            except RuntimeError as exc:
                raise IndexUnusable(f"Index file {name} cannot be decoded ({exc}).") from exc
            if loaded.d != dim or loaded.ntotal != manifest.counts.get(kind):
                raise IndexUnusable(f"Index file {name} disagrees with its manifest.")
            if not isinstance(loaded, faiss.IndexIDMap2):
                raise IndexUnusable(f"Index file {name} is not an id-mapped index.")
            params = dict(manifest.params.get(kind, {"type": "flat"}))
            removed = params.pop("removed", [])
            if params["type"] == "hnsw":
                graph: Any = faiss.downcast_index(loaded.index)
                graph.hnsw.efSearch = int(params["ef_search"])
            index._indexes[kind] = loaded
            index._removed[kind] = {int(i) for i in removed}
            index.params[kind] = params
        index.build_id, index.built_at = manifest.build_id, manifest.built_at
        return index, manifest

    def is_older_than(self, manifest: Manifest) -> bool:
        """Whether ``manifest`` describes a newer build than this index's."""
        return manifest.build_id != self.build_id and manifest.built_at > self.built_at


def read_manifest(directory: Path) -> Manifest:
    """The manifest of an index directory. Raises ``IndexUnusable`` if absent or malformed."""
    path = directory / MANIFEST_NAME
    try:
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        manifest = Manifest(**raw)
    except FileNotFoundError as exc:
        raise IndexUnusable(f"No index manifest at {path}.") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise IndexUnusable(f"The index manifest at {path} is unreadable ({exc}).") from exc
    if manifest.format != FORMAT_VERSION:
        raise IndexUnusable(f"Index format {manifest.format} is not {FORMAT_VERSION}.")
    return manifest


def _recall_lower_bound(recall: float, queries: int) -> float:
    """``recall`` (of a top 10, over ``queries``) less two standard errors of a proportion.

    Tuning stops at the first step whose bound reaches the target: stopping at the first step
    that merely touches it overshoots, and other queries then find a little less.
    """
    return recall - 2 * math.sqrt(recall * (1 - recall) / (10 * queries))


class DirectoryLock:
    """An exclusive lock on a directory, shared by processes (``flock`` on ``<dir>/.lock``) and
    re-entrant within one process. Released by the kernel if its holder dies."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / ".lock"
        self._local = threading.RLock()
        self._depth = 0
        self._fd = -1

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the ``with`` block (waits for other processes to release it)."""
        with self._local:
            if self._depth == 0:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    os.close(self._fd)  # closing the descriptor releases the flock
                    self._fd = -1


def _checked_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    return kind
