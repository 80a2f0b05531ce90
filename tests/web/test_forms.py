"""Forms that help (issue 15, item 5), through the real app: each field's rule next to it,
errors attached to their fields, photos kept after a refusal, a group photo's face picked, and
agencies chosen from the list an admin keeps."""

import re

import pytest

from reunite import accounts, agencies
from tests.web.conftest import PASSWORD, csrf_token


def intake(client, lang="en", files=None, **fields):
    data = {"csrf_token": csrf_token(client, "/intake"), **fields}
    return client.post(
        "/intake",
        data=data,
        files=files,
        headers={"Accept-Language": lang},
        follow_redirects=False,
    )


def attrs_of(page: str, name: str) -> str:
    """The attributes of the form control named ``name``."""
    return re.search(rf'<(?:input|select|textarea) name="{name}"([^>]*)>', page).group(1)


def kept_tokens(page: str) -> list[str]:
    return re.findall(r'name="kept" value="([^"]+)"', page)


@pytest.mark.parametrize(
    ("lang", "words"),
    [("en", ["YYYY-MM-DD", "no spaces", "0 to 120"]), ("zh-CN", ["年-月-日", "不能有空格"])],
)
def test_every_field_says_its_rule_and_links_it(staff, lang, words):
    page = staff.get("/intake", headers={"Accept-Language": lang}).text
    for word in words:
        assert word in page
    fields = ("name", "age_min", "age_max", "date_found", "place", "description", "contact")
    for name in (*fields, "agency", "external_ref", "photos", "taken_on"):
        described = re.search(r'aria-describedby="([^"]+)"', attrs_of(page, name)).group(1)
        for target in described.split():
            assert f'id="{target}"' in page, (name, target)
        assert "aria-invalid" not in attrs_of(page, name)
    assert "autofocus" not in page and 'id="form-errors"' not in page


def test_the_fields_input_hints_reach_the_browser_as_attributes(staff):
    """Phones open the number pad for ages; the date field has its range (not escaped text)."""
    page = staff.get("/intake").text
    assert "&quot;" not in page
    assert re.search(r'name="age_min"[^>]* inputmode="numeric"', page)
    assert re.search(r'name="date_found" type="date"[^>]* min="1900-01-01"', page)


@pytest.mark.parametrize(
    ("lang", "message"),
    [("en", "“from” (70) is above “to” (60)"), ("zh-CN", "“从”（70）大于“到”（60）")],
)
def test_a_reversed_age_range_is_refused_at_its_field(staff, sample, lang, message):
    files = {"photos": ("obama.jpg", sample("obama.jpg"), "image/jpeg")}
    refused = intake(staff, lang, files=files, age_min="70", age_max="60", place="上海")
    assert refused.status_code == 422
    page = refused.text
    age = attrs_of(page, "age_min")
    assert 'aria-invalid="true"' in age and "autofocus" in age
    assert "f-age_min-error" in age and message in page
    assert '<a href="#f-age_min">' in page  # the summary links to the field
    assert "aria-invalid" not in attrs_of(page, "age_max")
    assert staff.app.state.service.cases().total == 0
    assert len(kept_tokens(page)) == 1  # the good photo is kept


def test_the_first_wrong_field_is_focused_and_each_error_sits_at_its_field(staff):
    page = intake(staff, "zh-CN", date_found="2024-13-40", agency="bad agency!").text
    assert page.count("autofocus") == 1 and "autofocus" in attrs_of(page, "date_found")
    assert 'aria-invalid="true"' in attrs_of(page, "agency")
    assert 'aria-invalid="true"' in attrs_of(page, "photos")  # no photo chosen
    summary = re.findall(r'<a href="#f-([a-z_]+)">', page)
    assert summary == ["date_found", "agency", "photos"]  # in the order of the form
    assert "不能有空格" in page.split('id="f-agency-error"')[1].split("</span>")[0]


