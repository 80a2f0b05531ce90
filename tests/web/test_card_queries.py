"""A page of candidate cards reads every photo, agency and decider's name in a fixed number of
queries, however many cards it shows (never one query per card or per decision); and the names
read as people's display names, API keys' labels and prefixes."""

from __future__ import annotations

from sqlalchemy import event, update

from reunite import accounts, names
from reunite.store import AgencyRow, UserRow

CARD_READS = (
    "SELECT photos.",
    "SELECT faces.id, faces.photo_id",
    "SELECT agencies.",
    "SELECT users.username, users.display_name",
    "SELECT api_keys.prefix",
)
"""The reads ``cards.card_context`` adds to a page: photos, their faces, agencies' names, the
deciders (users and keys)."""


def card_reads(client) -> list[str]:  # type: ignore[no-untyped-def]
    """The card reads one queue page makes (other queries, and other threads', left out)."""
    statements: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(" ".join(statement.split()))

    engine = client.app.state.service.store.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        page = client.get("/review")
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert page.status_code == 200
    return [s[:40] for s in statements if s.startswith(CARD_READS)]


def test_a_page_of_cards_reads_photos_and_names_once_for_one_card_as_for_three(staff, sample):
    service = staff.app.state.service
    store = service.store
    for username in ("anna", "admin9"):
        accounts.create_user(store, username, "correct horse battery", "staff", actor="t")
    key, _ = accounts.create_api_key(store, "admin", agency=None, label="Shanghai", actor="t")
    with store.transaction() as session:
        session.add(AgencyRow(code="SHJZ", name="上海救助站"))
        session.execute(
            update(UserRow).where(UserRow.username == "anna").values(display_name="李安娜")
        )
    missing = service.create_case({"kind": "missing", "agency": "SHJZ"}, actor="t")
    service.enroll_photo(missing.id, sample("obama.jpg"), actor="t")
    candidates = []
    for photo in ("obama2.jpg", "obama3.jpg", "obama-1080p.jpg"):
        found = service.create_case({"kind": "found", "agency": "SHJZ"}, actor="t")
        [view] = service.enroll_photo(found.id, sample(photo), actor="t").new_candidates
        candidates.append(view.candidate.id)
    service.decide(candidates[0], "rejected", actor="user:anna", role="staff")
    service.decide(candidates[0], "pending", actor=f"key:{key.prefix}", role="admin", note="x")
    for other in candidates[1:]:  # only the first card on the page
        service.decide(other, "rejected", actor="user:anna", role="staff")
    one_card = card_reads(staff)
    assert len(one_card) == len(CARD_READS), one_card
    page = staff.get("/review", headers={"Accept-Language": "zh-CN"}).text
    assert page.count('<article class="candidate"') == 1
    assert "李安娜" in page and f"API 密钥“Shanghai”（{key.prefix}）" in page

    for other in candidates[1:]:  # three cards, each with its photos and deciders
        service.decide(other, "pending", actor="user:admin9", role="admin", note="again")
    assert card_reads(staff) == one_card
    page = staff.get("/review").text
    assert page.count('<article class="candidate"') == 3
    assert page.count("上海救助站 (SHJZ)") >= 6 and page.count("admin9") == 2


def test_actors_read_as_display_names_key_labels_and_prefixes(staff):
    store = staff.app.state.service.store
    accounts.create_user(store, "bo", "correct horse battery", "staff", actor="t")
    accounts.create_user(store, "cy", "correct horse battery", "staff", actor="t")
    with store.transaction() as session:
        session.execute(
            update(UserRow).where(UserRow.username == "cy").values(display_name="Cy Li")
        )
    row, _ = accounts.create_api_key(
        store, "staff", agency=None, label="Shanghai intake", actor="t"
    )
    found = names.actors(store, ["user:bo", "user:cy", f"key:{row.prefix}", "cli", "user:gone"])
    assert found["user:bo"] == names.Actor("user", "bo")  # no display name: the username
    assert found["user:cy"] == names.Actor("user", "Cy Li")
    assert found[f"key:{row.prefix}"] == names.Actor("key", "Shanghai intake", row.prefix)
    assert found["cli"] == names.Actor("other", "cli")
    assert found["user:gone"] == names.Actor("other", "user:gone")
