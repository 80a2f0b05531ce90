"""The HTTP API through the real ASGI app, on real photos."""

import io

import pytest
from PIL import Image

from tests import images

API = "/api/v1"


def create(client, kind, **facts):
    response = client.post(f"{API}/cases", json={"kind": kind, **facts})
    assert response.status_code == 201, response.text
    return response.json()


def upload(client, case_id, data, name="photo.jpg", **form):
    return client.post(
        f"{API}/cases/{case_id}/photos", files={"file": (name, data, "image/jpeg")}, data=form
    )


def assert_problem(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["code"] == code
    assert body["detail"] and body["type"] == f"urn:reunite:error:{code}"
    return body


def snapshot(client):
    """Everything a client can see of the stored state, to check that a refusal changed nothing."""
    cases = client.get(f"{API}/cases", params={"limit": 500}).json()["items"]
    return [
        (
            case,
            client.get(f"{API}/cases/{case['id']}/photos").json(),
            client.get(f"{API}/cases/{case['id']}/candidates").json(),
        )
        for case in cases
    ]


def test_obama_matches_obama_and_not_biden(client, sample):
    missing = create(
        client, "missing", name="Barack", sex="male", agency="SH-PSB", external_ref="M-1"
    )
    first = upload(client, missing["id"], sample("obama.jpg"))
    assert first.status_code == 201, first.text
    assert first.json()["new_candidates"] == []
    [face] = first.json()["photo"]["faces"]
    assert face["box"]["right"] > face["box"]["left"] and face["face_width_px"] > 100

    found = create(client, "found", sex="male", place="Shanghai rescue center")
    second = upload(client, found["id"], sample("obama2.jpg"))
    assert second.status_code == 201
    [candidate] = second.json()["new_candidates"]
    assert candidate["found_case_id"] == found["id"]
    assert candidate["missing_case_id"] == missing["id"]
    assert candidate["distance"] < 0.6 and candidate["status"] == "pending"
    service = client.app.state.service
    assert candidate["similarity"] == pytest.approx(service.similarity(candidate["distance"]))
    assert 0.5 < candidate["similarity"] <= 1.0
    [listed] = client.get(f"{API}/cases/{missing['id']}/candidates").json()
    assert {k: listed[k] for k in candidate} == candidate
    assert listed["found_case"]["id"] == found["id"] and listed["missing_case"]["name"] == "Barack"

    other = create(client, "found")
    third = upload(client, other["id"], sample("biden.jpg"))
    assert third.status_code == 201 and third.json()["new_candidates"] == []
    assert client.get(f"{API}/cases/{other['id']}/candidates").json() == []


def test_the_same_photo_twice_is_one_photo(client, sample):
    case = create(client, "missing")
    assert upload(client, case["id"], sample("obama.jpg")).status_code == 201
    again = upload(client, case["id"], sample("obama.jpg"))
    assert again.status_code == 200 and again.json()["created"] is False
    assert len(client.get(f"{API}/cases/{case['id']}/photos").json()) == 1


def test_search_lists_candidates_per_face(client, sample):
    obama = create(client, "missing")
    upload(client, obama["id"], sample("obama.jpg"))
    biden = create(client, "found")
    upload(client, biden["id"], sample("biden.jpg"))
    response = client.post(
        f"{API}/search", files={"file": ("p.jpg", sample("obama_and_biden.jpg"), "image/jpeg")}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kinds"] == ["missing", "found"] and body["k"] == 10 and body["tolerance"] == 0.55
    best = {f["candidates"][0]["case"]["id"] for f in body["faces"] if f["candidates"]}
    assert best == {obama["id"], biden["id"]}
    only_found = client.post(
        f"{API}/search",
        files={"file": ("p.jpg", sample("obama_and_biden.jpg"), "image/jpeg")},
        data={"kind": "found"},
    ).json()
    assert {c["case"]["kind"] for f in only_found["faces"] for c in f["candidates"]} == {"found"}


def test_photo_image_and_face_crop(client, sample):
    case = create(client, "missing")
    photo = upload(client, case["id"], sample("obama.jpg")).json()["photo"]
    image = client.get(photo["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.content == sample("obama.jpg")
    face = photo["faces"][0]
    crop = client.get(face["crop_url"])
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
    width, _ = Image.open(io.BytesIO(crop.content)).size
    box = face["box"]
    assert box["right"] - box["left"] < width < 2 * (box["right"] - box["left"])
    assert_problem(client.get(f"{API}/faces/999999/crop"), 404, "not_found")
    assert_problem(client.get(f"{API}/photos/999999/image"), 404, "not_found")


def test_case_crud_and_listing(client):
    a = create(
        client,
        "missing",
        name="张伟",
        agency="SH-PSB",
        external_ref="2024/001",
        birth_year_min=1960,
        birth_year_max=1965,
        date_missing="2023-05-01",
    )
    b = create(client, "found", date_found="2024-02-02", place="上海市救助站")
    create(client, "missing", agency="BJ-PSB")
    assert client.get(f"{API}/cases/{a['id']}").json()["name"] == "张伟"

    page = client.get(f"{API}/cases", params={"kind": "missing", "limit": 1}).json()
    assert page["total"] == 2 and len(page["items"]) == 1
    assert page["next_cursor"]
    second = client.get(
        f"{API}/cases", params={"kind": "missing", "limit": 1, "cursor": page["next_cursor"]}
    ).json()
    assert {page["items"][0]["id"], second["items"][0]["id"]} == {a["id"], a["id"] + 2}
    assert (
        second["next_cursor"] is None
        or not client.get(
            f"{API}/cases", params={"kind": "missing", "cursor": second["next_cursor"]}
        ).json()["items"]
    )
    assert_problem(client.get(f"{API}/cases", params={"cursor": "garbage!"}), 422, "invalid_field")
    assert [
        c["id"] for c in client.get(f"{API}/cases", params={"agency": "SH-PSB"}).json()["items"]
    ] == [a["id"]]

    changed = client.patch(
        f"{API}/cases/{b['id']}", json={"name": "Unknown woman", "sex": "female"}
    )
    assert changed.status_code == 200 and changed.json()["sex"] == "female"
    assert changed.json()["place"] == "上海市救助站"
    assert_problem(
        client.patch(f"{API}/cases/{b['id']}", json={"kind": "missing"}), 422, "invalid_request"
    )
    assert_problem(client.patch(f"{API}/cases/{b['id']}", json={"sex": "x"}), 422, "invalid_field")
    assert_problem(
        client.post(
            f"{API}/cases", json={"kind": "missing", "agency": "SH-PSB", "external_ref": "2024/001"}
        ),
        409,
        "conflict",
    )

    erase = {"reason": "duplicate"}
    assert client.delete(f"{API}/cases/{b['id']}", params=erase).status_code == 204
    assert_problem(client.get(f"{API}/cases/{b['id']}"), 404, "not_found")
    assert_problem(client.delete(f"{API}/cases/{b['id']}", params=erase), 404, "not_found")


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "lost"},
        {"kind": "missing", "sex": "other"},
        {"kind": "missing", "birth_date": "not a date"},
        {"kind": "missing", "name": "x" * 1000},
        {"kind": "found", "date_missing": "2020-01-01"},
        {"kind": "missing", "unknown_field": 1},
        ["not", "an", "object"],
    ],
)
def test_bad_case_bodies_are_422_with_the_field_named(client, body):
    body = assert_problem(client.post(f"{API}/cases", json=body), 422, "invalid_request")
    assert body["errors"] and "input" not in body["errors"][0]


def test_a_reference_without_an_agency_is_refused_after_a_police_key_s_agency_is_filled_in(
    client,
):
    """An admin key has no agency to fill in: ``external_ref`` needs one (it is unique per
    agency), refused with the field named once the body is read."""
    refused = client.post(f"{API}/cases", json={"kind": "missing", "external_ref": "A-1"})
    body = assert_problem(refused, 422, "invalid_field")
    assert body["errors"] == [
        {"field": "agency", "message": "external_ref needs an agency: it is unique per agency"}
    ]


def test_malformed_json_is_a_422(client):
    response = client.post(
        f"{API}/cases", content=b"{kind: missing", headers={"content-type": "application/json"}
    )
    assert_problem(response, 422, "invalid_request")


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        (lambda s: b"", 422, "unreadable_image"),
        (lambda s: b"just some text, named .jpg\n" * 20, 415, "unsupported_image"),
        (lambda s: images.truncated(s("obama.jpg")), 422, "unreadable_image"),
        (lambda s: images.one_pixel_png(), 422, "image_too_small"),
        (lambda s: images.png_header_only(100_000, 100_000), 413, "image_too_large"),
        (lambda s: images.no_face_jpeg(s("obama.jpg")), 422, "no_face_found"),
        (lambda s: s("two_people.jpg"), 422, "multiple_faces"),
        (lambda s: images.encoded(Image.new("RGB", (64, 64)), "GIF"), 415, "unsupported_image"),
    ],
    ids=[
        "empty",
        "text-as-jpg",
        "truncated-jpeg",
        "1x1",
        "huge-png-header",
        "no-face",
        "two-faces",
        "gif",
    ],
)
def test_bad_photos_get_a_clear_4xx_and_change_nothing(client, sample, make, status, code):
    missing = create(client, "missing")
    upload(client, missing["id"], sample("obama.jpg"))
    found = create(client, "found")
    upload(client, found["id"], sample("obama2.jpg"))
    before = snapshot(client)

    body = assert_problem(upload(client, found["id"], make(sample), name="photo.jpg"), status, code)
    if code == "multiple_faces":
        assert len(body["boxes"]) == 2 and {"top", "right", "bottom", "left"} <= set(
            body["boxes"][0]
        )
    assert snapshot(client) == before
    search = client.post(f"{API}/search", files={"file": ("p.jpg", make(sample), "image/jpeg")})
    if code == "multiple_faces":
        assert search.status_code == 200  # a search photo may hold several faces
    else:
        assert_problem(search, status, code)
    assert snapshot(client) == before


