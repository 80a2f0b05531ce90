"""Measuring accuracy: LFW verification (View 2, 10-fold), 1:N open-set identification, and
calibration of distances into probabilities. Used by ``scripts/eval_*.py`` and ``reunite
calibrate``; everything here is plain NumPy over embeddings, so the tests can check it on small
hand-made inputs.

Embeddings come from the service's own pipeline (decode, detect, embed) and are cached on disk,
keyed by the file's SHA-256 and the pipeline version, so a second run is fast.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from reunite import imaging
from reunite.calibration import Calibration
from reunite.faces import Box, Pipeline, central_index, face_at_box, faces_in_image
from reunite.files import write_atomically

# ------------------------------------------------------------------------------ embeddings


@dataclass(frozen=True)
class Embedded:
    """What the pipeline made of one image: its subject's embedding (or None), how many faces
    the detector found, and whether the embedding comes from the fallback box."""

    path: Path
    embedding: np.ndarray | None
    faces_found: int
    fallback: bool = False


LFW_FACE_BOX = (0.32, 0.70, 0.748, 0.268)
"""Where the face sits in a deep-funneled LFW image, as fractions of its height and width
(top, right, bottom, left): the median of the HOG detector's boxes on 150 LFW images, which
vary by about 6 px of 250. Used only when the detector finds no face."""


def fallback_embedding(data: bytes, pipeline: Pipeline) -> np.ndarray:
    """The embedding of the face assumed at ``LFW_FACE_BOX`` (for aligned LFW images only)."""
    pixels = imaging.decoded_image(data, max_bytes=len(data) + 1, max_pixels=10**9).pixels
    height, width = pixels.shape[:2]
    top, right, bottom, left = LFW_FACE_BOX
    box = Box(int(top * height), int(right * width), int(bottom * height), int(left * width))
    return face_at_box(pixels, box, pipeline).embedding


class EmbeddingCache:
    """Per-image results on disk: ``<dir>/<pipeline>/<sha[:2]>/<sha>.npz`` (boxes, embeddings)."""

    def __init__(self, directory: Path, pipeline: Pipeline) -> None:
        self.directory = directory / pipeline.version.replace("/", "_")
        self.pipeline = pipeline

    def faces(self, data: bytes) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """(boxes (n, 4) as top, right, bottom, left; embeddings (n, 128); (height, width))."""
        sha = imaging.sha256_hex(data)
        path = self.directory / sha[:2] / f"{sha}.npz"
        if path.exists():
            with np.load(path) as stored:
                height, width = (int(v) for v in stored["shape"])
                return stored["boxes"], stored["embeddings"], (height, width)
        image = imaging.decoded_image(data, max_bytes=len(data) + 1, max_pixels=10**9)
        found = faces_in_image(image.pixels, self.pipeline)
        boxes = np.array([tuple(f.box) for f in found], dtype=np.int32).reshape(-1, 4)
        embeddings = np.array([f.embedding for f in found], dtype=np.float32).reshape(-1, 128)
        shape = np.array(image.pixels.shape[:2], dtype=np.int32)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, boxes=boxes, embeddings=embeddings, shape=shape)
        write_atomically(path, buffer.getvalue())
        return boxes, embeddings, (int(shape[0]), int(shape[1]))


def _embedded(job: tuple[Path, Path, Pipeline, bool]) -> Embedded:
    path, cache_dir, pipeline, fallback = job
    data = path.read_bytes()
    boxes, embeddings, shape = EmbeddingCache(cache_dir, pipeline).faces(data)
    chosen = central_index(boxes, shape)
    if chosen is not None:
        return Embedded(path, embeddings[chosen], len(boxes))
    if fallback:
        return Embedded(path, fallback_embedding(data, pipeline), 0, fallback=True)
    return Embedded(path, None, 0)


def embedded_images(
    paths: Sequence[Path],
    *,
    cache_dir: Path,
    pipeline: Pipeline,
    workers: int | None = None,
    fallback: bool = False,
) -> dict[Path, Embedded]:
    """Each image's subject embedding, computed over a process pool (cached ones are instant).

    With ``fallback``, an image with no face found is embedded at ``LFW_FACE_BOX``.
    Cost: about 0.1 s per uncached 250x250 LFW image per core (HOG detection + embedding).
    """
    jobs = [(p, cache_dir, pipeline, fallback) for p in dict.fromkeys(paths)]
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        return {e.path: e for e in map(_embedded, jobs)}
    with ProcessPoolExecutor(workers) as pool:
        return {e.path: e for e in pool.map(_embedded, jobs, chunksize=16)}


# ----------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class Pair:
    fold: int
    same: bool
    a: Path
    b: Path


def lfw_pairs(protocol_file: Path, images_dir: Path) -> list[Pair]:
    """The pairs of an LFW protocol file (View 2 ``pairs.txt``: 10 folds; View 1: one fold)."""
    lines = protocol_file.read_text(encoding="utf-8").split("\n")
    header = lines[0].split()
    folds, per_kind = (int(header[0]), int(header[1])) if len(header) == 2 else (1, int(header[0]))

    def image(name: str, number: str) -> Path:
        return images_dir / name / f"{name}_{int(number):04d}.jpg"

    pairs = []
    rows = [line.split() for line in lines[1:] if line.strip()]
    for i, row in enumerate(rows):
        fold = i // (2 * per_kind)
        if len(row) == 3:
            pairs.append(Pair(fold, True, image(row[0], row[1]), image(row[0], row[2])))
        elif len(row) == 4:
            pairs.append(Pair(fold, False, image(row[0], row[1]), image(row[2], row[3])))
        else:
            raise ValueError(f"{protocol_file}: line {i + 2} is not a pair: {row}")
    if len(pairs) != folds * 2 * per_kind:
        raise ValueError(f"{protocol_file}: {len(pairs)} pairs, expected {folds * 2 * per_kind}")
    return pairs


def accuracy(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Share of pairs judged right when "same person" means distance <= threshold."""
    return float(np.mean((distances <= threshold) == same))


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold (a midpoint between sorted distances) with the highest accuracy; the
    smallest such one on ties. Cost: O(n log n)."""
    order = np.argsort(distances, kind="stable")
    sorted_d, sorted_same = distances[order], same[order].astype(np.int64)
    # Accepting the first i pairs: right = same among them + different among the rest.
    accepted_same = np.concatenate([[0], np.cumsum(sorted_same)])
    rest_different = (len(same) - sorted_same.sum()) - (np.arange(len(same) + 1) - accepted_same)
    right = accepted_same + rest_different
    i = int(np.argmax(right))
    if i == 0:
        return float(sorted_d[0] - 1e-6)
    if i == len(sorted_d):
        return float(sorted_d[-1] + 1e-6)
    return float((sorted_d[i - 1] + sorted_d[i]) / 2)


@dataclass(frozen=True)
class TenFold:
    accuracies: list[float]
    thresholds: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies))


def ten_fold(distances: np.ndarray, same: np.ndarray, folds: np.ndarray) -> TenFold:
    """LFW's protocol: for each fold, choose the threshold on the other folds, test on it."""
    accuracies, thresholds = [], []
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        threshold = best_threshold(distances[train], same[train])
        thresholds.append(threshold)
        accuracies.append(accuracy(distances[test], same[test], threshold))
    return TenFold(accuracies, thresholds)


