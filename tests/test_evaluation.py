"""The evaluation maths on hand-made inputs, and the scripts end to end on a little real LFW."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reunite import evaluation
from reunite.calibration import Calibration
from reunite.config import SHIPPED_CALIBRATION_PATH

ROOT = Path(__file__).resolve().parent.parent


def test_best_threshold_and_accuracy_on_separable_pairs():
    distances = np.array([0.2, 0.3, 0.35, 0.7, 0.8, 0.9])
    same = np.array([True, True, True, False, False, False])
    threshold = evaluation.best_threshold(distances, same)
    assert threshold == pytest.approx(0.525)
    assert evaluation.accuracy(distances, same, threshold) == 1.0
    assert evaluation.accuracy(distances, same, 0.31) == pytest.approx(5 / 6)


def test_ten_fold_on_a_synthetic_set_gives_the_known_answer():
    # Ten folds of four pairs. In every fold same pairs sit at 0.1 and 0.2, different ones at
    # 0.8 and 0.9, except fold 3, whose second same pair is at 0.95: the threshold learned on
    # the other nine folds (0.5) gets it wrong, so fold 3 scores 3/4 and the mean is 0.975.
    distances, same, folds = [], [], []
    for fold in range(10):
        pair_distances = [0.1, 0.95 if fold == 3 else 0.2, 0.8, 0.9]
        distances += pair_distances
        same += [True, True, False, False]
        folds += [fold] * 4
    result = evaluation.ten_fold(np.array(distances), np.array(same), np.array(folds))
    assert result.accuracies == [1.0, 1.0, 1.0, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert result.mean == pytest.approx(0.975)
    assert all(t == pytest.approx(0.5) for t in result.thresholds)


def test_identification_metrics_match_a_hand_computed_example():
    # 1-d embeddings padded to 2-d. Identities A (at 0 and 0.2), B (at 1), C (at 3).
    gallery = evaluation.Gallery(
        vectors=np.array([[0.0, 0], [0.2, 0], [1.0, 0], [3.0, 0]]),
        labels=np.array(["A", "A", "B", "C"]),
    )
    mated = np.array([[0.15, 0], [0.9, 0], [1.9, 0]])  # A (rank 1), B (rank 1), C (rank 2)
    labels = np.array(["A", "B", "C"])
    strangers = np.array([[5.0, 0], [0.6, 0], [10.0, 0], [4.0, 0]])
    result = evaluation.identification(
        gallery, mated, labels, strangers, scoring="min", fpirs=(0.25,), max_rank=3
    )
    assert result.cmc == pytest.approx([2 / 3, 1.0, 1.0])
    # Strangers' nearest distances: 2.0, 0.4, 7.0, 1.0. At FPIR 25% one stranger may get a
    # candidate: the threshold sits just under the second smallest (1.0); probes A (0.05) and
    # B (0.1) are found at rank 1 within it, C is not (rank 2): DIR = 2/3.
    assert result.threshold_at_fpir["0.25"] == pytest.approx(1.0, abs=1e-6)
    assert result.dir_at_fpir["0.25"] == pytest.approx(2 / 3)
    mean = evaluation.identification(
        gallery, mated, labels, strangers, scoring="mean", fpirs=(0.25,), max_rank=3
    )
    assert mean.rank1_distances[0] == pytest.approx(0.05)  # distance to A's mean, 0.1


def test_calibration_fit_is_monotonic_and_recovers_a_known_curve():
    rng = np.random.default_rng(0)
    distances = rng.uniform(0.2, 1.0, 20_000)
    truth = Calibration("m", "p", slope=12.0, midpoint=0.6, fitted_on="", pairs=0, created_at="")
    same = rng.uniform(size=distances.size) < truth.probability(distances)
    fitted = evaluation.fitted_calibration(distances, same, model="m", pipeline="p", fitted_on="x")
    assert fitted.midpoint == pytest.approx(0.6, abs=0.01)
    assert fitted.slope == pytest.approx(12.0, rel=0.1)
    grid = fitted.probability(np.linspace(0, 2, 101))
    assert np.all(np.diff(grid) < 0)


def test_the_shipped_calibration_is_monotonic_and_near_half_at_the_default_tolerance():
    shipped = Calibration.load(SHIPPED_CALIBRATION_PATH)
    grid = shipped.probability(np.linspace(0, 1.5, 151))
    assert np.all(np.diff(grid) <= 0) and grid[0] > 0.99 and grid[-1] < 0.01
    # P = 0.5 falls within 0.05 of dlib's threshold 0.6, LFW's same/different boundary. The
    # service's default tolerance (0.55, chosen from the 1:N results for recall) is on the
    # "same person" side of it.
    assert abs(shipped.midpoint - 0.6) < 0.05 and 0.5 <= shipped.similarity(0.6) <= 0.8
    from reunite.config import Settings

    default = Settings().tolerance
    assert shipped.similarity(default) >= 0.5 and abs(default - shipped.midpoint) < 0.1
    assert shipped.checks["accuracy_at_half"] > 0.95  # on LFW View 1 DevTest
    assert shipped.checks["brier"] < 0.05


def test_suggested_tolerance_keeps_false_matches_at_the_rate_asked():
    distances = np.array([0.3, 0.4, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1])
    same = np.array([True, True, True, False, True, False, False, False, False, False])
    tolerance = evaluation.suggested_tolerance(distances, same, max_false_match_rate=0.0)
    assert tolerance < 0.55
    point = evaluation.operating_point(distances, same, tolerance)
    assert point == {"tolerance": tolerance, "true_match_rate": 0.75, "false_match_rate": 0.0}


def run_script(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_evaluation_scripts_run_end_to_end_when_limited(faces_dir, tmp_path):
    if not (faces_dir / "lfw" / "protocol" / "pairs.txt").exists():
        pytest.skip("LFW not found")
    common = ["--faces-dir", str(faces_dir), "--cache-dir", str(tmp_path / "cache")]
    out = tmp_path / "lfw.json"
    run_script(
        str(ROOT / "scripts" / "eval_lfw.py"),
        *common,
        "--limit",
        "3",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    report = json.loads(out.read_text())
    assert report["pairs"] == 60 and 0.8 <= report["ten_fold"]["mean"] <= 1.0
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    identified = tmp_path / "id.json"
    printed = run_script(
        str(ROOT / "scripts" / "eval_identification.py"),
        *common,
        "--limit",
        "4",
        "--distractors",
        "20",
        "--out",
        str(identified),
        cwd=tmp_path,
    )
    results = json.loads(identified.read_text())["results"]
    assert set(results) == {
        "1_photo_min",
        "2_photos_min",
        "2_photos_mean",
        "3_photos_min",
        "3_photos_mean",
    }
    assert "rank-1" in printed and identified.with_suffix(".png").exists()
