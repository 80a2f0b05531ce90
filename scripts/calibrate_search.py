"""Fit the search calibration (what the shown similarity means) on 1:N searches.

    .venv/bin/python scripts/eval_service.py --variants plain --setting MIN_SCORE=-20 \\
        --out /tmp/unfiltered.json
    .venv/bin/python scripts/calibrate_search.py .cache/eval_service/run-unfiltered-plain

Reads every candidate a run of ``scripts/eval_service.py`` proposed (its folder's database:
distance, normalised score, the probe's and the candidate's external_ref; the true case of a
probe ``p-<ref>`` is ``<ref>``), fits ``P(true case | score, distance)`` by logistic regression,
checks it on held-out probes (two folds by probe: within each band of the fitted chance, the
observed share of true candidates), and writes the fit into the calibration file's ``search``
part (default: the shipped ``reunite/model/calibration.json``), keeping the pair fit. Run it on
a run with every candidate within tolerance kept (``MIN_SCORE`` far below any score), so that the
fit sees the weak candidates as well as the strong ones.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from reunite.calibration import Calibration
from reunite.config import SHIPPED_CALIBRATION_PATH
from reunite.evaluation import fitted_logistic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run folder of scripts/eval_service.py")
    parser.add_argument("--calibration", type=Path, default=SHIPPED_CALIBRATION_PATH)
    args = parser.parse_args()

    probes, scores, distances, true = _candidates(args.run / "data" / "reunite.db")
    features = np.column_stack([scores, distances])
    folds = np.array([hashlib.sha256(p.encode()).digest()[0] % 2 for p in probes])
    held_out = np.zeros(len(true))
    for fold in (0, 1):
        weights = fitted_logistic(features[folds != fold], true[folds != fold])
        held_out[folds == fold] = _chance(weights, features[folds == fold])
    weights = fitted_logistic(features, true)
    bands = _bands(held_out, true)
    calibration = Calibration.load(args.calibration)
    search = {
        "intercept": weights[0],
        "score_weight": weights[1],
        "distance_weight": weights[2],
        "fitted_on": (
            f"{len(set(probes))} searches of scripts/eval_service.py (LFW mated, strangers and "
            f"the named East-Asian set; gallery of 3,130 cases), {len(true)} candidates within "
            f"tolerance, {int(true.sum())} of them true"
        ),
        "candidates": len(true),
        "created_at": datetime.now(UTC).isoformat(),
        "held_out_bands": bands,
    }
    calibration = replace(calibration, search=search)
    calibration.save(args.calibration)
    print(json.dumps(search, indent=1))


def _candidates(db: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(probe refs, scores, distances, is-true) of every scored candidate in the run."""
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT f.external_ref, m.external_ref, c.score, c.distance FROM candidates c "
            "JOIN cases f ON f.id = c.found_case_id JOIN cases m ON m.id = c.missing_case_id "
            "WHERE c.score IS NOT NULL"
        ).fetchall()
    probes = [r[0] for r in rows]
    true = np.array([r[0] == f"p-{r[1]}" for r in rows], dtype=np.float64)
    return probes, np.array([r[2] for r in rows]), np.array([r[3] for r in rows]), true


def _chance(weights: list[float], features: np.ndarray) -> np.ndarray:
    logit = weights[0] + features @ np.asarray(weights[1:])
    chance: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(logit, -50, 50)))
    return chance


def _bands(chance: np.ndarray, true: np.ndarray) -> list[dict[str, float | int]]:
    rows = []
    for band in range(10):
        low, high = band / 10, (band + 1) / 10
        inside = (chance >= low) & ((chance < high) | (band == 9))
        if inside.any():
            rows.append(
                {
                    "band": f"{low:.1f}-{high:.1f}",
                    "candidates": int(inside.sum()),
                    "observed_true": round(float(true[inside].mean()), 3),
                }
            )
    return rows


if __name__ == "__main__":
    main()
