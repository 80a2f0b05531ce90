"""A candidate as a reviewer sees it: both cases, flags, decisions, the shown similarity and
a short explanation (rank, distance, score, flags); and the order a case's candidates are
listed in. Built by ``reunite.candidates``; shown by the API, the pages and webhooks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reunite import review
from reunite.calibration import SimilarityBasis
from reunite.store import CandidateDecisionRow, CandidateRow, CaseRow

Similarity = Callable[[float, float | None], float]
"""What a distance and its normalised score mean, in [0, 1] (see ``Reunite.similarity``)."""

SimilarityBasisOf = Callable[[float | None], SimilarityBasis]
"""What that similarity rests on, given the normalised score (see ``Reunite.similarity_basis``)."""


@dataclass(frozen=True)
class Explanation:
    """Why a candidate is in the list, as facts (the pages and receivers put them in words).

    ``rank``: 1 for the nearest case in the search that proposed it. ``distance``: L2 between
    the two faces' embeddings, smaller is closer. ``score``: how far the candidate stands out
    from the probe's other near faces, in standard deviations (higher stands out more).
    ``flags``: the codes of the candidate's flags. ``rank`` and ``score`` are None where
    unknown (a search with too small a cohort, or a candidate proposed before they existed).
    """

    rank: int | None
    distance: float
    score: float | None
    flags: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """The explanation as JSON (the API's and webhooks' ``explanation`` object)."""
        return {
            "rank": self.rank,
            "distance": self.distance,
            "score": self.score,
            "flags": list(self.flags),
        }


@dataclass(frozen=True)
class CandidateView:
    """A candidate as a reviewer sees it: both cases, consistency flags and past decisions."""

    candidate: CandidateRow
    found: CaseRow
    missing: CaseRow
    flags: list[review.Flag]
    decisions: list[CandidateDecisionRow]
    similarity: float
    similarity_basis: SimilarityBasis
    """What ``similarity`` rests on (``calibration.SimilarityBasis``): only ``search`` is a
    chance among the probe's near faces; the pages show no percentage otherwise."""
    blocked_by: tuple[int, ...] = ()
    """Ids of this pending candidate's cases already matched by another confirmed candidate:
    while any is listed, confirming it is refused (``Candidates.decide``)."""

    @property
    def explanation(self) -> Explanation:
        """Rank, distance, score and flag codes, from the candidate as stored and ``flags``."""
        c = self.candidate
        return Explanation(
            rank=c.rank,
            distance=c.distance,
            score=c.score,
            flags=tuple(f.code for f in self.flags),
        )


def in_review_order(views: list[CandidateView]) -> list[CandidateView]:
    """Candidates whose facts contradict (``review.CONTRADICTIONS``: sex, an impossible age,
    found before missing) below every candidate without a contradiction, and pending ones that
    today's rules no longer propose (``no_longer_proposed``) below those; within each part, the
    likeliest first (shown similarity), then the nearest. Agreeing facts never lift a
    candidate: only face evidence orders the candidates without a contradiction."""
    return sorted(
        views,
        key=lambda v: (
            any(f.code == "no_longer_proposed" for f in v.flags),
            any(f.code in review.CONTRADICTIONS for f in v.flags),
            -v.similarity,
            v.candidate.distance,
            v.candidate.id,
        ),
    )
