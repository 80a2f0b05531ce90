"""Forms that help, in a real browser against a real ``reunite serve``: a refused intake keeps
its photos and focuses the wrong field; a group photo's face is picked by clicking its box; the
agency is chosen from the list an admin keeps on the agencies page."""

import httpx2
import pytest

from tests.web.conftest import CHROMIUM
from tests.web.test_pages import signed_in_page

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed")


def case_photos(server, page):
    case_id = int(page.url.rsplit("/", 1)[1])
    photos = httpx2.get(f"{server.url}/api/v1/cases/{case_id}/photos", headers=server.auth)
    return case_id, photos.json()


@pytest.mark.parametrize(
    ("locale", "words"),
    [
        ("en-US", ("“from” (70) is above “to” (60)", "kept: obama2.jpg")),
        ("zh-CN", ("“从”（70）大于“到”（60）", "已保留：obama2.jpg")),
    ],
)
def test_a_refused_intake_keeps_its_photo_and_focuses_the_wrong_field(
    browser, server, faces_dir, locale, words
):
    page = signed_in_page(browser, server, "staff1", locale=locale)
    page.goto(f"{server.url}/intake")
    assert "YYYY-MM-DD" in page.locator("#f-date_found-hint").inner_text() or locale == "zh-CN"
    page.fill("input[name=age_min]", "70")
    page.fill("input[name=age_max]", "60")
    page.fill("input[name=place]", "上海市救助管理站")
    page.set_input_files("input[name=photos]", str(faces_dir / "samples" / "obama2.jpg"))
    page.click("form.grid button[type=submit]")
    page.wait_for_selector("#form-errors")
    assert page.evaluate("document.activeElement.name") == "age_min"
    age = page.locator("input[name=age_min]")
    assert age.get_attribute("aria-invalid") == "true"
    assert words[0] in page.locator("#f-age_min-error").inner_text()
    assert words[0] in page.locator("#form-errors").inner_text()
    kept = page.locator("#kept-photos")
    assert words[1] in kept.inner_text()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#kept-photos img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.input_value("input[name=place]") == "上海市救助管理站"
    page.locator("#form-errors a").first.click()  # the summary's link reaches the field
    assert page.evaluate("document.activeElement.name") == "age_min"
    page.fill("input[name=age_max]", "75")  # no photo chosen again
    page.click("form.grid button[type=submit]")
    page.wait_for_url(f"{server.url}/cases/*")
    _, photos = case_photos(server, page)
    assert len(photos) == 1 and len(photos[0]["faces"]) == 1


def test_a_group_photos_face_is_picked_by_tapping_its_crop(browser, server, faces_dir):
    page = signed_in_page(browser, server, "staff1", locale="zh-CN")
    page.goto(f"{server.url}/intake")
    group = faces_dir / "samples" / "obama_and_biden.jpg"
    page.set_input_files("input[name=photos]", str(group))
    page.click("form.grid button[type=submit]")
    page.wait_for_selector("fieldset.face-picker")
    choices = page.locator("fieldset.face-picker label.face-choice")
    assert choices.count() == 3
    assert (
        page.locator("fieldset.face-picker input[type=radio]")
        .nth(1)
        .evaluate("r => r.labels[0].textContent")
        == "第 2 张人脸，共 3 张"
    )
    first = page.locator("fieldset.face-picker input[type=radio]").first
    assert page.evaluate("document.activeElement.type") == "radio"  # focused, keyboard-ready
    page.keyboard.press("ArrowRight")  # arrows move between faces, as in any radio group
    assert page.locator("fieldset.face-picker input:checked").get_attribute("value") == "1"
    assert not first.is_checked()
    chosen = page.locator("fieldset.face-picker rect.box").nth(2)
    box = {k: int(chosen.get_attribute(k)) for k in ("x", "y", "width", "height")}
    page.set_viewport_size({"width": 390, "height": 800})  # a phone: the crop is tapped
    tapped = choices.nth(2).bounding_box()
    assert tapped and tapped["width"] >= 44 and tapped["height"] >= 44
    choices.nth(2).locator("svg.face-crop").click()
    assert page.locator("fieldset.face-picker input:checked").get_attribute("value") == "2"
    page.click("form.grid button[type=submit]")
    page.wait_for_url(f"{server.url}/cases/*")
    _, [photo] = case_photos(server, page)
    [face] = photo["faces"]
    got = face["box"]
    assert (got["left"], got["top"], got["right"] - got["left"]) == (
        box["x"],
        box["y"],
        box["width"],
    )


def test_agencies_kept_by_an_admin_are_chosen_on_the_intake_form(browser, server, faces_dir):
    admin = signed_in_page(browser, server, "admin1", locale="zh-CN")
    admin.click("text=机构管理")
    admin.fill("input[name=code]", "SH RESCUE")
    admin.fill("input[name=name]", "上海市救助管理站")
    admin.click("#add-agency button[type=submit]")
    admin.wait_for_selector("#form-errors")
    assert admin.evaluate("document.activeElement.name") == "code"
    assert "不能有空格" in admin.locator("#f-new-code-error").inner_text()
    admin.fill("input[name=code]", "SH-RESCUE-01")
    admin.click("#add-agency button[type=submit]")
    admin.wait_for_selector(".notice")
    assert "已添加机构 SH-RESCUE-01" in admin.locator(".notice").inner_text()

    page = signed_in_page(browser, server, "staff1")
    page.goto(f"{server.url}/intake")
    assert page.locator("select[name=agency] option").all_inner_texts()[1] == "上海市救助管理站"
    assert "list an admin keeps" in page.locator("#f-agency-hint").inner_text()
    page.select_option("select[name=agency]", "SH-RESCUE-01")
    page.fill("input[name=external_ref]", "2024-118")
    page.set_input_files("input[name=photos]", str(faces_dir / "samples" / "biden.jpg"))
    page.click("form.grid button[type=submit]")
    page.wait_for_url(f"{server.url}/cases/*")
    case_id, _ = case_photos(server, page)
    case = httpx2.get(f"{server.url}/api/v1/cases/{case_id}", headers=server.auth).json()
    assert (case["agency"], case["external_ref"]) == ("SH-RESCUE-01", "2024-118")
