"""Every staff page fits a phone and a tablet: no horizontal scrolling at 360, 390 and 768 px,
in Chinese and English, and every button is touch-sized (44 px high at least)."""

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


def small_buttons(page: Page) -> list[str]:
    """The visible buttons under 44 px high (too small to tap), with their heights."""
    small: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('button, input[type=submit]')]
          .filter(b => b.offsetParent !== null && b.getBoundingClientRect().height < 44)
          .map(b => `${b.textContent.trim()} ${b.getBoundingClientRect().height}px`)"""
    )
    return small


def check_widths(page: Page, name: str, problems: list[str]) -> None:
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(null)))")
        if found := overflow(page):
            problems.append(f"{name} at {width}px: {found}")
        if small := small_buttons(page):
            problems.append(f"{name} at {width}px: buttons under 44px: {small}")


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
