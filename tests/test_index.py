import json
import os
import subprocess
import sys

import faiss
import numpy as np
import pytest

from reunite.errors import IndexUnusable
from reunite.graph_index import HNSW_FACES_PER_PART, graph_parts
from reunite.index import FaceIndex
from reunite.index_files import read_manifest

MODEL = "test-model"


def random_faces(n: int, seed: int) -> np.ndarray:
    """Vectors spread like dlib embeddings: entries around +-0.1, pairwise distances near 1."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.09, size=(n, 128))).astype(np.float32)


def flip_a_byte(path) -> None:
    """Damage a file the way a bad disk might: one byte in its middle inverted."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def brute_force(vectors: np.ndarray, ids: np.ndarray, probe: np.ndarray, k: int):
    distances = np.linalg.norm(vectors.astype(np.float64) - probe.astype(np.float64), axis=1)
    order = np.argsort(distances, kind="stable")[:k]
    return ids[order], distances[order]


def test_faiss_agrees_with_numpy_brute_force_and_returns_real_l2_distances():
    vectors = random_faces(2000, seed=1)
    ids = np.arange(10, 2010, dtype=np.int64)
    index = FaceIndex(MODEL)
    index.add("missing", ids, vectors)
    for probe in random_faces(25, seed=2):
        hits = index.search("missing", probe, 10)
        want_ids, want_distances = brute_force(vectors, ids, probe, 10)
        assert [i for i, _ in hits] == want_ids.tolist()
        # Real L2, not squared: squared distances here are ~0.2 smaller than the real ones.
        np.testing.assert_allclose([d for _, d in hits], want_distances, rtol=1e-5, atol=1e-5)


def test_kinds_are_searched_separately():
    index = FaceIndex(MODEL)
    vectors = random_faces(4, seed=3)
    index.add("missing", [1, 2], vectors[:2])
    index.add("found", [3, 4], vectors[2:])
    assert {i for i, _ in index.search("missing", vectors[3], 10)} == {1, 2}
    assert {i for i, _ in index.search("found", vectors[0], 10)} == {3, 4}
    assert index.search("found", vectors[2], 1) == [(3, pytest.approx(0.0, abs=1e-6))]


def test_removed_faces_are_no_longer_found():
    index = FaceIndex(MODEL)
    vectors = random_faces(5, seed=4)
    index.add("found", [1, 2, 3, 4, 5], vectors)
    assert index.remove([2, 4, 99]) == 2
    assert sorted(i for i, _ in index.search("found", vectors[1], 10)) == [1, 3, 5]
    assert index.last_face_id == 5


def test_save_and_load_round_trip(tmp_path):
    index = FaceIndex(MODEL)
    vectors = random_faces(30, seed=5)
    index.add("missing", range(1, 21), vectors[:20])
    index.add("found", range(21, 31), vectors[20:])
    manifest = index.save(tmp_path)
    assert (manifest.count, manifest.last_face_id, manifest.counts) == (
        30,
        30,
        {"missing": 20, "found": 10},
    )
    loaded, read = FaceIndex.load(tmp_path, model=MODEL, dim=128)
    assert read == manifest
    for kind in ("missing", "found"):
        np.testing.assert_array_equal(loaded.face_ids(kind), index.face_ids(kind))
    assert loaded.search("found", vectors[25], 3) == index.search("found", vectors[25], 3)
    assert not list(tmp_path.glob(".*.tmp"))  # no temp files left behind


@pytest.mark.parametrize(
    "damage",
    ["delete-manifest", "delete-index-file", "flip-a-byte", "truncate", "bad-json", "other-model"],
)
def test_damaged_index_directories_are_refused(tmp_path, damage):
    index = FaceIndex(MODEL)
    index.add("missing", [1, 2, 3], random_faces(3, seed=6))
    index.save(tmp_path)
    target = tmp_path / "missing.faiss"
    if damage == "delete-manifest":
        (tmp_path / "manifest.json").unlink()
    elif damage == "delete-index-file":
        target.unlink()
    elif damage == "flip-a-byte":
        flip_a_byte(target)
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "bad-json":
        (tmp_path / "manifest.json").write_text("{not json")
    elif damage == "other-model":
        manifest = json.loads((tmp_path / "manifest.json").read_text())
        manifest["model"] = "another-model"
        (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexUnusable):
        FaceIndex.load(tmp_path, model=MODEL, dim=128)


