"""How real dlib embeddings spread, measured on LFW: writes models/embedding_stats.npz (mean,
between-person and within-person covariance), which the benchmarks use to make synthetic
galleries of any size shaped like real ones (``reunite.galleries.synthetic_gallery``).

    .venv/bin/python scripts/embedding_stats.py    # about 25 min on 2 cores, instant when cached

Aggregate statistics of 5,700 people: no face or name can be recovered from them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from reunite.evaluation import embedded_images
from reunite.faces import Pipeline
from reunite.galleries import embedding_statistics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces-dir", type=Path, default=Path("../shared/faces"))
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/embeddings"))
    parser.add_argument("--out", type=Path, default=Path("models/embedding_stats.npz"))
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    lfw = args.faces_dir / "lfw"
    if not lfw.is_dir():
        print(f"LFW not found under {lfw}", file=sys.stderr)
        return 2
    paths = sorted(p for p in lfw.glob("*/*.jpg") if p.parent.name != "protocol")
    images = embedded_images(
        paths, cache_dir=args.cache_dir, pipeline=Pipeline(), workers=args.workers
    )
    by_person: dict[str, list[np.ndarray]] = {}
    for path, embedded in images.items():
        if embedded.embedding is not None:
            by_person.setdefault(path.parent.name, []).append(embedded.embedding)
    stats = embedding_statistics(by_person)
    stats.save(args.out)
    spectrum = np.sort(np.linalg.eigvalsh(stats.between + stats.within))[::-1]
    print(
        f"{sum(map(len, by_person.values()))} embeddings of {len(by_person)} people -> {args.out}; "
        f"variance between people {np.trace(stats.between):.3f}, within "
        f"{np.trace(stats.within):.3f}; top 32 / 64 of 128 components carry "
        f"{spectrum[:32].sum() / spectrum.sum():.0%} / {spectrum[:64].sum() / spectrum.sum():.0%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
