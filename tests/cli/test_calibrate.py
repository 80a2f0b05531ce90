"""``reunite calibrate`` on real labelled photos (LFW)."""

import json
import shutil

import pytest

from reunite.cli import main
from reunite.config import SHIPPED_CALIBRATION_PATH


def test_calibrate_from_labelled_photos_keeps_the_old_file(workdir, faces_dir, capsys, monkeypatch):
    lfw = faces_dir / "lfw"
    if not lfw.is_dir():
        pytest.skip("LFW not found")
    folder = workdir / "labelled"
    people = [d for d in sorted(lfw.iterdir()) if d.is_dir() and len(list(d.glob("*.jpg"))) >= 3]
    for person in people[:12]:
        (folder / person.name).mkdir(parents=True)
        for photo in sorted(person.glob("*.jpg"))[:3]:
            shutil.copy(photo, folder / person.name / photo.name)
    target = workdir / "calibration.json"
    monkeypatch.setenv("REUNITE_CALIBRATION_PATH", str(target))
    argv = ["calibrate", "--photos", str(folder), "--cache-dir", str(workdir / "cache")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "suggested tolerance" in printed and "false-match rate" in printed
    first = json.loads(target.read_text())
    assert first["suggested_tolerance"] > 0 and first["slope"] > 0
    shipped = json.loads(SHIPPED_CALIBRATION_PATH.read_text())
    assert first["search"] == shipped["search"] is not None  # the 1:N fit is kept
    assert main([*argv, "--decisions"]) == 0  # no decisions yet: photos alone still fit
    assert "previous kept as" in capsys.readouterr().out
    assert len(list(workdir.glob("calibration.*.json"))) == 1
    assert main(["calibrate", "--decisions"]) == 4  # no labelled pairs at all


def test_calibrate_never_replaces_the_shipped_calibration(workdir, capsys, monkeypatch):
    from reunite.config import SHIPPED_CALIBRATION_PATH

    monkeypatch.delenv("REUNITE_CALIBRATION_PATH", raising=False)
    shipped = SHIPPED_CALIBRATION_PATH.read_bytes()
    assert main(["calibrate", "--decisions"]) == 4
    assert "REUNITE_CALIBRATION_PATH" in capsys.readouterr().err
    assert SHIPPED_CALIBRATION_PATH.read_bytes() == shipped