def clustered_faces(people: int, per_person: int, seed: int) -> np.ndarray:
    """Vectors shaped like a face gallery: each person a centre, each photo near it (~0.4)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 0.09, (people, 128))
    photos = np.repeat(centres, per_person, axis=0) + rng.normal(
        0, 0.035, (people * per_person, 128)
    )
    return photos.astype(np.float32)


def test_an_optimized_index_finds_what_brute_force_finds(tmp_path):
    vectors = clustered_faces(4000, 5, seed=7)
    ids = np.arange(1, len(vectors) + 1, dtype=np.int64)
    index = FaceIndex(MODEL)
    index.add("found", ids, vectors)
    params = index.optimize("found", min_faces=10_000)
    assert params["type"] == "hnsw" and params["recall_at_10"] >= 0.99
    probes = clustered_faces(4000, 5, seed=7)[::997] + 0.01
    hits = 0
    for probe in probes:
        got = index.search("found", probe, 10)
        want_ids, want_distances = brute_force(vectors, ids, probe, 10)
        hits += len({i for i, _ in got} & set(want_ids.tolist()))
        # Whatever it finds, its distances are the real L2 ones.
        real = {i: d for i, d in zip(want_ids.tolist(), want_distances, strict=True)}
        for face_id, distance in got:
            if face_id in real:
                assert distance == pytest.approx(real[face_id], abs=1e-5)
    assert hits / (10 * len(probes)) >= 0.98
    # Adds, removals (tombstones in a graph), ids, save and load work as for the exact index.
    index.add("found", [10**6], vectors[:1] + 0.001)
    assert index.remove([1, 2, 3, 999_999_999]) == 3 and index.remove([1]) == 0
    held = set(index.face_ids("found").tolist())
    assert 10**6 in held and 1 not in held and len(held) == len(ids) - 2
    assert index.count("found") == len(ids) - 2
    assert 1 not in {i for i, _ in index.search("found", vectors[0], 10)}
    index.save(tmp_path)
    loaded, manifest = FaceIndex.load(tmp_path, model=MODEL, dim=128)
    assert manifest.params["found"] == params | {"removed": [1, 2, 3]}
    assert loaded.params["found"] == params and loaded.count("found") == len(ids) - 2
    assert loaded.search("found", vectors[10], 3) == index.search("found", vectors[10], 3)
    assert 2 not in {i for i, _ in loaded.search("found", vectors[1], 10)}
    # Optimizing again drops the tombstones for good.
    index.optimize("found", min_faces=10_000)
    assert index.count("found") == len(ids) - 2 and index.params["found"]["type"] == "hnsw"


def test_a_kind_in_several_graphs_finds_what_brute_force_finds_and_keeps_its_parts(tmp_path):
    vectors = clustered_faces(3000, 5, seed=11)
    ids = np.arange(1, len(vectors) + 1, dtype=np.int64)
    index = FaceIndex(MODEL)
    index.add("found", ids, vectors)
    params = index.optimize("found", min_faces=10_000, parts=3)
    assert params["type"] == "hnsw" and params["parts"] == 3 and params["recall_at_10"] >= 0.99
    assert sorted(index.face_ids("found").tolist()) == ids.tolist()  # each face in one part
    probes = vectors[::301] + 0.01
    hits = 0
    for probe in probes:
        got = index.search("found", probe, 10)
        want_ids, want_distances = brute_force(vectors, ids, probe, 10)
        hits += len({i for i, _ in got} & set(want_ids.tolist()))
        assert [d for _, d in got] == sorted(d for _, d in got)  # the parts' results merged
        real = {i: d for i, d in zip(want_ids.tolist(), want_distances, strict=True)}
        for face_id, distance in got:
            if face_id in real:
                assert distance == pytest.approx(real[face_id], abs=1e-5)
    assert hits / (10 * len(probes)) >= 0.98
    # Additions go to the smallest part, one by one too; removals are tombstones.
    assert index.part_sizes("found") == [5000, 5000, 5000]
    for n in range(3):
        index.add("found", [10**6 + n], vectors[n : n + 1] + 0.001)
    assert index.part_sizes("found") == [5001, 5001, 5001]
    assert index.remove([1, 2, 999_999_999]) == 2
    assert index.count("found") == len(ids) + 1
    nearest = [index.search("found", vectors[i], 1)[0][0] for i in range(3)]
    assert nearest == [10**6, 10**6 + 1, 3]  # 1 and 2 removed; 3 is nearer than its copy
    # Saved one file per part, loaded with the same parts, tuning and tombstones.
    index.save(tmp_path)
    files = sorted(p.name for p in tmp_path.glob("*.faiss"))
    assert files == ["found.0.faiss", "found.1.faiss", "found.2.faiss", "missing.faiss"]
    loaded, manifest = FaceIndex.load(tmp_path, model=MODEL, dim=128)
    assert manifest.format == 2  # what an older version reads as "not my format"
    assert manifest.params["found"] == params | {"removed": [1, 2]}
    assert loaded.part_sizes("found") == index.part_sizes("found")
    assert loaded.params["found"] == params and loaded.count("found") == len(ids) + 1
    for probe in probes:
        assert loaded.search("found", probe, 10) == index.search("found", probe, 10)
    # Back to one graph: the parts' files go with the next save.
    assert index.optimize("found", min_faces=10_000, parts=1)["parts"] == 1
    assert index.save(tmp_path).format == 1
    assert sorted(p.name for p in tmp_path.glob("*.faiss")) == ["found.faiss", "missing.faiss"]
    assert FaceIndex.load(tmp_path, model=MODEL, dim=128)[0].count("found") == len(ids) + 1


@pytest.mark.parametrize(
    "damage",
    [
        "delete-a-part",
        "flip-a-byte-in-a-part",
        "fewer-parts",
        "parts-not-a-number",
        "parts-of-a-flat-kind",
        "a-path-for-a-file",
        "a-newer-format",
    ],
)
def test_an_index_in_parts_with_a_damaged_part_is_refused(tmp_path, damage):
    index = FaceIndex(MODEL)
    index.add("missing", range(1, 1001), random_faces(1000, seed=12))
    index.optimize("missing", min_faces=0, parts=2)
    index.save(tmp_path)
    part = tmp_path / "missing.1.faiss"
    if damage == "delete-a-part":
        part.unlink()
    elif damage == "flip-a-byte-in-a-part":
        flip_a_byte(part)
    else:
        manifest = json.loads((tmp_path / "manifest.json").read_text())
        if damage == "fewer-parts":  # names one part less than the count it states
            manifest["params"]["missing"]["parts"] = 1
            manifest["files"]["missing.faiss"] = manifest["files"]["missing.0.faiss"]
            (tmp_path / "missing.0.faiss").rename(tmp_path / "missing.faiss")
        elif damage == "parts-not-a-number":
            manifest["params"]["missing"]["parts"] = "two"
        elif damage == "parts-of-a-flat-kind":
            manifest["params"]["missing"] = {"type": "flat", "parts": 2}
        elif damage == "a-path-for-a-file":
            manifest["files"]["../../etc/passwd"] = manifest["files"]["found.faiss"]
        else:
            manifest["format"] = 4
        (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexUnusable):
        FaceIndex.load(tmp_path, model=MODEL, dim=128)


def test_large_kinds_are_split_into_one_graph_per_half_million_faces_and_cpu_thread():
    assert graph_parts(0, 8) == graph_parts(1, 8) == graph_parts(HNSW_FACES_PER_PART, 8) == 1
    assert graph_parts(HNSW_FACES_PER_PART + 1, 8) == 2
    assert graph_parts(2 * HNSW_FACES_PER_PART, 8) == 2
    assert graph_parts(10 * HNSW_FACES_PER_PART, 8) == 8  # no more than the threads
    assert graph_parts(10 * HNSW_FACES_PER_PART, 1) == 1
    assert graph_parts(10 * HNSW_FACES_PER_PART) == min(10, faiss.omp_get_max_threads())


def test_a_small_kind_stays_exact_and_can_go_back(tmp_path):
    vectors = clustered_faces(300, 5, seed=8)
    index = FaceIndex(MODEL)
    index.add("missing", range(1, 1501), vectors)
    assert index.optimize("missing", min_faces=10_000) == {"type": "flat"}
    assert index.optimize("missing", min_faces=1000)["type"] == "hnsw"
    assert index.optimize("missing", min_faces=10_000) == {"type": "flat"}
    assert sorted(index.face_ids("missing").tolist()) == list(range(1, 1501))


def test_a_graph_that_cannot_reach_the_recall_is_refused():
    index = FaceIndex(MODEL)
    index.add("found", range(1, 2001), random_faces(2000, seed=9))
    params = index.optimize("found", min_faces=1000, target_recall=1.000001)  # unreachable
    assert params["type"] == "flat" and "efSearch" in params["approximate_rejected"]
    assert index.count("found") == 2000


def test_without_a_gpu_build_of_faiss_the_index_stays_on_the_cpu_and_searches_alike():
    """CI has faiss-cpu: asking for the GPU changes nothing, and says so."""
    rng = np.random.default_rng(3)
    vectors = rng.normal(0, 0.1, (500, 128)).astype(np.float32)
    index = FaceIndex("test")
    index.add("missing", np.arange(1, 501), vectors)
    before = index.search("missing", vectors[7], 5)
    expected = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    assert index.use_gpu(True) is expected
    index.add("missing", [501], vectors[7:8] + 0.001)  # mirrored, where there is a copy
    after = index.search("missing", vectors[7], 6)
    assert [i for i, _ in after if i != 501] == [i for i, _ in before]
    assert 501 in {i for i, _ in after}
    assert index.use_gpu(False) is False


@pytest.mark.parametrize("graph", [False, True])
def test_a_mapped_index_with_later_adds_and_removals_answers_as_one_held_in_memory(tmp_path, graph):
    """Mapped files (shared by processes) plus this process's own flat delta and tombstones:
    every answer equals an in-memory index holding the same faces, before and after a save."""
    vectors = random_faces(3000, seed=21)
    ids = np.arange(1, 3001, dtype=np.int64)
    memory = FaceIndex(MODEL)
    memory.add("missing", ids[:2000], vectors[:2000])
    if graph:
        memory.optimize("missing", min_faces=1000)
    memory.save(tmp_path, marks=[2000, 0])
    mapped, manifest = FaceIndex.load(tmp_path, model=MODEL, dim=128, mapped=True)
    assert mapped.mapped and manifest.marks == mapped.marks == [2000, 0]
    for index in (memory, mapped):
        index.add("missing", ids[2000:], vectors[2000:])  # the delta
        # Removed: faces of the files, of the delta, and one never held.
        assert index.remove([5, 17, 2500, 2999, 10**9]) == 4
        assert index.remove([5]) == 0
    assert mapped.delta_size == 998 + 2
    assert mapped.count() == memory.count() == 2996
    assert np.array_equal(np.sort(mapped.face_ids("missing")), np.sort(memory.face_ids("missing")))
    probes = np.concatenate([vectors[[4, 16, 2499, 2998, 100, 2100]], random_faces(20, seed=3)])
    live = np.isin(ids, [5, 17, 2500, 2999], invert=True)
    for probe in probes:
        got = mapped.search("missing", probe, 10)
        if graph:  # approximate: the memory graph took the adds in; compare with brute force
            want, _ = brute_force(vectors[live], ids[live], probe, 10)
            assert len({i for i, _ in got} & set(want.tolist())) >= 9
        else:
            assert got == memory.search("missing", probe, 10)
    assert mapped.search("missing", vectors[2100], 1)[0] == (2101, 0.0)  # from the delta
    if not graph:
        assert mapped.search_many("missing", probes, 5) == memory.search_many("missing", probes, 5)
    before = [mapped.search("missing", probe, 10) for probe in probes]
    # A save writes the delta and removals; mapped again, it answers the same. An exact kind
    # is rewritten whole; a graph's file is left as it is, the added faces saved beside it.
    graph_file = (tmp_path / "missing.faiss").stat()
    mapped.save(tmp_path, marks=[3000, 4])
    again, manifest = FaceIndex.load(tmp_path, model=MODEL, dim=128, mapped=True)
    assert manifest.counts["missing"] == (2998 if graph else 2996)  # a graph keeps tombstones
    assert again.count() == 2996 and again.delta_size == (998 + 2 if graph else 0)
    assert ("missing.added.faiss" in manifest.files) == graph
    unchanged = (tmp_path / "missing.faiss").stat()
    assert (unchanged.st_ino == graph_file.st_ino) == graph  # not written again
    after = [again.search("missing", probe, 10) for probe in probes]
    assert after == before
    if graph:
        # Held in memory instead, it answers the same (the added faces still apart).
        held, _ = FaceIndex.load(tmp_path, model=MODEL, dim=128)
        assert held.count() == 2996 and not held.mapped
        assert [held.search("missing", probe, 10) for probe in probes] == before
        # Later saves still leave the graph's file alone; a rebuild folds the added faces in,
        # and their file goes.
        again.save(tmp_path, marks=[3000, 4])
        assert (tmp_path / "missing.faiss").stat().st_ino == graph_file.st_ino
        again.optimize("missing", min_faces=1000)
        again.save(tmp_path)
        assert not (tmp_path / "missing.added.faiss").exists()
        rebuilt, manifest = FaceIndex.load(tmp_path, model=MODEL, dim=128, mapped=True)
        assert manifest.counts["missing"] == 2996 and rebuilt.delta_size == 0
        assert rebuilt.search("missing", vectors[2100], 1)[0] == (2101, 0.0)


def test_a_file_is_checksummed_once_until_it_is_replaced_or_rewritten(tmp_path):
    """The first load hashes each file; later loads of the very same file (size, mtime, inode)
    map it at once; a file replaced or rewritten since is hashed again."""
    index = FaceIndex(MODEL)
    index.add("missing", np.arange(1, 101), random_faces(100, seed=5))
    index.save(tmp_path)
    FaceIndex.load(tmp_path, model=MODEL, dim=128, mapped=True)
    path = tmp_path / "missing.faiss"
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # a vector's byte: still decodes
    with path.open("r+b") as handle:  # the same inode, rewritten, its mtime put back
        handle.write(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    FaceIndex.load(tmp_path, model=MODEL, dim=128, mapped=True)  # not hashed again
    os.utime(path)  # a new mtime: hashed again, and refused
    with pytest.raises(IndexUnusable, match="does not match its manifest"):
        FaceIndex.load(tmp_path, model=MODEL, dim=128, mapped=True)
    index.save(tmp_path)  # replaced by rename: hashed again, and sound
    FaceIndex.load(tmp_path, model=MODEL, dim=128, mapped=True)


def saved_and_mapped_graph(folder, *, seed: int) -> tuple[np.ndarray, FaceIndex]:
    """1,500 random faces (ids 1-1500) as a graph, saved in ``folder`` and mapped again."""
    vectors = random_faces(1500, seed=seed)
    index = FaceIndex(MODEL)
    index.add("missing", np.arange(1, 1501), vectors)
    index.optimize("missing", min_faces=1000)
    index.save(folder)
    mapped, _ = FaceIndex.load(folder, model=MODEL, dim=128, mapped=True)
    return vectors, mapped


def test_a_face_removed_then_added_again_is_found_after_a_save_mapped_or_not(tmp_path):
    """A graph's face removed (a tombstone: FAISS cannot delete from a graph) and then added
    again (the store restored from a backup) lives in the added faces: the tombstone hides
    only the graph's copy, once saved and loaded either way."""
    vectors, mapped = saved_and_mapped_graph(tmp_path, seed=5)
    assert mapped.remove([7]) == 1
    mapped.add("missing", [7], vectors[6:7])
    assert mapped.search("missing", vectors[6], 1) == [(7, 0.0)]
    mapped.save(tmp_path)
    for as_mapped in (True, False):
        again, _ = FaceIndex.load(tmp_path, model=MODEL, dim=128, mapped=as_mapped)
        assert again.search("missing", vectors[6], 1) == [(7, 0.0)]
        assert again.count() == 1500 and 7 in again.face_ids("missing")


