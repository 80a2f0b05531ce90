"""Every staff page passes axe-core's accessibility rules, in Chinese and English.

axe-core (shipped inside the ``axe-playwright-python`` wheel: nothing is fetched) runs inside
each page in a real Chromium against a real server. Any violation of impact "serious" or
"critical" fails the test, and so does a heading that skips a level (``heading-order``, moderate),
listed by language, page, rule, impact and the offending nodes.

To check a new page, add a ``Visit`` to ``VISITS``: its path (``{found}``, ``{missing}`` and
``{decided}`` stand for the cases' ids) and, if the page needs it, a ``then`` step that fills
and sends a form and waits for the answer (and an ``after`` step that puts back what it
changed). Every visit is made signed in as an admin (who sees every page and every form); the
sign-in page is checked before signing in.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
import pytest

from tests.web.conftest import CHROMIUM, PASSWORD

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed")

FAILING_IMPACTS = ("serious", "critical")
FAILING_RULES = ("heading-order",)
"""Rules that fail the test whatever their impact: a heading that skips a level (moderate)
misleads who moves through a page by its headings."""


@dataclass(frozen=True)
class Visit:
    """A page to check: where it is, what to do there first (``then(page, faces_dir)``)."""

    name: str
    path: str
    then: Callable[[Page, Path], object] | None = None
    after: Callable[[Page], object] | None = None
    """What puts things back once checked (so that the other language finds them again)."""


def _intake_refused(page: Page, _faces: Path) -> None:
    page.fill("input[name=age_min]", "999")
    page.click("form.grid button[type=submit]")
    page.wait_for_selector("#form-errors")


def _face_to_pick(page: Page, faces: Path) -> None:
    page.set_input_files(
        "input[name=photos]",
        [str(faces / "samples" / n) for n in ("obama_and_biden.jpg", "obama2.jpg")],
    )
    page.fill("input[name=age_min]", "70")
    page.fill("input[name=age_max]", "60")
    page.click("form.grid button[type=submit]")
    page.wait_for_selector("fieldset.face-picker")


_agency_numbers = itertools.count(1)


def _agency_added(page: Page, _faces: Path) -> None:
    page.fill("input[name=code]", f"SH-RESCUE-{next(_agency_numbers)}")  # new in each language
    page.fill("input[name=name]", "上海市救助管理站")
    page.click("#add-agency button[type=submit]")
    page.wait_for_selector(".notice")


def _agency_refused(page: Page, _faces: Path) -> None:
    page.fill("input[name=code]", "bad code")
    page.click("#add-agency button[type=submit]")
    page.wait_for_selector("#form-errors")


def _searched(page: Page, faces: Path) -> None:
    page.set_input_files("input[name=photo]", str(faces / "samples" / "obama2.jpg"))
    page.click("form.grid button[type=submit]")
    page.wait_for_selector("figure.searched")


def _password_refused(page: Page, _faces: Path) -> None:
    page.fill("input[name=current]", "not the password")
    page.fill("input[name=new]", "short")
    page.fill("input[name=again]", "short")
    page.click("form.password button[type=submit]")
    page.wait_for_selector(".error")


def _display_name_refused(page: Page, _faces: Path) -> None:
    page.fill("input[name=display_name]", " ")  # only a space: refused by the server
    page.click("form.display-name button[type=submit]")
    page.wait_for_selector("#display_name-error")


def _last_admin_refused(page: Page, _faces: Path) -> None:
    page.click("li.account-row[data-username=admin1] form.enabled button[type=submit]")
    page.wait_for_selector("li.account-row[data-username=admin1] .error")


def _password_reset_refused(page: Page, _faces: Path) -> None:
    row = "li.account-row[data-username=staff1]"
    page.fill(f"{row} input[name=password]", "short")
    page.click(f"{row} form.password button[type=submit]")
    page.wait_for_selector(f"{row} form.password .error")


def _shortcut_list_open(page: Page, _faces: Path) -> None:
    page.keyboard.press("?")
    page.wait_for_selector("#shortcut-help", state="visible")


def _rejected_undo_offered(page: Page, _faces: Path) -> None:
    page.locator("article.candidate button.reject").first.click()
    page.wait_for_selector("form.undo button")


def _undone(page: Page) -> None:
    page.locator("form.undo button").click()
    page.wait_for_selector("form.undo", state="detached")  # the undone notice offers none


def _confirm_step_open(page: Page, _faces: Path) -> None:
    page.locator("article.candidate summary.confirm").first.click()
    page.wait_for_selector("details.confirm-step[open] button.confirm-final")


def _lightbox_open(page: Page, _faces: Path) -> None:
    page.locator("article.candidate .thumbs a.zoom").first.click()
    page.wait_for_selector("dialog.lightbox[open]")


VISITS: list[Visit] = [
    Visit("queue with a candidate card", "/review"),
    Visit("queue, confirm step open", "/review", _confirm_step_open),
    Visit("queue, lightbox open", "/review", _lightbox_open),
    Visit("queue, shortcut list open", "/review", _shortcut_list_open),
    Visit("queue, a decision with its undo", "/review", _rejected_undo_offered, _undone),
    Visit("case with a decided candidate", "/cases/{decided}"),
    Visit("found case", "/cases/{found}"),
    Visit("missing case", "/cases/{missing}"),
    Visit("intake", "/intake"),
    Visit("intake refused with errors", "/intake", _intake_refused),
    Visit("intake, kept photos and a face to pick", "/intake", _face_to_pick),
    Visit("search", "/search"),
    Visit("search with results", "/search", _searched),
    Visit("own account", "/account/password"),
    Visit("own account refused", "/account/password", _password_refused),
    Visit("own account, display name refused", "/account/password", _display_name_refused),
    Visit("accounts (admin)", "/admin/users"),
    Visit("accounts, last admin refused", "/admin/users", _last_admin_refused),
    Visit("accounts, a password reset refused", "/admin/users", _password_reset_refused),
    Visit("agencies (admin), one added", "/admin/agencies", _agency_added),
    Visit("agencies (admin), refused", "/admin/agencies", _agency_refused),
    Visit("error page (unknown case)", "/cases/99999999"),
    Visit("error page (unknown address)", "/no/such/page"),
]


def _case_with_photo(server, faces_dir: Path, kind: str, photo: str, **facts: str) -> int:
    api = f"{server.url}/api/v1"
    case = httpx2.post(f"{api}/cases", headers=server.auth, json={"kind": kind, **facts}).json()
    enrolled = httpx2.post(
        f"{api}/cases/{case['id']}/photos",
        files={"file": ("p.jpg", (faces_dir / "samples" / photo).read_bytes(), "image/jpeg")},
        headers=server.auth,
        timeout=60,
    )
    assert enrolled.status_code == 201, enrolled.text
    return int(case["id"])


@pytest.fixture(scope="module")
def cases(server, faces_dir) -> dict[str, int]:
    """Two candidate pairs: one pending (``found``, ``missing``), one rejected (``decided``,
    a found case whose card shows an admin the reopen form and the decisions)."""
    ids = {
        "missing": _case_with_photo(
            server, faces_dir, "missing", "obama.jpg", name="欧阳建", date_missing="2024-02-20"
        ),
        "found": _case_with_photo(server, faces_dir, "found", "obama2.jpg", place="上海市黄浦区"),
    }
    _case_with_photo(server, faces_dir, "missing", "rose_leslie1.jpg", name="Rose")
    ids["decided"] = _case_with_photo(server, faces_dir, "found", "rose_leslie2.jpg")
    api = f"{server.url}/api/v1"
    candidates = httpx2.get(f"{api}/cases/{ids['decided']}/candidates", headers=server.auth).json()
    assert candidates, "the second pair was not proposed"
    rejected = httpx2.post(
        f"{api}/candidates/{candidates[0]['id']}/decisions",
        headers=server.auth,
        json={"status": "rejected", "note": "不是同一人 (test)"},
    )
    assert rejected.status_code == 200, rejected.text
    return ids


@pytest.fixture(scope="module")
def axe() -> Any:
    from axe_playwright_python.sync_playwright import Axe

    return Axe()


def violations(axe: Any, page: Page, where: str) -> list[str]:
    """The serious and critical violations on the page and those of ``FAILING_RULES``, one line
    each with its nodes."""
    results = axe.run(page).response
    lines = []
    for violation in results["violations"]:
        if violation.get("impact") not in FAILING_IMPACTS and violation["id"] not in FAILING_RULES:
            continue
        targets = [" ".join(map(str, node["target"])) for node in violation["nodes"]]
        lines.append(
            f"{where}: {violation['id']} ({violation['impact']}) {violation['help']}; "
            f"nodes: {targets}"
        )
    return lines


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_every_page_passes_axe(browser, server, faces_dir, cases, axe, locale):
    context = browser.new_context(locale=locale)
    outside: list[str] = []  # axe runs from the wheel: the pages fetch nothing from elsewhere
    context.on(
        "request",
        lambda r: None if r.url.startswith((server.url, "data:")) else outside.append(r.url),
    )
    page = context.new_page()
    problems: list[str] = []

    page.goto(f"{server.url}/login")
    assert page.locator("html").get_attribute("lang") == ("zh-CN" if locale == "zh-CN" else "en")
    problems += violations(axe, page, f"{locale} sign-in")
    page.fill("input[name=username]", "admin1")
    page.fill("input[name=password]", "wrong password")
    page.click("main button[type=submit]")
    page.wait_for_selector(".error")
    problems += violations(axe, page, f"{locale} sign-in refused")
    page.fill("input[name=username]", "admin1")
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{server.url}/review")

    for visit in VISITS:
        page.goto(server.url + visit.path.format(**cases))
        if visit.then:
            visit.then(page, faces_dir)
        problems += violations(axe, page, f"{locale} {visit.name} ({page.url})")
        if visit.after:
            visit.after(page)
        if visit.path == "/review" and visit.then is None:
            assert page.locator("article.candidate").count() >= 1, "no candidate card to check"
    context.close()
    assert problems == [], "axe found:\n" + "\n".join(problems)
    assert outside == []


def test_the_check_reports_each_violation_with_its_nodes(browser, axe):
    """The check itself: a page with known faults gives one line per rule, naming the nodes."""
    page = browser.new_page()
    page.set_content(
        '<html lang="en"><body><main><h1>Faults</h1><img id="no-alt" src="data:,">'
        '<input id="no-label"><p style="color:#aaa;background:#fff">pale</p>'
        '<h3 id="skipped">A level skipped</h3></main></body></html>'
    )
    found = violations(axe, page, "test page")
    page.close()
    assert any("image-alt (critical)" in line and "#no-alt" in line for line in found), found
    assert any("label (critical)" in line and "#no-label" in line for line in found), found
    assert any("color-contrast (serious)" in line for line in found), found
    assert any("heading-order (moderate)" in line and "#skipped" in line for line in found), found
    assert all(line.startswith("test page: ") for line in found)
