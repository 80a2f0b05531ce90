"""docs/tutorial.md works when followed literally: its ```sh blocks run, in order, in one shell,
in an empty folder, against a real ``reunite serve``, and each succeeds.

Two kinds of block are not run as written: ```sh setup (run by the reader in the project root:
``reunite`` on PATH, ``$PHOTOS``, a new empty folder) and ```sh server (``reunite serve`` in the
background). This test does what they do: ``reunite`` on PATH runs this checkout's package, the
tutorial's folder is ``tmp_path``, ``$PHOTOS`` is the sample photos, and the server is started
by tests/server.py in that folder on a free port, given to the tutorial as ``$REUNITE_URL``,
with the ``REUNITE_*`` settings the setup block exports.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.server import Server, settings_env

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"
FENCE = re.compile(r"^```sh(?: (?P<mark>\w+))?\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)
MARKER = "@@tutorial block {}@@"


def shell_blocks(markdown: str) -> list[tuple[str, str]]:
    """Each ```sh block of the page, in order, as (mark, code); mark is '' for a plain block."""
    return [(match["mark"] or "", match["code"]) for match in FENCE.finditer(markdown)]


def tutorial_script(blocks: list[tuple[str, str]]) -> str:
    """One bash script of the runnable blocks, each announced by a marker line."""
    lines = ["set -euo pipefail"]
    for number, (mark, code) in enumerate(blocks, start=1):
        if mark == "":
            lines += [f"printf '\\n%s\\n' '{MARKER.format(number)}'", code]
    return "\n".join(lines) + "\n"


def outputs_by_block(transcript: str) -> dict[int, str]:
    parts = re.split(r"^@@tutorial block (\d+)@@$", transcript, flags=re.MULTILINE)
    return {int(number): text for number, text in zip(parts[1::2], parts[2::2], strict=True)}


def setup_settings(blocks: list[tuple[str, str]]) -> dict[str, str]:
    """The ``REUNITE_*`` settings the setup block exports, for the server the test starts."""
    setup = next(code for mark, code in blocks if mark == "setup")
    return dict(re.findall(r"^export (REUNITE_[A-Z_]+)=(\S+)$", setup, flags=re.MULTILINE))


def test_blocks_are_marked_as_the_test_expects() -> None:
    marks = [mark for mark, _ in shell_blocks(TUTORIAL.read_text(encoding="utf-8"))]
    assert marks[:2] == ["setup", "server"], "the tutorial starts with its setup and server"
    assert set(marks[2:]) == {""}, f"unknown or misplaced marks: {marks}"


def test_tutorial_runs_from_a_fresh_start(tmp_path: Path, faces_dir: Path) -> None:
    blocks = shell_blocks(TUTORIAL.read_text(encoding="utf-8"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "reunite"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m reunite.cli "$@"\n')
    shim.chmod(0o755)
    workdir = tmp_path / "tutorial"
    workdir.mkdir()
    settings = setup_settings(blocks)
    assert settings == {"REUNITE_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32"}
    server = Server(workdir, **settings)
    try:
        env = {
            **settings_env(workdir, **settings),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "PHOTOS": str(faces_dir / "samples"),
            "REUNITE_URL": server.url,
        }
        done = subprocess.run(
            ["bash", "-c", tutorial_script(blocks)],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        log = server.stop()
    ran = outputs_by_block(done.stdout)
    failed = max(ran, default=0)
    assert done.returncode == 0, (
        f"block {failed} failed (exit {done.returncode}):\n{blocks[failed - 1][1]}\n"
        f"--- its output:\n{ran.get(failed, '')}\n--- stderr:\n{done.stderr}\n--- server:\n{log}"
    )
    assert len(ran) == sum(1 for mark, _ in blocks if mark == "")
    transcript = done.stdout
    expected = [
        '"code":"not_authenticated"',  # no key
        '"status":"ready"',
        '"secret":"whsec_',  # the webhook
        "HTTP 201",  # the first PUT creates the case ...
        "HTTP 200",  # ... the same PUT again changes nothing
        '"new_candidates":[{',  # the found man's photo proposes the family's case
        '"missing_case_id":1',
        '"external_ref":"CP-2024-0112"',  # the second page of the sync
        "200 image/jpeg",  # the face crop
        "created",  # the staff account
        '"status":"confirmed"',  # the decision through a session
        '"actor":"user:anna"',
        '"candidates":[]',  # biden.jpg matches nothing
        "case 1 (missing)",  # the command line's search finds the enrolled case
        '"cases_created": 2',  # the import
        '"new_candidates": 1',
        '"code":"multiple_faces"',
        '"code":"forbidden"',
        "city-police",  # keys list
    ]
    missing = [text for text in expected if text not in transcript]
    assert not missing, f"not in the tutorial's output: {missing}\n{transcript}"
    search = next(text for text in ran.values() if "/api/v1/search" in text or '"kinds"' in text)
    assert '"external_ref":"CP-2024-0107"' in search, "the search finds the enrolled case"
    assert (workdir / "face-2.jpg").stat().st_size > 0
