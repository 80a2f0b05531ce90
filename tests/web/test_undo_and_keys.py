"""Deciding quickly and safely, in a real Chromium against a real ``reunite serve`` with a short
undo window: the notice after a decision offers an undo that works, and refuses once the window
has passed; the queue's keyboard shortcuts; the confirm step's two faces shown large."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import httpx2
import pytest

from tests.server import Server
from tests.web.conftest import CHROMIUM, MANY_SIGN_INS, PASSWORD, create_user
from tests.web.test_widths import check_widths

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed")

UNDO_WINDOW_S = 6


@pytest.fixture(scope="module")
def server(tmp_path_factory, faces_dir):  # type: ignore[no-untyped-def]
    """A server whose decisions may be undone for ``UNDO_WINDOW_S`` seconds."""
    workdir = tmp_path_factory.mktemp("undo")
    create_user(workdir, "staff1", "staff")
    create_user(workdir, "staff2", "staff")
    running = Server(workdir, REUNITE_UNDO_WINDOW_S=str(UNDO_WINDOW_S), **MANY_SIGN_INS)
    yield running
    log = running.stop()
    assert "Traceback" not in log and " 500 " not in log, log


def pair(server: Server, faces_dir, person: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """A missing case (``person``'s first LFW photo) and a found case (the next of their photos
    that the model finds close), proposed as one person: (missing id, found id)."""
    api = f"{server.url}/api/v1"
    ids = []
    for kind, numbers in (("missing", (1,)), ("found", (2, 3, 4, 5))):
        case = httpx2.post(f"{api}/cases", headers=server.auth, json={"kind": kind}).json()
        ids.append(case["id"])
        for number in numbers:
            photo = faces_dir / "lfw" / person / f"{person}_{number:04d}.jpg"
            enrolled = httpx2.post(
                f"{api}/cases/{case['id']}/photos",
                files={"file": ("p.jpg", photo.read_bytes(), "image/jpeg")},
                headers=server.auth,
                timeout=60,
            )
            assert enrolled.status_code == 201, enrolled.text
            if enrolled.json()["new_candidates"]:
                break
    assert len(enrolled.json()["new_candidates"]) == 1, person
    return ids[0], ids[1]


def case_status(server: Server, case_id: int) -> str:
    case = httpx2.get(f"{server.url}/api/v1/cases/{case_id}", headers=server.auth).json()
    return str(case["status"])


def signed_in(
    browser: Browser, server: Server, locale: str, width: int = 1280, *, scripts: bool = True
) -> Page:
    context = browser.new_context(
        locale=locale, viewport={"width": width, "height": 900}, java_script_enabled=scripts
    )
    page = context.new_page()
    page.goto(f"{server.url}/login")
    page.fill("input[name=username]", "staff1")
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{server.url}/review")
    return page


def card_of(page: Page, found_id: int) -> Locator:
    """The queue's card of the candidate whose found case is ``found_id``."""
    return page.locator(f"article.candidate:has(a[href='/cases/{found_id}'])")


WORDS = {
    "en-US": {
        "window": f"You can undo this within {UNDO_WINDOW_S} seconds.",
        "undo": "Undo",
        "undone": "Undone: candidate ",
        "pending": "is pending again.",
        "late": f"Too late to undo: the {UNDO_WINDOW_S} seconds have passed.",
        "hint": "Keyboard: c confirm · r reject · n next card · ? all shortcuts",
        "help": "Keyboard shortcuts (not while typing in a field)",
    },
    "zh-CN": {
        "window": f"{UNDO_WINDOW_S} 秒内可以撤销。",
        "undo": "撤销",
        "undone": "已撤销：候选匹配 ",
        "pending": "恢复为待审核。",
        "late": f"已超过 {UNDO_WINDOW_S} 秒，无法撤销。",
        "hint": "键盘：c 确认 · r 排除 · n 下一条 · ? 全部快捷键",
        "help": "键盘快捷键（在输入框中打字时不起作用）",
    },
}


