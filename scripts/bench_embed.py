"""Photos per second and median latency: plain face_recognition against reunite's pipeline.

    .venv/bin/python scripts/bench_embed.py [--min-face-px 100] [--lfw 100]

Three sets: LFW images (250 px), the sample photos as they are (0.1-3.3 MP), and the same
samples enlarged to phone size (12 MP, 4000x3000-ish). "plain" is face_recognition as its
README shows (load_image_file, face_encodings on the full image). "reunite" is the service's
pipeline: it decodes once and detects on a copy reduced as far as faces of --min-face-px allow
(``Pipeline.detection_scale``), embedding from the full image. One process; the ratio is
measured in the same run. "same" counts plain's faces that reunite found too (box IoU >= 0.5),
and "photos" the photos where plain found a face and reunite found none (must be 0).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from reunite.faces import Box, Pipeline, box_overlap, faces_in_image
from reunite.imaging import decoded_image


def phone_sized(data: bytes) -> bytes:
    """The photo enlarged so it has about 12 megapixels, as a JPEG."""
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    scale = (12_000_000 / (pixels.shape[0] * pixels.shape[1])) ** 0.5
    big = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    out = io.BytesIO()
    Image.fromarray(big).save(out, format="JPEG", quality=90)
    return out.getvalue()


def timed(run, items):  # type: ignore[no-untyped-def]
    """(total seconds, median seconds, each item's face boxes)."""
    latencies, boxes = [], []
    for item in items:
        started = time.perf_counter()
        boxes.append(run(item))
        latencies.append(time.perf_counter() - started)
    return sum(latencies), statistics.median(latencies), boxes


def main() -> int:
    import face_recognition

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces-dir", type=Path, default=Path("../shared/faces"))
    parser.add_argument("--min-face-px", type=int, default=100)
    parser.add_argument("--lfw", type=int, default=100, help="LFW images to time")
    args = parser.parse_args()
    samples = sorted((args.faces_dir / "samples").iterdir())
    lfw = sorted((args.faces_dir / "lfw").glob("*/*.jpg"))[:: max(1, 13233 // args.lfw)][: args.lfw]
    sets = {
        "lfw_250px": [p.read_bytes() for p in lfw],
        "samples": [p.read_bytes() for p in samples],
        "phone_12mp": [phone_sized(p.read_bytes()) for p in samples],
    }
    fast = Pipeline(min_face_px=args.min_face_px)

    def plain(data: bytes) -> list[Box]:
        image = face_recognition.load_image_file(io.BytesIO(data))
        boxes = face_recognition.face_locations(image)
        face_recognition.face_encodings(image, known_face_locations=boxes)
        return [Box(*b) for b in boxes]

    def ours(data: bytes) -> list[Box]:
        pixels = decoded_image(data, max_bytes=len(data) + 1, max_pixels=10**9).pixels
        return [f.box for f in faces_in_image(pixels, fast)]

    print(
        f"{'set':<12} {'photos':>6} {'plain/s':>8} {'ours/s':>8} {'ratio':>6} "
        f"{'plain ms':>9} {'ours ms':>8}  faces plain/ours/same  photos missed"
    )
    for name, items in sets.items():
        plain_s, plain_median, plain_boxes = timed(plain, items)
        ours_s, ours_median, our_boxes = timed(ours, items)
        same = sum(
            any(box_overlap(a, b) >= 0.5 for b in mine)
            for theirs, mine in zip(plain_boxes, our_boxes, strict=True)
            for a in theirs
        )
        missed = sum(bool(t) and not m for t, m in zip(plain_boxes, our_boxes, strict=True))
        print(
            f"{name:<12} {len(items):>6} {len(items) / plain_s:>8.2f} {len(items) / ours_s:>8.2f} "
            f"{plain_s / ours_s:>6.2f} {plain_median * 1000:>9.0f} {ours_median * 1000:>8.0f}  "
            f"{sum(map(len, plain_boxes))}/{sum(map(len, our_boxes))}/{same}  {missed}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
