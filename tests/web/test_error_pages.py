"""Errors on the staff pages and at unknown addresses outside /api/: a page in the user's
language (with the right status) for a browser, problem+json for the API and JSON clients."""

import pytest
from fastapi import APIRouter

from reunite import errors
from reunite.web.pages import PageRoute
from tests.conftest import key_headers
from tests.web.conftest import csrf_token

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
LANGUAGES = [("en", "There is no page at this address."), ("zh-CN", "此地址没有页面。")]


def is_page(response, status: int) -> bool:
    return (
        response.status_code == status
        and response.headers["content-type"].startswith("text/html")
        and 'href="/review"' in response.text
    )


def csrf(client, path="/intake"):  # type: ignore[no-untyped-def]
    return csrf_token(client, path)


@pytest.mark.parametrize(("lang", "words"), LANGUAGES)
@pytest.mark.parametrize("path", ["/nowhere", "/review/extra", "/static/nothing.css", "/a/b/c"])
def test_a_browser_at_an_unknown_path_gets_a_404_page(app_client, path, lang, words):
    response = app_client.get(path, headers={"Accept": BROWSER, "Accept-Language": lang})
    assert is_page(response, 404), response.text
    assert words in response.text and f'<html lang="{lang}">' in response.text


def test_the_language_cookie_chooses_the_404_pages_language(app_client):
    app_client.cookies.set("lang", "zh-CN")
    response = app_client.get("/nowhere", headers={"Accept": BROWSER, "Accept-Language": "en"})
    assert is_page(response, 404) and "此地址没有页面。" in response.text


def test_a_signed_in_user_gets_the_404_page_with_the_menu(staff):
    response = staff.get("/nowhere", headers={"Accept": BROWSER, "Accept-Language": "en"})
    assert is_page(response, 404) and 'href="/intake"' in response.text


@pytest.mark.parametrize("accept", [None, "application/json", "*/*"])
def test_a_json_client_at_an_unknown_path_keeps_problem_json(app_client, accept):
    headers = {"Accept": accept} if accept else {}
    response = app_client.get("/nowhere", headers=headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("path", ["/api/v1/nowhere", "/api/nowhere", "/api"])
def test_api_paths_keep_problem_json_even_for_a_browser(app_client, path):
    response = app_client.get(path, headers={"Accept": BROWSER})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


def test_api_method_not_allowed_stays_problem_json(app_client):
    response = app_client.delete("/api/v1/cases", headers={"Accept": BROWSER})
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("lang", "words"), [("en", "cannot be used that way"), ("zh-CN", "此页面不能这样使用")]
)
def test_a_wrong_method_on_a_page_is_a_405_page(app_client, lang, words):
    response = app_client.get("/logout", headers={"Accept": BROWSER, "Accept-Language": lang})
    assert is_page(response, 405) and words in response.text
    assert "POST" in response.headers["allow"]


@pytest.mark.parametrize(("lang", "words"), [("en", "over 1 MB"), ("zh-CN", "超过 1 MB")])
def test_a_page_form_over_the_body_limit_is_a_413_page(staff, lang, words):
    response = staff.post(
        "/candidates/1/decision",
        data={"csrf_token": csrf(staff), "status": "confirmed", "note": "x" * 1_100_000},
        headers={"Accept": BROWSER, "Accept-Language": lang},
    )
    assert is_page(response, 413) and words in response.text


def test_an_api_body_over_the_limit_stays_problem_json(app_client):
    response = app_client.post(  # with a key: a body without a caller is refused 401 first
        "/api/v1/cases",
        content=b"{" + b" " * 1_100_000 + b"}",
        headers={
            "Accept": BROWSER,
            "Content-Type": "application/json",
            **key_headers(app_client, "staff"),
        },
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("lang", "words"), [("en", "Please correct"), ("zh-CN", "请更正")])
def test_a_page_form_without_its_fields_is_a_422_page(staff, lang, words):
    response = staff.post(
        "/candidates/1/decision",
        data={"csrf_token": csrf(staff)},
        headers={"Accept": BROWSER, "Accept-Language": lang},
    )
    assert is_page(response, 422) and words in response.text


@pytest.mark.parametrize(("lang", "words"), [("en", "Not found."), ("zh-CN", "未找到。")])
def test_a_malformed_case_id_is_a_404_page(staff, lang, words):
    response = staff.get("/cases/abc", headers={"Accept-Language": lang})
    assert is_page(response, 404) and words in response.text


ERRORS = [
    (errors.Forbidden("no"), 403, "You are not allowed", "没有权限"),
    (errors.NotFound("no case 7"), 404, "", ""),
    (errors.Conflict("already matched"), 409, "This cannot be done now", "目前无法执行"),
    (errors.ImageTooLarge("big"), 413, "This photo is too large", "照片太大"),
    (errors.UnsupportedImage("gif"), 415, "not a JPEG, PNG or WebP", "不是 JPEG"),
    (errors.InvalidInput("bad"), 422, "bad", "无法完成此操作"),
    (errors.RateLimited("slow", retry_after_s=7), 429, "Too many requests", "请求过于频繁"),
    (errors.NotReady("starting"), 503, "The service is starting", "系统正在启动"),
    (RuntimeError("boom"), 500, "Something went wrong on our side", "系统出错"),
]


@pytest.fixture
def failing_pages(app_client):
    """The real app with one more page route (a real ``PageRoute``) that raises a given error,
    standing for any page that meets it."""
    router = APIRouter(route_class=PageRoute)

    @router.get("/test-fails/{index}")
    def fails(index: int) -> None:
        raise ERRORS[index][0]

    app_client.app.include_router(router)
    return app_client


@pytest.mark.parametrize("index", range(len(ERRORS)))
@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_every_error_a_page_meets_is_a_page_in_both_languages(failing_pages, index, lang):
    _error, status, en_words, zh_words = ERRORS[index]
    response = failing_pages.get(f"/test-fails/{index}", headers={"Accept-Language": lang})
    assert is_page(response, status), response.text
    assert f'<html lang="{lang}">' in response.text
    assert f"{status}" in response.text
    words = en_words if lang == "en" else zh_words
    assert words in response.text
    if lang == "zh-CN":  # never the error's English words on a Chinese page
        assert f">{_error}" not in response.text and f"：{_error}" not in response.text
    if status == 429:
        assert response.headers["retry-after"] == "7"


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("en", "This link to more results is out of date or damaged."),
        ("zh-CN", "此翻页链接已过期或已损坏，请从第一页重新开始。"),
    ],
)
@pytest.mark.parametrize("cursor", ["garbage", "W10", "WzEsMl0"])  # not base64 JSON; [], [1,2]
def test_a_bad_cursor_on_a_page_says_so_in_the_pages_language(staff, lang, words, cursor):
    for order in ("closest", "newest"):
        response = staff.get(
            f"/review?order={order}&cursor={cursor}", headers={"Accept-Language": lang}
        )
        assert is_page(response, 422) and words in response.text
        assert "cursor" not in response.text.split("<main", 1)[1]  # no English detail


def test_an_error_without_words_of_its_own_is_still_in_the_pages_language():
    from reunite.web import i18n

    untranslated = errors.InvalidField("The k parameter must be at most 200.")
    assert i18n.error_text("zh-CN", untranslated) == "请检查提交的内容：其中有无效的部分。"
    assert "k parameter" in i18n.error_text("en", untranslated)  # English keeps the detail
    refused = errors.ReuniteError("something new")
    assert i18n.error_text("zh-CN", refused) == "无法完成此操作，请返回后重试。"
    assert i18n.error_text("en", refused) == "something new"
