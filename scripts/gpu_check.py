"""The GPU check, for a machine with one: dlib's detector and embeddings and the FAISS index on
the GPU give what the CPU gives, within tolerance. Prints what it found; exit 1 on a mismatch,
2 when there is no GPU to check.

    .venv/bin/python scripts/gpu_check.py [--faces-dir ../shared/faces]

Needs a CUDA build of dlib and/or a GPU build of FAISS (docs/operations.md, "Optional GPU");
each part without its GPU build is reported as skipped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from reunite.device import dlib_cuda_devices, faiss_gpu_count
from reunite.faces import Pipeline, box_overlap, faces_in_image
from reunite.imaging import decoded_image
from reunite.index import FaceIndex


def check_dlib(photos: list[Path]) -> bool:
    """CNN detection and embeddings with CUDA against the HOG pipeline's boxes on the CPU: the
    same faces (IoU >= 0.5) and embeddings within 0.1."""
    import dlib

    ok = True
    for path in photos:
        pixels = decoded_image(path.read_bytes(), max_bytes=10**8, max_pixels=10**8).pixels
        started = time.perf_counter()
        on_gpu = faces_in_image(pixels, Pipeline(detector="cnn"))
        gpu_ms = (time.perf_counter() - started) * 1000
        on_cpu = faces_in_image(pixels, Pipeline(detector="hog"))
        for face in on_cpu:
            twins = [g for g in on_gpu if box_overlap(face.box, g.box) >= 0.5]
            distance = min((float(np.linalg.norm(face.embedding - g.embedding)) for g in twins),
                           default=float("inf"))  # fmt: skip
            ok &= distance < 0.1
            print(f"{path.name}: face {tuple(face.box)}: distance CPU/GPU {distance:.3f}")
        print(f"{path.name}: {len(on_gpu)} faces on CUDA in {gpu_ms:.0f} ms, {len(on_cpu)} on CPU")
    print(f"dlib CUDA: {dlib.DLIB_USE_CUDA}, {'same faces' if ok else 'MISMATCH'}")
    return ok


def check_faiss() -> bool:
    """Exact search on the GPU copy against the CPU index: the same top 10."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(0, 0.1, (200_000, 128)).astype(np.float32)
    cpu, gpu = FaceIndex("check"), FaceIndex("check")
    for index in (cpu, gpu):
        index.add("missing", np.arange(1, len(vectors) + 1), vectors)
    if not gpu.use_gpu(True):
        print("FAISS: no GPU build or no GPU")
        return False
    probes = vectors[:100] + 0.01
    same = all(
        [i for i, _ in cpu.search("missing", p, 10)] == [i for i, _ in gpu.search("missing", p, 10)]
        for p in probes
    )
    started = time.perf_counter()
    for p in probes:
        gpu.search("missing", p, 10)
    print(f"FAISS {faiss.__version__} GPU: top 10 {'identical' if same else 'DIFFERENT'} "
          f"({(time.perf_counter() - started) * 10:.2f} ms a search over 200k)")  # fmt: skip
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces-dir", type=Path, default=Path("../shared/faces"))
    args = parser.parse_args()
    photos = [args.faces_dir / "samples" / n for n in ("obama.jpg", "two_people.jpg")]
    results = []
    if dlib_cuda_devices():
        results.append(check_dlib(photos))
    else:
        print("dlib: no CUDA build or no GPU: skipped")
    if faiss_gpu_count():
        results.append(check_faiss())
    else:
        print("FAISS: no GPU build or no GPU: skipped")
    if not results:
        return 2
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