@pytest.mark.parametrize(("locale", "person"), [("en-US", "Colin_Powell"), ("zh-CN", "Tony_Blair")])
def test_a_confirm_undone_from_the_notice_puts_the_pair_back(
    browser, server, faces_dir, locale, person
):
    words = WORDS[locale]
    missing, found = pair(server, faces_dir, person)
    page = signed_in(browser, server, locale)
    card = card_of(page, found)
    card.locator("summary.confirm").click()
    card.locator("button.confirm-final").click()
    page.wait_for_url(f"{server.url}/review*")
    assert card_of(page, found).count() == 0
    assert case_status(server, missing) == case_status(server, found) == "matched"
    assert page.locator("#undo-window").inner_text() == words["window"]

    page.locator("form.undo button", has_text=words["undo"]).click()
    page.wait_for_url(f"{server.url}/review*")
    notice = page.locator(".notice").inner_text()
    assert notice.startswith(words["undone"]) and notice.endswith(words["pending"]), notice
    assert page.locator("form.undo").count() == 0  # an undo is not offered an undo
    assert card_of(page, found).count() == 1  # back in the queue, pending
    assert case_status(server, missing) == case_status(server, found) == "open"
    page.context.close()


@pytest.mark.parametrize(
    ("locale", "person"), [("en-US", "Gerhard_Schroeder"), ("zh-CN", "Hugo_Chavez")]
)
def test_an_undo_after_the_window_is_refused_saying_so(browser, server, faces_dir, locale, person):
    """Without JavaScript the late button is still there: the server refuses, saying why."""
    words = WORDS[locale]
    _, found = pair(server, faces_dir, person)
    page = signed_in(browser, server, locale, scripts=False)
    card_of(page, found).locator("button.reject").click()
    page.wait_for_url(f"{server.url}/review*")
    undo = page.locator("form.undo button")
    assert undo.is_visible()
    time.sleep(UNDO_WINDOW_S + 0.5)
    undo.click()
    page.wait_for_url(f"{server.url}/review*")
    assert page.locator(".notice").inner_text().startswith(words["late"])
    assert card_of(page, found).count() == 0  # still rejected
    page.context.close()


def test_the_undo_button_turns_off_when_its_window_has_passed(browser, server, faces_dir):
    _, found = pair(server, faces_dir, "Jiang_Zemin")
    page = signed_in(browser, server, "zh-CN")
    card_of(page, found).locator("button.reject").click()
    page.wait_for_url(f"{server.url}/review*")
    undo = page.locator("form.undo button")
    assert undo.is_enabled()
    page.wait_for_function(
        "() => document.querySelector('form.undo button').disabled",
        timeout=(UNDO_WINDOW_S + 5) * 1000,
    )
    expired = "撤销时间已过；如需更改，请由管理员重新审核。"
    assert page.locator("#undo-window").inner_text() == expired
    page.context.close()


def current_id(page: Page) -> str | None:
    """The id of the card marked current, if it also has the focus (else "unfocused")."""
    found: str | None = page.evaluate(
        """() => {
          const current = document.querySelectorAll('article.candidate.current');
          if (current.length !== 1) return null;
          return current[0].contains(document.activeElement) ? current[0].id : 'unfocused';
        }"""
    )
    return found