def test_photo_for_an_unknown_case_is_404(client, sample):
    assert_problem(upload(client, 424242, sample("obama.jpg")), 404, "not_found")


def test_face_index_picks_one_of_several_faces(client, sample):
    case = create(client, "found")
    response = upload(client, case["id"], sample("two_people.jpg"), face_index="0")
    assert response.status_code == 201
    assert_problem(
        upload(client, case["id"], sample("obama.jpg"), face_index="-1"), 422, "invalid_request"
    )


def test_uploads_over_the_limit_are_413(tmp_path, finder, sample):
    from reunite.app import create_app
    from tests.conftest import key_headers, ready_client, settings_in

    small = ready_client(create_app(settings_in(tmp_path, max_upload_bytes=50_000), finder=finder))
    try:
        small.headers.update(key_headers(small))
        case = create(small, "missing")
        assert_problem(upload(small, case["id"], sample("obama.jpg")), 413, "image_too_large")
        huge = b"\xff" * (2 * 1024 * 1024)
        assert_problem(upload(small, case["id"], huge), 413, "request_too_large")
    finally:
        small.__exit__(None, None, None)


def test_missing_file_field_and_unknown_routes(client):
    case = create(client, "missing")
    assert_problem(client.post(f"{API}/cases/{case['id']}/photos"), 422, "invalid_request")
    assert_problem(client.get(f"{API}/nothing-here"), 404, "not_found")
    assert_problem(client.put(f"{API}/cases"), 405, "method_not_allowed")


