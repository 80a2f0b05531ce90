"""From nearest faces to ranked candidate cases.

The index answers per face; people are matched per case. A case with several photos scores by
its closest face, so ``best_per_case`` keeps each case's first (nearest) hit and ranks cases by
it. ``nearest_cases`` widens the face search until it has ``k`` distinct cases within the
tolerance or has run out of faces, because one case may own many of the nearest faces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

MISSING, FOUND = "missing", "found"


@dataclass(frozen=True)
class CaseMatch:
    """A case within tolerance of a probe face: its closest face and the L2 distance to it."""

    case_id: int
    face_id: int
    distance: float


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
