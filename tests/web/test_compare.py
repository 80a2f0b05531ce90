"""Comparing faces on a candidate card, in a real browser and in both languages: the two faces
side by side at 320 px or more on a desktop (stacked on a phone), every photo of both cases one
click away, a lightbox driven by the keyboard showing the whole photo with the face's box, the
facts a reviewer checks ("date unknown" where a photo's date is), times with their zone under
REUNITE_TIMEZONE, and who decided by display name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx2
import pytest
from PIL import Image

from reunite.store import AgencyRow, Store, UserRow
from tests.conftest import settings_in
from tests.server import Server
from tests.web.conftest import CHROMIUM, MANY_SIGN_INS, PASSWORD, create_user

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed")

LOCALES = ["en-US", "zh-CN"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``reunite serve`` showing times in Beijing time (REUNITE_TIMEZONE)."""
    workdir = tmp_path_factory.mktemp("compare")
    create_user(workdir, "staff1", "staff")
    create_user(workdir, "admin1", "admin")
    running = Server(workdir, REUNITE_TIMEZONE="Asia/Shanghai", **MANY_SIGN_INS)
    yield running
    log = running.stop()
    assert "Traceback" not in log and " 500 " not in log, log


def enrolled(server: Server, case_id: int, photo: Any, **form: str) -> dict[str, Any]:
    done = httpx2.post(
        f"{server.url}/api/v1/cases/{case_id}/photos",
        files={"file": (photo.name, photo.read_bytes(), "image/jpeg")},
        data=form,
        headers=server.auth,
        timeout=60,
    )
    assert done.status_code == 201, done.text
    result: dict[str, Any] = done.json()
    return result


@pytest.fixture(scope="module")
def pair(server, faces_dir):
    """A missing case kept by an agency (two photos: one dated, one not) and a found case (one
    photo, undated) proposed as that person; staff1 has a display name. Returns (missing id,
    found id, candidate id)."""
    store = Store(settings_in(server.log_path.parent).resolved_database_url)
    with store.transaction() as session:
        session.add(AgencyRow(code="SHJZ", name="上海救助站"))
        user = session.query(UserRow).filter_by(username="staff1").one()
        user.display_name = "王小明"
    store.engine.dispose()
    api = f"{server.url}/api/v1"
    missing = httpx2.post(
        f"{api}/cases",
        headers=server.auth,
        json={
            "kind": "missing",
            "agency": "SHJZ",
            "external_ref": "SH-2024-0042",
            "sex": "male",
            "birth_year_min": 1960,
            "birth_year_max": 1962,
            "date_missing": "2024-02-20",
            "place": "上海市黄浦区",
            "contact": "138-0000-0042",
        },
    ).json()
    samples = faces_dir / "samples"
    enrolled(server, missing["id"], samples / "obama.jpg", taken_on="2010-05-01")
    enrolled(server, missing["id"], samples / "obama_and_biden.jpg", face_index="0")
    found = httpx2.post(
        f"{api}/cases",
        headers=server.auth,
        json={"kind": "found", "date_found": "2024-03-01", "place": "南京路"},
    ).json()
    new = enrolled(server, found["id"], samples / "obama2.jpg")["new_candidates"]
    [candidate] = [c for c in new if c["missing_case_id"] == missing["id"]]
    return missing["id"], found["id"], candidate["id"]


