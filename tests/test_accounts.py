"""Accounts in the library: display names (checked, audited by id only) and the last-admin
guard, on SQLite and PostgreSQL; and the policy refusals in both page languages."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from reunite import accounts
from reunite.errors import Conflict, InvalidField, NotFound
from reunite.store import AuditEventRow, Store
from reunite.web import i18n

PASSWORD = "correct horse battery"


@pytest.fixture
def store(settings):
    opened = Store(settings.resolved_database_url)
    yield opened
    opened.close()


def audit_events(store: Store, action: str) -> list[tuple[str, dict]]:
    with store.transaction() as session:
        rows = session.scalars(select(AuditEventRow).where(AuditEventRow.action == action))
        return [(row.actor, dict(row.details)) for row in rows]


def test_a_display_name_is_trimmed_kept_and_audited_without_the_name(store):
    created = accounts.create_user(
        store, "anna", PASSWORD, "staff", actor="cli:root", display_name="  李安娜 Anna  "
    )
    assert created.display_name == "李安娜 Anna"
    assert audit_events(store, "user.create") == [("cli:root", {"user_id": 1, "role": "staff"})]
    changed = accounts.set_display_name(store, "anna", "\t王 秀英\n", actor="user:admin1")
    assert changed.display_name == "王 秀英"
    assert [u.display_name for u in accounts.users(store)] == ["王 秀英"]
    assert audit_events(store, "user.set_display_name") == [("user:admin1", {"user_id": 1})]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "display_name_length"),
        ("   ", "display_name_length"),
        ("x" * 101, "display_name_length"),
        ("Anna\nLi", "display_name_control"),
        ("Anna\x00", "display_name_control"),
        ("Anna\u202eiL", "display_name_control"),  # a right-to-left override
    ],
)
def test_a_bad_display_name_is_refused_with_its_reason(store, name, reason):
    accounts.create_user(store, "anna", PASSWORD, "staff", actor="test", display_name="Anna")
    with pytest.raises(InvalidField) as refused:
        accounts.set_display_name(store, "anna", name, actor="test")
    assert refused.value.details["reason"] == reason
    assert name.strip() not in refused.value.message or not name.strip()
    with pytest.raises(InvalidField):
        accounts.create_user(store, "carl", PASSWORD, "staff", actor="test", display_name=name)
    assert [u.username for u in accounts.users(store)] == ["anna"]
    assert accounts.users(store)[0].display_name == "Anna"
    assert audit_events(store, "user.set_display_name") == []


def test_a_display_name_of_100_characters_is_kept(store):
    accounts.create_user(store, "anna", PASSWORD, "staff", actor="test")
    assert (
        accounts.set_display_name(store, "anna", "名" * 100, actor="t").display_name == "名" * 100
    )
    with pytest.raises(NotFound):
        accounts.set_display_name(store, "nobody", "Anna", actor="t")


def test_the_last_enabled_admin_can_be_neither_disabled_nor_demoted(store):
    accounts.create_user(store, "root", PASSWORD, "admin", actor="test")
    accounts.create_user(store, "anna", PASSWORD, "staff", actor="test")
    for change in (
        lambda: accounts.disable_user(store, "root", actor="test"),
        lambda: accounts.set_user_role(store, "root", "staff", actor="test"),
    ):
        with pytest.raises(Conflict) as refused:
            change()
        assert refused.value.details["reason"] == "last_admin"
        assert "last enabled admin" in refused.value.message
    assert accounts.set_user_role(store, "root", "admin", actor="test").role == "admin"
    # With a second admin, either may go; then the other is the last one again.
    accounts.set_user_role(store, "anna", "admin", actor="test")
    accounts.disable_user(store, "root", actor="test")
    with pytest.raises(Conflict):
        accounts.set_user_role(store, "anna", "staff", actor="test")
    # A disabled admin does not count, and may itself be demoted.
    assert accounts.set_user_role(store, "root", "staff", actor="test").role == "staff"
    with pytest.raises(Conflict):
        accounts.disable_user(store, "anna", actor="test")
    assert [(u.username, u.role, u.disabled) for u in accounts.users(store)] == [
        ("root", "staff", True),
        ("anna", "admin", False),
    ]
    assert [d for _, d in audit_events(store, "user.disable")] == [{"user_id": 1}]


@pytest.mark.parametrize(
    ("password", "lang", "expected"),
    [
        ("short", "en", "A password needs at least 12 characters."),
        ("short", "zh-CN", "密码至少需要 12 个字符。"),
        ("PasswordPassword", "en", "That password is one of the most common ones; choose another."),
        ("PasswordPassword", "zh-CN", "这是最常见的密码之一，请另选一个。"),
    ],
)
def test_password_refusals_read_in_the_page_language(password, lang, expected):
    assert password.lower() in accounts.common_passwords() or len(password) < 12
    with pytest.raises(InvalidField) as refused:
        accounts.check_new_password(password, 12)
    assert i18n.error_text(lang, refused.value) == expected


def test_the_last_admin_refusal_reads_in_chinese():
    refused = Conflict("This is the last enabled admin account.", reason="last_admin")
    assert i18n.error_text("zh-CN", refused).startswith("这是最后一个启用的管理员账户")
    assert i18n.error_text("en", Conflict("x")) == "This cannot be done now: x"


def disabled_at_once(store: Store, names: tuple[str, str]) -> list[str]:
    """Disable both accounts from two threads released together: each one's outcome."""
    barrier = threading.Barrier(2)

    def disable(name: str) -> str:
        barrier.wait()
        try:
            accounts.disable_user(store, name, actor="test")
        except Conflict:
            return "refused"
        return "disabled"

    with ThreadPoolExecutor(2) as pool:
        return sorted(pool.map(disable, names))


def test_two_admins_disabling_each_other_at_once_leave_one(store):
    """Both requests start together; the guard counts under a lock, so one of them is
    refused, round after round, on SQLite and PostgreSQL alike."""
    for round_ in range(4):
        names = (f"root{round_}", f"boss{round_}")
        for name in names:
            accounts.create_user(store, name, PASSWORD, "admin", actor="test")
        for other in accounts.users(store):
            if other.username not in names and not other.disabled:
                accounts.disable_user(store, other.username, actor="test")
        assert disabled_at_once(store, names) == ["disabled", "refused"], round_
        enabled = [u.username for u in accounts.users(store) if not u.disabled]
        assert len(enabled) == 1 and enabled[0] in names
