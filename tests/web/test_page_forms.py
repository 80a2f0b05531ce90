"""Odd input to the staff pages' forms: always a page in the user's language, never a 500."""

import html
import re

import pytest

from reunite.enrollment import prepared_photo
from reunite.faces import faces_in_image
from tests.web.conftest import csrf_token


def csrf(client, path="/intake"):  # type: ignore[no-untyped-def]
    return csrf_token(client, path)


def intake(client, lang="zh-CN", files=None, **fields):
    data = {"csrf_token": csrf(client), **fields}
    return client.post("/intake", data=data, files=files, headers={"Accept-Language": lang})


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"age_min": "²"}, "0 到 120"),
        ({"age_min": "-3"}, "0 到 120"),
        ({"age_max": "999"}, "0 到 120"),
        ({"date_found": "99999-01-01"}, "不是 1900 年到今天之间的日期"),
        ({"date_found": "1899-12-31"}, "不是 1900 年到今天之间的日期"),
        ({"taken_on": "2999-01-01"}, "不是 1900 年到今天之间的日期"),
        ({"name": "x" * 300}, "姓名：填写有误"),
        ({"agency": "bad agency!"}, "机构：填写有误"),
        ({}, "请至少选择一张照片"),
    ],
)
def test_intake_errors_are_shown_in_chinese_and_keep_the_form(staff, fields, expected):
    response = intake(staff, place="北京", **fields)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert expected in response.text
    assert 'value="北京"' in response.text


def test_pages_answer_bad_addresses_with_a_page(staff):
    for path in ("/cases/abc", "/cases/9223372036854775808", "/cases/424242"):
        response = staff.get(path, headers={"Accept-Language": "en"})
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")
        assert "Not found." in response.text or "There is no case" in response.text


def test_search_without_a_photo_and_an_overlong_note(staff):
    token = csrf(staff, "/search")
    response = staff.post(
        "/search", data={"csrf_token": token}, headers={"Accept-Language": "zh-CN"}
    )
    assert response.status_code == 422 and "请至少选择一张照片" in response.text
    decided = staff.post(
        "/candidates/1/decision",
        data={"csrf_token": token, "status": "confirmed", "note": "x" * 2001, "next": "/review"},
        headers={"Accept-Language": "en"},
    )
    assert decided.status_code == 200 and "The note is too long" in decided.text


def test_forms_without_the_csrf_token_change_nothing(staff, sample):
    refused = staff.post(
        "/intake",
        data={"place": "北京"},
        files={"photos": ("obama.jpg", sample("obama.jpg"), "image/jpeg")},
        headers={"Accept-Language": "en"},
    )
    assert refused.status_code == 422 and "stale" in refused.text
    assert staff.app.state.service.cases().total == 0


def test_the_queue_pages_through_every_candidate(staff, sample):
    service = staff.app.state.service
    missing = service.create_case({"kind": "missing"}, actor="t")
    service.enroll_photo(missing.id, sample("obama.jpg"), actor="t")
    for _ in range(27):
        found = service.create_case({"kind": "found"}, actor="t")
        service.enroll_photo(found.id, sample("obama2.jpg"), actor="t")
    seen, url = [], "/review?order=newest"
    while url:
        page = staff.get(url).text
        seen += re.findall(r'id="candidate-(\d+)"', page)
        more = re.search(r'id="queue-more" href="([^"]+)"', page)
        url = more.group(1).replace("&amp;", "&") if more else None
    assert len(seen) == 27 and len(set(seen)) == 27


