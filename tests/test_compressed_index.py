"""The compressed kind (IVF, fast-scan PQ codes, exact re-rank): forced at small scale through
``optimize``'s ``compressed_min_faces``, with real FAISS and real files."""

import json
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from reunite.compressed_index import CODES, compressed_lists
from reunite.galleries import EmbeddingStatistics, synthetic_gallery
from reunite.index import FaceIndex
from reunite.index_files import MANIFEST_NAME, staged_index_file

MODEL = "test-model"
FACES = 30_000
STATS = Path(__file__).resolve().parent.parent / "models" / "embedding_stats.npz"


def lfw_shaped(faces: int, seed: int) -> np.ndarray:
    return synthetic_gallery(faces, EmbeddingStatistics.load(STATS), seed=seed)


def exact_top(vectors: np.ndarray, ids: np.ndarray, probe: np.ndarray, k: int):
    """The exact top ``k``: (ids, real L2 distances), by numpy in float64."""
    distances = np.linalg.norm(vectors.astype(np.float64) - probe.astype(np.float64), axis=1)
    order = np.argsort(distances, kind="stable")[:k]
    return ids[order], distances[order]


@pytest.fixture(scope="module")
def gallery() -> tuple[np.ndarray, np.ndarray]:
    vectors = lfw_shaped(FACES, seed=5)
    return np.arange(1, FACES + 1, dtype=np.int64), vectors


@pytest.fixture(scope="module")
def compressed(gallery) -> tuple[FaceIndex, dict]:
    ids, vectors = gallery
    index = FaceIndex(MODEL)
    index.add("missing", ids, vectors)
    params = index.optimize("missing", min_faces=1000, compressed_min_faces=20_000)
    return index, params


def probes_near(vectors: np.ndarray, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(vectors), count, replace=False)
    return vectors[picks] + rng.normal(0, 0.01, (count, 128)).astype(np.float32)


def test_past_the_threshold_a_kind_is_compressed_with_its_measured_recall(compressed):
    _, params = compressed
    assert params["type"] == "ivfpq" and params["faces"] == FACES and params["parts"] == 1
    assert params["nlist"] == compressed_lists(FACES) == 64
    assert 1 <= params["nprobe"] <= params["nlist"]
    assert params["recall_lower_bound"] >= 0.99 and params["recall_at_10"] >= 0.99
    assert params["sample_queries"] == 1000 and params["refine_factor"] >= 1


def test_a_compressed_kind_finds_the_exact_top_10_at_exact_distances(gallery, compressed):
    ids, vectors = gallery
    index, _ = compressed
    probes = probes_near(vectors, 100, seed=9)  # not the tuning sample
    found = 0
    for probe in probes:
        got = index.search("missing", probe, 10)
        want_ids, _ = exact_top(vectors, ids, probe, 10)
        found += len({i for i, _ in got} & set(want_ids.tolist()))
        # Re-ranked from the full vectors: each distance is the true L2 one, not the code's.
        got_ids = np.array([i for i, _ in got])
        true = np.linalg.norm(vectors[got_ids - 1].astype(np.float64) - probe, axis=1)
        np.testing.assert_allclose([d for _, d in got], true, rtol=1e-4, atol=1e-5)
        assert [d for _, d in got] == sorted(d for _, d in got)
    assert found / (10 * len(probes)) >= 0.98
    # One query at a time (its clusters scanned on every thread) or in a batch (the queries
    # spread over the threads): the same answers.
    assert [index.search("missing", p, 10) for p in probes] == index.search_many(
        "missing", probes, 10
    )


def test_below_the_threshold_a_large_kind_is_graphs_and_small_one_exact(gallery):
    ids, vectors = gallery
    index = FaceIndex(MODEL)
    index.add("found", ids[:5000], vectors[:5000])
    assert index.optimize("found", min_faces=1000, compressed_min_faces=5001)["type"] == "hnsw"
    assert index.optimize("found", min_faces=1000, compressed_min_faces=5000)["type"] == "ivfpq"
    assert index.optimize("found", min_faces=5001, compressed_min_faces=5000)["type"] == "flat"


