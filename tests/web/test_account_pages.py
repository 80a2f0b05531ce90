"""The account pages over HTTP: changing one's own password, and the admins' accounts page."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from reunite import accounts
from reunite.store import AuditEventRow as AuditRow

PASSWORD = "correct horse battery"
NEW_PASSWORD = "purple elephant umbrella"


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    signed = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text


def csrf(client: TestClient, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found
    return found.group(1)


def second_client(client: TestClient) -> TestClient:
    return TestClient(client.app)


@pytest.fixture
def store(app_client):
    store = app_client.app.state.service.store
    accounts.create_user(store, "staff1", PASSWORD, "staff", actor="test")
    accounts.create_user(store, "admin1", PASSWORD, "admin", actor="test")
    return store


def actions(store, action: str) -> list[str]:
    with store.transaction() as session:
        return list(session.scalars(select(AuditRow.actor).where(AuditRow.action == action)))


def test_change_own_password_ends_other_sessions(app_client, store):
    sign_in(app_client, "staff1")
    other = second_client(app_client)
    sign_in(other, "staff1")
    page = app_client.get("/review", headers={"Accept-Language": "en"})
    assert 'href="/account/password"' in page.text and "/admin/users" not in page.text
    changed = app_client.post(
        "/account/password",
        data={
            "current": PASSWORD,
            "new": NEW_PASSWORD,
            "again": NEW_PASSWORD,
            "csrf_token": csrf(app_client, "/account/password"),
        },
        headers={"Accept-Language": "en"},
    )
    assert changed.status_code == 200 and "Your password is changed" in changed.text
    assert app_client.get("/review", follow_redirects=False).status_code == 200  # still in
    assert other.get("/review", follow_redirects=False).status_code == 303  # signed out
    assert actions(store, "user.reset_password") == ["user:staff1"]
    sign_in(second_client(app_client), "staff1", NEW_PASSWORD)


@pytest.mark.parametrize(
    ("fields", "lang", "field", "expected"),
    [
        ({"current": "wrong one", "new": NEW_PASSWORD, "again": NEW_PASSWORD}, "en", "current",
         "That is not your current password."),
        ({"current": PASSWORD, "new": NEW_PASSWORD, "again": "other"}, "zh-CN", "again",
         "两次输入的新密码不一致"),
        ({"current": PASSWORD, "new": "short", "again": "short"}, "en", "new",
         "A password needs at least"),
        ({"current": PASSWORD, "new": "short", "again": "short"}, "zh-CN", "new",
         "新密码不符合要求：密码至少需要 10 个字符。"),
        ({"current": PASSWORD, "new": "qwertyuiop", "again": "qwertyuiop"}, "zh-CN", "new",
         "新密码不符合要求：这是最常见的密码之一，请另选一个。"),
        ({"current": PASSWORD, "new": "qwertyuiop", "again": "qwertyuiop"}, "en", "new",
         "That password is one of the most common ones; choose another."),
    ],
)  # fmt: skip
def test_a_refused_password_change_says_why_next_to_the_field(
    app_client, store, fields, lang, field, expected
):
    sign_in(app_client, "staff1")
    token = csrf(app_client, "/account/password")
    refused = app_client.post(
        "/account/password",
        data={**fields, "csrf_token": token},
        headers={"Accept-Language": lang},
    )
    assert refused.status_code == 422
    assert re.search(rf'id="{field}-error"[^>]*>[^<]*{re.escape(expected)}', refused.text)
    assert actions(store, "user.reset_password") == []
    sign_in(second_client(app_client), "staff1")  # the old password still works


@pytest.mark.parametrize(
    ("lang", "rule"),
    [
        ("en", "At least 10 characters, and not one of the most common passwords"),
        ("zh-CN", "至少 10 个字符，且不能是最常见的密码之一"),
    ],
)
def test_every_password_field_states_the_policy_next_to_it(app_client, store, lang, rule):
    """The rule under the field, referenced by its aria-describedby: one's own new password
    and an admin's reset, with the least length the server is set to."""
    sign_in(app_client, "admin1")
    own = app_client.get("/account/password", headers={"Accept-Language": lang}).text
    assert re.search(r'<input id="f-new" [^>]*aria-describedby="new-hint"', own)
    assert re.search(rf'id="new-hint">{re.escape(rule)}', own)
    for name in ("current", "again"):
        assert re.search(rf'<input id="f-{name}" [^>]*aria-describedby="{name}-hint"', own)
    users = app_client.get("/admin/users", headers={"Accept-Language": lang}).text
    staff = next(u for u in accounts.users(store) if u.username == "staff1")
    hints = re.findall(r'id="password-hint-(\d+)">([^<]*)<', users)
    assert len(hints) == 2 and all(text.startswith(rule) for _, text in hints), hints
    assert f'aria-describedby="password-hint-{staff.id}"' in users


