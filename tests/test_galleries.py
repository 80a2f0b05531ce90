"""Synthetic galleries keep the spread they were drawn from (models/embedding_stats.npz)."""

import numpy as np
import pytest

from reunite.galleries import (
    EmbeddingStatistics,
    embedding_statistics,
    gallery,
    isotropic_gallery,
    synthetic_gallery,
)
from tests.conftest import PROJECT_ROOT


def test_a_synthetic_gallery_has_the_measured_spread_between_and_within_people():
    stats = EmbeddingStatistics.load(PROJECT_ROOT / "models" / "embedding_stats.npz")
    faces = synthetic_gallery(30_000, stats, photos_per_person=3, seed=1)
    assert faces.shape == (30_000, 128) and faces.dtype == np.float32
    measured = embedding_statistics({i: faces[i * 3 : i * 3 + 3] for i in range(10_000)})
    # A person's mean of three photos carries a third of the within-person spread.
    between = np.trace(stats.between) + np.trace(stats.within) / 3
    assert abs(np.trace(measured.between) - between) / between < 0.05
    assert abs(np.trace(measured.within) - np.trace(stats.within)) / np.trace(stats.within) < 0.05
    assert np.linalg.norm(measured.mean - stats.mean) < 0.02


def test_statistics_survive_a_save_and_load(tmp_path):
    stats = EmbeddingStatistics.load(PROJECT_ROOT / "models" / "embedding_stats.npz")
    stats.save(tmp_path / "stats.npz")
    again = EmbeddingStatistics.load(tmp_path / "stats.npz")
    np.testing.assert_array_equal(again.between, stats.between)
    np.testing.assert_array_equal(again.within, stats.within)


def test_a_benchmark_gallery_is_its_shape_s_gallery_with_the_same_seed():
    stats_path = PROJECT_ROOT / "models" / "embedding_stats.npz"
    stats = EmbeddingStatistics.load(stats_path)
    np.testing.assert_array_equal(
        gallery("lfw", 1000, stats_path=stats_path, seed=1000),
        synthetic_gallery(1000, stats, seed=1000),
    )
    np.testing.assert_array_equal(
        gallery("isotropic", 1000, stats_path=stats_path, seed=1000),
        isotropic_gallery(1000, seed=1000),
    )
    with pytest.raises(ValueError, match="unknown gallery shape"):
        gallery("round", 1000, stats_path=stats_path, seed=1000)
