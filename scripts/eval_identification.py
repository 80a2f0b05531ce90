"""1:N open-set identification on LFW, as the service searches: rank-1/rank-10 and DIR at
FPIR 1% and 0.1%, for 1, 2 and 3 enrolled photos per person, scoring a case by its closest face
or by its mean embedding.

    .venv/bin/python scripts/eval_identification.py               # full (about 15 min, 2 cores)
    .venv/bin/python scripts/eval_identification.py --limit 40    # 40 enrolled people (CI-sized)

Protocol: people with 4+ images are split in two by name order (even: enrolled, odd: strangers).
The gallery holds the first 1, 2 or 3 photos of each enrolled person plus one photo of every
person with a single image (distractors). Mated probes are each enrolled person's 4th and later
photos (the same probes for every gallery size); non-mated probes are every photo of the
strangers. Writes models/eval/identification.json and a CMC/DET plot.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from reunite.evaluation import Gallery, embedded_images, identification
from reunite.faces import Pipeline


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces-dir", type=Path, default=Path("../shared/faces"))
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/embeddings"))
    parser.add_argument("--out", type=Path, default=Path("models/eval/identification.json"))
    parser.add_argument("--limit", type=int, default=None, help="enrolled people (and strangers)")
    parser.add_argument("--distractors", type=int, default=None, help="single-image people")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()

    lfw = args.faces_dir / "lfw"
    people = {
        d.name: sorted(d.glob("*.jpg"))
        for d in sorted(lfw.iterdir())
        if d.is_dir() and d.name != "protocol"
    }
    if not people:
        print(f"LFW not found under {lfw}", file=sys.stderr)
        return 2
    many = [name for name, photos in people.items() if len(photos) >= 4]
    enrolled, strangers = many[0::2], many[1::2]
    singles = [name for name, photos in people.items() if len(photos) == 1]
    if args.limit:
        enrolled, strangers = enrolled[: args.limit], strangers[: args.limit]
    if args.distractors is not None:
        singles = singles[: args.distractors]
    wanted = [p for n in enrolled for p in people[n]] + [p for n in strangers for p in people[n]]
    wanted += [people[n][0] for n in singles]
    started = time.perf_counter()
    images = embedded_images(
        wanted, cache_dir=args.cache_dir, pipeline=Pipeline(), workers=args.workers
    )
    seconds = time.perf_counter() - started
    usable = {p: e.embedding for p, e in images.items() if e.embedding is not None}

    def usable_photos(name: str) -> list[Path]:
        return [p for p in people[name] if p in usable]

    mated = [(n, p) for n in enrolled for p in usable_photos(n)[3:]]
    mated_vectors = np.array([usable[p] for _, p in mated])
    mated_labels = np.array([n for n, _ in mated])
    non_mated = np.array([usable[p] for n in strangers for p in usable_photos(n)])
    report: dict[str, object] = {
        "dataset": "LFW deep-funneled, open-set 1:N",
        "enrolled_people": len(enrolled),
        "distractors": len(singles),
        "mated_probes": len(mated),
        "non_mated_probes": len(non_mated),
        "images_without_a_face": sum(1 for e in images.values() if e.embedding is None),
        "embedding_seconds": round(seconds, 1),
        "results": {},
    }
    curves = {}
    for photos in (1, 2, 3):
        rows = [(n, p) for n in enrolled for p in usable_photos(n)[:photos]]
        rows += [(n, people[n][0]) for n in singles if people[n][0] in usable]
        gallery = Gallery(
            vectors=np.array([usable[p] for _, p in rows]), labels=np.array([n for n, _ in rows])
        )
        for scoring in ("min", "mean") if photos > 1 else ("min",):
            result = identification(
                gallery,
                mated_vectors,
                mated_labels,
                non_mated,
                scoring=scoring,
                operating_points=[(k, t) for k in (5, 10) for t in (0.45, 0.5, 0.55, 0.6)],
            )
            key = f"{photos}_photo{'s' if photos > 1 else ''}_{scoring}"
            report["results"][key] = {  # type: ignore[index]
                "rank1": result.rank1,
                "rank10": result.rank10,
                "dir_at_fpir": result.dir_at_fpir,
                "threshold_at_fpir": result.threshold_at_fpir,
                "cmc": result.cmc,
                "operating_points": result.operating_points,
                "strangers_with_a_candidate_at": {
                    str(t): float(np.mean(np.array(result.non_mated_top) <= t))
                    for t in (0.45, 0.5, 0.55, 0.6)
                },
                "found_at_rank1_within": {
                    str(t): float(np.mean(np.array(result.rank1_distances) <= t))
                    for t in (0.45, 0.5, 0.55, 0.6)
                },
            }
            curves[key] = result
            print(
                f"{key:>16}: rank-1 {result.rank1:.4f}  rank-10 {result.rank10:.4f}  "
                f"DIR@FPIR1% {result.dir_at_fpir['0.01']:.4f}  "
                f"DIR@FPIR0.1% {result.dir_at_fpir['0.001']:.4f}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    plot(curves, args.out.with_suffix(".png"))
    print(f"-> {args.out}")
    return 0


def plot(curves: dict, path: Path) -> None:  # type: ignore[type-arg]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (cmc, det) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for key, result in curves.items():
        cmc.plot(range(1, len(result.cmc) + 1), result.cmc, marker=".", label=key)
        strangers = np.sort(result.non_mated_top)
        thresholds = np.linspace(0.3, 0.8, 200)
        fpir = [np.mean(strangers <= t) for t in thresholds]
        mated = np.array(result.rank1_distances)
        fnir = [np.mean(mated > t) for t in thresholds]
        det.plot(np.maximum(fpir, 1e-4), fnir, label=key)
    cmc.set_xlabel("rank")
    cmc.set_ylabel("identification rate")
    cmc.set_title("CMC (mated probes)")
    cmc.grid(alpha=0.3)
    cmc.legend(fontsize=7)
    det.set_xscale("log")
    det.set_xlabel("FPIR (strangers given a candidate)")
    det.set_ylabel("FNIR (rank-1 within threshold missed)")
    det.set_title("DET")
    det.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
