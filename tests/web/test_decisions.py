"""Deciding on a candidate with care, through the real app: a pair that cannot be confirmed
says why before any click, and the message after a decision names the pair."""

import re

import pytest

from reunite import accounts
from reunite.agencies import add_agency
from tests.web.conftest import PASSWORD, csrf_token


def csrf(client, path="/review"):  # type: ignore[no-untyped-def]
    return csrf_token(client, path)


def card(page: str, candidate_id: int) -> str:
    found = re.search(rf'id="candidate-{candidate_id}".*?</article>', page, re.DOTALL)
    assert found, candidate_id
    return found.group(0)


def decide(client, candidate_id, status, lang):
    return client.post(
        f"/candidates/{candidate_id}/decision",
        data={"status": status, "csrf_token": csrf(client), "next": "/review"},
        headers={"Accept-Language": lang},
    )


@pytest.fixture
def two_candidates(staff, sample):
    """A missing case and two found cases, each proposed as that person: (missing, [(found,
    candidate)])."""
    service = staff.app.state.service
    missing = service.create_case({"kind": "missing"}, actor="t")
    service.enroll_photo(missing.id, sample("obama.jpg"), actor="t")
    pairs = []
    for photo in ("obama2.jpg", "obama3.jpg"):
        found = service.create_case({"kind": "found"}, actor="t")
        [view] = service.enroll_photo(found.id, sample(photo), actor="t").new_candidates
        pairs.append((found.id, view.candidate.id))
    return missing.id, pairs


def test_a_pair_that_cannot_be_confirmed_says_why_before_any_click(staff, two_candidates):
    missing, [(_, first), (found, second)] = two_candidates
    page = staff.get("/review", headers={"Accept-Language": "en"}).text
    assert 'class="blocked"' not in page and "disabled" not in card(page, second)

    staff.app.state.service.decide(first, "confirmed", actor="t", role="staff")
    for lang, words in (
        ("en", f"Case {missing} is already matched by another confirmed candidate; "),
        ("zh-CN", f"案件 {missing} 已由另一条已确认的候选匹配认定；"),
    ):
        for path in ("/review", f"/cases/{found}"):
            shown = card(staff.get(path, headers={"Accept-Language": lang}).text, second)
            assert words in shown, (lang, path)
            button = re.search(r'<button[^>]*class="confirm"[^>]*>', shown).group(0)
            assert "disabled" in button and f'aria-describedby="blocked-{second}"' in button
            assert 'value="confirmed"' not in shown  # no way to send a refused confirmation
    assert staff.app.state.service.candidate(second).blocked_by == (missing,)


def test_the_message_after_a_decision_names_the_pair(staff, two_candidates):
    missing, [(found1, first), (found2, second)] = two_candidates
    done = decide(staff, first, "confirmed", "en")
    assert f"Candidate {first} (found case {found1} ↔ missing case {missing}): confirmed." in (
        done.text
    )
    done = decide(staff, second, "rejected", "zh-CN")
    assert f"候选匹配 {second}（受助案件 {found2} ↔ 走失案件 {missing}）：已排除。" in done.text


def test_the_notices_name_each_case_by_its_agency_reference_where_it_has_one(staff, sample):
    service = staff.app.state.service
    add_agency(service.store, "SHJZ", "上海救助站", actor="t")
    missing = service.create_case(
        {"kind": "missing", "agency": "SHJZ", "external_ref": "SH-2024-0031"}, actor="t"
    )
    service.enroll_photo(missing.id, sample("obama.jpg"), actor="t")
    found = service.create_case({"kind": "found"}, actor="t")
    [view] = service.enroll_photo(found.id, sample("obama2.jpg"), actor="t").new_candidates
    pair = view.candidate.id
    for lang, saved, undone in (
        (
            "en",
            f"Candidate {pair} (found case {found.id} ↔ missing person SH-2024-0031 "
            "(上海救助站)): confirmed.",
            f"Undone: candidate {pair} (found case {found.id} ↔ missing person SH-2024-0031 "
            "(上海救助站)) is pending again.",
        ),
        (
            "zh-CN",
            f"候选匹配 {pair}（受助案件 {found.id} ↔ 走失人员 SH-2024-0031（上海救助站））"
            "：已确认。",
            f"已撤销：候选匹配 {pair}（受助案件 {found.id} ↔ 走失人员 SH-2024-0031（上海救助站））"
            "恢复为待审核。",
        ),
    ):
        done = decide(staff, pair, "confirmed", lang)
        assert saved in done.text, lang
        assert f"case {missing.id}" not in done.text and f"案件 {missing.id}" not in done.text
        offered = undo_form(done.text)
        assert offered, lang
        back = staff.post(
            offered["action"],
            data={"decision": offered["decision"], "csrf_token": csrf(staff), "next": "/review"},
            headers={"Accept-Language": lang},
        )
        assert undone in back.text, lang


def test_confirming_asks_once_more_in_place_in_both_languages(staff, two_candidates):
    missing, [(found, first), _] = two_candidates
    for lang, words, final in (
        ("en", f"Confirm that found case {found} and missing case {missing} are the same", "Yes,"),
        ("zh-CN", f"确认受助案件 {found} 与走失案件 {missing} 是同一人？", "是，确认此匹配"),
    ):
        shown = card(staff.get("/review", headers={"Accept-Language": lang}).text, first)
        step = re.search(r'<details class="confirm-step">.*?</details>', shown, re.DOTALL).group(0)
        assert '<summary class="confirm">' in step and words in step and final in step
        assert step.count('value="confirmed"') == 1  # the only way to confirm is inside it
        assert shown.count('value="confirmed"') == 1