def test_photos_kept_after_a_refusal_need_not_be_chosen_again(staff, sample):
    service = staff.app.state.service
    staging = service.settings.data_dir / "staging"
    files = [
        ("photos", ("obama.jpg", sample("obama.jpg"), "image/jpeg")),
        ("photos", ("背景.txt", b"not a photo", "text/plain")),
    ]
    refused = intake(staff, files=files, age_min="x")
    assert refused.status_code == 422 and "kept: obama.jpg" in refused.text
    [token] = kept_tokens(refused.text)
    thumbnail = staff.get(f"/intake/kept/{token}")
    assert thumbnail.status_code == 200 and thumbnail.content == sample("obama.jpg")
    assert thumbnail.headers["cache-control"] == "private, no-store"
    assert len(list(staging.iterdir())) == 2  # the bytes and their facts
    created = intake(staff, kept=token, age_min="40")
    assert created.status_code == 303, created.text
    case_id = int(created.headers["location"].rsplit("/", 1)[1])
    [(_, faces)] = service.photos(case_id)
    assert len(faces) == 1
    assert list(staging.iterdir()) == []  # removed once used
    assert staff.get(f"/intake/kept/{token}").status_code == 404


def test_a_kept_photo_can_be_removed_and_is_only_its_owners(staff, sample, app_client):
    files = {"photos": ("obama.jpg", sample("obama.jpg"), "image/jpeg")}
    [token] = kept_tokens(intake(staff, files=files, age_min="x").text)
    refused = intake(staff, kept=token, drop=token)
    assert refused.status_code == 422 and "kept: obama.jpg" not in refused.text
    assert "Choose at least one photo." in refused.text
    assert list((staff.app.state.service.settings.data_dir / "staging").iterdir()) == []
    assert intake(staff, kept="../../reunite.db").status_code == 422  # not a token: gone


def test_a_group_photo_waits_for_its_face_to_be_picked(staff, sample):
    service = staff.app.state.service
    files = {"photos": ("group.jpg", sample("obama_and_biden.jpg"), "image/jpeg")}
    refused = intake(staff, "zh-CN", files=files)
    assert refused.status_code == 422
    page = refused.text
    [token] = kept_tokens(page)
    radios = re.findall(rf'name="face-{token}" value="(\d)"', page)
    assert radios == ["0", "1", "2"]
    assert "第 1 张人脸，共 3 张" in page and "group.jpg：这张照片中有 3 张人脸" in page
    assert page.count("autofocus") == 1 and f'id="f-face-{token}" autofocus' in page
    boxes = [
        tuple(int(v) for v in m)
        for m in re.findall(
            r'<rect class="box" data-index="\d" x="(\d+)" y="(\d+)" width="(\d+)"', page
        )
    ]
    created = intake(staff, kept=token, **{f"face-{token}": "2"})
    assert created.status_code == 303, created.text
    case_id = int(created.headers["location"].rsplit("/", 1)[1])
    [(_, [face])] = service.photos(case_id)
    assert (face.left, face.top, face.right - face.left) == boxes[2]
    assert face.face_choice is None  # a person chose it


def signed_in_admin(app_client):
    accounts.create_user(app_client.app.state.service.store, "admin1", PASSWORD, "admin", actor="t")
    app_client.post(
        "/login",
        data={
            "username": "admin1",
            "password": PASSWORD,
            "csrf_token": csrf_token(app_client, "/login"),
        },
    )
    return app_client


def test_agencies_page_adds_renames_and_retires_for_admins_only(staff, app_client):
    assert staff.get("/admin/agencies", headers={"Accept": "text/html"}).status_code == 403
    admin = signed_in_admin(staff)
    token = csrf_token(admin, "/admin/agencies")
    post = lambda path, **data: admin.post(  # noqa: E731
        path, data={"csrf_token": token, **data}, headers={"Accept-Language": "zh-CN"}
    )
    refused = post("/admin/agencies", code="SH RESCUE", name="上海市救助管理站")
    assert refused.status_code == 422 and "不能有空格" in refused.text
    assert 'aria-invalid="true"' in refused.text and 'value="上海市救助管理站"' in refused.text
    assert post("/admin/agencies", code="SH-RESCUE-01", name="上海市救助管理站").status_code == 200
    assert (
        "已有代码为 SH-RESCUE-01 的机构"
        in post("/admin/agencies", code="SH-RESCUE-01", name="x").text
    )
    assert post("/admin/agencies/SH-RESCUE-01/name", name="上海救助站").status_code == 200
    assert post("/admin/agencies/SH-RESCUE-01/retired", retired="1").status_code == 200
    [row] = agencies.agencies(admin.app.state.service.store)
    assert (row.code, row.name, row.retired) == ("SH-RESCUE-01", "上海救助站", True)


