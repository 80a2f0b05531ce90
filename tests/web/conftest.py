"""Browser-test fixtures: one real ``reunite serve`` process per module (staff1 and admin1
signed up) and Debian's headless Chromium driven by Playwright."""

import os
import re
from pathlib import Path

import pytest

from reunite import accounts
from tests.server import Server, cli

CHROMIUM = Path(os.environ.get("REUNITE_CHROMIUM", "/usr/bin/chromium"))
PASSWORD = "correct horse battery"
MANY_SIGN_INS = {"REUNITE_SIGN_IN_ATTEMPTS_PER_MINUTE": "600"}
"""Browser tests sign in many times a minute, all from 127.0.0.1: the per-address limit (10 a
minute by default) would refuse them on a slow machine."""


def create_user(workdir: Path, username: str, role: str, **env_settings: str) -> None:
    cli(
        workdir,
        "users",
        "create",
        username,
        "--role",
        role,
        "--password-stdin",
        stdin=PASSWORD + "\n",
        **env_settings,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory, faces_dir):
    workdir = tmp_path_factory.mktemp("web")
    create_user(workdir, "staff1", "staff")
    create_user(workdir, "admin1", "admin")
    # obama3.jpg (596 kB) is over this limit; the other photos used here are under it.
    running = Server(workdir, REUNITE_MAX_UPLOAD_BYTES="580000", **MANY_SIGN_INS)
    yield running
    log = running.stop()
    assert "Traceback" not in log and " 500 " not in log, log


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


def csrf_token(client, path: str) -> str:  # type: ignore[no-untyped-def]
    """The CSRF token of the form on ``path``, as the page gives it."""
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


def signed_in_as_staff(client):  # type: ignore[no-untyped-def]
    """``client`` (an app's TestClient) signed in as ``staff1``, a staff user made for it."""
    accounts.create_user(client.app.state.service.store, "staff1", PASSWORD, "staff", actor="test")
    signed = client.post(
        "/login",
        data={
            "username": "staff1",
            "password": PASSWORD,
            "csrf_token": csrf_token(client, "/login"),
        },
        follow_redirects=False,
    )
    assert signed.status_code == 303
    return client


@pytest.fixture
def staff(app_client):  # type: ignore[no-untyped-def]
    """The app's client, signed in as the staff user ``staff1``."""
    return signed_in_as_staff(app_client)