# ------------------------------------------------------------------------------- undo


def undo_form(page: str) -> dict[str, str] | None:
    """The notice's undo form: its action, decision and window text; None when not offered."""
    found = re.search(
        r'<form method="post" action="(?P<action>/candidates/\d+/undo)".*?'
        r'name="decision" value="(?P<decision>\d+)".*?id="undo-window"[^>]*>(?P<window>[^<]*)<',
        page,
        re.DOTALL,
    )
    return found.groupdict() if found else None


def sign_in_as(client, username: str) -> None:  # type: ignore[no-untyped-def]
    client.post("/logout", data={"csrf_token": csrf(client)})
    signed = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf(client, "/login")},
        follow_redirects=False,
    )
    assert signed.status_code == 303


def test_the_notice_offers_an_undo_that_puts_the_pair_back(staff, two_candidates):
    missing, [(found, first), _] = two_candidates
    service = staff.app.state.service
    for lang, window, undone in (
        ("en", "You can undo this within 2 minutes.", "is pending again."),
        ("zh-CN", "2 分钟内可以撤销。", "恢复为待审核。"),
    ):
        done = decide(staff, first, "confirmed", lang)
        offered = undo_form(done.text)
        assert offered, lang
        assert offered["action"] == f"/candidates/{first}/undo" and offered["window"] == window
        assert int(offered["decision"]) == service.candidate(first).decisions[-1].id
        assert undo_form(staff.get("/review").text) is None  # offered once, after the decision
        assert service.case(missing).status == "matched"
        back = staff.post(
            offered["action"],
            data={"decision": offered["decision"], "csrf_token": csrf(staff), "next": "/review"},
            headers={"Accept-Language": lang},
        )
        assert back.status_code == 200 and undone in back.text and undo_form(back.text) is None
        assert service.candidate(first).candidate.status == "pending"
        assert {service.case(missing).status, service.case(found).status} == {"open"}


def test_an_undo_refused_says_why_in_the_readers_language(staff, two_candidates):
    _, [(_, first), _] = two_candidates
    service = staff.app.state.service
    offered = undo_form(decide(staff, first, "rejected", "en").text)
    assert offered
    form = {"decision": offered["decision"], "next": "/review"}

    stale = staff.post(offered["action"], data={**form, "csrf_token": "stale"})
    assert "This form is stale" in stale.text  # and nothing undone
    assert service.candidate(first).candidate.status == "rejected"

    accounts.create_user(service.store, "staff2", PASSWORD, "staff", actor="test")
    sign_in_as(staff, "staff2")
    for lang, words in (
        ("en", "Only the person who made this decision can undo it."),
        ("zh-CN", "只有做出此决定的人才能撤销。"),
    ):
        refused = staff.post(
            offered["action"],
            data={**form, "csrf_token": csrf(staff)},
            headers={"Accept-Language": lang},
        )
        assert refused.status_code == 200 and words in refused.text, lang
    assert service.candidate(first).candidate.status == "rejected"

    for bad in ("x", "0", str(2**64)):
        malformed = staff.post(
            offered["action"], data={**form, "decision": bad, "csrf_token": csrf(staff)}
        )
        assert malformed.status_code == 422 and "Traceback" not in malformed.text, bad
    unknown = staff.post(
        offered["action"], data={**form, "decision": "999999", "csrf_token": csrf(staff)}
    )
    notice = re.search(r"class=\"notice\"[^>]*>([^<]*)<", unknown.text)
    assert unknown.status_code == 200 and notice and notice.group(1) == "Not found.", notice


def test_no_undo_is_offered_for_a_reopening(staff, two_candidates):
    _, [(_, first), _] = two_candidates
    service = staff.app.state.service
    accounts.create_user(service.store, "admin2", PASSWORD, "admin", actor="test")
    sign_in_as(staff, "admin2")
    assert undo_form(decide(staff, first, "rejected", "en").text)
    reopened = staff.post(
        f"/candidates/{first}/decision",
        data={"status": "pending", "note": "a second look", "csrf_token": csrf(staff)},
    )
    assert "pending." in reopened.text and undo_form(reopened.text) is None


def test_a_decision_can_be_undone_from_its_card_by_its_maker_while_the_window_is_open(
    staff, two_candidates
):
    """Not only from the notice: the case page's card offers the maker's undo (with its end
    time in the center's zone) until the window closes; nobody else sees it."""
    _, [(found, first), _] = two_candidates
    decide(staff, first, "rejected", "en")
    for lang, words in (
        ("en", "Your decision: you can undo it until "),
        ("zh-CN", "这是您的决定，"),
    ):
        shown = card(staff.get(f"/cases/{found}", headers={"Accept-Language": lang}).text, first)
        assert 'class="undo card-undo"' in shown and words in shown, lang
    staff.app.state.service.decide(first, "pending", actor="user:admin1", role="admin", note="x")
    shown = card(staff.get(f"/cases/{found}").text, first)
    assert "card-undo" not in shown  # the last decision is someone else's

    decide(staff, first, "rejected", "en")
    form = re.search(
        r'<form method="post" action="(/candidates/\d+/undo)" class="undo card-undo">.*?'
        r'name="decision" value="(\d+)"',
        card(staff.get(f"/cases/{found}").text, first),
        re.DOTALL,
    )
    assert form
    back = staff.post(
        form.group(1),
        data={"decision": form.group(2), "csrf_token": csrf(staff), "next": f"/cases/{found}"},
    )
    assert back.status_code == 200 and "card-undo" not in card(back.text, first)
    assert staff.app.state.service.candidate(first).candidate.status == "pending"