def test_the_agency_is_chosen_from_the_kept_list(staff, sample):
    store = staff.app.state.service.store
    agencies.add_agency(store, "SH-RESCUE-01", "上海市救助管理站", actor="t")
    agencies.add_agency(store, "OLD-01", "旧机构", actor="t")
    agencies.retire_agency(store, "OLD-01", actor="t")
    page = staff.get("/intake", headers={"Accept-Language": "zh-CN"}).text
    assert '<option value="SH-RESCUE-01" >上海市救助管理站</option>' in page
    assert "OLD-01" not in page and "从管理员维护的列表中选择机构" in page
    files = {"photos": ("obama.jpg", sample("obama.jpg"), "image/jpeg")}
    refused = intake(staff, "zh-CN", files=files, agency="OLD-01")
    assert refused.status_code == 422 and "机构：请从列表中选择。" in refused.text
    [token] = kept_tokens(refused.text)
    created = intake(staff, kept=token, agency="SH-RESCUE-01", external_ref="2024-001")
    assert created.status_code == 303
    case_id = int(created.headers["location"].rsplit("/", 1)[1])
    assert staff.app.state.service.case(case_id).agency == "SH-RESCUE-01"


def field_error(page: str, name: str) -> str:
    return page.split(f'id="f-{name}-error"')[1].split("</span>")[0].split(">", 1)[1]


@pytest.mark.parametrize(
    ("lang", "listed", "free"),
    [
        (
            "en",
            "Agency: choose the agency that issued this case number",
            "Agency: enter the code of the agency that issued this case number",
        ),
        ("zh-CN", "机构：请选择签发此案件编号的机构", "机构：请填写签发此案件编号的机构代码"),
    ],
)
def test_a_case_number_without_an_agency_asks_for_the_agency_as_its_control_takes_it(
    staff, sample, lang, listed, free
):
    files = {"photos": ("obama.jpg", sample("obama.jpg"), "image/jpeg")}
    refused = intake(staff, lang, files=files, external_ref="2024-001")
    assert refused.status_code == 422
    assert field_error(refused.text, "agency").startswith(free)  # a text field: type the code

    agencies.add_agency(staff.app.state.service.store, "SH-01", "上海", actor="t")
    refused = intake(staff, lang, files=files, external_ref="2024-001")
    assert refused.status_code == 422 and '<select name="agency"' in refused.text
    shown = field_error(refused.text, "agency")
    assert shown.startswith(listed), shown  # a drop-down: choose, no typing rule
    assert "no spaces" not in shown and "不能有空格" not in shown


def test_a_picked_face_and_kept_photos_survive_another_refusal(staff, sample):
    store = staff.app.state.service.store
    agencies.add_agency(store, "SH-01", "上海", actor="t")
    first = intake(staff, files={"photos": ("g.jpg", sample("obama_and_biden.jpg"), "image/jpeg")})
    [token] = kept_tokens(first.text)
    created = intake(
        staff, kept=token, agency="SH-01", external_ref="A-1", **{f"face-{token}": "0"}
    )
    assert created.status_code == 303
    second = intake(staff, files={"photos": ("g.jpg", sample("obama_and_biden.jpg"), "image/jpeg")})
    [token] = kept_tokens(second.text)
    again = intake(  # the same agency case number again: refused, the pick kept
        staff, kept=token, agency="SH-01", external_ref="A-1", **{f"face-{token}": "1"}
    )
    assert again.status_code == 422 and "This cannot be done now" in again.text
    assert kept_tokens(again.text) == [token]
    assert re.search(rf'name="face-{token}" value="1" checked', again.text)
    assert f'id="f-face-{token}" autofocus' not in again.text  # nothing left to pick there


@pytest.mark.parametrize(("lang", "words"), [("en", "every face"), ("zh-CN", "每张人脸")])
def test_the_search_form_says_its_rule_and_marks_a_missing_photo(staff, lang, words):
    page = staff.get("/search", headers={"Accept-Language": lang}).text
    assert words in page and 'aria-describedby="f-photo-hint"' in page
    refused = staff.post(
        "/search",
        data={"csrf_token": csrf_token(staff, "/search")},
        headers={"Accept-Language": lang},
    )
    assert refused.status_code == 422
    photo = attrs_of(refused.text, "photo")
    assert 'aria-invalid="true"' in photo and "autofocus" in photo
    assert "f-photo-error" in photo and '<a href="#f-photo">' in refused.text
