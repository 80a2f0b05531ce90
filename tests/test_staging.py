"""Staged photos (``reunite.staging``): owner-only files with random names, given back only to
their owner, removed once used or expired."""

import os
import stat
import time

import pytest

from reunite.errors import NotFound
from reunite.staging import Staging

PHOTO = b"\xff\xd8\xff\xe0 not really a photo"


def test_a_staged_photo_is_kept_owner_only_and_given_back_to_its_owner(tmp_path):
    staging = Staging(tmp_path / "staging")
    staged = staging.stage("user:1", "王芳.jpg", PHOTO)
    files = sorted((tmp_path / "staging").iterdir())
    assert [f.name for f in files] == sorted([f"{staged.token}.json", f"{staged.token}.photo"])
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        assert "王芳" not in file.name
    assert stat.S_IMODE((tmp_path / "staging").stat().st_mode) & 0o077 == 0
    again = staging.staged("user:1", staged.token)
    assert (again.filename, again.data) == ("王芳.jpg", PHOTO)
    with pytest.raises(NotFound):
        staging.staged("user:2", staged.token)  # another user's
    staging.remove("user:2", staged.token)  # not theirs to remove
    assert staging.staged("user:1", staged.token).data == PHOTO
    staging.remove("user:1", staged.token)
    assert list((tmp_path / "staging").iterdir()) == []
    with pytest.raises(NotFound):
        staging.staged("user:1", staged.token)


def test_tokens_are_random_and_a_malformed_one_finds_nothing(tmp_path):
    staging = Staging(tmp_path / "staging")
    tokens = {staging.stage("user:1", "a.jpg", PHOTO).token for _ in range(20)}
    assert len(tokens) == 20 and all(len(t) == 22 for t in tokens)
    (tmp_path / "secret.json").write_text('{"owner": "user:1", "filename": "x", "at": 1e18}')
    for token in ("../secret", "", "x" * 22 + "/", "../" * 8):
        with pytest.raises(NotFound):
            staging.staged("user:1", token)


def test_expired_photos_are_refused_and_removed(tmp_path):
    staging = Staging(tmp_path / "staging", ttl_s=0.2)
    old = staging.stage("user:1", "old.jpg", PHOTO)
    time.sleep(0.3)
    with pytest.raises(NotFound):
        staging.staged("user:1", old.token)
    fresh = staging.stage("user:1", "new.jpg", PHOTO)  # staging again cleans up
    names = {f.name for f in (tmp_path / "staging").iterdir()}
    assert names == {f"{fresh.token}.json", f"{fresh.token}.photo"}
    time.sleep(0.3)
    orphan = tmp_path / "staging" / ("o" * 22 + ".photo")  # bytes whose facts never came
    orphan.write_bytes(PHOTO)
    old_time = time.time() - 10
    os.utime(orphan, (old_time, old_time))
    assert staging.remove_expired() == 1
    assert list((tmp_path / "staging").iterdir()) == []


def test_one_owner_cannot_fill_the_disk(tmp_path):
    staging = Staging(tmp_path / "staging", max_per_owner=3)
    tokens = [staging.stage("user:1", f"{n}.jpg", PHOTO).token for n in range(5)]
    other = staging.stage("user:2", "x.jpg", PHOTO)
    for token in tokens[:2]:  # the oldest went
        with pytest.raises(NotFound):
            staging.staged("user:1", token)
    assert [staging.staged("user:1", t).filename for t in tokens[2:]] == ["2.jpg", "3.jpg", "4.jpg"]
    assert staging.staged("user:2", other.token).filename == "x.jpg"
