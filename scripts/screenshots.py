"""Retake the review-queue screenshots in docs/: a desktop in English, a phone (390 px) and a
desktop in Chinese, from a real ``reunite serve`` over an empty store in a temporary folder.

    .venv/bin/python scripts/screenshots.py            # writes docs/review-queue*.png

The queue shows one candidate: a missing person reported by the police (made-up facts, the
sample photo ``obama.jpg``) and a found person at a rescue center (``obama2.jpg``), the photos
the tutorial uses. Needs Debian's Chromium (``/usr/bin/chromium``). Cost: about 30 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT.parent / "shared" / "faces" / "samples"
PASSWORD = "correct horse battery staple"
SHOTS = (
    ("review-queue.png", "en-US", 1280, 900),
    ("review-queue-390.png", "en-US", 390, 1600),
    ("review-queue-zh.png", "zh-CN", 1280, 900),
)


def reunite(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "reunite.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def enrolled_pair(url: str, key: str) -> None:
    """A police report of a missing man and a rescue center's found man: one candidate."""
    headers = {"Authorization": f"Bearer {key}"}
    cases = [
        (
            {
                "kind": "missing",
                "agency": "city-police",
                "external_ref": "CP-2024-0107",
                "name": "Wang Jianguo",
                "sex": "male",
                "birth_year_min": 1960,
                "birth_year_max": 1962,
                "date_missing": "2024-03-02",
                "place": "Riverside station",
                "contact": "+86 21 5555 0100",
            },
            "obama.jpg",
            "2019-06-01",
        ),
        (
            {
                "kind": "found",
                "sex": "male",
                "birth_year_min": 1955,
                "birth_year_max": 1965,
                "date_found": "2024-05-10",
                "place": "North Shelter, gate 2",
            },
            "obama2.jpg",
            "",
        ),
    ]
    for fields, photo, taken_on in cases:
        case = httpx2.post(f"{url}/api/v1/cases", json=fields, headers=headers).json()
        data = {"taken_on": taken_on} if taken_on else {}
        httpx2.post(
            f"{url}/api/v1/cases/{case['id']}/photos",
            files={"file": (photo, (SAMPLES / photo).read_bytes(), "image/jpeg")},
            data=data,
            headers=headers,
            timeout=120,
        ).raise_for_status()


def take(url: str, out_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        for name, locale, width, height in SHOTS:
            context = browser.new_context(
                locale=locale, viewport={"width": width, "height": height}
            )
            page = context.new_page()
            page.goto(f"{url}/login")
            page.fill("input[name=username]", "anna")
            page.fill("input[name=password]", PASSWORD)
            page.click("main button[type=submit]")
            page.wait_for_url(f"{url}/review")
            page.wait_for_function(
                "() => [...document.images].filter(i => i.checkVisibility())"
                ".every(i => i.complete && i.naturalWidth > 0)"
            )
            page.screenshot(path=str(out_dir / name), full_page=True)
            print(f"wrote {out_dir / name}")
            context.close()
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder for the PNGs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "REUNITE_DATA_DIR": f"{folder}/data",
            "REUNITE_INDEX_DIR": f"{folder}/index",
            "REUNITE_TIMEZONE": "Asia/Shanghai",
            "REUNITE_PORT": "8765",
        }
        reunite(env, "users", "create", "anna", "--role", "staff", "--display-name", "Li Anna",
                "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
        reunite(env, "agencies", "add", "city-police", "City Police, Missing Persons Unit")
        key = reunite(env, "keys", "create", "--role", "admin")
        server = subprocess.Popen(
            [sys.executable, "-m", "reunite.cli", "serve"],
            env=env,
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = "http://127.0.0.1:8765"
        try:
            for _ in range(120):
                try:
                    if httpx2.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx2.HTTPError:
                    pass
                time.sleep(0.5)
            enrolled_pair(url, key)
            take(url, args.out)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
