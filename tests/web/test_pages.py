"""The staff pages in a real headless Chromium (Debian's, driven by Playwright) against a real
``reunite serve`` process, with real photos."""

import os
import shutil
import subprocess
from pathlib import Path

import httpx2
import pytest

from reunite.store import CandidateRow, Store
from reunite.web.i18n import closeness_text
from tests.conftest import settings_in
from tests.images import no_face_jpeg
from tests.web.conftest import CHROMIUM, PASSWORD

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (./run-tests installs it as root)"
)


def missing_case_with_photo(server, faces_dir, name):
    api = f"{server.url}/api/v1"
    case = httpx2.post(
        f"{api}/cases",
        headers=server.auth,
        json={
            "kind": "missing",
            "name": name,
            "sex": "male",
            "birth_year_min": 1960,
            "birth_year_max": 1962,
            "date_missing": "2024-02-20",
            "place": "杭州",
        },
    ).json()
    photo = (faces_dir / "samples" / "obama.jpg").read_bytes()
    enrolled = httpx2.post(
        f"{api}/cases/{case['id']}/photos",
        files={"file": ("o.jpg", photo, "image/jpeg")},
        headers=server.auth,
        timeout=60,
    )
    assert enrolled.status_code == 201, enrolled.text
    return case


def signed_in_page(browser, server, username, locale="en-US"):
    context = browser.new_context(locale=locale, viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.goto(f"{server.url}/review")
    assert "/login" in page.url  # pages need a signed-in user
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{server.url}/review")
    return page


def test_intake_candidate_confirm_and_audit(browser, server, faces_dir, tmp_path):
    missing = missing_case_with_photo(server, faces_dir, "李建国")
    page = signed_in_page(browser, server, "staff1")
    assert page.locator("#queue-total").inner_text() == "0 waiting"

    page.click("text=New intake")
    page.select_option("select[name=sex]", "male")
    page.fill("input[name=age_min]", "55")
    page.fill("input[name=age_max]", "70")
    page.fill("input[name=date_found]", "2024-03-05")
    page.fill("input[name=place]", "上海市救助管理站")
    page.set_input_files("input[name=photos]", str(faces_dir / "samples" / "obama2.jpg"))
    page.click("form.grid button[type=submit]")
    page.wait_for_url(f"{server.url}/cases/*")
    found_id = int(page.url.rsplit("/", 1)[1])
    assert "1 candidate(s) found" in page.locator(".notice").inner_text()
    card = page.locator("article.candidate")
    assert card.count() == 1 and "李建国" in card.inner_text()
    assert float(card.locator(".distance").text_content() or "") < 0.6  # under "The numbers"

    page.click("text=Review queue")
    card = page.locator("article.candidate")
    assert card.count() == 1 and "上海市救助管理站" in card.inner_text()
    assert "5 Mar 2024" in card.inner_text()
    page.wait_for_function(  # the two face crops really load (waits; a loaded page may not be)
        "() => [...document.querySelectorAll('article.candidate img.face')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    assert card.locator("img.face").count() == 2
    DOCS_DIR.mkdir(exist_ok=True)
    shot = (
        DOCS_DIR / "review-queue.png"
        if os.environ.get("REUNITE_UPDATE_SCREENSHOTS")
        else (tmp_path / "review-queue.png")
    )
    page.screenshot(path=str(shot), full_page=False)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    card.locator("input[name=note]").fill("Family recognised him; visit booked")
    assert not card.locator("button.confirm-final").is_visible()  # asks once more first
    card.locator("summary.confirm").click()
    check = card.locator(".confirm-check")
    assert f"found case {found_id} and missing case {missing['id']}" in check.inner_text()
    card.locator("button.confirm-final").click()
    page.wait_for_url(f"{server.url}/review*")
    notice = page.locator(".notice").inner_text()
    assert notice.startswith("Candidate ") and notice.endswith(
        f"(found case {found_id} ↔ missing case {missing['id']}): confirmed."
    )
    assert page.locator("article.candidate").count() == 0

    for case_id in (found_id, missing["id"]):
        page.goto(f"{server.url}/cases/{case_id}")
        assert "Matched" in page.locator("#case-facts").inner_text()
    assert "Family recognised him" in (page.locator("details.history").text_content() or "")

    with httpx2.Client(base_url=server.url) as admin:
        admin.post("/api/v1/session", json={"username": "admin1", "password": PASSWORD})
        events = admin.get("/api/v1/audit", params={"action": "candidate.decision"}).json()
    [decision] = events["items"]
    assert decision["actor"] == "user:staff1" and decision["details"]["new"] == "confirmed"


def test_no_face_error_in_chinese_keeps_what_was_typed(browser, server, faces_dir, tmp_path):
    no_face = tmp_path / "背景.jpg"
    no_face.write_bytes(no_face_jpeg((faces_dir / "samples" / "obama.jpg").read_bytes()))
    page = signed_in_page(browser, server, "staff1", locale="zh-CN")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    page.click("text=新登记")
    page.fill("input[name=name]", "王芳")
    page.fill("textarea[name=description]", "左手有疤痕，说四川话")
    page.set_input_files("input[name=photos]", str(no_face))
    page.click("form.grid button[type=submit]")
    errors = page.locator("#photo-errors")
    assert "照片中没有找到人脸" in errors.inner_text() and "背景.jpg" in errors.inner_text()
    assert page.locator("#form-errors").is_visible()
    assert page.input_value("input[name=name]") == "王芳"
    assert page.input_value("textarea[name=description]") == "左手有疤痕，说四川话"
    page.click("#lang-switch")
    assert page.locator("header nav").inner_text().split("\n")[0].strip() == "Review queue"


def test_a_photo_too_large_is_refused_next_to_the_form(browser, server, faces_dir):
    page = signed_in_page(browser, server, "staff1", locale="zh-CN")
    page.goto(f"{server.url}/intake")
    page.fill("input[name=place]", "北京")
    page.set_input_files(
        "input[name=photos]",
        [str(faces_dir / "samples" / "obama3.jpg"), str(faces_dir / "samples" / "biden.jpg")],
    )
    page.click("form.grid button[type=submit]")
    errors = page.locator("#photo-errors").inner_text()
    assert "obama3.jpg" in errors and "照片太大" in errors and "biden.jpg" not in errors
    assert page.input_value("input[name=place]") == "北京"


def test_search_draws_a_box_on_every_face(browser, server, faces_dir):
    page = signed_in_page(browser, server, "staff1")
    page.click("text=Search by photo")
    page.set_input_files("input[name=photo]", str(faces_dir / "samples" / "obama_and_biden.jpg"))
    page.click("form.grid button[type=submit]")
    page.wait_for_selector("figure.searched")
    assert page.locator("svg rect.box").count() == 3
    assert page.locator("section.face-results").count() == 3
    ranked = page.locator("section.face-results .ranked")
    assert ranked.count() >= 1  # Obama is enrolled
    # A small gallery: no cohort to compare with, so no chance in percent, but words saying so.
    assert "%" not in ranked.first.inner_text()
    assert "cannot be estimated yet" in ranked.first.locator(".chance-unknown").inner_text()


def test_admin_reopens_with_a_reason(browser, server, faces_dir):
    api = f"{server.url}/api/v1"
    missing = missing_case_with_photo(server, faces_dir, "张强")
    found = httpx2.post(f"{api}/cases", json={"kind": "found"}, headers=server.auth).json()
    photo = (faces_dir / "samples" / "obama-1080p.jpg").read_bytes()
    enrolled = httpx2.post(
        f"{api}/cases/{found['id']}/photos",
        files={"file": ("o.jpg", photo, "image/jpeg")},
        headers=server.auth,
        timeout=60,
    ).json()
    [candidate] = [c for c in enrolled["new_candidates"] if c["missing_case_id"] == missing["id"]]
    confirmed = httpx2.post(
        f"{api}/candidates/{candidate['id']}/decisions",
        json={"status": "confirmed"},
        headers=server.auth,
    )
    assert confirmed.status_code == 200, confirmed.text
    page = signed_in_page(browser, server, "admin1")
    page.goto(f"{server.url}/cases/{found['id']}")
    card = page.locator(f"#candidate-{candidate['id']}")
    assert card.get_attribute("data-status") == "confirmed"
    card.locator("input[name=note]").fill("DNA negative")
    card.locator("button[value=pending]").click()
    page.wait_for_url(f"{server.url}/cases/{found['id']}")
    assert page.locator(f"#candidate-{candidate['id']}").get_attribute("data-status") == "pending"
    assert "Open" in page.locator("#case-facts").inner_text()


def test_chinese_text_has_a_font(browser):
    if shutil.which("fc-list") is None:
        pytest.skip("fontconfig not installed")
    fonts = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True).stdout
    assert fonts.strip(), "no CJK font: Chinese renders as boxes (install fonts-wqy-microhei)"


def test_an_unknown_path_shows_the_404_page_in_chinese(browser, server):
    context = browser.new_context(locale="zh-CN", viewport={"width": 1100, "height": 900})
    page = context.new_page()
    response = page.goto(f"{server.url}/no-such-page")
    assert response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("main [role=alert]").inner_text() == "此地址没有页面。"
    assert "404" in page.locator("main h1").inner_text()
    page.click("#error-back")  # back to the queue, via sign-in when signed out
    page.wait_for_url(lambda url: "/login?next=" in url)
    context.close()


def csp_violations(page):
    """The Content-Security-Policy violations the page reports (Chromium logs each one)."""
    seen: list[str] = []
    page.on(
        "console",
        lambda message: (
            seen.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return seen


def test_pages_and_api_documents_work_under_the_security_headers(browser, server, faces_dir):
    missing = missing_case_with_photo(server, faces_dir, "赵敏")
    page = signed_in_page(browser, server, "staff1")
    violations = csp_violations(page)
    answer = page.goto(f"{server.url}/cases/{missing['id']}")
    assert answer is not None
    headers = answer.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert "camera=()" in headers["permissions-policy"]
    assert headers["cache-control"] == "no-store"
    # Every crop, the cards below the fold too (lazy ones would wait for a scroll).
    page.locator("img.face").evaluate_all("imgs => imgs.forEach(i => { i.loading = 'eager'; })")
    page.wait_for_function(  # the crops load under the policy
        "() => [...document.querySelectorAll('img.face')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator("link[rel=stylesheet]").evaluate("l => l.sheet.cssRules.length > 0")

    page.goto(f"{server.url}/search")  # the searched photo is shown as a data: URL
    page.set_input_files("input[name=photo]", str(faces_dir / "samples" / "obama2.jpg"))
    page.click("form.grid button[type=submit]")
    page.wait_for_selector("figure.searched")
    page.goto(f"{server.url}/intake")

    page.goto(f"{server.url}/docs")  # Swagger UI: its inline script is allowed by its hash
    page.wait_for_selector(".opblock", timeout=30_000)
    page.goto(f"{server.url}/redoc")  # ReDoc: inline styles and blob: workers
    page.wait_for_selector("h1:has-text('reunite')", timeout=30_000)
    # ReDoc's "powered by" logo is the one thing refused: it lives outside (cdn.redoc.ly).
    assert [v for v in violations if "https://cdn.redoc.ly/" not in v] == []


def set_explanation(server, candidate_id, rank, score):
    """Rank and score of a proposed candidate, set through the server's own store (as the
    matching records them; None: a candidate proposed before they existed)."""
    store = Store(settings_in(server.log_path.parent).resolved_database_url)
    with store.transaction() as session:
        row = session.get_one(CandidateRow, candidate_id)
        row.rank, row.score = rank, score
    store.engine.dispose()


def explanation_of(page, candidate_id):
    line = page.locator(f"#candidate-{candidate_id} p.explanation")
    fits = line.evaluate(
        "p => p.scrollWidth <= p.clientWidth"
        " && p.getBoundingClientRect().right <= document.documentElement.clientWidth"
    )
    assert fits, "the explanation line overflows"
    return " ".join(line.inner_text().split())


def test_candidate_cards_explain_themselves_in_chinese_and_english(browser, server, faces_dir):
    api = f"{server.url}/api/v1"
    missing = missing_case_with_photo(server, faces_dir, "王芳")
    found = httpx2.post(f"{api}/cases", json={"kind": "found"}, headers=server.auth).json()
    enrolled = httpx2.post(
        f"{api}/cases/{found['id']}/photos",
        files={
            "file": ("o.jpg", (faces_dir / "samples" / "obama2.jpg").read_bytes(), "image/jpeg")
        },
        headers=server.auth,
        timeout=60,
    ).json()
    [candidate] = [c for c in enrolled["new_candidates"] if c["missing_case_id"] == missing["id"]]
    distance = f"{candidate['distance']:.3f}"
    close = {lang: closeness_text(lang, candidate["distance"], 0.55) for lang in ("en", "zh-CN")}
    english = signed_in_page(browser, server, "staff1")
    chinese = signed_in_page(browser, server, "staff1", locale="zh-CN")

    # A gallery of two cases: no cohort, no score, so no chance to show, whatever the pair fit
    # says (it reads near 1 for every pair within tolerance).
    assert candidate["explanation"]["score"] is None and candidate["similarity"] > 0.99
    assert candidate["similarity_basis"] == "pair"
    for page, words in (
        (english, "Chance this is the person cannot be estimated yet: there are too few cases "
         "to compare with (a search needs at least 30 cases of the other kind, missing or found)."),
        (chinese, "暂时无法估计是此人的可能性：可比较的案例太少（每次搜索需要至少 30 个另一类的"
         "案例，即走失或受助案例）。"),
    ):  # fmt: skip
        for path in ("/review", f"/cases/{found['id']}"):
            page.goto(f"{server.url}{path}")
            card = page.locator(f"#candidate-{candidate['id']}")
            assert "%" not in card.inner_text()
            assert card.locator(".chance").count() == 0
            assert card.locator(".chance-unknown").inner_text() == words
    english.goto(f"{server.url}/cases/{found['id']}")
    assert explanation_of(english, candidate["id"]) == (
        f"Faces: {close['en']} · No. {candidate['explanation']['rank']} of the cases its search "
        "found · not compared with other cases (too few to compare with)"
    )
    numbers = english.locator(f"#candidate-{candidate['id']} details.numbers")
    numbers.locator("summary").click()
    assert f"Distance between the faces: {distance} (0 is identical" in numbers.inner_text()
    assert "Normalised score: none" in numbers.inner_text()

    set_explanation(server, candidate["id"], rank=1, score=3.24)
    english.goto(f"{server.url}/cases/{found['id']}")
    expected = (
        f"Faces: {close['en']} · No. 1 of the cases its search found · stands out from other "
        "similar faces: 3.2 (higher is clearer)"
    )
    assert explanation_of(english, candidate["id"]) == expected
    english.goto(f"{server.url}/review")
    assert explanation_of(english, candidate["id"]) == expected
    chance = english.locator(f"#candidate-{candidate['id']} .chance").inner_text()
    assert chance.endswith("%")  # the search fit: a chance among the probe's near faces

    chinese.set_viewport_size({"width": 360, "height": 800})  # a phone: the line wraps
    chinese.goto(f"{server.url}/review")
    expected = (
        f"两张脸：{close['zh-CN']} · 在其搜索找到的案例中排第 1 · "
        "比其他相似面孔更接近：3.2（越高越明显）"
    )
    assert explanation_of(chinese, candidate["id"]) == expected

    set_explanation(server, candidate["id"], rank=None, score=None)
    chinese.goto(f"{server.url}/cases/{missing['id']}")
    unknown = f"两张脸：{close['zh-CN']} · 未记录其在搜索中的名次 · 没有足够的案例来比较"
    assert explanation_of(chinese, candidate["id"]) == unknown
    assert "突出程度" not in chinese.locator(f"#candidate-{candidate['id']}").inner_text()