def test_a_refused_password_change_marks_every_wrong_field_and_focuses_the_first(app_client, store):
    sign_in(app_client, "staff1")
    refused = app_client.post(
        "/account/password",
        data={
            "current": "wrong one",
            "new": "short",
            "again": "short",
            "csrf_token": csrf(app_client, "/account/password"),
        },
        headers={"Accept-Language": "zh-CN"},
    )
    assert refused.status_code == 422
    inputs = {
        name: tag
        for tag in re.findall(r"<input [^>]*>", refused.text)
        if (name := re.search(r'name="(\w+)"', tag).group(1)) in ("current", "new", "again")  # type: ignore[union-attr]
    }
    assert 'aria-invalid="true"' in inputs["current"] and "autofocus" in inputs["current"]
    assert 'aria-invalid="true"' in inputs["new"] and "autofocus" not in inputs["new"]
    assert 'aria-describedby="new-hint new-error"' in inputs["new"]
    assert "aria-invalid" not in inputs["again"]  # the same as a new one that is refused
    summary = re.search(
        r'<div class="error error-summary" role="alert" id="password-errors">.*?</div>',
        refused.text,
        re.S,
    )
    assert summary and re.findall(r'href="#(f-\w+)"', summary.group(0)) == ["f-current", "f-new"]
    assert "当前密码不正确。" in summary.group(0)


def test_password_change_needs_the_csrf_token(app_client, store):
    sign_in(app_client, "staff1")
    refused = app_client.post(
        "/account/password",
        data={"current": PASSWORD, "new": NEW_PASSWORD, "again": NEW_PASSWORD},
        headers={"Accept-Language": "en"},
    )
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("text/html")
    assert actions(store, "user.reset_password") == []


def test_staff_are_denied_the_accounts_page(app_client, store):
    sign_in(app_client, "staff1")
    for response in (
        app_client.get("/admin/users", headers={"Accept-Language": "en"}),
        app_client.post(
            "/admin/users/admin1/enabled",
            data={"enabled": "0", "csrf_token": csrf(app_client, "/review")},
            headers={"Accept-Language": "en"},
        ),
    ):
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("text/html")
        assert "You are not allowed to do this." in response.text
    assert actions(store, "user.disable") == []


def test_visitors_are_sent_to_sign_in(app_client, store):
    for path in ("/admin/users", "/account/password"):
        answer = app_client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


