"""``UploadSlots``: a caller's places, shared by every process using the folder, given back when
the holder ends, however it ends."""

import os
import signal
import subprocess
import sys
import textwrap

from reunite.upload_slots import UploadSlots
from tests.conftest import PROJECT_ROOT

SECRET = b"test secret"


def test_a_caller_has_limit_places_and_gets_one_back_when_an_upload_ends(tmp_path):
    slots = UploadSlots(tmp_path / "slots", 2, SECRET)
    assert (tmp_path / "slots").stat().st_mode & 0o777 == 0o700
    with (
        slots.slot("key:a") as first,
        slots.slot("key:a") as second,
        slots.slot("key:a") as third,
        slots.slot("user:7") as other_caller,
    ):
        assert (first, second, third, other_caller) == (True, True, False, True)
        assert slots.taken("key:a") == 2
    assert slots.taken("key:a") == 0
    with slots.slot("key:a") as again:
        assert again
    files = {p.name for p in (tmp_path / "slots").iterdir()}
    assert not any("key" in name or "user" in name for name in files)  # keyed hashes only
    assert all((tmp_path / "slots" / name).stat().st_mode & 0o777 == 0o600 for name in files)


def test_a_place_held_by_a_killed_process_is_free_again(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import sys, time
                from pathlib import Path
                from reunite.upload_slots import UploadSlots
                with UploadSlots(Path({str(tmp_path)!r}), 1, {SECRET!r}).slot("key:a") as taken:
                    print(taken, flush=True)
                    time.sleep(60)
            """),
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "True"
        slots = UploadSlots(tmp_path, 1, SECRET)
        with slots.slot("key:a") as taken:
            assert not taken  # the other process holds the only place
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    with slots.slot("key:a") as taken:
        assert taken  # the kernel let go of the dead process's lock
