"""``reunite serve`` as a real process: it serves, keeps what it accepted across a restart."""

import httpx2

from tests.server import Server


def test_serve_enroll_restart_and_find_again(tmp_path, sample):
    server = Server(tmp_path)
    try:
        api = f"{server.url}/api/v1"
        case = httpx2.post(f"{api}/cases", json={"kind": "missing"}, headers=server.auth).json()
        files = {"file": ("obama.jpg", sample("obama.jpg"), "image/jpeg")}
        enrolled = httpx2.post(
            f"{api}/cases/{case['id']}/photos", files=files, timeout=60, headers=server.auth
        )
        assert enrolled.status_code == 201, enrolled.text
    finally:
        first_log = server.stop()
    assert "rebuilding from the store" in first_log  # a fresh machine has no index yet

    server = Server(tmp_path)
    try:
        files = {"file": ("obama2.jpg", sample("obama2.jpg"), "image/jpeg")}
        found = httpx2.post(
            f"{server.url}/api/v1/search", files=files, timeout=60, headers=server.auth
        ).json()
        assert [c["case"]["id"] for c in found["faces"][0]["candidates"]] == [case["id"]]
    finally:
        second_log = server.stop()
    assert "index ready (loaded" in second_log


def test_concurrent_searches_do_not_crash_the_server(tmp_path, faces_dir):
    # dlib's shared detector and networks are not thread-safe: without reunite.faces.DLIB_LOCK
    # this crashed the process ("munmap_chunk(): invalid pointer") within a few requests.
    from concurrent.futures import ThreadPoolExecutor

    photos = [p.read_bytes() for p in sorted((faces_dir / "samples").glob("*.jpg"))][:8]
    server = Server(tmp_path)
    try:

        def search(photo: bytes) -> int:
            return httpx2.post(
                f"{server.url}/api/v1/search",
                headers=server.auth,
                timeout=120,
                files={"file": ("p.jpg", photo, "image/jpeg")},
            ).status_code

        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(search, photos * 3))
        assert statuses == [200] * len(statuses)
        assert httpx2.get(f"{server.url}/healthz").status_code == 200
    finally:
        log = server.stop()
    assert "invalid pointer" not in log