def test_admin_manages_accounts(app_client, store):
    sign_in(app_client, "admin1")
    staff = second_client(app_client)
    sign_in(staff, "staff1")
    page = app_client.get("/admin/users", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 200 and "账户管理" in page.text
    assert 'data-username="staff1"' in page.text and "工作人员" in page.text
    token = csrf(app_client, "/admin/users")

    def post(action: str, **data: str):
        return app_client.post(
            f"/admin/users/staff1/{action}",
            data={**data, "csrf_token": token},
            headers={"Accept-Language": "en"},
        )

    disabled = post("enabled", enabled="0")
    assert disabled.status_code == 200 and "staff1 is disabled" in disabled.text
    assert staff.get("/review", follow_redirects=False).status_code == 303
    assert actions(store, "user.disable") == ["user:admin1"]
    enabled = post("enabled", enabled="1")
    assert "staff1 is enabled" in enabled.text
    assert actions(store, "user.enable") == ["user:admin1"]

    refused = post("password", password="short")
    assert refused.status_code == 422 and "A password needs at least" in refused.text
    reset = post("password", password=NEW_PASSWORD)
    assert "staff1&#39;s password is reset" in reset.text
    assert actions(store, "user.reset_password") == ["user:admin1"]
    sign_in(staff, "staff1", NEW_PASSWORD)

    promoted = post("role", role="admin")
    assert "staff1&#39;s role is changed" in promoted.text
    assert staff.get("/admin/users").status_code == 200
    assert post("role", role="police").status_code == 422  # not a user's role
    assert actions(store, "user.set_role") == ["user:admin1"]
    assert post("role", role="staff").status_code == 200
    assert staff.get("/admin/users").status_code == 403

    missing = app_client.post(
        "/admin/users/nobody/enabled",
        data={"enabled": "0", "csrf_token": token},
        headers={"Accept-Language": "en"},
    )
    assert missing.status_code == 404


def test_admin_resetting_their_own_password_stays_signed_in(app_client, store):
    sign_in(app_client, "admin1")
    reset = app_client.post(
        "/admin/users/admin1/password",
        data={"password": NEW_PASSWORD, "csrf_token": csrf(app_client, "/admin/users")},
    )
    assert reset.status_code == 200 and reset.url.path == "/admin/users"


def test_a_user_sets_their_own_display_name_shown_in_the_header(app_client, store):
    sign_in(app_client, "staff1")
    page = app_client.get("/account/password", headers={"Accept-Language": "zh-CN"})
    assert "我的账户" in page.text and "<bdi>staff1</bdi>" in page.text  # no name yet
    saved = app_client.post(
        "/account/display-name",
        data={"display_name": "  李安娜  ", "csrf_token": csrf(app_client, "/account/password")},
        headers={"Accept-Language": "zh-CN"},
    )
    assert saved.status_code == 200 and "显示名称已保存" in saved.text
    assert "<bdi>李安娜</bdi> · 我的账户" in saved.text
    assert 'name="display_name" value="李安娜"' in saved.text
    english = app_client.get("/review", headers={"Accept-Language": "en"})
    assert "<bdi>李安娜</bdi> · My account" in english.text
    assert actions(store, "user.set_display_name") == ["user:staff1"]
    with store.transaction() as session:
        details = session.scalars(
            select(AuditRow.details).where(AuditRow.action == "user.set_display_name")
        ).all()
    assert [dict(d) for d in details] == [{"user_id": 1}]  # the id, never the name


@pytest.mark.parametrize(
    ("name", "lang", "expected"),
    [
        ("", "en", "A display name is 1 to 100 characters."),
        ("名" * 101, "zh-CN", "显示名称须为 1 到 100 个字符。"),
        ("Anna\nLi", "zh-CN", "显示名称不能包含控制字符"),
        ("Anna\u202eLi", "en", "A display name cannot hold control characters"),
    ],
)
def test_a_refused_display_name_says_why_next_to_the_field(app_client, store, name, lang, expected):
    sign_in(app_client, "staff1")
    refused = app_client.post(
        "/account/display-name",
        data={"display_name": name, "csrf_token": csrf(app_client, "/account/password")},
        headers={"Accept-Language": lang},
    )
    assert refused.status_code == 422
    assert re.search(rf'id="display_name-error"[^>]*>{re.escape(expected)}', refused.text)
    assert 'aria-describedby="display_name-help display_name-error" aria-invalid="true"' in (
        refused.text
    )
    assert actions(store, "user.set_display_name") == []


def test_admin_sets_a_display_name_in_either_language(app_client, store):
    sign_in(app_client, "admin1")
    token = csrf(app_client, "/admin/users")
    refused = app_client.post(
        "/admin/users/staff1/display-name",
        data={"display_name": " ", "csrf_token": token},
        headers={"Accept-Language": "zh-CN"},
    )
    assert refused.status_code == 422
    assert re.search(r'id="display-name-error-1"[^>]*>显示名称须为 1 到 100 个字符', refused.text)
    saved = app_client.post(
        "/admin/users/staff1/display-name",
        data={"display_name": "Anna Li", "csrf_token": token},
        headers={"Accept-Language": "en"},
    )
    assert saved.status_code == 200 and "staff1&#39;s display name is changed." in saved.text
    assert '<bdi class="display-name">Anna Li</bdi>' in saved.text
    assert actions(store, "user.set_display_name") == ["user:admin1"]
    staff = second_client(app_client)
    sign_in(staff, "staff1")
    assert "<bdi>Anna Li</bdi>" in staff.get("/review").text


@pytest.mark.parametrize(
    ("lang", "expected"),
    [("en", "This is the last enabled admin account"), ("zh-CN", "这是最后一个启用的管理员账户")],
)
def test_the_last_admin_can_be_neither_disabled_nor_demoted_on_the_page(
    app_client, store, lang, expected
):
    sign_in(app_client, "admin1")
    token = csrf(app_client, "/admin/users")
    for action, data in (("enabled", {"enabled": "0"}), ("role", {"role": "staff"})):
        refused = app_client.post(
            f"/admin/users/admin1/{action}",
            data={**data, "csrf_token": token},
            headers={"Accept-Language": lang},
        )
        assert refused.status_code == 409
        assert re.search(rf'id="{action}-error-2"[^>]*>{expected}', refused.text), refused.text
    assert app_client.get("/admin/users").status_code == 200  # still an admin, still in
    assert actions(store, "user.disable") == actions(store, "user.set_role") == []