KEY_PEOPLE_ZH = ("Laura_Bush", "Ariel_Sharon")


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_the_queue_is_worked_from_the_keyboard(browser, server, faces_dir, locale):
    words = WORDS[locale]
    people = ("Serena_Williams", "Junichiro_Koizumi") if locale == "en-US" else KEY_PEOPLE_ZH
    for person in people:
        pair(server, faces_dir, person)
    page = signed_in(browser, server, locale)
    cards = page.locator("article.candidate")
    ids = [cards.nth(i).get_attribute("id") for i in range(cards.count())]
    assert len(ids) >= 2
    assert page.locator("#shortcuts p").inner_text().startswith(words["hint"])
    help_list = page.locator("#shortcut-help")
    assert not help_list.is_visible()
    page.keyboard.press("?")
    assert help_list.is_visible() and words["help"] in help_list.inner_text()
    assert help_list.locator("kbd").count() >= 6
    page.keyboard.press("?")
    assert not help_list.is_visible()

    assert page.locator("article.candidate.current").get_attribute("id") == ids[0]
    page.keyboard.press("n")
    assert current_id(page) == ids[1]
    page.keyboard.press("k")
    assert current_id(page) == ids[0]
    page.keyboard.press("j")
    assert current_id(page) == ids[1]

    note = page.locator(f"#{ids[1]} input[name=note]")
    note.click()  # typing in a field is typing, not shortcuts
    page.keyboard.type("cr")
    assert note.input_value() == "cr" and page.locator("details.confirm-step[open]").count() == 0

    page.keyboard.press("Escape")  # nothing open: nothing happens
    page.locator(f"#{ids[1]}").focus()
    page.keyboard.press("c")
    step = page.locator(f"#{ids[1]} details.confirm-step")
    assert step.get_attribute("open") is not None
    assert page.evaluate("() => document.activeElement.classList.contains('confirm-final')")
    page.keyboard.press("Escape")
    assert step.get_attribute("open") is None
    page.keyboard.press("c")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator(f"#{ids[1]}").count() == 0
    confirmed = "confirmed." if locale == "en-US" else "已确认。"
    assert page.locator(".notice").inner_text().endswith(confirmed)

    first = page.locator("article.candidate.current").get_attribute("id")
    with page.expect_navigation():
        page.keyboard.press("r")
    assert page.locator(f"#{first}").count() == 0
    rejected = "rejected." if locale == "en-US" else "已排除。"
    assert page.locator(".notice").inner_text().endswith(rejected)
    page.context.close()


def test_the_single_key_shortcuts_can_be_turned_off_and_stay_off(browser, server, faces_dir):
    pair(server, faces_dir, "Jennifer_Aniston")
    page = signed_in(browser, server, "en-US")
    ids = page.eval_on_selector_all("article.candidate", "cards => cards.map(c => c.id)")
    assert len(ids) >= 2
    page.keyboard.press("?")
    page.get_by_label("Use these single-key shortcuts").uncheck()
    page.locator(f"#{ids[0]}").focus()
    for key in ("n", "c", "?"):
        page.keyboard.press(key)
    assert current_id(page) == ids[0]
    assert page.locator("details.confirm-step[open]").count() == 0
    page.reload()
    page.keyboard.press("n")
    assert page.locator("article.candidate.current").get_attribute("id") == ids[0]
    page.locator("#shortcut-toggle").click()  # the list opens by its button too
    page.get_by_label("Use these single-key shortcuts").check()
    page.locator(f"#{ids[0]}").focus()
    page.keyboard.press("n")
    assert current_id(page) == ids[1]
    page.context.close()


def test_the_confirm_step_shows_both_faces_large_side_by_side(browser, server, faces_dir):
    _, found = pair(server, faces_dir, "Vladimir_Putin")
    page = signed_in(browser, server, "en-US", width=1280)
    card = card_of(page, found)
    faces = card.locator(".confirm-faces img.confirm-face")
    assert not faces.first.is_visible()
    card.locator("summary.confirm").click()
    page.wait_for_function(
        f"""() => [...document.querySelectorAll(
                '#{card.get_attribute("id")} .confirm-faces img.confirm-face')]
            .every(i => i.complete && i.naturalWidth > 0)"""
    )
    boxes = [faces.nth(i).bounding_box() for i in range(faces.count())]
    assert len(boxes) == 2 and all(b is not None for b in boxes)
    left, right = boxes[0], boxes[1]
    assert left and right
    assert min(left["width"], left["height"], right["width"], right["height"]) >= 320, boxes
    assert abs(left["y"] - right["y"]) < 1 and right["x"] >= left["x"] + left["width"]
    alts = [faces.nth(i).get_attribute("alt") for i in range(2)]
    assert all(alts) and alts[0] != alts[1]
    problems: list[str] = []  # open, with the undo notice shown, it still fits a phone
    check_widths(page, "queue, confirm step open", problems)
    card.locator("button.reject").click()
    page.wait_for_url(f"{server.url}/review*")
    check_widths(page, "queue, undo offered", problems)
    page.context.close()
    assert problems == [], "\n".join(problems)
