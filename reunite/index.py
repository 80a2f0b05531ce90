"""The FAISS index of face embeddings: one index per case kind, keyed by face id.

Each kind starts exact (flat L2: every face compared). ``optimize`` turns a kind with many faces
into an approximate HNSW graph, with ``efSearch`` raised until a sample of queries finds at
least the target share of the exact top 10 (recall@10); the parameters and the measured recall
go into the manifest. (IVF was measured too and never paid: the ranks 6-10 of a top 10 are
strangers at near-equal distances, and IVF had to scan almost every cluster to find them.)

A kind past ``HNSW_FACES_PER_PART`` faces becomes several graphs (*parts*), searched side by
side (``reunite.graph_index``).

A kind of ``COMPRESSED_MIN_FACES`` (2M) faces or more becomes instead a *compressed* index
(``reunite.compressed_index``: IVF over 4-bit PQ codes, its shortlist re-ranked exactly from the
full vectors, which stay in the mapped file's pages), built in minutes where graphs take hours.

The index is derived data: the SQL store is the source of truth, and ``Reunite`` rebuilds or
catches the index up from the store whenever the two disagree. Keeping one index per kind means a
search for ``missing`` faces never scans ``found`` ones.

FAISS's L2 indexes return *squared* distances; everything this module returns is the real L2
distance (the square root), the unit dlib's 0.6 threshold is stated in.

Files in the index directory, each replaced atomically (temp file, fsync, rename)::

    missing.faiss  found.faiss  manifest.json
    missing.0.faiss  missing.1.faiss  ...      (a kind held in several parts)
    missing.added.faiss                        (faces added to an approximate kind since its build)

``manifest.json`` is written last and names the model, the dimension, the counts, the last face id
and the SHA-256 of each index file, so a half-written or corrupted set is detected on load. A save
writes all its files under temporary names before it renames any, so one cut off while writing
leaves the last save whole (only a kill in the milliseconds of the renames costs a rebuild).

Several processes of one machine (API workers, a ``reunite reindex`` run) may share one index
directory. Saves and loads take an exclusive ``flock`` on ``<dir>/.lock`` (``DirectoryLock``),
so nobody reads a set that is half replaced. Machines do not share one: each has its own, and
builds reach them through the object store (``reunite.index_builds``). Each index carries a *build*
(``build_id``, ``built_at``): saving keeps the build, rebuilding from the store starts a new one.
A process never saves its index over a newer build, and adopts a newer build it finds on disk
(``Reunite.sync_index``): that is how a rebuilt index reaches running servers without a restart.

A running server *maps* the saved files (``load(mapped=True)``: FAISS's ``IO_FLAG_MMAP_IFC``,
which in FAISS 1.15 maps the flat vectors and the HNSW graphs alike), so the API workers of one
machine share one copy in the page cache. Each keeps of its own only the faces added since (a
flat *delta*) and the ids removed since (tombstones), merged in at search time; ``save`` writes
them (``reunite.live_index`` then maps the new files): an exact kind is rewritten whole, but an
approximate kind's files are left as they are and its added faces saved beside them
(``missing.added.faiss``, searched exactly) until a rebuild folds them in. Files and manifest:
``reunite.index_files``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from reunite.compressed_index import (
    COMPRESSED_MIN_FACES,
    compressed_index_and_seconds,
    compressed_vectors,
    sample_recall,
    set_compressed_search,
    set_scan_for,
    tuned_compressed_params,
)
from reunite.errors import IndexUnusable
from reunite.graph_index import (
    HNSW_MAX_EF_SEARCH,
    graphs_of,
    set_ef_search,
    tuned_graph_params,
)
from reunite.index_files import (
    MANIFEST_NAME,
    DirectoryLock,
    Manifest,
    added_faces,
    added_file_name,
    file_identity,
    files_on_disk,
    format_of,
    install,
    loaded_part,
    part_file_names,
    read_manifest,
    staged_index_file,
)

__all__ = [
    "KINDS",
    "MANIFEST_NAME",
    "DirectoryLock",
    "FaceIndex",
    "Manifest",
    "part_file_names",
    "read_manifest",
]

KINDS = ("missing", "found")


class FaceIndex:
    """Embeddings of enrolled faces, searchable by kind. Thread-safe.

    Each kind is an exact flat index, or (after ``optimize`` on a large kind) an HNSW graph,
    several graphs (parts) searched in parallel, or a compressed index. FAISS cannot delete
    from either approximate kind, so removed faces are kept as tombstones: skipped in results
    and in ``face_ids``, listed in the manifest, and dropped at the next rebuild.

    Cost (scripts/bench_search.py, two cores, LFW-shaped galleries): exact search, about
    0.035 ms per 1,000 faces of the searched kind per query (36 ms at 1M); HNSW, 0.34 ms at
    100k (recall@10 0.995) and 1.3 ms at 1M in two parts (recall@10 0.992). Memory:
    0.5 KB per face exact, about 0.8 KB as a graph.
    """

    def __init__(self, model: str, dim: int = 128) -> None:
        self.model = model
        self.dim = dim
        self._parts: dict[str, list[faiss.IndexIDMap]] = {kind: [self._empty()] for kind in KINDS}
        """The id-mapped indexes holding each kind: one, or several graphs."""
        self._indexes: dict[str, Any] = {kind: self._parts[kind][0] for kind in KINDS}
        """What a search of each kind runs on: its one part, or its parts as ``IndexShards``."""
        self._removed: dict[str, set[int]] = {kind: set() for kind in KINDS}
        self._delta: dict[str, faiss.IndexIDMap2 | None] = {kind: None for kind in KINDS}
        """Per kind loaded from files, mapped (``load(mapped=True)``) or approximate with an
        added-faces file: the faces added since its files were built, in a flat index of this
        process's own (mapped files are read-only; FAISS cannot take a face out of an
        approximate kind once in). None for a kind built in memory."""
        self._mapped_files: dict[str, dict[str, tuple[str, tuple[int, ...]]]] = {
            kind: {} for kind in KINDS
        }
        """Per mapped kind: the files its parts are mapped from (name: SHA-256 and the file's
        identity then), which a save leaves as they are while they are still those files."""
        self.marks: list[int] | None = None
        """The store marks the loaded or last saved files reflect (``Manifest.marks``)."""
        self.saved_at = ""
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
        if self._gpu is None or self._approximate(kind) or index.ntotal == 0:
            return index
        if kind not in self._mirrors:
            self._mirrors[kind] = faiss.index_cpu_to_gpu(self._gpu, 0, index)
        return self._mirrors[kind]

    def _empty(self) -> faiss.IndexIDMap2:
        return faiss.IndexIDMap2(faiss.IndexFlatL2(self.dim))

    def _approximate(self, kind: str) -> bool:
        """Whether ``kind`` is HNSW graphs or compressed: FAISS cannot delete from either."""
        return bool(self.params[kind]["type"] != "flat")

    def count(self, kind: str | None = None) -> int:
        """Number of faces of ``kind`` (or of both kinds)."""
        with self._lock:
            kinds = KINDS if kind is None else (_checked_kind(kind),)
            return sum(
                int(self._indexes[k].ntotal) - len(self._removed[k]) + self._delta_count(k)
                for k in kinds
            )

    def _delta_count(self, kind: str) -> int:
        delta = self._delta[kind]
        return 0 if delta is None else int(delta.ntotal)

    @property
    def mapped(self) -> bool:
        """Whether any kind searches files mapped from disk (``load(mapped=True)``)."""
        return any(self._mapped_files.values())

    @property
    def delta_size(self) -> int:
        """Faces held apart from the loaded kinds' files (added since those were built), plus
        those removed from them."""
        return sum(self._delta_count(k) for k in KINDS) + sum(
            len(self._removed[k]) for k in KINDS if self._delta[k] is not None
        )

    def face_ids(self, kind: str) -> np.ndarray:
        """The face ids held for ``kind``, int64, part by part, each in insertion order."""
        with self._lock:
            kind = _checked_kind(kind)
            ids = self._held_ids(kind)
            if self._removed[kind]:
                ids = ids[~np.isin(ids, np.fromiter(self._removed[kind], np.int64))]
            delta = self._delta[kind]
            if delta is not None and delta.ntotal:
                ids = np.concatenate([ids, faiss.vector_to_array(delta.id_map).astype(np.int64)])
            return ids

    def part_sizes(self, kind: str) -> list[int]:
        """Faces in each part of ``kind`` (one part unless it is held as several graphs),
        removed ones included until the next rebuild."""
        with self._lock:
            return [int(part.ntotal) for part in self._parts[_checked_kind(kind)]]

    def _held_ids(self, kind: str) -> np.ndarray:
        """Every id in the parts of ``kind``, tombstones included."""
        arrays = [faiss.vector_to_array(part.id_map) for part in self._parts[kind]]
        return np.concatenate(arrays).astype(np.int64)

    @property
    def last_face_id(self) -> int:
        """The largest face id held, or 0."""
        with self._lock:
            return max((int(ids.max()) for k in KINDS if (ids := self.face_ids(k)).size), default=0)

    def add(self, kind: str, face_ids: Iterable[int], vectors: np.ndarray) -> None:
        """Add faces of ``kind``; ``vectors`` is (n, dim), one row per id. A kind held in parts
        gets each call's faces in its smallest part, so the parts stay even."""
        ids = np.asarray(list(face_ids), dtype=np.int64)
        matrix = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim))
        if len(ids) != len(matrix):
            raise ValueError(f"{len(ids)} ids for {len(matrix)} vectors")
        if len(ids):
            with self._lock:
                delta = self._delta[_checked_kind(kind)]
                if delta is None and not self._removed[kind].isdisjoint(ids.tolist()):
                    # A graph's face removed and now added again: in the graph its tombstone
                    # would hide it, so it goes to added faces of the kind's own, as when mapped.
                    delta = self._delta[kind] = self._empty()
                if delta is not None:  # a mapped kind (its files are read-only), or the above
                    delta.add_with_ids(matrix, ids)
                    return
                parts = self._parts[kind]
                # Not through IndexShards: it splits a call by position, so a lone face
                # would always land in the last part.
                min(parts, key=lambda part: int(part.ntotal)).add_with_ids(matrix, ids)
                if len(parts) > 1:
                    self._indexes[kind].syncWithSubIndexes()  # its ntotal
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
                delta = self._delta[k]
                if delta is not None:  # faces apart (mapped, or re-added): tombstones for the rest
                    removed += int(delta.remove_ids(faiss.IDSelectorBatch(ids)))
                    held = np.unique(ids[np.isin(ids, self._held_ids(k))])
                    fresh = {int(i) for i in held} - self._removed[k]
                    self._removed[k] |= fresh
                    removed += len(fresh)
                elif self._approximate(k):
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
            removed, delta = self._removed[kind], self._delta[kind]
            if k <= 0:
                return [[] for _ in queries]
            if self.params[kind]["type"] == "ivfpq":
                set_scan_for(self._parts[kind][0], len(queries))
            answers = [_nearest(self._searchable(kind), queries, k, removed)]
            if delta is not None and delta.ntotal:
                answers.append(_nearest(delta, queries, k, set()))
        if len(answers) == 1:
            hits = answers[0]
        else:  # merged by distance; at equal distances the mapped faces first (a stable sort)
            hits = [
                sorted(a + b, key=lambda hit: hit[1])[:k]
                for a, b in zip(answers[0], answers[1], strict=True)
            ]
        return [[(i, float(np.sqrt(max(d, 0.0)))) for i, d in row] for row in hits]

    def optimize(
        self,
        kind: str,
        *,
        min_faces: int,
        target_recall: float = 0.99,
        sample_queries: int = 1000,
        seed: int = 0,
        parts: int | None = None,
        compressed_min_faces: int = COMPRESSED_MIN_FACES,
    ) -> dict[str, Any]:
        """Rebuild ``kind``: exact below ``min_faces`` faces, a compressed index
        (``reunite.compressed_index``) from ``compressed_min_faces``, HNSW graphs between
        (tombstones are dropped either way); returns the parameters, also kept in ``params``
        and the manifest.

        The faces are split into ``parts`` graphs (by default one per ``HNSW_FACES_PER_PART``
        faces, at most one per CPU thread), searched in parallel. Their ``efSearch`` (a
        compressed index's ``nprobe``) climbs its steps until ``sample_queries`` stored faces,
        slightly perturbed, find ``target_recall`` of their exact top 10 (1,000 queries measure
        it to about +-0.002); failing that the kind stays exact. Cost: graphs about 12 s per
        100,000 faces on two cores (about 200 s for 1M); compressed, see
        ``compressed_index_and_seconds``, plus the exact top 10 of the sample (about 6 s per
        million faces). Holds the index lock meanwhile.
        """
        kind = _checked_kind(kind)
        with self._lock:
            ids, vectors = self._ids_and_vectors(kind)
            if len(ids) < max(min_faces, 1):  # an empty kind is exact
                return self._make_exact(kind, ids, vectors, {"type": "flat"})
            rng = np.random.default_rng(seed)
            picks = rng.choice(len(vectors), min(sample_queries, len(vectors)), False)
            queries = vectors[picks] + rng.normal(0, 0.01, (len(picks), self.dim)).astype(
                np.float32
            )
            top = min(10, len(ids))  # a kind of fewer than 10 faces: all of them
            _, truth = faiss.knn(queries, vectors, top)  # brute force, no copy of the vectors
            truth_ids = ids[truth]
            if len(ids) >= compressed_min_faces:
                compressed, seconds = compressed_index_and_seconds(ids, vectors, seed=seed)
                built = [compressed]
                params = tuned_compressed_params(
                    built[0],
                    lambda: sample_recall(built[0], queries, truth_ids, top),
                    target_recall,
                )
                params = None if params is None else params | seconds
                rejected = "compressed recall@10 short of the target with every cluster probed"
            else:
                built = graphs_of(ids, vectors, parts)
                searched = self._whole(built)
                params = tuned_graph_params(
                    built, lambda: sample_recall(searched, queries, truth_ids, top), target_recall
                )
                rejected = f"HNSW recall@10 short of the target at efSearch {HNSW_MAX_EF_SEARCH}"
            if params is None:
                return self._make_exact(
                    kind, ids, vectors, {"type": "flat", "approximate_rejected": rejected}
                )
            params |= {"sample_queries": len(queries), "faces": len(ids), "parts": len(built)}
            self._set(kind, built, set(), params)
            return params

    def _whole(self, parts: list[faiss.IndexIDMap]) -> Any:
        """One searchable index over ``parts``: the part itself, or ``IndexShards`` that
        searches each part on its own thread and merges the results (ids are the parts')."""
        if len(parts) == 1:
            return parts[0]
        shards = faiss.IndexShards(self.dim, True)  # threaded: one thread per part
        shards.successive_ids = False  # results keep the parts' own ids
        for part in parts:
            shards.add_shard(part)
        return shards

    def _set(
        self, kind: str, parts: list[faiss.IndexIDMap], removed: set[int], params: dict[str, Any]
    ) -> None:
        self._parts[kind], self._indexes[kind] = parts, self._whole(parts)
        self._removed[kind], self.params[kind] = removed, params
        self._delta[kind] = None  # held in memory now
        self._mapped_files[kind] = {}
        self._mirrors.pop(kind, None)

    def _make_exact(
        self, kind: str, ids: np.ndarray, vectors: np.ndarray, params: dict[str, Any]
    ) -> dict[str, Any]:
        """Hold ``kind`` as a fresh flat index of these faces; returns ``params``."""
        index = self._empty()
        index.add_with_ids(vectors, ids)
        self._set(kind, [index], set(), params)
        return params

    def _ids_and_vectors(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """Every live face of ``kind``: (ids, vectors), in the same order."""
        ids = self._held_ids(kind)
        vectors: np.ndarray
        if self.params[kind]["type"] == "ivfpq":  # a view of its full vectors: no copy
            vectors = compressed_vectors(self._parts[kind][0])
        elif self._approximate(kind):
            vectors = np.concatenate(
                [part.index.reconstruct_n(0, int(part.ntotal)) for part in self._parts[kind]]
            )
        else:  # a view of the flat index's own storage: no copy (512 MB per million faces)
            vectors = _flat_vectors(self._indexes[kind], self.dim)
        if self._removed[kind]:
            live = ~np.isin(ids, np.fromiter(self._removed[kind], np.int64))
            ids, vectors = ids[live], vectors[live]
        delta = self._delta[kind]
        if delta is not None and delta.ntotal:
            ids = np.concatenate([ids, faiss.vector_to_array(delta.id_map).astype(np.int64)])
            vectors = np.concatenate([vectors, _flat_vectors(delta, self.dim)])
        return ids, vectors

    def _saved_parts(
        self, kind: str
    ) -> tuple[list[faiss.IndexIDMap], set[int], faiss.IndexIDMap2 | None]:
        """What ``save`` writes for ``kind``: its parts, its tombstones, and the faces added
        since its build to save beside them (or None). A mapped exact kind with changes is
        written whole, as a fresh flat index without its removed faces; a mapped approximate
        kind keeps its parts (its files are not rewritten) and its added faces go to a file of
        their own (``added_file_name``), searched exactly until the next rebuild."""
        parts, removed, delta = self._parts[kind], self._removed[kind], self._delta[kind]
        if delta is None or not (delta.ntotal or (removed and not self._approximate(kind))):
            return parts, removed, None
        if not self._approximate(kind):
            ids, vectors = self._ids_and_vectors(kind)
            index = self._empty()
            index.add_with_ids(vectors, ids)
            return [index], set(), None
        return parts, removed, delta if delta.ntotal else None

    def save(self, directory: Path, *, marks: list[int] | None = None) -> Manifest:
        """Write the index files, then the manifest. ``marks``: the store marks these faces
        reflect (``Manifest.marks``). A mapped part whose file is still the one on disk (the
        same file, and the manifest there gives its SHA-256) is not written again: at 10M
        faces a compressed kind's file is 5.3 GB, and its added faces a small file beside it
        (``_saved_parts``). Every file is written under a temporary name first and renamed into
        place only once all are written, just before the manifest: a save cut off part-way
        (a full disk, a kill) leaves the last save whole. Cost: the I/O of the files that
        changed."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        on_disk = files_on_disk(directory)
        staged: dict[Path, Path] = {}  # written under a temporary name -> its place
        try:
            with self._lock:
                files, counts, removals, layout, added_files = {}, {}, {}, {}, 0
                for kind in KINDS:
                    parts, removed, added = self._saved_parts(kind)
                    mapped_files = self._mapped_files[kind] if parts is self._parts[kind] else {}
                    for name, part in zip(part_file_names(kind, len(parts)), parts, strict=True):
                        digest, identity = mapped_files.get(name, ("", ()))
                        path = directory / name
                        if on_disk.get(name) == digest and file_identity(path) == identity:
                            files[name] = digest  # the very file mapped, unchanged
                        else:
                            files[name] = _staged(path, part, staged)
                    counts[kind] = sum(int(part.ntotal) for part in parts)
                    if added is not None:
                        name = added_file_name(kind)
                        files[name] = _staged(directory / name, added, staged)
                        counts[kind] += int(added.ntotal)
                        added_files += 1
                    removals[kind] = {"removed": sorted(removed)} if removed else {}
                    layout[kind] = len(parts)
                manifest = Manifest(
                    model=self.model,
                    dim=self.dim,
                    counts=counts,
                    last_face_id=self.last_face_id,
                    files=files,
                    saved_at=datetime.now(UTC).isoformat(),
                    params={k: dict(v) | removals[k] for k, v in self.params.items()},
                    build_id=self.build_id,
                    built_at=self.built_at,
                    format=format_of(layout, added_files),
                    marks=marks,
                )
                self.marks, self.saved_at = marks, manifest.saved_at
            install(directory, staged, manifest)
        except BaseException:
            for unused in staged:  # those not renamed into place yet
                unused.unlink(missing_ok=True)
            raise
        return manifest

    @classmethod
    def load(
        cls, directory: Path, *, model: str, dim: int, mapped: bool = False, verify: bool = True
    ) -> tuple[FaceIndex, Manifest]:
        """Read an index saved by ``save``. ``mapped``: map its files read-only instead of
        reading them (processes mapping the same files share one copy in memory); faces added
        later go to a small flat index of this process's own, merged in at search time, and
        faces removed become tombstones, until the next ``save`` writes them.

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
            params = dict(manifest.params.get(kind, {"type": "flat"}))
            removed = params.pop("removed", [])
            parts = params.get("parts", 1)
            if params.get("type") not in ("flat", "hnsw", "ivfpq") or not (
                parts == 1 or (params["type"] == "hnsw" and isinstance(parts, int) and parts > 1)
            ):
                raise IndexUnusable(f"The manifest describes {kind} as {params!r}: not an index.")
            names = part_file_names(kind, parts)
            loaded = [
                loaded_part(directory, name, manifest, dim, mapped=mapped, verify=verify)
                for name in names
            ]
            added = added_faces(directory, kind, manifest, dim, verify=verify)
            held = sum(part.ntotal for part in loaded) + (0 if added is None else added.ntotal)
            if held != manifest.counts.get(kind) or (
                added is not None and params["type"] == "flat"
            ):
                raise IndexUnusable(f"The index files of {kind} disagree with their manifest.")
            if params["type"] == "hnsw":
                set_ef_search(loaded, int(params["ef_search"]))
            elif params["type"] == "ivfpq":
                nprobe, refine_factor = int(params["nprobe"]), int(params["refine_factor"])
                set_compressed_search(loaded[0], nprobe, refine_factor)
            index._set(kind, loaded, {int(i) for i in removed}, params)
            if mapped:
                index._mapped_files[kind] = {
                    name: (manifest.files[name], file_identity(directory / name)) for name in names
                }
            if mapped or added is not None:  # apart: a tombstoned id may be among them
                index._delta[kind] = added if added is not None else index._empty()
        index.build_id, index.built_at = manifest.build_id, manifest.built_at
        index.marks, index.saved_at = manifest.marks, manifest.saved_at
        return index, manifest

    def is_older_than(self, manifest: Manifest) -> bool:
        """Whether ``manifest`` describes a newer build than this index's."""
        return manifest.build_id != self.build_id and manifest.built_at > self.built_at


def _staged(path: Path, index: Any, staged: dict[Path, Path]) -> str:
    """Write ``index`` for ``path`` under a temporary name, recorded in ``staged``; its
    SHA-256."""
    temporary, digest = staged_index_file(path, index)
    staged[temporary] = path
    return digest


def _flat_vectors(index: faiss.IndexIDMap2, dim: int) -> np.ndarray:
    """The vectors of an id-mapped flat index: a view of its storage, no copy."""
    flat: Any = faiss.downcast_index(index.index)
    return faiss.rev_swig_ptr(flat.get_xb(), int(index.ntotal) * dim).reshape(-1, dim)


def _nearest(index: Any, queries: np.ndarray, k: int, removed: set[int]) -> list[list[Any]]:
    """Per query, the ``k`` nearest faces of ``index`` not in ``removed``: (id, squared L2
    distance), nearest first (FAISS's order). Asks for ``k`` more per removed face."""
    if index.ntotal == 0:
        return [[] for _ in queries]
    squared, ids = index.search(queries, min(k + len(removed), int(index.ntotal)))
    return [
        [
            (int(i), float(d))
            for d, i in zip(row_d, row_i, strict=True)
            if i >= 0 and int(i) not in removed
        ][:k]
        for row_d, row_i in zip(squared, ids, strict=True)
    ]


def _checked_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    return kind