def test_a_mapped_compressed_kind_answers_as_in_memory_and_takes_adds_and_removals(
    tmp_path, gallery, compressed
):
    _, vectors = gallery
    index, params = compressed
    index.save(tmp_path)
    mapped, manifest = FaceIndex.load(tmp_path, model=MODEL, dim=128, mapped=True)
    assert manifest.params["missing"] == params and mapped.params["missing"] == params
    maps = Path("/proc/self/maps").read_text()
    assert str(tmp_path / "missing.faiss") in maps  # the file is mapped, not read in
    probes = probes_near(vectors, 50, seed=13)
    assert mapped.search_many("missing", probes, 10) == index.search_many("missing", probes, 10)
    # Adds go to the delta, removals become tombstones; searched as one.
    extra = lfw_shaped(100, seed=77)
    mapped.add("missing", np.arange(FACES + 1, FACES + 101), extra)
    assert mapped.remove([1, 2, FACES + 1, 10**9]) == 3
    assert mapped.count("missing") == FACES + 100 - 3
    assert mapped.search("missing", extra[5], 1) == [(FACES + 6, 0.0)]
    assert 1 not in {i for i, _ in mapped.search("missing", vectors[0], 10)}
    assert FACES + 1 not in {i for i, _ in mapped.search("missing", extra[0], 10)}
    held = set(mapped.face_ids("missing").tolist())
    assert len(held) == FACES + 97 and {1, 2, FACES + 1}.isdisjoint(held)
    # A save keeps the compressed file as it is (no copy of it through memory, no rewrite)
    # and writes the added faces beside it, tombstones in the manifest; mapped again, the same.
    compressed_file = (tmp_path / "missing.faiss").stat()
    mapped.save(tmp_path)
    assert (tmp_path / "missing.faiss").stat().st_ino == compressed_file.st_ino
    again, manifest = FaceIndex.load(tmp_path, model=MODEL, dim=128, mapped=True)
    assert manifest.format == 3 and "missing.added.faiss" in manifest.files
    assert manifest.counts["missing"] == FACES + 99 and again.count("missing") == FACES + 97
    assert manifest.params["missing"]["removed"] == [1, 2]
    assert again.search("missing", extra[5], 1) == [(FACES + 6, 0.0)]
    assert 2 not in {i for i, _ in again.search("missing", vectors[1], 10)}
    # Rebuilding drops the tombstones for good and keeps the kind compressed.
    assert again.optimize("missing", min_faces=1000, compressed_min_faces=20_000)["type"] == "ivfpq"
    assert again.count("missing") == FACES + 97
    assert again.search("missing", vectors[2], 1)[0][0] == 3


def test_a_build_with_its_centres_in_a_graph_still_loads_and_finds_the_exact_top_10(
    tmp_path, gallery, compressed
):
    """Builds made before 2026-12-02 compared each query with the centres through an HNSW
    graph of them (``IVF..._HNSW32``). Such a build, saved in place of today's, still loads
    mapped and searches as tuned."""
    ids, vectors = gallery
    index, params = compressed
    index.save(tmp_path)
    old: Any = faiss.IndexIDMap(
        faiss.IndexRefineFlat(faiss.index_factory(128, f"IVF{params['nlist']}_HNSW32,{CODES}"))
    )
    old.train(vectors)
    old.add_with_ids(vectors, ids)
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    staged, manifest["files"]["missing.faiss"] = staged_index_file(tmp_path / "missing.faiss", old)
    staged.replace(tmp_path / "missing.faiss")
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))

    loaded, _ = FaceIndex.load(tmp_path, model=MODEL, dim=128, mapped=True)
    probes = probes_near(vectors, 100, seed=21)
    found = 0
    for probe in probes:
        want_ids, _ = exact_top(vectors, ids, probe, 10)
        found += len({i for i, _ in loaded.search("missing", probe, 10)} & set(want_ids.tolist()))
    assert found / (10 * len(probes)) >= 0.98
