"""What a candidate means: the calibrated chance that it is the person searched for.

A ``Calibration`` holds two logistic fits. The **search fit** maps a candidate's distance and
normalised score (``reunite.matching``) to the chance that it is the true case, fitted on 1:N
searches: the candidates of mated and never-enrolled probes against a gallery of thousands
(``scripts/calibrate_search.py``), so that a stranger's best candidate reads low. The **pair
fit** maps a distance alone to P(same person), fitted on balanced labelled pairs (``reunite
calibrate``, ``scripts/calibrate_lfw.py``); it is used where a search has no cohort (a gallery
of fewer than 30 cases) or no search fit is present. A calibration belongs to one model and
pipeline; the service refuses one made for another. Without a calibration file the service
falls back, saying so in its log, to the linear display score ``1 - distance / 1.2``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from reunite.files import write_atomically

log = logging.getLogger(__name__)


SimilarityBasis = Literal["search", "pair", "linear"]
"""What a shown similarity rests on: ``search``, the search fit with the candidate's normalised
score (a chance among the probe's near faces); ``pair``, the pair fit from the distance alone (no
cohort, or no search fit: every pair within tolerance then reads near certain, so the pages show
no percentage); ``linear``, no calibration (``1 - distance / 1.2``, not a probability)."""


def linear_similarity(distance: float) -> float:
    """``clip(1 - distance / 1.2, 0, 1)``: 0.5 at dlib's 0.6, not a probability."""
    return float(min(1.0, max(0.0, 1.0 - distance / 1.2)))


@dataclass(frozen=True)
class Calibration:
    """``P(same person | distance) = 1 / (1 + exp(slope * (distance - midpoint)))``.

    ``midpoint`` is the distance scored 0.5; ``slope`` (per unit of L2 distance) how fast the
    probability falls. Fitted by logistic regression on labelled pairs.
    """

    model: str
    pipeline: str
    slope: float
    midpoint: float
    fitted_on: str
    pairs: int
    created_at: str
    checks: dict[str, float] = field(default_factory=dict)
    suggested_tolerance: float | None = None
    search: dict[str, Any] | None = None
    """The search fit: ``P(true case) = 1 / (1 + exp(-(intercept + score_weight * score +
    distance_weight * distance)))``, with what it was fitted on and its checks; None if absent."""

    def probability(self, distance: float | np.ndarray) -> np.ndarray:
        """The pair fit: P(same person) at ``distance`` (L2), elementwise."""
        z = np.clip(self.slope * (np.asarray(distance, dtype=np.float64) - self.midpoint), -50, 50)
        probability: np.ndarray = 1.0 / (1.0 + np.exp(z))
        return probability

    def search_probability(self, distance: np.ndarray, score: np.ndarray) -> np.ndarray:
        """The search fit: P(true case) of candidates at ``distance`` with ``score``.
        Raises ``ValueError`` without a search fit."""
        if self.search is None:
            raise ValueError("this calibration has no search fit")
        logit = (
            self.search["intercept"]
            + self.search["score_weight"] * np.asarray(score, dtype=np.float64)
            + self.search["distance_weight"] * np.asarray(distance, dtype=np.float64)
        )
        probability: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(logit, -50, 50)))
        return probability

    def similarity(self, distance: float, score: float | None = None) -> float:
        """The chance, in [0, 1], that a candidate at ``distance`` with normalised ``score`` is
        the person: the search fit when there is a score and a search fit, else the pair fit."""
        if score is not None and self.search is not None:
            return float(self.search_probability(np.asarray(distance), np.asarray(score)))
        return float(self.probability(distance))

    def similarity_basis(self, score: float | None) -> SimilarityBasis:
        """Which fit ``similarity`` uses for a candidate with ``score``: ``search`` or ``pair``."""
        return "search" if score is not None and self.search is not None else "pair"

    def save(self, path: Path) -> Path | None:
        """Write atomically; an existing file is kept as ``<name>.<its time>.json`` (rollback).
        Returns the kept file's path, if any."""
        kept = None
        if path.exists():
            old = json.loads(path.read_text(encoding="utf-8"))
            stamp = str(old.get("created_at", "old")).replace(":", "").replace("+", "_")
            kept = path.with_name(f"{path.stem}.{stamp}.json")
            write_atomically(kept, path.read_bytes())
        write_atomically(path, json.dumps(asdict(self), indent=2).encode("utf-8"))
        return kept

    @classmethod
    def load(cls, path: Path) -> Calibration:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def calibration_fingerprint(path: Path) -> str:
    """The SHA-256 (hex) of the calibration file's bytes, or ``none`` when there is no file:
    part of the matching rules' version (``matching.rules_version``)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return "none"


OLD_DEFAULT_PATH = Path("models/calibration.json")
"""Where the calibration was read from before it shipped inside the package: relative to the
working folder, which is also where ``reunite calibrate`` wrote a site's own fit."""


def warn_of_a_calibration_left_behind(path: Path, *, shipped: Path) -> None:
    """Log a warning when ``path`` is the shipped default but a calibration sits at the old
    default place in the working folder: most likely a site's own fit, no longer read unless
    REUNITE_CALIBRATION_PATH names it."""
    left_behind = OLD_DEFAULT_PATH.resolve()
    if path == shipped and left_behind.is_file() and left_behind != shipped.resolve():
        log.warning(
            "%s is no longer read by default (the shipped calibration is used); set "
            "REUNITE_CALIBRATION_PATH=%s to keep using it",
            left_behind,
            left_behind,
        )


def loaded_calibration(path: Path, *, model: str, pipeline: str) -> Calibration | None:
    """The calibration at ``path`` if it exists and belongs to ``model``, else None.

    Every case of None is logged as an error or warning (absent, unreadable, another model), so
    the service keeps running on the linear score and ``reunite calibrate`` can still replace
    the file. A calibration made for another pipeline (detector, jitters) is used with a warning.
    """
    if not path.exists():
        log.warning("no calibration at %s: similarity is the uncalibrated 1 - d/1.2", path)
        return None
    try:
        calibration = Calibration.load(path)
    except (OSError, ValueError, TypeError) as exc:
        log.error("calibration %s is unreadable (%s): using the uncalibrated 1 - d/1.2", path, exc)
        return None
    if calibration.model != model:
        log.error(
            "calibration %s is for model %s, not %s: using the uncalibrated 1 - d/1.2",
            path,
            calibration.model,
            model,
        )
        return None
    if calibration.pipeline != pipeline:
        log.warning(
            "calibration %s was fitted for pipeline %s, this service runs %s; refit with "
            "`reunite calibrate`",
            path,
            calibration.pipeline,
            pipeline,
        )
    return calibration