def test_the_queue_shows_a_candidate_no_longer_proposed_last_with_its_flag(staff, sample):
    from reunite.store import CandidateRow, utc_now

    service = staff.app.state.service
    missing = service.create_case({"kind": "missing"}, actor="t")
    service.enroll_photo(missing.id, sample("obama.jpg"), actor="t")
    ids = []
    for photo in ("obama2.jpg", "obama3.jpg"):
        found = service.create_case({"kind": "found"}, actor="t")
        [view] = service.enroll_photo(found.id, sample(photo), actor="t").new_candidates
        ids.append(view.candidate.id)
    nearest = min(ids, key=lambda i: service.candidate(i).candidate.distance)
    with service.store.transaction() as session:  # as `reunite rematch` leaves it
        session.get_one(CandidateRow, nearest).superseded_at = utc_now()
    for lang, words in (("en", "No longer proposed"), ("zh-CN", "已不再推荐")):
        page = staff.get("/review", headers={"Accept-Language": lang}).text
        assert [int(i) for i in re.findall(r'id="candidate-(\d+)"', page)][-1] == nearest
        # On its card, and again in the card's confirm step (which lists the card's flags).
        assert page.count('data-code="no_longer_proposed"') == 2 and words in page


def test_the_case_page_links_each_face_to_its_whole_photo(staff, sample):
    service = staff.app.state.service
    case = service.create_case({"kind": "found"}, actor="t")
    photo = service.enroll_photo(case.id, sample("obama2.jpg"), actor="t").photo
    page = staff.get(f"/cases/{case.id}").text
    link = f'href="/api/v1/photos/{photo.id}/image"'
    assert link in page
    whole = staff.get(f"/api/v1/photos/{photo.id}/image")  # the staff session may open it
    assert whole.status_code == 200 and whole.content == sample("obama2.jpg")


def test_the_photo_date_applies_to_the_intakes_photos_and_its_hint_says_so(staff, sample):
    for lang, words in (  # left empty, the photo's date is unknown, as its card then says
        ("en", "Leave it empty if you do not know: the photos then show &#34;date unknown&#34;"),
        ("zh-CN", "不知道就留空：照片将显示“日期不详”"),
    ):
        page = staff.get("/intake", headers={"Accept-Language": lang}).text
        assert 'aria-describedby="f-taken_on-hint"' in page and words in page, lang
        assert "YYYY-MM-DD" in page and "视为在发现当天拍摄" not in page
    response = staff.post(
        "/intake",
        data={"csrf_token": csrf(staff), "date_found": "2024-03-05", "taken_on": "2023-12-24"},
        files=[
            ("photos", ("obama.jpg", sample("obama.jpg"), "image/jpeg")),
            ("photos", ("obama2.jpg", sample("obama2.jpg"), "image/jpeg")),
        ],
        follow_redirects=False,
    )
    assert response.status_code == 303
    service = staff.app.state.service
    [case] = service.cases().items
    photos = service.photos(case.id)
    assert [photo.taken_on.isoformat() for photo, _ in photos] == ["2023-12-24"] * 2


def test_a_face_chosen_by_an_import_is_flagged_on_the_pages_and_in_the_api(staff, sample):
    service = staff.app.state.service
    found = service.create_case({"kind": "found"}, actor="t")
    service.enroll_photo(found.id, sample("obama.jpg"), actor="t")
    missing = service.create_case({"kind": "missing"}, actor="t")
    group = prepared_photo(  # as reunite import --face central prepares it
        sample("two_people.jpg"),
        finder=faces_in_image,
        pipeline=service.pipeline,
        max_bytes=service.settings.max_upload_bytes,
        max_pixels=service.settings.max_pixels,
        face_choice="central",
    )
    [view] = service.enroll_prepared(missing.id, group, actor="t").new_candidates
    for lang, words in (
        ("en", "The missing person's photo shows several faces; the import chose the one nearest"),
        ("zh-CN", "走失人员的照片中有多张人脸，导入时自动选用了最靠近画面中心的人脸"),
    ):
        page = staff.get(f"/cases/{found.id}", headers={"Accept-Language": lang}).text
        assert 'data-code="face_chosen_automatically"' in page and words in html.unescape(page)
    answer = staff.get(f"/api/v1/cases/{found.id}/candidates").json()
    flags = [c["flags"] for c in answer if c["id"] == view.candidate.id]
    assert flags == [
        [{"code": "face_chosen_automatically", "facts": {"side": "missing", "choice": "central"}}]
    ]
