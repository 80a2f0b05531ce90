"""Which pipeline options pay for their cost: LFW View 2 accuracy and time per face for
num_jitters (1, 5, 10) and the landmark model (5-point "small", 68-point "large"), on the same
faces (boxes from the default detector, cached), and upsampling for the images where the
default finds no face.

    .venv/bin/python scripts/eval_options.py --limit 100     # 100 pairs per fold and kind

Writes models/eval/options.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from reunite import imaging
from reunite.evaluation import EmbeddingCache, lfw_pairs, ten_fold
from reunite.faces import Pipeline, central_index, face_boxes

VARIANTS = [(1, "small"), (1, "large"), (5, "small"), (10, "small")]


def main() -> int:
    import face_recognition

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces-dir", type=Path, default=Path("../shared/faces"))
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/embeddings"))
    parser.add_argument("--out", type=Path, default=Path("models/eval/options.json"))
    parser.add_argument("--limit", type=int, default=100, help="pairs per fold and kind")
    args = parser.parse_args()
    lfw = args.faces_dir / "lfw"
    pairs = [
        p
        for i, p in enumerate(lfw_pairs(lfw / "protocol" / "pairs.txt", lfw))
        if i % 300 < args.limit
    ]
    base = EmbeddingCache(args.cache_dir, Pipeline())
    paths = list(dict.fromkeys(path for p in pairs for path in (p.a, p.b)))
    found: dict[Path, tuple[np.ndarray, tuple[int, int, int, int]]] = {}
    no_face = []
    for path in paths:
        data = path.read_bytes()
        boxes, _, shape = base.faces(data)
        chosen = central_index(boxes, shape)
        pixels = imaging.decoded_image(data, max_bytes=len(data) + 1, max_pixels=10**9).pixels
        if chosen is None:
            no_face.append((path, pixels))
            continue
        found[path] = (pixels, tuple(int(v) for v in boxes[chosen]))  # type: ignore[assignment]
    usable = [p for p in pairs if p.a in found and p.b in found]
    same = np.array([p.same for p in usable])
    folds = np.array([p.fold for p in usable])
    report: dict[str, object] = {
        "pairs": len(usable),
        "images": len(found),
        "no_face_images_skipped": len(no_face),
        "variants": {},
    }
    for jitters, landmarks in VARIANTS:
        started = time.perf_counter()
        vectors = {
            path: np.asarray(
                face_recognition.face_encodings(
                    pixels, known_face_locations=[box], num_jitters=jitters, model=landmarks
                )[0]
            )
            for path, (pixels, box) in found.items()
        }
        ms_per_face = 1000 * (time.perf_counter() - started) / len(found)
        distances = np.array([np.linalg.norm(vectors[p.a] - vectors[p.b]) for p in usable])
        result = ten_fold(distances, same, folds)
        key = f"jitters={jitters},landmarks={landmarks}"
        report["variants"][key] = {  # type: ignore[index]
            "ten_fold_mean": result.mean,
            "ten_fold_std": result.std,
            "embedding_ms_per_face": round(ms_per_face, 1),
        }
        print(f"{key:>28}: 10-fold {result.mean:.4f} ± {result.std:.4f}, {ms_per_face:.0f} ms/face")
    recovered = {}
    for upsample in (2, 3):
        started = time.perf_counter()
        hits = sum(
            1 for _, pixels in no_face if face_boxes(pixels, Pipeline(upsample_times=upsample))
        )
        recovered[str(upsample)] = {
            "found": hits,
            "of": len(no_face),
            "detect_ms_per_image": round(
                1000 * (time.perf_counter() - started) / max(len(no_face), 1)
            ),
        }
        print(f"upsample {upsample}: a face in {hits} of {len(no_face)} no-face images")
    report["no_face_images_with_more_upsampling"] = recovered
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
