"""Security headers on every answer, photos and crops kept by no cache, and the session key
refused when weak (in production)."""

import base64
import hashlib
import os
import re
import secrets
import stat
import subprocess
import sys

import pytest

from reunite.api.security import secret_key_weakness
from reunite.app import create_app
from reunite.errors import UnsafeConfiguration
from tests.api.test_routes import API, create, upload
from tests.conftest import key_headers, settings_in
from tests.server import free_port, settings_env


def assert_security_headers(response):
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert "camera=()" in headers["permissions-policy"]


def test_photos_and_crops_go_only_to_authorised_callers_and_are_never_cached(client, sample):
    missing = create(client, "missing", agency="SH-PSB", external_ref="S-1", name="王芳")
    photo = upload(client, missing["id"], sample("obama.jpg")).json()["photo"]
    urls = [f"{API}/photos/{photo['id']}/image", f"{API}/faces/{photo['faces'][0]['id']}/crop"]
    own_police = key_headers(client, "police", "SH-PSB")
    other_police = key_headers(client, "police", "BJ-PSB")
    for url in urls:
        for headers in ({}, own_police):  # admin (the client's key), the owning agency
            shown = client.get(url, headers=headers)
            assert shown.status_code == 200 and shown.headers["content-type"].startswith("image/")
            assert shown.headers["cache-control"] == "no-store"
            assert_security_headers(shown)
        hidden = client.get(url, headers=other_police)
        assert hidden.status_code == 404 and hidden.headers["cache-control"] == "no-store"
        assert client.get(url, headers={"Authorization": "Bearer rk_nope"}).status_code == 401


def test_every_answer_carries_the_security_headers(app_client):
    page = app_client.get("/login")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert_security_headers(page)
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    assert "<script" not in page.text and "style=" not in page.text  # nothing inline to allow

    refused = app_client.get(f"{API}/cases")
    assert refused.status_code == 401 and refused.headers["cache-control"] == "no-store"
    assert_security_headers(refused)

    css = app_client.get("/static/style.css")  # static assets may be cached
    assert css.status_code == 200 and "no-store" not in css.headers.get("cache-control", "")
    assert_security_headers(css)


def test_the_api_documents_allow_exactly_their_inline_scripts(app_client):
    docs = app_client.get("/docs")
    assert docs.status_code == 200
    assert_security_headers(docs)
    [script] = re.findall(r"<script>(.*?)</script>", docs.text, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    policy = docs.headers["content-security-policy"]
    assert f"'sha256-{digest}'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert_security_headers(app_client.get("/redoc"))


@pytest.mark.parametrize(
    "key",
    [
        "short",
        secrets.token_urlsafe(16)[:31],  # random, but under 32 characters
        "changeme-changeme-changeme-changeme",
        "my-Super-Secret-key-for-reunite-2024!",
        "a" * 40,
    ],
)
def test_a_weak_session_key_stops_the_app_in_production(tmp_path, key):
    assert secret_key_weakness(key) is not None
    with pytest.raises(UnsafeConfiguration, match="REUNITE_SECRET_KEY"):
        create_app(settings_in(tmp_path, secret_key=key))
    create_app(settings_in(tmp_path, secret_key=key, environment="development"))


def test_a_random_key_or_the_kept_one_is_accepted(tmp_path):
    create_app(settings_in(tmp_path / "given", secret_key=secrets.token_urlsafe(32)))
    settings = settings_in(tmp_path / "kept")
    create_app(settings)
    kept = settings.data_dir / "secret_key"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert secret_key_weakness(kept.read_text().strip()) is None


def test_serve_refuses_to_start_with_a_weak_key(tmp_path):
    env = settings_env(tmp_path, REUNITE_SECRET_KEY="dev-secret")
    env.pop("REUNITE_ENVIRONMENT", None)
    done = subprocess.run(
        [sys.executable, "-m", "reunite.cli", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 7, done.stderr
    assert "error (unsafe_configuration)" in done.stderr
    assert "REUNITE_SECRET_KEY" in done.stderr and "at least 32" in done.stderr
    assert os.listdir(tmp_path / "data") == [], "nothing may be made before the refusal"
