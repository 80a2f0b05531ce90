"""Browser-test fixtures: one real ``reunite serve`` process per module (staff1 and admin1
signed up) and Debian's headless Chromium driven by Playwright."""

import os
from pathlib import Path

import pytest

from tests.server import Server, cli

CHROMIUM = Path(os.environ.get("REUNITE_CHROMIUM", "/usr/bin/chromium"))
PASSWORD = "correct horse battery"


def create_user(workdir: Path, username: str, role: str) -> None:
    cli(
        workdir,
        "users",
        "create",
        username,
        "--role",
        role,
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory, faces_dir):
    workdir = tmp_path_factory.mktemp("web")
    create_user(workdir, "staff1", "staff")
    create_user(workdir, "admin1", "admin")
    # obama3.jpg (596 kB) is over this limit; the other photos used here are under it.
    running = Server(workdir, REUNITE_MAX_UPLOAD_BYTES="580000")
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
