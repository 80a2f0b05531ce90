"""Re-matching after the rules change: a tighter tolerance supersedes pending candidates (kept,
flagged, listed last), a looser one restores them and proposes new pairs; decided candidates
are never touched (real photos, real dlib, SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from sqlalchemy import select

from reunite.config import Settings
from reunite.rematching import rematch_cases
from reunite.service import Reunite
from reunite.store import AuditEventRow, CandidateRow
from tests.conftest import ACTOR, MemoFinder, new_case

TIGHT = 0.37
"""Between obama/obama2 (about 0.35) and obama2/obama3 (about 0.43), john1/john2 (0.39),
rose_leslie1/rose_leslie2 (0.41)."""


def opened(settings: Settings, finder: MemoFinder, **rules: object) -> Reunite:
    return Reunite.open(settings.model_copy(update=rules), finder=finder)


def gallery(service: Reunite, sample: Callable[[str], bytes]) -> dict[str, int]:
    """Four missing and three found cases; john's pair confirmed, rose's rejected; the two
    obama pairs pending. Returns the case ids by name."""
    ids = {}
    for name, kind, photo in [
        ("m_obama", "missing", "obama.jpg"),
        ("m_obama3", "missing", "obama3.jpg"),
        ("m_john", "missing", "john1.jpeg"),
        ("m_rose", "missing", "rose_leslie1.jpg"),
        ("f_obama2", "found", "obama2.jpg"),
        ("f_john", "found", "john2.jpeg"),
        ("f_rose", "found", "rose_leslie2.jpg"),
    ]:
        ids[name] = new_case(service, kind).id
        service.enroll_photo(ids[name], sample(photo), actor=ACTOR)
    for case, status in [("f_john", "confirmed"), ("f_rose", "rejected")]:
        [view] = service.candidates(ids[case])
        service.decide(view.candidate.id, status, actor=ACTOR, role="admin")
    return ids


def candidates_by_pair(service: Reunite) -> dict[tuple[int, int], CandidateRow]:
    with service.store.transaction() as session:
        rows = session.scalars(select(CandidateRow)).all()
        session.expunge_all()
    return {(r.missing_case_id, r.found_case_id): r for r in rows}


def test_tighter_rules_supersede_and_looser_ones_restore_and_propose(settings, finder, sample):
    with opened(settings, finder) as service:
        ids = gallery(service, sample)
        before = candidates_by_pair(service)
        assert rematch_cases(service.candidate_records).cases == 0  # a fresh store is current
    decided = {p: c for p, c in before.items() if c.status != "pending"}
    assert len(decided) == 2
    obama3_pair = (ids["m_obama3"], ids["f_obama2"])
    obama_pair = (ids["m_obama"], ids["f_obama2"])

    with opened(settings, finder, tolerance=TIGHT) as service:
        report = rematch_cases(service.candidate_records)
        assert (report.cases, report.cases_matched) == (7, 7)
        assert (report.candidates_proposed, report.candidates_superseded) == (0, 1)
        after = candidates_by_pair(service)
        assert after[obama3_pair].superseded_at is not None
        assert after[obama3_pair].status == "pending"
        assert after[obama_pair].superseded_at is None
        for pair, candidate in decided.items():  # never touched
            assert _facts(after[pair]) == _facts(candidate)
        [view] = service.candidates(ids["m_obama3"])
        assert view.flags[-1].code == "no_longer_proposed"
        assert view.flags[-1].facts == {"since": after[obama3_pair].superseded_at.isoformat()}
        with service.store.transaction() as session:
            [event] = session.scalars(
                select(AuditEventRow).where(AuditEventRow.action == "candidate.superseded")
            ).all()
            assert event.details == {
                "candidate_id": after[obama3_pair].id,
                "missing_case_id": ids["m_obama3"],
            }
        # A new case under today's rules: obama3 again, beyond the tight tolerance.
        ids["m_obama3_b"] = new_case(service, "missing").id
        enrolled = service.enroll_photo(ids["m_obama3_b"], sample("obama3.jpg"), actor=ACTOR)
        assert enrolled.new_candidates == []
        again = rematch_cases(service.candidate_records)
        assert (again.cases, again.cases_matched, again.candidates_superseded) == (0, 0, 0)

    with opened(settings, finder) as service:
        report = rematch_cases(service.candidate_records)
        assert report.cases_matched == 8
        assert (report.candidates_restored, report.candidates_superseded) == (1, 0)
        assert report.candidates_proposed == 1
        final = candidates_by_pair(service)
        assert final[obama3_pair].superseded_at is None
        assert final[(ids["m_obama3_b"], ids["f_obama2"])].status == "pending"
        for pair, candidate in decided.items():
            assert _facts(final[pair]) == _facts(candidate)
        [view] = service.candidates(ids["m_obama3"])
        assert all(f.code != "no_longer_proposed" for f in view.flags)


def _facts(c: CandidateRow) -> tuple[object, ...]:
    return (c.status, c.superseded_at, c.distance, c.updated_at, c.found_face_id)


def test_a_limited_run_resumes_with_the_same_end_state(tmp_path, finder, sample):
    from tests.conftest import settings_in

    ends = []
    for name, limits in [("whole", [None]), ("parts", [3, 2, None])]:
        settings = settings_in(tmp_path / name)
        with opened(settings, finder) as service:
            gallery(service, sample)
        reports = []
        with opened(settings, finder, tolerance=TIGHT) as service:
            for limit in limits:
                reports.append(asdict(rematch_cases(service.candidate_records, limit=limit)))
            pairs = candidates_by_pair(service)
        ends.append(
            (
                sum(r["candidates_superseded"] for r in reports),
                sorted((c.status, c.superseded_at is not None, c.distance) for c in pairs.values()),
            )
        )
        if name == "parts":
            assert [r["remaining"] for r in reports] == [4, 2, 0]
            assert [r["cases_matched"] for r in reports] == [3, 2, 2]
    assert ends[0] == ends[1]
