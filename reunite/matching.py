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

``rules_version`` names the rules that decide which candidates are proposed (the model, the
settings in ``MATCHING_SETTINGS``, the calibration), so that ``reunite rematch`` can find the
cases matched by other rules.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

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
)
"""The settings that decide which candidates are proposed: a change of any of them changes
``rules_version``. Add a new matching setting here (and only here)."""

TEMPLATE_SEARCH_MARGIN = 0.1
"""How much wider than the tolerance the face search looks for cases to score by template (a
case's mean can be nearer than any one of its faces)."""


@dataclass(frozen=True)
class CaseMatch:
    """A case within tolerance of a probe face: its closest face and the L2 distance that
    scores it (to that face, or to the case's template)."""

    case_id: int
    face_id: int
    distance: float


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
    it returns only hits within tolerance and too few distinct cases.
    """
    n_faces = 4 * k
    while True:
        hits = search(n_faces)
        within = [(face_id, d) for face_id, d in hits if d <= tolerance]
        matches = best_per_case(
            within, case_of_faces([f for f, _ in within]), k=k, tolerance=tolerance
        )
        exhausted = len(hits) < n_faces or len(within) < len(hits)
        if len(matches) >= k or exhausted:
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
) -> list[CaseMatch]:
    """The ``k`` nearest open or matched cases of ``kind`` within ``tolerance``, scored by
    ``scoring`` (see the module's docstring). ``face_id`` stays the case's closest face."""
    if scoring == "closest":
        return _nearest_by_face(session, index, embedding, kind, k, tolerance)
    shortlist = _nearest_by_face(
        session, index, embedding, kind, 3 * k, tolerance + TEMPLATE_SEARCH_MARGIN
    )
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