def test_a_face_removed_then_added_again_is_found_in_a_graph_held_in_memory(tmp_path):
    """The same for a graph built in memory, or loaded whole (no added faces saved): the
    face comes back into added faces of its own, so its graph copy's tombstone stays."""
    vectors, _ = saved_and_mapped_graph(tmp_path, seed=6)
    built = FaceIndex(MODEL)
    built.add("missing", np.arange(1, 1501), vectors)
    built.optimize("missing", min_faces=1000)
    whole, _ = FaceIndex.load(tmp_path, model=MODEL, dim=128, mapped=False)
    for index in (built, whole):
        assert index.remove([7, 8]) == 2
        index.add("missing", [7], vectors[6:7])
        assert index.search("missing", vectors[6], 1) == [(7, 0.0)]
        assert 8 not in {i for i, _ in index.search("missing", vectors[7], 5)}
        assert index.count() == len(index.face_ids("missing")) == 1499
        index.save(tmp_path / "again")
        again, _ = FaceIndex.load(tmp_path / "again", model=MODEL, dim=128, mapped=True)
        assert again.search("missing", vectors[6], 1) == [(7, 0.0)]
        assert again.count() == 1499 and 8 not in again.face_ids("missing")


SAVE_OVER_THE_FILE_SIZE_LIMIT = """
import resource, signal, sys
from pathlib import Path
import numpy as np
from reunite.index import FaceIndex
folder = sys.argv[1]
index, _ = FaceIndex.load(Path(folder), model=sys.argv[2], dim=128, mapped=True)
index.add("missing", [5001], np.ones((1, 128), np.float32))  # the added faces' file: small
index.add("found", np.arange(6001, 8001), np.ones((2000, 128), np.float32))  # 1 MB exact
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))
try:
    index.save(Path(folder))
except Exception as exc:
    print("save failed:", type(exc).__name__)
"""


