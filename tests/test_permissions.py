"""Files under the data and index folders are owner-only (0600 files, 0700 folders) whatever
the umask a server or command was started with, and a server says so at start when older
files are open to others."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from reunite.files import loose_paths
from tests.server import Server, cli


@pytest.fixture
def wide_umask() -> Iterator[None]:
    """Start processes as many hosts would: files 0644, folders 0755."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def modes(folder: Path) -> dict[str, str]:
    """Each path under ``folder`` and its permission bits (as ``0o600``)."""
    return {
        str(path.relative_to(folder)): oct(stat.S_IMODE(path.stat().st_mode))
        for path in [folder, *folder.rglob("*")]
    }


def test_a_server_writes_only_owner_only_files(tmp_path, faces_dir, wide_umask):
    server = Server(tmp_path)
    try:
        api = f"{server.url}/api/v1"
        case = httpx2.post(f"{api}/cases", headers=server.auth, json={"kind": "missing"}).json()
        photo = (faces_dir / "samples" / "obama.jpg").read_bytes()
        enrolled = httpx2.post(
            f"{api}/cases/{case['id']}/photos",
            files={"file": ("o.jpg", photo, "image/jpeg")},
            headers=server.auth,
            timeout=60,
        ).json()
        crop = httpx2.get(
            f"{api}/faces/{enrolled['photo']['faces'][0]['id']}/crop", headers=server.auth
        )
        assert crop.status_code == 200
    finally:
        server.stop()
    cli(tmp_path, "reindex")  # the index files too
    found = {**modes(tmp_path / "data"), **modes(tmp_path / "index")}
    assert any(name.endswith("reunite.db-wal") or name == "reunite.db" for name in found)
    assert any("index" in name or name.endswith(".faiss") for name in modes(tmp_path / "index"))
    loose = {name: mode for name, mode in found.items() if mode not in ("0o600", "0o700", "0o400")}
    assert loose == {}


def test_a_server_warns_at_start_about_files_open_to_others(tmp_path):
    cli(tmp_path, "migrate")
    database = tmp_path / "data" / "reunite.db"
    database.chmod(0o644)  # as an older version, or a copy, left it
    assert loose_paths([tmp_path / "data"]) == (1, [database])
    server = Server(tmp_path)
    log = server.stop()
    assert "readable by others" in log and str(database) in log
    assert "chmod -R go-rwx" in log


def test_a_fresh_checkouts_folders_are_closed_at_start_without_a_warning(tmp_path, wide_umask):
    """A checkout ships data/ and index/ (0755) with a README.md (0644) in each: the server
    closes the folders and does not warn about the notes; a loose file of data is still named."""
    for name in ("data", "index"):
        (tmp_path / name).mkdir(mode=0o755)
        (tmp_path / name / "README.md").write_text("What this folder is for.\n")
    assert loose_paths([tmp_path / "data", tmp_path / "index"])[0] == 2  # the folders only
    log = Server(tmp_path).stop()
    assert modes(tmp_path / "data")["."] == "0o700" and modes(tmp_path / "index")["."] == "0o700"
    assert "readable by others" not in log and "owner-only (0700)" in log
    assert (tmp_path / "data" / "README.md").read_text() == "What this folder is for.\n"
