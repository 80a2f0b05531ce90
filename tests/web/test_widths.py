"""Every staff page fits a phone and a tablet: no horizontal scrolling at 360, 390 and 768 px,
in Chinese and English, and every control is touch-sized.

Touch-sized (WCAG 2.5.5, 2.5.8): every visible link, button, form control, ``summary`` and
``[role=button]`` offers at least 44 x 44 CSS px to tap, counting the control itself or a label
of it (a checkbox's or a face's label is where a finger lands). The only exceptions are the
links inside running text (WCAG's "inline" exception), listed in ``INLINE_LINKS``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx2
import pytest

from tests.web.conftest import CHROMIUM, PASSWORD

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed")

WIDTHS = (360, 390, 768)
LONG_PLACE = "上海市黄浦区救助管理站东门外人行道" * 3 + "Zhongshan-East-Road-No.1-Bund-Shanghai"


@pytest.fixture(scope="module")
def cases(server, faces_dir):
    """A missing case with long facts and a found case proposed as its candidate."""
    api = f"{server.url}/api/v1"
    missing = httpx2.post(
        f"{api}/cases",
        headers=server.auth,
        json={
            "kind": "missing",
            "name": "欧阳" + "建" * 40,
            "sex": "male",
            "birth_year_min": 1960,
            "birth_year_max": 1962,
            "date_missing": "2024-02-20",
            "place": LONG_PLACE,
            "description": "x" * 300,
            "contact": "family-contact-" * 8 + "@example.org",
        },
    ).json()
    found = httpx2.post(
        f"{api}/cases", headers=server.auth, json={"kind": "found", "place": LONG_PLACE}
    ).json()
    for case, name in ((missing, "obama.jpg"), (found, "obama2.jpg")):
        enrolled = httpx2.post(
            f"{api}/cases/{case['id']}/photos",
            files={"file": ("o.jpg", (faces_dir / "samples" / name).read_bytes(), "image/jpeg")},
            headers=server.auth,
            timeout=60,
        )
        assert enrolled.status_code == 201, enrolled.text
    return missing, found


def overflow(page: Page) -> list[str]:
    """Where the page is wider than the window: the widths, and the elements sticking out."""
    found: list[str] = page.evaluate(
        """() => {
          const limit = window.innerWidth;
          if (document.documentElement.scrollWidth <= limit) return [];
          const out = [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > limit + 0.5)
            .slice(0, 8)
            .map(e => `${e.tagName.toLowerCase()}.${e.className} right=${
              Math.round(e.getBoundingClientRect().right)}`);
          return [`scrollWidth ${document.documentElement.scrollWidth} > ${limit}`, ...out];
        }"""
    )
    return found


MIN_TARGET = 44
"""The least width and height of a touch target, in CSS px."""
CONTROLS = "a[href], button, input:not([type=hidden]), select, textarea, summary, [role=button]"
INLINE_LINKS: tuple[str, ...] = ()
"""Selectors of the links inside running text, exempt from the size (WCAG's inline exception)."""


def small_targets(page: Page, inline: tuple[str, ...] = INLINE_LINKS) -> list[str]:
    """The visible controls offering less than 44 x 44 px to tap (neither the control nor a
    label of it is that large), but those matching ``inline``: ``tag.class "text" WxH``."""
    small: list[str] = page.evaluate(
        """([controls, inline, least]) => {
          const size = e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
          const shown = e => {
            const [w, h] = size(e);
            return w > 0 && h > 0 && getComputedStyle(e).visibility !== 'hidden';
          };
          const fits = ([w, h]) => w >= least - 0.5 && h >= least - 0.5;
          return [...document.querySelectorAll(controls)]
            .filter(e => shown(e) || [...(e.labels || [])].some(shown))
            .filter(e => !inline.some(s => e.matches(s)))
            .filter(e => ![e, ...(e.labels || [])].filter(shown).map(size).some(fits))
            .map(e => {
              const [w, h] = size(e);
              const text = (e.textContent || e.value || e.name || '').trim().slice(0, 30);
              return `${e.tagName.toLowerCase()}.${e.className} "${text}" ${
                Math.round(w)}x${Math.round(h)}` + [...(e.labels || [])].map(l =>
                  ` label ${size(l).map(Math.round).join('x')}`).join('');
            });
        }""",
        [CONTROLS, list(inline), MIN_TARGET],
    )
    return small


def check_widths(page: Page, name: str, problems: list[str]) -> None:
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(null)))")
        if found := overflow(page):
            problems.append(f"{name} at {width}px: {found}")
        if small := small_targets(page):
            problems.append(f"{name} at {width}px: touch targets under 44x44px: {small}")


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_every_page_fits_360_390_and_768_px(browser, server, faces_dir, cases, locale):
    missing, found = cases
    context = browser.new_context(locale=locale, viewport={"width": 360, "height": 800})
    page = context.new_page()
    problems: list[str] = []
    page.goto(f"{server.url}/login")
    check_widths(page, "sign-in", problems)
    page.fill("input[name=username]", "staff1")
    page.fill("input[name=password]", "wrong password")
    page.click("main button[type=submit]")
    page.wait_for_selector(".error")
    check_widths(page, "sign-in refused", problems)
    page.fill("input[name=username]", "staff1")
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{server.url}/review")

    visits: list[tuple[str, Callable[[], object]]] = [
        ("queue", lambda: page.goto(f"{server.url}/review")),
        ("found case", lambda: page.goto(f"{server.url}/cases/{found['id']}")),
        ("missing case", lambda: page.goto(f"{server.url}/cases/{missing['id']}")),
        ("intake", lambda: page.goto(f"{server.url}/intake")),
        ("search", lambda: page.goto(f"{server.url}/search")),
        ("unknown case", lambda: page.goto(f"{server.url}/cases/99999999")),
        ("change password", lambda: page.goto(f"{server.url}/account/password")),
    ]
    for name, visit in visits:
        visit()
        check_widths(page, name, problems)

    page.goto(f"{server.url}/review")
    assert page.locator("article.candidate").count() >= 1
    page.locator("article.candidate summary.confirm").first.click()  # the confirm step open
    page.wait_for_selector("details.confirm-step[open] button.confirm-final")
    check_widths(page, "queue, confirm step open", problems)
    page.locator("article.candidate .thumbs a.zoom").first.click()  # a lightbox open
    page.wait_for_selector("dialog.lightbox[open]")
    check_widths(page, "queue, lightbox open", problems)
    page.goto(f"{server.url}/review")  # the shortcut list open, its on/off checkbox shown
    page.keyboard.press("?")
    page.wait_for_selector("#shortcut-help", state="visible")
    check_widths(page, "queue, shortcut list open", problems)

    page.goto(f"{server.url}/intake")  # an intake refused with its errors listed
    page.fill("input[name=age_min]", "999")
    page.click("form.grid button[type=submit]")
    page.wait_for_selector("#form-errors")
    check_widths(page, "intake with errors", problems)

    page.goto(f"{server.url}/intake")  # a group photo kept, waiting for its face to be picked
    page.set_input_files(
        "input[name=photos]",
        [str(faces_dir / "samples" / n) for n in ("obama_and_biden.jpg", "obama2.jpg")],
    )
    page.fill("input[name=age_min]", "70")
    page.fill("input[name=age_max]", "60")
    page.click("form.grid button[type=submit]")
    page.wait_for_selector("fieldset.face-picker")
    check_widths(page, "intake with kept photos and a face to pick", problems)

    page.goto(f"{server.url}/search")  # search results: the photo with its boxes, the faces
    page.set_input_files("input[name=photo]", str(faces_dir / "samples" / "obama2.jpg"))
    page.click("form.grid button[type=submit]")
    page.wait_for_selector("figure.searched")
    check_widths(page, "search results", problems)

    page.goto(f"{server.url}/account/password")  # a refused change: its summary, the marks
    page.fill("input[name=current]", "not the password")
    page.fill("input[name=new]", "short")
    page.fill("input[name=again]", "short")
    page.click("form.password button[type=submit]")
    page.wait_for_selector("#password-errors")
    check_widths(page, "change password refused", problems)
    context.close()
    assert problems == [], "\n".join(problems)


