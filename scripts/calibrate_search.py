"""Fit the search calibration (what the shown similarity means) on 1:N searches.

    .venv/bin/python scripts/eval_service.py --variants plain --out /tmp/any.json
    .venv/bin/python scripts/calibrate_search.py .cache/eval_service/run-any-plain

Reads the faces of a run of ``scripts/eval_service.py`` (its folder's database: the gallery's
missing cases, one face each, and the probes' found cases; the true case of probe ``p-<ref>`` is
``<ref>``), and replays each probe's search as the service makes it with the default settings:
the cohort of its ``cohort_size`` nearest gallery cases (``reunite.matching.cohort_of``), and the
``top_k`` nearest within ``tolerance``, each with its normalised score, whatever ``min_score``
says (so that the fit sees weak candidates as well as strong ones). It fits
``P(true case | score, distance)`` by logistic regression, checks it on held-out probes (two folds
by probe: within each band of the fitted chance, the observed share of true candidates), and
writes the fit into the calibration file's ``search`` part (default: the shipped
``reunite/model/calibration.json``), keeping the pair fit.
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
from reunite.config import SHIPPED_CALIBRATION_PATH, Settings
from reunite.evaluation import fitted_logistic
from reunite.matching import cohort_of
from reunite.store import embedding_vector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run folder of scripts/eval_service.py")
    parser.add_argument("--calibration", type=Path, default=SHIPPED_CALIBRATION_PATH)
    args = parser.parse_args()

    settings = Settings()
    probes, scores, distances, true = _candidates(args.run / "data" / "reunite.db", settings)
    features = np.column_stack([scores, distances])
    folds = np.array([hashlib.sha256(p.encode()).digest()[0] % 2 for p in probes])
    held_out = np.zeros(len(true))
    for fold in (0, 1):
        weights = fitted_logistic(features[folds != fold], true[folds != fold])
        held_out[folds == fold] = _chance(weights, features[folds == fold])
    weights = fitted_logistic(features, true)
    search = {
        "intercept": weights[0],
        "score_weight": weights[1],
        "distance_weight": weights[2],
        "fitted_on": (
            f"{len(set(probes))} searches replayed from scripts/eval_service.py (LFW mated and "
            f"strangers, the named East-Asian set; a gallery of {settings.cohort_size}+ cases), "
            f"the top {settings.top_k} within {settings.tolerance}: {len(true)} candidates, "
            f"{int(true.sum())} of them true"
        ),
        "candidates": len(true),
        "created_at": datetime.now(UTC).isoformat(),
        "held_out_bands": _bands(held_out, true),
    }
    calibration = replace(Calibration.load(args.calibration), search=search)
    calibration.save(args.calibration)
    print(json.dumps(search, indent=1))


def _candidates(
    db: Path, settings: Settings
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(probe refs, scores, distances, is-true) of every candidate the replayed searches find
    within tolerance (top_k per search)."""
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT c.external_ref, c.kind, f.embedding FROM faces f "
            "JOIN cases c ON c.id = f.case_id ORDER BY f.id"
        ).fetchall()
    gallery = [(r[0], embedding_vector(r[2])) for r in rows if r[1] == "missing"]
    gallery_refs = np.array([ref for ref, _ in gallery])
    faces = np.array([e for _, e in gallery])
    probes, scores, distances, true = [], [], [], []
    for ref, kind, blob in rows:
        if kind != "found":
            continue
        distance = np.linalg.norm(faces - embedding_vector(blob), axis=1)
        order = np.argsort(distance, kind="stable")
        cohort = cohort_of([float(d) for d in distance[order[: settings.cohort_size]]])
        if cohort is None:
            raise SystemExit("the gallery is too small for a cohort")
        for j in order[: settings.top_k]:
            if distance[j] > settings.tolerance:
                break
            probes.append(ref)
            scores.append(cohort.score(float(distance[j])))
            distances.append(float(distance[j]))
            true.append(ref == f"p-{gallery_refs[j]}")
    return probes, np.array(scores), np.array(distances), np.array(true, dtype=np.float64)


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
