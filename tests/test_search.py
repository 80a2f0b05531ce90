"""Search: candidates per face, audit records only, and searching during deletions."""

from reunite.store import AuditEventRow, CandidateRow
from tests.conftest import ACTOR, new_case


def test_search_returns_candidates_per_face_and_stores_only_an_audit_record(service, sample):
    obama, biden = new_case(service, "missing"), new_case(service, "found")
    service.enroll_photo(obama.id, sample("obama.jpg"), actor=ACTOR)
    service.enroll_photo(biden.id, sample("biden.jpg"), actor=ACTOR)
    with service.store.transaction() as session:
        before = session.query(CandidateRow).count()
    results = service.search_photo(sample("obama_and_biden.jpg"), actor="searcher")
    matched = {r.ranked[0].case.id for r in results if r.ranked}
    assert matched == {obama.id, biden.id}
    only_missing = service.search_photo(
        sample("obama_and_biden.jpg"), actor="searcher", kinds=["missing"]
    )
    assert {r.ranked[0].case.id for r in only_missing if r.ranked} == {obama.id}
    with service.store.transaction() as session:
        assert session.query(CandidateRow).count() == before
        audit = session.query(AuditEventRow).filter_by(action="search", actor="searcher").all()
    assert len(audit) == 2
    assert sorted(i for ids in audit[0].details["results"] for i in ids) == sorted(
        [obama.id, biden.id]
    )


def test_searching_while_cases_are_deleted_never_fails(service, sample):
    from concurrent.futures import ThreadPoolExecutor

    cases = [new_case(service, "missing") for _ in range(12)]
    for case in cases:
        service.enroll_photo(case.id, sample("obama.jpg"), actor=ACTOR)
    with ThreadPoolExecutor(4) as pool:
        searches = [
            pool.submit(service.search_photo, sample("obama2.jpg"), actor=ACTOR) for _ in range(12)
        ]
        deletes = [
            pool.submit(service.delete_case, c.id, actor=ACTOR, reason="duplicate") for c in cases
        ]
        for future in searches + deletes:
            future.result()  # raises if any of them failed
    assert service.index.count() == 0