def test_admin_sees_the_pages_fit_too(browser, server, cases):
    """Decided candidates show an admin the reopen form: it fits as well."""
    missing, found = cases
    context = browser.new_context(locale="zh-CN", viewport={"width": 360, "height": 800})
    page = context.new_page()
    page.goto(f"{server.url}/login")
    page.fill("input[name=username]", "admin1")
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{server.url}/review")
    card = page.locator("article.candidate").first
    card.locator("button.reject").click()
    page.wait_for_url(f"{server.url}/review*")
    problems: list[str] = []
    for case in (found, missing):
        page.goto(f"{server.url}/cases/{case['id']}")
        assert page.locator("article.candidate[data-status=rejected]").count() >= 1
        check_widths(page, f"case #{case['id']} for an admin", problems)
    page.goto(f"{server.url}/admin/users")
    check_widths(page, "accounts", problems)
    row = "li.account-row[data-username=staff1]"
    page.fill(f"{row} input[name=password]", "short")
    page.click(f"{row} form.password button[type=submit]")
    page.wait_for_selector(f"{row} form.password .error")
    check_widths(page, "accounts, a password reset refused", problems)
    page.goto(f"{server.url}/admin/agencies")
    page.fill("input[name=code]", "SH-RESCUE-" + "0" * 50)
    page.fill("input[name=name]", LONG_PLACE)
    page.click("#add-agency button[type=submit]")
    page.wait_for_selector(".notice")
    check_widths(page, "agencies", problems)
    page.fill("input[name=code]", "bad code")
    page.click("#add-agency button[type=submit]")
    page.wait_for_selector("#form-errors")
    check_widths(page, "agencies refused", problems)
    context.close()
    assert problems == [], "\n".join(problems)


def test_the_check_finds_small_targets_and_counts_a_controls_label(browser):
    """The check itself: a small link, a bare checkbox and a small label are found; a checkbox
    in a label large enough is not, nor a link exempt as inline."""
    page = browser.new_page(viewport={"width": 390, "height": 800})
    page.set_content(
        '<html lang="en"><body><a href="/x" id="small">x</a>'
        '<label style="display:flex;min-height:44px">'
        '<input type="checkbox" id="labelled"> Yes</label>'
        '<input type="checkbox" id="bare"><label><input type="radio" id="small-label"> a</label>'
        '<button style="all:unset" id="flat">b</button><input type="hidden" id="hidden">'
        '<p>Some text <a href="/y" class="in-text">with a link</a>.</p></body></html>'
    )
    found = " ".join(small_targets(page, inline=("a.in-text",)))
    assert '"x"' in found and '"b"' in found and found.count("input.") == 2, found
    assert "Yes" not in found and "with a link" not in found
    assert "with a link" in " ".join(small_targets(page, inline=()))
    page.close()
