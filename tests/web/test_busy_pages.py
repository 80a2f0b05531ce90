"""The search page when the service is busy: the admission limit refuses the photo, and the page
answers 503 with Retry-After and a page in the user's language, not the form with a 422.

One search holds the only place for a large photo (its face finder, passed in, waits on an
event); the page's search is then refused by the real admission of the real app."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from reunite.app import create_app
from reunite.faces import Face, Pipeline
from tests.conftest import key_headers, ready_client, settings_in
from tests.web.conftest import csrf_token, signed_in_as_staff

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


class HeldFinder:
    """Finds no face, but only once ``release`` is set; ``entered`` says a search is inside."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, pixels: np.ndarray, pipeline: Pipeline) -> list[Face]:
        self.entered.set()
        assert self.release.wait(30), "the held search was never released"
        return []


@pytest.fixture
def busy(tmp_path, sample) -> Iterator[tuple[TestClient, HeldFinder, bytes]]:  # type: ignore[no-untyped-def]
    # Two photos in flight, every photo large: one large photo at a time (a slot is kept for
    # small ones), so a second search is refused while the first is held.
    settings = settings_in(tmp_path, max_photos_in_flight=2, small_photo_pixels=1)
    finder = HeldFinder()
    client = signed_in_as_staff(ready_client(create_app(settings, finder=finder)))
    try:
        yield client, finder, sample("obama-240p.jpg")
    finally:
        finder.release.set()
        client.__exit__(None, None, None)


@pytest.mark.parametrize(
    ("lang", "words"),
    [("en", "The service is busy"), ("zh-CN", "系统正在处理其他照片")],
)
def test_a_search_refused_as_overloaded_is_a_503_busy_page(busy, lang, words):
    client, finder, photo = busy
    held = threading.Thread(
        target=lambda: client.post(
            "/api/v1/search",
            files={"file": ("p.jpg", photo, "image/jpeg")},
            headers=key_headers(client, "staff"),
        )
    )
    held.start()
    try:
        assert finder.entered.wait(30), "the first search never reached the face finder"
        response = client.post(
            "/search",
            data={"csrf_token": csrf_token(client, "/search"), "kind": "all"},
            files={"photo": ("p.jpg", photo, "image/jpeg")},
            headers={"Accept": BROWSER, "Accept-Language": lang},
        )
    finally:
        finder.release.set()
        held.join(30)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.headers["content-type"].startswith("text/html")
    assert words in response.text
    assert 'name="photo"' not in response.text  # the busy page, not the form to correct
    after = client.post(  # once the other search is done, this one is let in (and finds no face)
        "/search",
        data={"csrf_token": csrf_token(client, "/search"), "kind": "all"},
        files={"photo": ("p.jpg", photo, "image/jpeg")},
        headers={"Accept": BROWSER, "Accept-Language": lang},
    )
    assert after.status_code == 422 and 'name="photo"' in after.text
