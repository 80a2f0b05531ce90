"""The account pages in a real browser, in Chinese and English: the password policy stated
next to each password field and its refusals in the page's language with the least length the
server is set to (the wrong field marked and focused), display names in the header, and the
last admin kept."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.server import Server
from tests.web.conftest import CHROMIUM, MANY_SIGN_INS, PASSWORD, create_user

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed")

WORDS = {
    "zh-CN": {
        "too_short": "新密码不符合要求：密码至少需要 12 个字符。",
        "common": "新密码不符合要求：这是最常见的密码之一，请另选一个。",
        "account": "我的账户",
        "last_admin": "这是最后一个启用的管理员账户。",
        "rule": "至少 12 个字符，且不能是最常见的密码之一",
        "again": "再输入一次新密码",
        "mismatch": "两次输入的新密码不一致。",
    },
    "en-US": {
        "too_short": "A password needs at least 12 characters.",
        "common": "That password is one of the most common ones; choose another.",
        "account": "My account",
        "last_admin": "This is the last enabled admin account;",
        "rule": "At least 12 characters, and not one of the most common passwords",
        "again": "The new password once more",
        "mismatch": "The two new passwords differ.",
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server whose new passwords need 12 characters (the setting, not the default 10)."""
    workdir = tmp_path_factory.mktemp("accounts")
    for locale in WORDS:
        create_user(workdir, f"staff-{locale}", "staff")
    create_user(workdir, "admin1", "admin")
    running = Server(workdir, REUNITE_MIN_PASSWORD_LENGTH="12", **MANY_SIGN_INS)
    yield running
    log = running.stop()
    assert "Traceback" not in log and " 500 " not in log, log


def signed_in(browser: Browser, server: Server, locale: str, username: str) -> Page:
    page = browser.new_context(locale=locale).new_page()
    page.goto(f"{server.url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{server.url}/review")
    return page


@pytest.mark.parametrize("locale", list(WORDS))
def test_password_refusals_and_display_name_in_the_page_language(browser, server, locale):
    words = WORDS[locale]
    page = signed_in(browser, server, locale, f"staff-{locale}")
    page.goto(f"{server.url}/account/password")
    for new, refusal in (("short pw", "too_short"), ("qwertyuiop123", "common")):
        page.fill("input[name=current]", PASSWORD)
        page.fill("input[name=new]", new)
        page.fill("input[name=again]", new)
        page.click("form.password button[type=submit]")
        error = page.locator("#new-error")
        error.wait_for()
        assert error.inner_text() == words[refusal]
        assert page.locator("input[name=new]").get_attribute("aria-invalid") == "true"

    who = page.locator("header a.who")
    assert who.inner_text() == f"staff-{locale} · {words['account']}"
    page.fill("input[name=display_name]", "  李安娜 Anna  ")
    page.click("form.display-name button[type=submit]")
    page.wait_for_selector(".notice")
    assert who.inner_text() == f"李安娜 Anna · {words['account']}"
    assert page.locator("input[name=display_name]").input_value() == "李安娜 Anna"
    page.context.close()


@pytest.mark.parametrize("locale", list(WORDS))
def test_the_last_admin_is_kept_with_a_reason_next_to_the_form(browser, server, locale):
    page = signed_in(browser, server, locale, "admin1")
    page.goto(f"{server.url}/admin/users")
    row = page.locator("li.account-row[data-username=admin1]")
    row.locator("form.enabled button[type=submit]").click()
    refusal = page.locator("li.account-row[data-username=admin1] form.enabled .error")
    refusal.wait_for()
    assert refusal.inner_text().startswith(WORDS[locale]["last_admin"])
    row.locator("select[name=role]").select_option("staff")
    row.locator("form.role button[type=submit]").click()
    refusal = page.locator("li.account-row[data-username=admin1] form.role .error")
    refusal.wait_for()
    assert refusal.inner_text().startswith(WORDS[locale]["last_admin"])
    assert page.locator("nav a[href='/admin/users']").count() == 1  # still an admin
    page.context.close()


def described_by(page: Page, selector: str) -> str:
    """The text of the elements that describe ``selector``'s field (aria-describedby)."""
    text: str = page.locator(selector).evaluate(
        """e => (e.getAttribute('aria-describedby') || '').split(/\\s+/).filter(Boolean)
              .map(id => document.getElementById(id).textContent).join(' | ')"""
    )
    return text


def focused(page: Page) -> dict[str, str | None]:
    """The focused element's name, and whether it is marked invalid."""
    found: dict[str, str | None] = page.evaluate(
        """() => ({name: document.activeElement.name,
                   invalid: document.activeElement.getAttribute('aria-invalid')})"""
    )
    return found


@pytest.mark.parametrize("locale", list(WORDS))
def test_each_password_field_states_its_rule_and_a_refusal_focuses_the_wrong_field(
    browser, server, locale
):
    words = WORDS[locale]
    page = signed_in(browser, server, locale, f"staff-{locale}")
    page.goto(f"{server.url}/account/password")
    assert words["rule"] in described_by(page, "input[name=new]")
    assert words["again"] in described_by(page, "input[name=again]")
    rule = page.locator("form.password .field:has(input[name=new]) .hint")
    assert words["rule"] in rule.inner_text()  # next to the field, in the same group
    for name in ("current", "new", "again"):
        assert described_by(page, f"input[name={name}]"), name

    page.fill("input[name=current]", PASSWORD)
    page.fill("input[name=new]", "short pw")
    page.fill("input[name=again]", "short pw")
    page.click("form.password button[type=submit]")
    page.locator("#password-errors").wait_for()
    assert focused(page) == {"name": "new", "invalid": "true"}
    assert words["too_short"] in described_by(page, "input[name=new]")
    assert words["rule"] in described_by(page, "input[name=new]")  # the rule stays
    assert page.locator("input[name=current]").get_attribute("aria-invalid") is None
    page.locator("#password-errors a").click()  # the summary links to the field
    assert focused(page)["name"] == "new"

    page.fill("input[name=current]", "not my password")  # two wrong fields: both marked
    page.fill("input[name=new]", "purple elephant umbrella")
    page.fill("input[name=again]", "purple elephant umbrellas")
    page.click("form.password button[type=submit]")
    page.locator("#password-errors").wait_for()
    assert focused(page) == {"name": "current", "invalid": "true"}  # the first of them
    assert page.locator("input[name=again]").get_attribute("aria-invalid") == "true"
    assert words["mismatch"] in described_by(page, "input[name=again]")
    assert page.locator("#password-errors a").count() == 2
    page.context.close()


@pytest.mark.parametrize("locale", list(WORDS))
def test_an_admins_password_reset_states_the_rule_and_focuses_a_refusal(browser, server, locale):
    words = WORDS[locale]
    page = signed_in(browser, server, locale, "admin1")
    page.goto(f"{server.url}/admin/users")
    field = f"li.account-row[data-username=staff-{locale}] input[name=password]"
    assert words["rule"] in described_by(page, field)
    page.fill(field, "short pw")
    page.locator(f"li.account-row[data-username=staff-{locale}] form.password button").click()
    page.locator(f"li.account-row[data-username=staff-{locale}] form.password .error").wait_for()
    assert focused(page) == {"name": "password", "invalid": "true"}
    assert page.evaluate("document.activeElement.closest('li').dataset.username") == (
        f"staff-{locale}"
    )
    assert words["too_short"] in described_by(page, field)
    assert words["rule"] in described_by(page, field)
    page.context.close()
