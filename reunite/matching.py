"""Case scoring: from the nearest faces to ranked candidate cases.

The index answers per face; people are matched per case, scored one of two ways
(``Settings.case_scoring``):

- ``mean`` (the default): a case scores by its template, the mean of its faces' embeddings. On
  LFW that finds a person enrolled with three photos at rank 1 in 97.7% of searches, against
  94.6% by the closest face (models/eval/identification.json). The nearest faces, searched a
  little wider than the tolerance (``TEMPLATE_SEARCH_MARGIN``), choose which cases to score.
- ``closest``: a case scores by its closest face. ``best_per_case`` keeps each case's first
  (nearest) hit and ranks cases by it; ``nearest_cases`` widens the face search until it has
  ``k`` distinct cases within the tolerance or has run out of faces, because one case may own
  many of the nearest faces.

``case_matches`` is the one entry point: open and matched cases of one kind, either way.

Each match also carries a **normalised score**: how far its distance stands out from the
probe's cohort, the distances from the probe to its ``cohort_size`` nearest cases of that kind
(closest face each), in the cohort's standard deviations (a per-search Z-norm):
``score = (cohort mean - distance) / cohort std``. Under this model some populations sit close
together (East-Asian faces, on LFW): there a distance of 0.5 is ordinary and the true person
stands out only against the probe's own neighbours. With fewer than ``MIN_COHORT_SIZE`` cases of
that kind there is no cohort and the score is None.

``rules_version`` names the rules that decide which candidates are proposed (the model, the
settings in ``MATCHING_SETTINGS``, the calibration), so that ``reunite rematch`` can find the
cases matched by other rules.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from reunite.config import MIN_COHORT_SIZE
from reunite.faces import MODEL_NAME
from reunite.index import FaceIndex
from reunite.store import CaseRow, FaceRow, embedding_vector

if TYPE_CHECKING:
    from reunite.config import Settings

MISSING, FOUND = "missing", "found"

MATCHING_SETTINGS = (
    "tolerance",
    "cross_age_tolerance",
    "photo_age_gap_years",
    "top_k",
    "case_scoring",
    "cohort_size",
    "min_score",
    "age_margin_years",
    "found_before_missing_days",
)
"""The settings that decide which candidates are proposed: a change of any of them changes
``rules_version``. Add a new matching setting here (and only here)."""

TEMPLATE_SEARCH_MARGIN = 0.1
"""How much wider than the tolerance the face search looks for cases to score by template (a
case's mean can be nearer than any one of its faces)."""

MAX_FACES_PER_CASE = 64
"""The face search for ``k`` cases stops widening at ``64 * k`` faces, so that a kind whose
nearest faces belong to few cases (or to closed ones) never makes a search read the whole index;
fewer cases (a smaller cohort) come back then."""


@dataclass(frozen=True)
class CaseMatch:
    """A case within tolerance of a probe face: its closest face, the L2 distance that scores
    it (to that face, or to the case's template), its normalised score in the search (None
    without a cohort) and its rank among the search's matches (1 = nearest)."""

    case_id: int
    face_id: int
    distance: float
    score: float | None = None
    rank: int = 1


@dataclass(frozen=True)
class Cohort:
    """The distances from a probe to its nearest cases of one kind, summarised."""

    mean: float
    std: float
    size: int

    def score(self, distance: float) -> float:
        """How many standard deviations ``distance`` is below the cohort's mean."""
        return (self.mean - distance) / self.std


def cohort_of(distances: list[float]) -> Cohort | None:
    """The cohort of these case distances, or None when there are fewer than
    ``MIN_COHORT_SIZE`` of them (or they do not vary)."""
    if len(distances) < MIN_COHORT_SIZE:
        return None
    values = np.asarray(distances, dtype=np.float64)
    std = float(values.std())
    if std <= 1e-6:
        return None
    return Cohort(mean=float(values.mean()), std=std, size=len(values))


def rules_version(settings: Settings, calibration_fingerprint: str) -> str:
    """A short, stable name (16 hex digits of SHA-256) of the rules that decide which
    candidates are proposed: the model, the ``MATCHING_SETTINGS`` and the calibration
    (``calibration.calibration_fingerprint``). Equal settings give the same name in any process."""
    rules = {name: getattr(settings, name) for name in MATCHING_SETTINGS}
    rules |= {"model": MODEL_NAME, "calibration": calibration_fingerprint}
    text = json.dumps(rules, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def other_kind(kind: str) -> str:
    """The kind a face of ``kind`` is matched against: missing <-> found."""
    return FOUND if kind == MISSING else MISSING


def best_per_case(
    hits: Iterable[tuple[int, float]], case_of_face: Mapping[int, int], *, k: int, tolerance: float
) -> list[CaseMatch]:
    """The ``k`` nearest cases, from face hits sorted nearest first.

    Faces missing from ``case_of_face`` (deleted since indexing, or in a case not eligible) are
    skipped. Hits farther than ``tolerance`` (L2) are dropped.
    """
    best: dict[int, CaseMatch] = {}
    for face_id, distance in hits:
        if distance > tolerance:
            break
        case_id = case_of_face.get(face_id)
        if case_id is None or case_id in best:
            continue
        best[case_id] = CaseMatch(case_id=case_id, face_id=face_id, distance=distance)
        if len(best) == k:
            break
    return sorted(best.values(), key=lambda m: (m.distance, m.case_id))


def nearest_cases(
    search: Callable[[int], list[tuple[int, float]]],
    case_of_faces: Callable[[list[int]], Mapping[int, int]],
    *,
    k: int,
    tolerance: float,
) -> list[CaseMatch]:
    """The ``k`` nearest eligible cases within ``tolerance``.

    ``search(n)`` returns the ``n`` nearest faces, nearest first; ``case_of_faces(ids)`` maps the
    eligible ones to their case ids. The face search starts at ``4 * k`` and grows fourfold while
    it returns only hits within tolerance and too few distinct cases, up to
    ``MAX_FACES_PER_CASE * k`` faces.
    """
    n_faces = 4 * k
    while True:
        hits = search(n_faces)
        within = [(face_id, d) for face_id, d in hits if d <= tolerance]
        matches = best_per_case(
            within, case_of_faces([f for f, _ in within]), k=k, tolerance=tolerance
        )
        exhausted = len(hits) < n_faces or len(within) < len(hits)
        if len(matches) >= k or exhausted or n_faces >= MAX_FACES_PER_CASE * k:
            return matches
        n_faces *= 4


def case_matches(
    session: Session,
    index: FaceIndex,
    embedding: np.ndarray,
    kind: str,
    *,
    k: int,
    tolerance: float,
    scoring: Literal["mean", "closest"],
    cohort_size: int,
) -> list[CaseMatch]:
    """The ``k`` nearest open or matched cases of ``kind`` within ``tolerance``, scored by
    ``scoring`` and normalised against the probe's ``cohort_size`` nearest cases (see the
    module's docstring), nearest first. ``face_id`` stays the case's closest face.

    Cost: one index search for ``max(cohort_size, 3 * k)`` cases (more faces when cases own
    several), and for ``mean`` scoring one read of the shortlisted cases' embeddings.
    """
    nearest = _nearest_by_face(session, index, embedding, kind, max(cohort_size, 3 * k), math.inf)
    cohort = cohort_of([m.distance for m in nearest[:cohort_size]])
    if scoring == "closest":
        matches = [m for m in nearest if m.distance <= tolerance][:k]
    else:
        wider = tolerance + TEMPLATE_SEARCH_MARGIN
        shortlist = [m for m in nearest[: 3 * k] if m.distance <= wider]
        matches = _by_template(session, shortlist, embedding, k=k, tolerance=tolerance)
    closest = {m.case_id: m.distance for m in nearest}
    return [  # scored by the closest face, as the cohort is: a template is nearer than any face
        replace(m, score=None if cohort is None else cohort.score(closest[m.case_id]), rank=rank)
        for rank, m in enumerate(matches, 1)
    ]


def _by_template(
    session: Session, shortlist: list[CaseMatch], embedding: np.ndarray, *, k: int, tolerance: float
) -> list[CaseMatch]:
    """The ``k`` shortlisted cases whose template (mean embedding) is nearest, within
    ``tolerance``."""
    if not shortlist:
        return []
    rows = session.execute(
        select(FaceRow.case_id, FaceRow.embedding).where(
            FaceRow.case_id.in_([m.case_id for m in shortlist]), FaceRow.model == MODEL_NAME
        )
    ).all()
    templates: dict[int, list[np.ndarray]] = {}
    for row in rows:
        templates.setdefault(row.case_id, []).append(embedding_vector(row.embedding))
    probe = np.asarray(embedding, dtype=np.float64)
    scored = []
    for match in shortlist:
        vectors = templates.get(match.case_id)
        if not vectors:  # deleted meanwhile
            continue
        distance = float(np.linalg.norm(np.mean(vectors, axis=0) - probe))
        if distance <= tolerance:
            scored.append(CaseMatch(match.case_id, match.face_id, distance))
    return sorted(scored, key=lambda m: (m.distance, m.case_id))[:k]


def _nearest_by_face(
    session: Session, index: FaceIndex, embedding: np.ndarray, kind: str, k: int, tolerance: float
) -> list[CaseMatch]:
    """The ``k`` cases of ``kind`` whose closest face is nearest, within ``tolerance``."""

    def case_of_faces(face_ids: list[int]) -> dict[int, int]:
        if not face_ids:
            return {}
        rows = session.execute(
            select(FaceRow.id, FaceRow.case_id)
            .join(CaseRow, CaseRow.id == FaceRow.case_id)
            .where(FaceRow.id.in_(face_ids), CaseRow.status != "closed")
        )
        return {r.id: r.case_id for r in rows}

    return nearest_cases(
        lambda n: index.search(kind, embedding, n), case_of_faces, k=k, tolerance=tolerance
    )