def signed_in(browser: Browser, server: Server, locale: str, width: int = 1280) -> Page:
    context = browser.new_context(locale=locale, viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(f"{server.url}/login")
    page.fill("input[name=username]", "staff1")
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{server.url}/review")
    return page


def loaded_images(page: Page, selector: str) -> list[int]:
    """The natural widths of the images under ``selector``, once each has loaded."""
    page.wait_for_function(
        "s => [...document.querySelectorAll(s)].every(i => i.complete && i.naturalWidth > 0)",
        arg=selector,
    )
    widths: list[int] = page.eval_on_selector_all(selector, "l => l.map(i => i.naturalWidth)")
    return widths


@pytest.mark.parametrize("locale", LOCALES)
def test_the_faces_stand_side_by_side_at_320_px_and_stack_on_a_phone(browser, server, pair, locale):
    missing, found, candidate = pair
    page = signed_in(browser, server, locale)
    card = f"#candidate-{candidate}"
    loaded_images(page, f"{card} img.face-large")
    boxes = [
        page.locator(f"{card} .side[data-case='{case}'] img.face-large").bounding_box()
        for case in (found, missing)
    ]
    assert all(b is not None and b["width"] >= 320 and b["height"] >= 320 for b in boxes), boxes
    assert boxes[0]["y"] == boxes[1]["y"] and boxes[0]["x"] + 320 <= boxes[1]["x"]  # side by side

    page.set_viewport_size({"width": 360, "height": 800})
    boxes = [
        page.locator(f"{card} .side[data-case='{case}'] img.face-large").bounding_box()
        for case in (found, missing)
    ]
    assert boxes[0]["y"] + boxes[0]["height"] <= boxes[1]["y"]  # stacked
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.locator(f"{card} .side[data-case='{missing}'] a.face-link").click()  # the lightbox fits
    dialog = page.locator(f"{card} .side[data-case='{missing}'] dialog.lightbox")
    shown = dialog.bounding_box()
    assert shown and shown["x"] >= 0 and shown["x"] + shown["width"] <= 360, shown
    heights = dialog.locator("button").evaluate_all(
        "bs => bs.map(b => b.getBoundingClientRect().height)"
    )
    assert len(heights) == 3 and min(heights) >= 44, heights
    page.context.close()


@pytest.mark.parametrize("locale", LOCALES)
def test_every_photo_of_both_cases_is_one_click_away(browser, server, pair, locale):
    missing, found, candidate = pair
    page = signed_in(browser, server, locale)
    for case, count in ((missing, 2), (found, 1)):
        side = f"#candidate-{candidate} .side[data-case='{case}']"
        assert len(loaded_images(page, f"{side} .thumbs img")) == count  # each face's crop
        assert page.locator(f"{side} dialog figure.slide").count() == count
        links = page.locator(f"{side} .thumbs a.zoom")
        assert links.count() == count
        links.last.click()  # one click: the lightbox, at that photo
        dialog = page.locator(f"{side} dialog.lightbox")
        assert dialog.evaluate("d => d.open")
        assert dialog.locator("figure.slide:not([hidden])").get_attribute("data-index") == str(
            count - 1
        )
        page.keyboard.press("Escape")
        assert not dialog.evaluate("d => d.open")
    page.context.close()


@pytest.mark.parametrize("locale", LOCALES)
def test_the_lightbox_opens_by_keyboard_shows_the_whole_photo_with_the_box_and_closes_on_esc(
    browser, server, pair, locale
):
    missing, _, candidate = pair
    photos = httpx2.get(f"{server.url}/api/v1/cases/{missing}/photos", headers=server.auth).json()
    page = signed_in(browser, server, locale)
    side = f"#candidate-{candidate} .side[data-case='{missing}']"
    opener = page.locator(f"{side} a.face-link")
    assert opener.get_attribute("role") == "button"
    shown_first = int(opener.get_attribute("data-index") or 0)
    opener.focus()
    page.keyboard.press("Enter")
    dialog = page.locator(f"{side} dialog.lightbox")
    assert dialog.evaluate("d => d.open")
    slide = dialog.locator("figure.slide:not([hidden])")
    assert slide.get_attribute("data-index") == str(shown_first)

    page.keyboard.press("ArrowRight")  # the other photo of the case; the arrows wrap around
    assert slide.get_attribute("data-index") == str(1 - shown_first)
    page.keyboard.press("ArrowLeft")
    assert slide.get_attribute("data-index") == str(shown_first)

    # The whole photo, loaded, with the stored face box drawn where the face is.
    photo = photos[shown_first]
    [face] = photo["faces"]
    page.wait_for_function(
        "s => { const i = document.querySelector(s); return i && i.getBBox().width > 0 &&"
        " i.getAttribute('href'); }",
        arg=f"{side} figure.slide[data-index='{shown_first}'] image",
    )
    rect = slide.locator("rect.box.matched")
    assert [int(float(rect.get_attribute(a) or -1)) for a in ("x", "y")] == [
        face["box"]["left"],
        face["box"]["top"],
    ]
    image_box = slide.locator("image").bounding_box()
    box = rect.bounding_box()
    assert image_box and box and image_box["width"] > 300
    scale = image_box["width"] / photo["width"]
    face_width = face["box"]["right"] - face["box"]["left"]
    assert abs(box["width"] - face_width * scale) < 6  # the outline drawn to the photo's scale
    assert abs(box["x"] - (image_box["x"] + face["box"]["left"] * scale)) < 6
    assert rect.evaluate("r => getComputedStyle(r).stroke") != "none"

    page.keyboard.press("Escape")
    assert not dialog.evaluate("d => d.open")
    # Focus goes back in the dialog's close event, which the browser fires a moment later.
    page.wait_for_function("document.activeElement.classList.contains('face-link')")

    thumb = page.locator(f"{side} .thumbs a.zoom").first  # Space opens it as well
    thumb.focus()
    page.keyboard.press(" ")
    assert dialog.evaluate("d => d.open")
    dialog.locator("button[data-close]").click()
    assert not dialog.evaluate("d => d.open")
    page.wait_for_function("document.activeElement.matches('.thumbs a.zoom')")
    page.context.close()


FACTS = {
    "en-US": [
        "上海救助站 (SHJZ) · SH-2024-0042",
        "1960\u20131962",
        "20 Feb 2024",
        "1 Mar 2024",
        "上海市黄浦区",
        "南京路",
        "138-0000-0042",
        "1 May 2010, date unknown",
        "taken 1 May 2010",
        "no agency reference",
    ],
    "zh-CN": [
        "上海救助站 (SHJZ) · SH-2024-0042",
        "1960\u20131962",
        "2024年2月20日",
        "2024年3月1日",
        "上海市黄浦区",
        "138-0000-0042",
        "2010年5月1日、日期不详",
        "拍摄于 2010年5月1日",
        "无机构编号",
    ],
}


@pytest.mark.parametrize("locale", LOCALES)
def test_the_card_shows_the_facts_a_reviewer_checks(browser, server, pair, locale):
    _, found, candidate = pair
    page = signed_in(browser, server, locale)
    card = page.locator(f"#candidate-{candidate}")
    text = card.inner_text()
    for fact in FACTS[locale]:
        assert fact in text, (fact, text)
    unknown = "date unknown" if locale == "en-US" else "日期不详"
    found_side = card.locator(f".side[data-case='{found}']")
    assert found_side.locator(".thumbs .photo-date").inner_text() == unknown
    assert found_side.locator("p.photo-date").inner_text() == unknown  # never the upload date
    assert card.locator(".explanation").count() == 1
    page.context.close()


def test_the_history_names_people_and_keys_and_times_carry_their_zone(browser, server, pair):
    missing, _, candidate = pair
    page = signed_in(browser, server, "zh-CN")
    page.click(f"#candidate-{candidate} button.reject")
    page.wait_for_url(f"{server.url}/review*")
    reopened = httpx2.post(
        f"{server.url}/api/v1/candidates/{candidate}/decisions",
        json={"status": "pending", "note": "recheck"},
        headers=server.auth,
    )
    assert reopened.status_code == 200, reopened.text
    prefix = server.auth["Authorization"].split()[1].split("_")[1]
    for locale, zone, key in (
        ("zh-CN", "（北京时间 Asia/Shanghai）", "API 密钥 "),
        ("en-US", " (Asia/Shanghai)", "API key "),
    ):
        page = signed_in(browser, server, locale)
        page.goto(f"{server.url}/cases/{missing}")
        history = page.locator(f"#candidate-{candidate} details.history")
        history.locator("summary").click()
        lines = history.locator("li").all_inner_texts()
        assert len(lines) == 2, lines
        assert "王小明" in lines[0] and "staff1" not in lines[0], lines
        assert zone in lines[0] and zone in lines[1], lines
        assert key + prefix in lines[1], lines
        page.context.close()


@pytest.mark.parametrize("locale", LOCALES)
def test_the_case_page_shows_its_photos_whole_and_large(browser, server, pair, locale):
    missing, _, _ = pair
    page = signed_in(browser, server, locale)
    page.goto(f"{server.url}/cases/{missing}")
    photos = page.locator(".case-photos svg.whole")
    assert photos.count() == 2
    for n in range(2):
        box = photos.nth(n).bounding_box()
        assert box and box["width"] >= 280, box
        assert photos.nth(n).locator("rect.box").count() == 1
    captions = page.locator(".case-photos figcaption").all_inner_texts()
    assert captions[1] == ("date unknown" if locale == "en-US" else "日期不详")
    page.locator(".case-photos a.zoom").nth(1).click()
    assert page.locator("dialog.lightbox").first.evaluate("d => d.open")
    page.context.close()


@pytest.mark.parametrize("locale", LOCALES)
def test_search_results_name_the_case_and_keep_the_box_label_inside_the_photo(
    browser, server, pair, faces_dir, tmp_path, locale
):
    missing, _, _ = pair
    [first, _] = httpx2.get(
        f"{server.url}/api/v1/cases/{missing}/photos", headers=server.auth
    ).json()
    top = first["faces"][0]["box"]["top"]
    near_the_top = tmp_path / "top.jpg"  # obama.jpg cut just above the face: no room for a label
    with Image.open(faces_dir / "samples" / "obama.jpg") as photo:
        photo.crop((0, top - 4, photo.width, photo.height)).save(near_the_top)
    page = signed_in(browser, server, locale)
    page.goto(f"{server.url}/search")
    page.set_input_files("input[name=photo]", str(near_the_top))
    page.click("form.grid button[type=submit]")
    page.wait_for_selector("figure.searched")
    svg = page.locator("figure.searched svg").bounding_box()
    label = page.locator("figure.searched text.box-label").first.bounding_box()
    assert svg and label and label["y"] >= svg["y"], (svg, label)
    result = page.locator(f".ranked:has(a[href='/cases/{missing}'])").first
    assert "上海救助站 (SHJZ) · SH-2024-0042" in result.inner_text()
    page.context.close()