def test_health_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn." not in docs.text  # works with no internet
    asset = next(p for p in docs.text.split('"') if p.endswith(".js"))
    assert client.get(asset).status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/api/v1/cases", "/api/v1/search", "/api/v1/cases/{case_id}/photos"} <= set(
        spec["paths"]
    )


@pytest.mark.parametrize(
    "path",
    [
        f"{API}/cases/9223372036854775808",
        f"{API}/cases/0",
        f"{API}/cases/1/photos?x=1".replace("/1/", "/99999999999999999999/"),
        f"{API}/photos/9223372036854775808/image",
        f"{API}/faces/-1/crop",
        f"{API}/candidates?limit=9223372036854775808",
    ],
)
def test_out_of_range_ids_are_422_not_500(client, path):
    assert_problem(client.get(path), 422, "invalid_request")


def test_webp_and_exif_rotated_photos_are_enrolled_upright(client, sample):
    source = Image.open(io.BytesIO(sample("obama.jpg")))
    webp = images.encoded(source, "WEBP", quality=90)
    case = create(client, "missing")
    response = upload(client, case["id"], webp, name="obama.webp")
    assert response.status_code == 201, response.text
    assert response.json()["photo"]["format"] == "WEBP"

    rotated = create(client, "found")
    turned = upload(client, rotated["id"], images.rotated_with_exif(sample("obama.jpg")))
    assert turned.status_code == 201, turned.text
    photo = turned.json()["photo"]
    assert (photo["width"], photo["height"]) == source.size  # upright, not as stored
    [candidate] = turned.json()["new_candidates"]
    assert candidate["distance"] < 0.1  # the same photo, turned back upright


def test_the_same_photo_with_another_face_is_409(client, sample):
    case = create(client, "found")
    assert upload(client, case["id"], sample("two_people.jpg"), face_index="0").status_code == 201
    assert upload(client, case["id"], sample("two_people.jpg")).status_code == 200
    assert_problem(
        upload(client, case["id"], sample("two_people.jpg"), face_index="1"), 409, "conflict"
    )
