"""Fit the shipped calibration (reunite/model/calibration.json) on LFW View 1 and check it.

    .venv/bin/python scripts/calibrate_lfw.py

Fits P(same person | distance) on pairsDevTrain.txt (2,200 pairs), checks it on
pairsDevTest.txt (1,000 pairs), and suggests the tolerance that accepts 1% of different-person
pairs. A deployment refits on its own evidence with `reunite calibrate`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from reunite import evaluation
from reunite.config import SHIPPED_CALIBRATION_PATH
from reunite.faces import MODEL_NAME, Pipeline


def pair_distances(
    protocol: Path, lfw: Path, cache_dir: Path, pipeline: Pipeline
) -> tuple[np.ndarray, np.ndarray]:
    pairs = evaluation.lfw_pairs(protocol, lfw)
    images = evaluation.embedded_images(
        [p for pair in pairs for p in (pair.a, pair.b)],
        cache_dir=cache_dir,
        pipeline=pipeline,
        fallback=True,
    )
    vectors = {path: e.embedding for path, e in images.items()}
    distances = np.array(
        [float(np.linalg.norm(vectors[p.a] - vectors[p.b])) for p in pairs]  # type: ignore[operator]
    )
    return distances, np.array([p.same for p in pairs])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces-dir", type=Path, default=Path("../shared/faces"))
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/embeddings"))
    parser.add_argument("--out", type=Path, default=SHIPPED_CALIBRATION_PATH)
    parser.add_argument("--max-false-match-rate", type=float, default=0.01)
    args = parser.parse_args()
    lfw = args.faces_dir / "lfw"
    pipeline = Pipeline()
    train_d, train_same = pair_distances(
        lfw / "protocol" / "pairsDevTrain.txt", lfw, args.cache_dir, pipeline
    )
    test_d, test_same = pair_distances(
        lfw / "protocol" / "pairsDevTest.txt", lfw, args.cache_dir, pipeline
    )
    fitted = evaluation.fitted_calibration(
        train_d,
        train_same,
        model=MODEL_NAME,
        pipeline=pipeline.version,
        fitted_on="LFW View 1 pairsDevTrain.txt (2,200 pairs)",
    )
    tolerance = evaluation.suggested_tolerance(
        train_d, train_same, max_false_match_rate=args.max_false_match_rate
    )
    checks = evaluation.calibration_checks(fitted, test_d, test_same)
    checks |= {
        f"test_{k}": v for k, v in evaluation.operating_point(test_d, test_same, tolerance).items()
    }
    checks |= {
        f"test_at_0.6_{k}": v for k, v in evaluation.operating_point(test_d, test_same, 0.6).items()
    }
    calibration = dataclasses.replace(fitted, checks=checks, suggested_tolerance=tolerance)
    kept = calibration.save(args.out)
    print(
        f"P(same)=0.5 at {calibration.midpoint:.3f} (slope {calibration.slope:.1f}); "
        f"P at 0.6 = {calibration.similarity(0.6):.3f}; on DevTest: brier {checks['brier']:.4f}, "
        f"accuracy at P=0.5 {checks['accuracy_at_half']:.4f}; suggested tolerance "
        f"{tolerance:.3f} (TMR {checks['test_true_match_rate']:.3f}, "
        f"FMR {checks['test_false_match_rate']:.3f} on DevTest) -> {args.out}"
        + (f" (kept {kept})" if kept else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