def roc_curve(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false accept rate, true accept rate) as the threshold sweeps every distance."""
    order = np.argsort(distances, kind="stable")
    hits = same[order].astype(np.float64)
    tar = np.concatenate([[0.0], np.cumsum(hits) / max(hits.sum(), 1)])
    far = np.concatenate([[0.0], np.cumsum(1 - hits) / max((1 - hits).sum(), 1)])
    return far, tar


# --------------------------------------------------------------------------- identification


@dataclass(frozen=True)
class Gallery:
    """Enrolled identities: several embeddings each (rows of ``vectors``, ``labels`` per row)."""

    vectors: np.ndarray
    labels: np.ndarray


def identity_distances(
    gallery: Gallery, probes: np.ndarray, scoring: str
) -> tuple[np.ndarray, np.ndarray]:
    """(distance matrix probes x identities, identity labels). ``scoring``: ``min`` (a case
    scores by its closest face, as the service does) or ``mean`` (distance to the mean of the
    identity's embeddings)."""
    identities, inverse = np.unique(gallery.labels, return_inverse=True)
    probes = np.asarray(probes, dtype=np.float64)
    if scoring == "mean":
        centres = np.zeros((len(identities), probes.shape[1]))
        np.add.at(centres, inverse, gallery.vectors)
        centres /= np.bincount(inverse)[:, None]
        return _l2(probes, centres), identities
    if scoring != "min":
        raise ValueError(f"scoring must be min or mean, not {scoring!r}")
    by_face = _l2(probes, gallery.vectors)
    best = np.full((len(probes), len(identities)), np.inf)
    for column, identity in enumerate(inverse):
        np.minimum(best[:, identity], by_face[:, column], out=best[:, identity])
    return best, identities


def _l2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = (a**2).sum(1)[:, None] + (np.asarray(b, dtype=np.float64) ** 2).sum(1)[None, :]
    squared -= 2 * a @ np.asarray(b, dtype=np.float64).T
    distances: np.ndarray = np.sqrt(np.maximum(squared, 0))
    return distances


@dataclass(frozen=True)
class Identification:
    """Open-set 1:N results. ``cmc[r-1]``: share of mated probes whose identity is in the top r.
    ``dir_at_fpir``: share of mated probes found at rank 1 within the threshold at which that
    share of non-mated probes (strangers) get any candidate; ``threshold_at_fpir`` is it."""

    mated: int
    non_mated: int
    cmc: list[float]
    dir_at_fpir: dict[str, float]
    threshold_at_fpir: dict[str, float]
    rank1_distances: list[float] = field(repr=False)
    """Per mated probe: the distance to its true identity if that is rank 1, else infinity."""
    non_mated_top: list[float] = field(repr=False)
    """Per stranger: the distance to the nearest enrolled identity."""
    operating_points: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per "k=K,tolerance=T": ``found_in_list`` (mated probes whose identity is among the K
    nearest within T), ``strangers_with_any`` and ``stranger_candidates_mean`` (how many
    candidates a stranger's search shows on average)."""

    @property
    def rank1(self) -> float:
        return self.cmc[0]

    @property
    def rank10(self) -> float:
        return self.cmc[min(9, len(self.cmc) - 1)]


def identification(
    gallery: Gallery,
    mated_probes: np.ndarray,
    mated_labels: np.ndarray,
    non_mated_probes: np.ndarray,
    *,
    scoring: str = "min",
    fpirs: Iterable[float] = (0.01, 0.001),
    max_rank: int = 20,
    operating_points: Iterable[tuple[int, float]] = (),
) -> Identification:
    """Rank and DIR/FPIR figures of an open-set search (ISO/IEC 19795-1 style)."""
    mated_d, identities = identity_distances(gallery, mated_probes, scoring)
    strangers_d, _ = identity_distances(gallery, non_mated_probes, scoring)
    truth = np.searchsorted(identities, mated_labels)
    if not np.array_equal(identities[truth], mated_labels):
        raise ValueError("every mated probe's label must be enrolled")
    true_d = mated_d[np.arange(len(truth)), truth]
    rank = (mated_d < true_d[:, None]).sum(1) + 1  # 1 = nearest (ties count for the truth)
    cmc = [float(np.mean(rank <= r)) for r in range(1, max_rank + 1)]
    stranger_top = strangers_d.min(1)
    dir_at, threshold_at = {}, {}
    for fpir in fpirs:
        # Largest threshold at which at most fpir of strangers get a candidate.
        allowed = math.floor(fpir * len(stranger_top))
        ordered = np.sort(stranger_top)
        threshold = float(ordered[allowed] - 1e-9) if allowed < len(ordered) else float("inf")
        found = (rank == 1) & (true_d <= threshold)
        dir_at[str(fpir)] = float(np.mean(found))
        threshold_at[str(fpir)] = threshold
    points = {}
    for k, tolerance in operating_points:
        stranger_lists = np.minimum((strangers_d <= tolerance).sum(1), k)
        points[f"k={k},tolerance={tolerance}"] = {
            "found_in_list": float(np.mean((rank <= k) & (true_d <= tolerance))),
            "strangers_with_any": float(np.mean(stranger_lists > 0)),
            "stranger_candidates_mean": float(np.mean(stranger_lists)),
        }
    return Identification(
        operating_points=points,
        mated=len(truth),
        non_mated=len(stranger_top),
        cmc=cmc,
        dir_at_fpir=dir_at,
        threshold_at_fpir=threshold_at,
        rank1_distances=np.where(rank == 1, true_d, np.inf).tolist(),
        non_mated_top=stranger_top.tolist(),
    )


# ------------------------------------------------------------------------------ calibration


def fitted_logistic(features: np.ndarray, labels: np.ndarray) -> list[float]:
    """Logistic regression of ``labels`` (0/1) on the columns of ``features`` (n, m): the
    weights ``[intercept, w1, ..., wm]`` of ``logit(P) = intercept + features @ w`` (Newton's
    method, ~10 iterations). Raises ``ValueError`` unless both labels occur."""
    y = np.asarray(labels, dtype=np.float64)
    if len(np.unique(y)) < 2:
        raise ValueError("a logistic fit needs both labels")
    x = np.asarray(features, dtype=np.float64).reshape(len(y), -1)
    design = np.column_stack([np.ones(len(y)), x])
    w = np.zeros(design.shape[1])
    for _ in range(100):
        p = 1 / (1 + np.exp(-np.clip(design @ w, -50, 50)))
        gradient = design.T @ (y - p)
        hessian = -(design.T * (p * (1 - p) + 1e-9)) @ design - 1e-6 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return [float(v) for v in w]


def fitted_calibration(
    distances: np.ndarray, same: np.ndarray, *, model: str, pipeline: str, fitted_on: str
) -> Calibration:
    """Logistic regression of ``same`` on distance (``fitted_logistic``)."""
    x = np.asarray(distances, dtype=np.float64)
    if len(np.unique(np.asarray(same))) < 2:
        raise ValueError("calibration needs both same-person and different-person pairs")
    w = fitted_logistic(x[:, None], np.asarray(same))  # logit(P) = w0 + w1 * x
    slope = -w[1]
    return Calibration(
        model=model,
        pipeline=pipeline,
        slope=float(slope),
        midpoint=float(-w[0] / w[1]),
        fitted_on=fitted_on,
        pairs=len(x),
        created_at=datetime.now(UTC).isoformat(),
    )


def calibration_checks(
    calibration: Calibration, distances: np.ndarray, same: np.ndarray
) -> dict[str, float]:
    """Brier score, log loss and accuracy at P=0.5 of a calibration on held-out pairs."""
    p = calibration.probability(distances)
    y = np.asarray(same, dtype=np.float64)
    eps = 1e-12
    return {
        "pairs": float(len(y)),
        "brier": float(np.mean((p - y) ** 2)),
        "log_loss": float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))),
        "accuracy_at_half": float(np.mean((p >= 0.5) == (y == 1))),
    }


