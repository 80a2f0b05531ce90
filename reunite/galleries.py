"""Synthetic galleries of face embeddings, shaped like real dlib ones, for the benchmarks.

``scripts/embedding_stats.py`` measures how LFW's embeddings spread (``EmbeddingStatistics``,
kept in ``models/embedding_stats.npz``); ``synthetic_gallery`` draws any number of faces from
that. Needs numpy only: no dlib, no models loaded.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reunite.files import write_atomically


@dataclass(frozen=True)
class EmbeddingStatistics:
    """How real embeddings spread: their mean, the covariance of people's mean embeddings
    (between people) and of photos around their person's mean (within a person). 128-d."""

    mean: np.ndarray
    between: np.ndarray
    within: np.ndarray

    def save(self, path: Path) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, mean=self.mean, between=self.between, within=self.within)
        write_atomically(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> EmbeddingStatistics:
        with np.load(path) as stored:
            return cls(stored["mean"], stored["between"], stored["within"])


def embedding_statistics(by_person: Mapping[str, Sequence[np.ndarray]]) -> EmbeddingStatistics:
    """Mean, between-person and within-person covariance of embeddings grouped by person.

    The within-person covariance comes from people with two or more photos (corrected for
    each person's mean being estimated); the between-person one from every person's mean.
    """
    groups = [np.asarray(v, dtype=np.float64) for v in by_person.values() if len(v)]
    every = np.concatenate(groups)
    means = np.array([g.mean(axis=0) for g in groups])
    several = [g for g in groups if len(g) >= 2]
    residuals = np.concatenate([g - g.mean(axis=0) for g in several])
    within = residuals.T @ residuals / (len(residuals) - len(several))
    return EmbeddingStatistics(
        mean=every.mean(axis=0).astype(np.float32),
        between=np.cov(means.T).astype(np.float32),
        within=within.astype(np.float32),
    )


def synthetic_gallery(
    faces: int, stats: EmbeddingStatistics, *, photos_per_person: int = 3, seed: int = 0
) -> np.ndarray:
    """``faces`` float32 embeddings shaped like real ones: people drawn from the between-person
    distribution, each with ``photos_per_person`` photos drawn around them, in person order.

    Pure random vectors would make a poor benchmark: they use all 128 dimensions equally
    while real embeddings do not (64 of LFW's principal components carry 97% of the
    variance), and approximate indexes find neighbours much more easily in real data.
    Cost: about 1 s per million faces; 512 MB per million faces.
    """
    rng = np.random.default_rng(seed)
    people = -(-faces // photos_per_person)
    between = np.linalg.cholesky(stats.between.astype(np.float64) + 1e-9 * np.eye(len(stats.mean)))
    within = np.linalg.cholesky(stats.within.astype(np.float64) + 1e-9 * np.eye(len(stats.mean)))
    out = np.empty((faces, len(stats.mean)), dtype=np.float32)
    chunk = 100_000 // photos_per_person
    for start in range(0, people, chunk):
        n = min(chunk, people - start)
        centres = stats.mean + rng.standard_normal((n, len(stats.mean))) @ between.T
        photos = np.repeat(centres, photos_per_person, axis=0)
        photos += rng.standard_normal(photos.shape) @ within.T
        first = start * photos_per_person
        last = min(first + len(photos), faces)
        out[first:last] = photos[: last - first]
    return out


def isotropic_gallery(faces: int, *, photos_per_person: int = 5, seed: int = 0) -> np.ndarray:
    """``faces`` float32 embeddings of people drawn from a round Gaussian (every dimension
    alike), ``photos_per_person`` each: unlike real embeddings, and much harder for an
    approximate index. For comparison with ``synthetic_gallery``."""
    rng = np.random.default_rng(seed)
    people = -(-faces // photos_per_person)
    centres = rng.normal(0, 0.09, (people, 128)).astype(np.float32)
    photos = np.repeat(centres, photos_per_person, axis=0)
    photos += rng.normal(0, 0.035, photos.shape).astype(np.float32)
    return photos[:faces]


SHAPES = ("lfw", "isotropic")
"""The benchmarks' gallery shapes: ``lfw`` (``synthetic_gallery``) and ``isotropic``."""


def gallery(shape: str, faces: int, *, stats_path: Path, seed: int) -> np.ndarray:
    """A benchmark's gallery of ``faces`` embeddings: for ``shape`` ``lfw``, a
    ``synthetic_gallery`` drawn from the statistics in ``stats_path``; for ``isotropic``, an
    ``isotropic_gallery`` (``stats_path`` unread). Each with its default photos per person."""
    if shape == "lfw":
        return synthetic_gallery(faces, EmbeddingStatistics.load(stats_path), seed=seed)
    if shape == "isotropic":
        return isotropic_gallery(faces, seed=seed)
    raise ValueError(f"unknown gallery shape {shape!r}: one of {', '.join(SHAPES)}")
