"""The FAISS index of face embeddings: one index per case kind, keyed by face id.

Each kind starts exact (flat L2: every face compared). ``optimize`` turns a kind with many faces
into an approximate inverted-file index (IVF-Flat: faces grouped in ``nlist`` clusters, a query
scanning the ``nprobe`` nearest), with ``nprobe`` raised until a sample of queries finds at
least the target share of the exact top 10 (recall@10); the parameters and the measured recall
go into the manifest.

The index is derived data: the SQL store is the source of truth, and ``Reunite`` rebuilds or
catches the index up from the store whenever the two disagree. Keeping one index per kind means a
search for ``missing`` faces never scans ``found`` ones.

FAISS's L2 indexes return *squared* distances; everything this module returns is the real L2
distance (the square root), the unit dlib's 0.6 threshold is stated in.

Files in the index directory, each replaced atomically (temp file, fsync, rename)::

    missing.faiss  found.faiss  manifest.json

``manifest.json`` is written last and names the model, the dimension, the counts, the last face id
and the SHA-256 of each index file, so a half-written or corrupted set is detected on load.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from reunite.errors import IndexUnusable
from reunite.files import write_atomically

KINDS = ("missing", "found")
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
    """Per kind: ``{"type": "flat"}`` or ``{"type": "ivf_flat", "nlist", "nprobe",
    "recall_at_10"}``."""

    @property
    def count(self) -> int:
        return sum(self.counts.values())


class FaceIndex:
    """Embeddings of enrolled faces, searchable by kind. Thread-safe.

    Cost: exact search, about 0.1 ms per 1,000 faces of the searched kind per query.
    """

    def __init__(self, model: str, dim: int = 128) -> None:
        self.model = model
        self.dim = dim
        self._indexes: dict[str, Any] = {kind: self._empty() for kind in KINDS}
        self.params: dict[str, dict[str, Any]] = {kind: {"type": "flat"} for kind in KINDS}
        self._lock = threading.RLock()

    def _empty(self) -> faiss.IndexIDMap2:
        return faiss.IndexIDMap2(faiss.IndexFlatL2(self.dim))

    def count(self, kind: str | None = None) -> int:
        """Number of faces of ``kind`` (or of both kinds)."""
        with self._lock:
            kinds = KINDS if kind is None else (_checked_kind(kind),)
            return sum(int(self._indexes[k].ntotal) for k in kinds)

    def face_ids(self, kind: str) -> np.ndarray:
        """The face ids held for ``kind``, int64 (insertion order for an exact index)."""
        with self._lock:
            index = self._indexes[_checked_kind(kind)]
            if isinstance(index, faiss.IndexIDMap2):
                return faiss.vector_to_array(index.id_map).astype(np.int64)
            return self._ids_and_vectors(kind)[0]

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

    def remove(self, face_ids: Iterable[int], kind: str | None = None) -> int:
        """Remove faces by id from ``kind`` (or from both kinds); returns how many were removed."""
        ids = np.asarray(list(face_ids), dtype=np.int64)
        if not len(ids):
            return 0
        kinds = KINDS if kind is None else (_checked_kind(kind),)
        with self._lock:
            selector = faiss.IDSelectorBatch(ids)
            return sum(int(self._indexes[k].remove_ids(selector)) for k in kinds)

    def search(self, kind: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` faces of ``kind`` nearest ``vector``: (face id, L2 distance), nearest first."""
        query = np.ascontiguousarray(np.asarray(vector, dtype=np.float32).reshape(1, self.dim))
        with self._lock:
            index = self._indexes[_checked_kind(kind)]
            if index.ntotal == 0 or k <= 0:
                return []
            squared, ids = index.search(query, min(k, int(index.ntotal)))
        return [
            (int(i), float(np.sqrt(max(float(d), 0.0))))
            for d, i in zip(squared[0], ids[0], strict=True)
            if i >= 0
        ]

    def optimize(
        self,
        kind: str,
        *,
        min_faces: int,
        target_recall: float = 0.99,
        sample_queries: int = 200,
        seed: int = 0,
    ) -> dict[str, Any]:
        """Make ``kind`` approximate (IVF-Flat) if it holds at least ``min_faces`` faces and the
        approximate index pays (reaches the recall scanning at most half its clusters), else
        exact; returns the parameters, also kept in ``params`` and the manifest.

        ``nlist`` is 4 * sqrt(faces); ``nprobe`` doubles from 1 until ``sample_queries`` stored
        faces, slightly perturbed, find ``target_recall`` of their exact top 10. Cost: k-means
        on up to 256 faces a cluster, then one pass to add every face; about a minute for 1M
        faces on two cores. Holds the index lock meanwhile.
        """
        kind = _checked_kind(kind)
        with self._lock:
            ids, vectors = self._ids_and_vectors(kind)
            if len(ids) < min_faces:
                if self.params[kind]["type"] != "flat":
                    flat = self._empty()
                    flat.add_with_ids(vectors, ids)
                    self._indexes[kind] = flat
                self.params[kind] = {"type": "flat"}
                return self.params[kind]
            nlist = int(min(65536, max(16, 4 * np.sqrt(len(ids)))))
            rng = np.random.default_rng(seed)
            training = vectors[rng.choice(len(vectors), min(len(vectors), 256 * nlist), False)]
            ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(self.dim), self.dim, nlist)
            ivf.train(training)
            ivf.add_with_ids(vectors, ids)
            picks = rng.choice(len(vectors), min(sample_queries, len(vectors)), False)
            queries = vectors[picks] + rng.normal(0, 0.01, (len(picks), self.dim)).astype(
                np.float32
            )
            exact = faiss.IndexFlatL2(self.dim)
            exact.add(vectors)
            _, truth = exact.search(queries, 10)
            truth_ids = ids[truth]
            nprobe, recall = 1, 0.0
            while True:
                ivf.nprobe = nprobe
                _, found = ivf.search(queries, 10)
                recall = float(
                    np.mean(
                        [len(set(a) & set(b)) / 10 for a, b in zip(found, truth_ids, strict=True)]
                    )
                )
                if recall >= target_recall or nprobe >= nlist:
                    break
                nprobe = min(nlist, nprobe * 2)
            if nprobe > nlist // 2:
                # Scanning most clusters costs more than the exact scan it would replace.
                if self.params[kind]["type"] != "flat":
                    flat = self._empty()
                    flat.add_with_ids(vectors, ids)
                    self._indexes[kind] = flat
                self.params[kind] = {
                    "type": "flat",
                    "approximate_rejected": f"recall@10 {recall:.3f} needed nprobe {nprobe} of "
                    f"{nlist} clusters",
                }
                return self.params[kind]
            self._indexes[kind] = ivf
            self.params[kind] = {
                "type": "ivf_flat",
                "nlist": nlist,
                "nprobe": nprobe,
                "recall_at_10": round(recall, 4),
                "faces": len(ids),
            }
            return self.params[kind]

    def _ids_and_vectors(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """Every stored face of ``kind``: (ids, vectors), in the same order."""
        index = self._indexes[kind]
        if isinstance(index, faiss.IndexIDMap2):
            vectors: np.ndarray = index.index.reconstruct_n(0, int(index.ntotal))
            return faiss.vector_to_array(index.id_map).astype(np.int64), vectors
        lists, ids, rows = index.invlists, [], []
        for n in range(index.nlist):
            size = lists.list_size(n)
            if size:
                ids.append(faiss.rev_swig_ptr(lists.get_ids(n), size).copy())
                codes = faiss.rev_swig_ptr(lists.get_codes(n), size * lists.code_size)
                rows.append(np.frombuffer(codes.copy(), dtype=np.float32).reshape(size, self.dim))
        if not ids:
            return np.empty(0, np.int64), np.empty((0, self.dim), np.float32)
        return np.concatenate(ids).astype(np.int64), np.vstack(rows)

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
                params={k: dict(v) for k, v in self.params.items()},
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
            if not isinstance(loaded, faiss.IndexIDMap2 | faiss.IndexIVFFlat):
                raise IndexUnusable(f"Index file {name} is neither exact nor IVF-Flat.")
            params = manifest.params.get(kind, {"type": "flat"})
            if isinstance(loaded, faiss.IndexIVFFlat):
                loaded.nprobe = int(params.get("nprobe", 1))
            index._indexes[kind] = loaded
            index.params[kind] = dict(params)
        return index, manifest


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


def _checked_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    return kind