def operating_point(distances: np.ndarray, same: np.ndarray, tolerance: float) -> dict[str, float]:
    """True-match and false-match rates of "distance <= tolerance" on labelled pairs."""
    accepted = distances <= tolerance
    same = same.astype(bool)
    return {
        "tolerance": tolerance,
        "true_match_rate": float(accepted[same].mean()) if same.any() else float("nan"),
        "false_match_rate": float(accepted[~same].mean()) if (~same).any() else float("nan"),
    }


def suggested_tolerance(
    distances: np.ndarray, same: np.ndarray, *, max_false_match_rate: float
) -> float:
    """The largest tolerance at which at most ``max_false_match_rate`` of different-person
    pairs are accepted (so as many true pairs as possible are kept)."""
    different = np.sort(np.asarray(distances)[~np.asarray(same, dtype=bool)])
    if not len(different):
        raise ValueError("needs different-person pairs")
    allowed = math.floor(max_false_match_rate * len(different))
    if allowed >= len(different):
        return float(different[-1])
    return float(different[allowed] - 1e-6)


def labelled_folder_pairs(
    folder: Path, *, cache_dir: Path, pipeline: Pipeline, max_pairs: int = 20_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(distances, same) of photo pairs from a folder with one sub-folder per person: every
    pair within a person (at most ``max_pairs``), and random pairs across people, as many or
    at least 500 (different-person pairs are plentiful, and the false-match rate needs many)."""
    people = {
        d.name: sorted(
            p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")
        )
        for d in sorted(folder.iterdir())
        if d.is_dir()
    }
    paths = [p for photos in people.values() for p in photos]
    images = embedded_images(paths, cache_dir=cache_dir, pipeline=pipeline)
    vectors = {p: e.embedding for p, e in images.items() if e.embedding is not None}
    owners = [(name, p) for name, photos in people.items() for p in photos if p in vectors]
    same_pairs = [
        (a, b) for i, (na, a) in enumerate(owners) for nb, b in owners[i + 1 :] if na == nb
    ][:max_pairs]
    rng = np.random.default_rng(seed)
    different_pairs: list[tuple[Path, Path]] = []
    wanted = min(max(len(same_pairs), 500), max_pairs)
    for _ in range(20 * wanted):
        if len(different_pairs) >= wanted or len(owners) < 2:
            break
        i, j = rng.integers(0, len(owners), 2)
        if owners[i][0] != owners[j][0]:
            different_pairs.append((owners[i][1], owners[j][1]))
    pairs = [(a, b, True) for a, b in same_pairs] + [(a, b, False) for a, b in different_pairs]
    distances = np.array([float(np.linalg.norm(vectors[a] - vectors[b])) for a, b, _ in pairs])
    return distances, np.array([s for _, _, s in pairs], dtype=bool)
