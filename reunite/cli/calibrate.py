"""``reunite calibrate``: fit what distances mean from this deployment's own evidence."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reunite import errors
from reunite.cli.shared import loaded_settings

if TYPE_CHECKING:
    import numpy as np

    from reunite.config import Settings
    from reunite.faces import Pipeline

MIN_SAME_PAIRS, MIN_DIFFERENT_PAIRS = 20, 100
"""Least evidence ``reunite calibrate`` fits on: fewer pairs make a curve that means nothing."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``calibrate``."""
    calibrate = commands.add_parser(
        "calibrate",
        help="fit what distances mean from this deployment's evidence",
        description="Fit the distance -> P(same person) mapping from labelled photos (a folder "
        "with one sub-folder per person) and/or the review decisions already recorded "
        "(confirmed and rejected candidates), suggest a tolerance, print the expected "
        "true-match and false-match rates there, and write the calibration file the service "
        "uses (REUNITE_CALIBRATION_PATH); the previous file is kept beside it for rollback. "
        "The search fit (1:N: distance and score -> chance of the true case) is kept from the "
        "file replaced, else from the shipped one. Restart the service to use it.",
    )
    calibrate.add_argument("--photos", type=Path, help="folder of sub-folders, one per person")
    calibrate.add_argument(
        "--decisions", action="store_true", help="use confirmed and rejected candidates"
    )
    calibrate.add_argument(
        "--max-false-match-rate",
        type=float,
        default=0.01,
        help="share of different-person pairs the suggested tolerance may accept (0.01)",
    )
    calibrate.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(".cache/embeddings"),
        help="where the photos' embeddings are cached between runs (.cache/embeddings)",
    )
    calibrate.set_defaults(run=write_calibration)


def write_calibration(args: argparse.Namespace) -> int:
    """Fit, suggest a tolerance, write the calibration file and print what it found."""
    from reunite import evaluation
    from reunite.config import SHIPPED_CALIBRATION_PATH
    from reunite.faces import MODEL_NAME

    if not args.photos and not args.decisions:
        raise errors.InvalidField("Give --photos DIR, --decisions, or both.")
    if not 0 < args.max_false_match_rate < 1:
        raise errors.InvalidField("--max-false-match-rate must be between 0 and 1.")
    settings = loaded_settings()
    if settings.calibration_path == SHIPPED_CALIBRATION_PATH:
        raise errors.InvalidInput(
            "Set REUNITE_CALIBRATION_PATH to the file your calibration should be written to (and "
            "give the server the same): the calibration shipped inside the package is never "
            "replaced."
        )
    pipeline, d, s, sources = _labelled_distances(args, settings)
    if s.sum() < MIN_SAME_PAIRS or (~s).sum() < MIN_DIFFERENT_PAIRS:
        raise errors.InvalidInput(
            f"Calibration needs at least {MIN_SAME_PAIRS} same-person and "
            f"{MIN_DIFFERENT_PAIRS} different-person pairs; found {int(s.sum())} and "
            f"{int((~s).sum())}. Add labelled photos (--photos) or wait for more decisions."
        )
    fitted = evaluation.fitted_calibration(
        d, s, model=MODEL_NAME, pipeline=pipeline.version, fitted_on=", ".join(sources)
    )
    tolerance = evaluation.suggested_tolerance(d, s, max_false_match_rate=args.max_false_match_rate)
    point = evaluation.operating_point(d, s, tolerance)
    calibration = dataclasses.replace(
        fitted,
        suggested_tolerance=tolerance,
        checks=evaluation.calibration_checks(fitted, d, s) | point,
        search=_kept_search_fit(settings.calibration_path, SHIPPED_CALIBRATION_PATH),
    )
    kept = calibration.save(settings.calibration_path)
    print(
        f"fitted on {', '.join(sources)}: P(same)=0.5 at distance {calibration.midpoint:.3f}\n"
        f"suggested tolerance {tolerance:.3f}: true-match rate {point['true_match_rate']:.3f}, "
        f"false-match rate {point['false_match_rate']:.3f} on these pairs\n"
        f"written to {settings.calibration_path}"
        + (f" (previous kept as {kept})" if kept else "")
        + f"; set REUNITE_TOLERANCE={tolerance:.2f} to use the suggested tolerance"
    )
    return 0


def _kept_search_fit(path: Path, shipped: Path) -> dict[str, Any] | None:
    """The search fit (1:N, distance and score) to keep beside a new pair fit: the one in the
    file being replaced, else the shipped one. Decisions label too few strangers' candidates to
    refit it here (``scripts/calibrate_search.py`` does, on an evaluation's searches)."""
    from reunite.calibration import Calibration

    for source in (path, shipped):
        if source.is_file():
            search = Calibration.load(source).search
            if search is not None:
                return search
    return None


def _labelled_distances(
    args: argparse.Namespace, settings: Settings
) -> tuple[Pipeline, np.ndarray, np.ndarray, list[str]]:
    """(pipeline, distances, same person?, where they came from) of the evidence asked for:
    the review decisions and/or the pairs of the labelled photos."""
    import numpy as np

    from reunite import evaluation
    from reunite.service import Reunite

    distances: list[float] = []
    same: list[bool] = []
    sources = []
    with Reunite.open(settings, load_index=False) as service:
        pipeline = service.pipeline
        if args.decisions:
            found_d, found_same = service.decided_pairs()
            distances += found_d
            same += found_same
            sources.append(f"{len(found_d)} review decisions")
    if args.photos:
        if not args.photos.is_dir():
            raise errors.InvalidInput(f"{args.photos} is not a folder.")
        photo_d, photo_same = evaluation.labelled_folder_pairs(
            args.photos, cache_dir=args.cache_dir, pipeline=pipeline
        )
        distances += photo_d.tolist()
        same += photo_same.tolist()
        sources.append(f"{len(photo_d)} photo pairs from {args.photos}")
    return pipeline, np.array(distances), np.array(same, dtype=bool), sources