def test_a_save_cut_off_part_way_leaves_the_last_save_loadable(tmp_path):
    """A save writes every file under a temporary name before it renames any into place, so
    one that fails part-way (here: the found kind's file is over the process's file-size
    limit, as on a full disk, after the small added-faces file was written) leaves the last
    save whole: the next start loads it instead of rebuilding the index from the store."""
    vectors, mapped = saved_and_mapped_graph(tmp_path, seed=8)
    mapped.add("missing", [5000], vectors[:1])
    before = mapped.save(tmp_path)  # names the added faces' file, which the next save replaces
    assert "missing.added.faiss" in before.files
    done = subprocess.run(
        [sys.executable, "-c", SAVE_OVER_THE_FILE_SIZE_LIMIT, str(tmp_path), MODEL],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "save failed" in done.stdout, done.stderr
    assert read_manifest(tmp_path) == before
    again, _ = FaceIndex.load(tmp_path, model=MODEL, dim=128, mapped=True)
    assert again.count() == 1501 and again.search("missing", vectors[0], 2) == [
        (1, 0.0),
        (5000, 0.0),
    ]
    assert not list(tmp_path.glob(".*.tmp"))  # the staged files are gone too


def test_a_mapped_file_replaced_on_disk_is_written_again_not_vouched_for(tmp_path):
    """A save keeps a mapped file only while it is the very file mapped: one replaced under it
    (a writer stopped between its files and its manifest) is written again from the mapped
    copy, so the manifest never vouches for contents it did not check."""
    vectors, mapped = saved_and_mapped_graph(tmp_path, seed=6)
    other = FaceIndex(MODEL)
    other.add("missing", np.arange(5001, 6501), random_faces(1500, seed=7))
    other.optimize("missing", min_faces=1000)
    other.save(tmp_path / "other")
    (tmp_path / "other" / "missing.faiss").rename(tmp_path / "missing.faiss")  # no manifest
    mapped.add("missing", [9999], random_faces(1, seed=8))
    mapped.save(tmp_path)
    again, _ = FaceIndex.load(tmp_path, model=MODEL, dim=128, verify=True)  # checksums hold
    assert again.search("missing", vectors[0], 1) == [(1, 0.0)]
    assert again.count() == 1501
