"""Search: the cases whose faces are near each face of a photo, nothing stored but an audit
record (ids and the photo's SHA-256 only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field

from reunite import audit, imaging
from reunite.calibration import SimilarityBasis
from reunite.candidate_view import Similarity, SimilarityBasisOf
from reunite.candidates import Candidates
from reunite.cases import cases_by_id
from reunite.config import Settings
from reunite.errors import InvalidField, NoFaceFound
from reunite.faces import Face, FaceFinder, Pipeline
from reunite.index import KINDS
from reunite.live_index import LiveIndex
from reunite.matching import CaseMatch
from reunite.store import CaseRow, Store


@dataclass(frozen=True)
class RankedCase:
    """A candidate case for one probe face: the case row, how close its nearest face is, and
    what that distance means (``similarity``, see ``Reunite.similarity``) and what that rests on
    (``similarity_basis``)."""

    case: CaseRow
    match: CaseMatch
    similarity: float
    similarity_basis: SimilarityBasis


@dataclass(frozen=True)
class FaceResult:
    """One face of a searched photo and its ranked candidate cases, nearest first."""

    face: Face
    ranked: list[RankedCase] = field(default_factory=list)


@dataclass(eq=False)
class Search:
    """Searches the cases of one store through the live index (``candidates.nearest`` scores
    them as matching does)."""

    settings: Settings
    store: Store
    _: KW_ONLY
    live: LiveIndex
    candidates: Candidates
    finder: FaceFinder
    pipeline: Pipeline
    similarity: Similarity
    similarity_basis: SimilarityBasisOf

    def search_image(
        self,
        image: imaging.DecodedImage,
        *,
        actor: str,
        kinds: Sequence[str] = KINDS,
        k: int | None = None,
        tolerance: float | None = None,
    ) -> list[FaceResult]:
        """Candidate cases for every face in a decoded photo; stores only an audit record.

        ``kinds`` says which cases to search (``missing``, ``found`` or both). Results per face
        are the ``k`` nearest cases within ``tolerance`` (settings' defaults), nearest first.

        Raises:
            NotReady, NoFaceFound (``FeaturelessImage`` for a nearly uniform image),
            InvalidField (unknown kind, bad k or tolerance).
        """
        self.live.require_ready()
        k = self.settings.top_k if k is None else k
        tolerance = self.settings.tolerance if tolerance is None else tolerance
        if not 1 <= k <= 200:
            raise InvalidField(f"k must be between 1 and 200, not {k}.")
        if not 0 < tolerance <= 2:
            raise InvalidField(f"tolerance must be in (0, 2], not {tolerance}.")
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown or not kinds:
            raise InvalidField(f"kinds must be among {list(KINDS)}, not {list(kinds)}.")
        imaging.check_detail(image.pixels)  # a blank image costs no detection
        faces = self.finder(image.pixels, self.pipeline)
        results = []
        with self.store.transaction() as session:
            for face in faces:
                matches = sorted(
                    (
                        m
                        for kind in kinds
                        for m in self.candidates.nearest(
                            session, face.embedding, kind, k, tolerance
                        )
                    ),
                    key=lambda m: (m.distance, m.case_id),
                )[:k]
                cases = cases_by_id(session, [m.case_id for m in matches])
                ranked = [
                    RankedCase(
                        cases[m.case_id],
                        m,
                        self.similarity(m.distance, m.score),
                        self.similarity_basis(m.score),
                    )
                    for m in matches
                    if m.case_id in cases
                ]
                results.append(FaceResult(face, ranked))  # a case deleted meanwhile is left out
            audit.record(
                session,
                actor,
                "search",
                None,
                kinds=list(kinds),
                photo_sha256=image.sha256,
                results=[[r.case.id for r in fr.ranked] for fr in results],
            )
        if not faces:
            raise NoFaceFound("No face was found in this photo. Try a clearer, front-facing photo.")
        return results
