"""The command line, run in-process against a real store in a temporary directory."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reunite.cli import main


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("REUNITE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REUNITE_INDEX_DIR", str(tmp_path / "index"))
    return tmp_path


def copy_samples(faces_dir, folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(faces_dir / "samples" / name, folder / name)
    return folder


def lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_enroll_a_folder_then_search_and_reindex(workdir, faces_dir, capsys):
    folder = copy_samples(faces_dir, workdir / "obama", "obama.jpg", "obama3.jpg")
    assert main(["enroll", str(folder), "--kind", "missing", "--name", "Barack"]) == 0
    enrolled = lines(capsys.readouterr().out)
    assert [e["created"] for e in enrolled] == [True, True] and enrolled[0]["case_id"] == 1

    assert main(["search", str(faces_dir / "samples" / "obama2.jpg"), "--json"]) == 0
    [face] = json.loads(capsys.readouterr().out)
    assert [c["case_id"] for c in face["candidates"]] == [1]
    assert face["candidates"][0]["distance"] < 0.6

    assert main(["search", str(faces_dir / "samples" / "biden.jpg")]) == 0
    assert "no case within tolerance" in capsys.readouterr().out

    assert main(["reindex"]) == 0
    assert json.loads(capsys.readouterr().out)["index"]["counts"] == {"missing": 2, "found": 0}


def test_enroll_a_manifest_twice_changes_nothing_the_second_time(workdir, faces_dir, capsys):
    photos = copy_samples(faces_dir, workdir / "photos", "obama.jpg", "obama2.jpg")
    manifest = workdir / "cases.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["kind", "agency", "external_ref", "name", "sex", "photos"])
        writer.writerow(["missing", "SH-PSB", "M-001", "张三", "male", "photos/obama.jpg"])
        writer.writerow(["found", "SH-RC", "F-001", "", "male", "photos/obama2.jpg"])
    assert photos.is_dir()
    assert main(["enroll", "--manifest", str(manifest)]) == 0
    first = lines(capsys.readouterr().out)
    assert [e["created"] for e in first] == [True, True]
    assert len(first[1]["new_candidate_ids"]) == 1

    assert main(["enroll", "--manifest", str(manifest)]) == 0
    second = lines(capsys.readouterr().out)
    assert [e["created"] for e in second] == [False, False]
    assert [e["case_id"] for e in second] == [e["case_id"] for e in first]


def test_a_bad_photo_in_a_batch_is_reported_and_the_rest_enrolled(workdir, faces_dir, capsys):
    folder = copy_samples(faces_dir, workdir / "mixed", "obama.jpg", "two_people.jpg")
    (folder / "broken.jpg").write_bytes(b"not a photo")
    assert main(["enroll", str(folder), "--kind", "found"]) == 1
    outcomes = {e["photo"].rsplit("/", 1)[1]: e for e in lines(capsys.readouterr().out)}
    assert outcomes["obama.jpg"]["created"] is True
    assert outcomes["two_people.jpg"]["error"] == "multiple_faces"
    assert outcomes["broken.jpg"]["error"] == "unsupported_image"


def test_a_bad_manifest_row_is_reported_and_the_other_rows_enrolled(workdir, faces_dir, capsys):
    copy_samples(faces_dir, workdir / "photos", "obama.jpg", "obama2.jpg")
    manifest = workdir / "cases.csv"
    manifest.write_text(
        "kind,agency,external_ref,date_found,photos\n"
        "lost,SH-PSB,M-1,,photos/obama.jpg\n"
        "missing,SH-PSB,M-2,2020-01-01,photos/obama.jpg\n"
        "found,SH-RC,F-1,2024-01-01,photos/obama2.jpg\n",
        encoding="utf-8",
    )
    assert main(["enroll", "--manifest", str(manifest)]) == 1
    outcomes = lines(capsys.readouterr().out)
    assert [o.get("row") for o in outcomes[:2]] == [1, 2]
    assert {o["error"] for o in outcomes[:2]} == {"invalid_field"}
    assert outcomes[2]["created"] is True


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["search", "/nonexistent/photo.jpg"], 4, "unreadable_file"),
        (["enroll", "/tmp", "--name", "x"], 4, "--kind is required"),
    ],
)
def test_errors_become_exit_codes_with_a_reason(workdir, capsys, argv, code, message):
    assert main(argv) == code
    assert message in capsys.readouterr().err


def test_a_manifest_that_is_not_utf8_exits_4_with_the_reason(workdir, capsys):
    manifest = workdir / "cases.csv"
    manifest.write_bytes("kind,name,photos\nmissing,张三,a.jpg\n".encode("gb18030"))
    assert main(["enroll", "--manifest", str(manifest)]) == 4
    assert "not UTF-8" in capsys.readouterr().err


def test_search_of_a_text_file_exits_4(workdir, capsys):
    text = workdir / "notes.jpg"
    text.write_text("not a photo")
    assert main(["search", str(text)]) == 4
    assert "unsupported_image" in capsys.readouterr().err


def test_help_explains_each_command(capsys):
    done = subprocess.run(
        [sys.executable, "-m", "reunite.cli", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("serve", "enroll", "search", "reindex"):
        assert command in done.stdout
        with pytest.raises(SystemExit) as exited:
            main([command, "--help"])
        assert exited.value.code == 0
        assert f"usage: reunite {command}" in capsys.readouterr().out


def test_keys_create_list_and_revoke(workdir, capsys):
    assert main(["keys", "create", "--role", "police", "--agency", "SH-PSB", "--label", "PSB"]) == 0
    captured = capsys.readouterr()
    key = captured.out.strip()
    assert key.startswith("rk_") and "shown only now" in captured.err
    prefix = key.split("_")[1]
    assert main(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert prefix in listed and "active" in listed and key not in listed
    assert main(["keys", "revoke", prefix]) == 0
    capsys.readouterr()
    assert main(["keys", "list"]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["keys", "create", "--role", "police"]) == 4  # a police key needs an agency
    assert main(["keys", "revoke", "00000000"]) == 3


def test_users_create_and_disable(workdir, capsys, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["users", "create", "anna", "--role", "staff", "--password-stdin"]) == 0
    assert "anna (staff)" in capsys.readouterr().out
    assert main(["users", "disable", "anna"]) == 0
    assert main(["users", "disable", "nobody"]) == 3


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
    assert main([*argv, "--decisions"]) == 0  # no decisions yet: photos alone still fit
    assert "previous kept as" in capsys.readouterr().out
    assert len(list(workdir.glob("calibration.*.json"))) == 1
    assert main(["calibrate", "--decisions"]) == 4  # no labelled pairs at all


def test_enroll_over_two_processes_matches_one(tmp_path, faces_dir, capsys, monkeypatch):
    folder = copy_samples(
        faces_dir, tmp_path / "photos", "obama.jpg", "two_people.jpg", "biden.jpg"
    )
    (folder / "broken.jpg").write_bytes(b"not a photo")
    outcomes = {}
    for workers in ("1", "2"):
        monkeypatch.setenv("REUNITE_DATA_DIR", str(tmp_path / workers / "data"))
        monkeypatch.setenv("REUNITE_INDEX_DIR", str(tmp_path / workers / "index"))
        assert main(["enroll", str(folder), "--kind", "found", "--workers", workers]) == 1
        outcomes[workers] = [
            (Path(o["photo"]).name, o.get("error"), o.get("created"))
            for o in lines(capsys.readouterr().out)
        ]
    assert (
        outcomes["1"]
        == outcomes["2"]
        == [
            ("biden.jpg", None, True),
            ("broken.jpg", "unsupported_image", None),
            ("obama.jpg", None, True),
            ("two_people.jpg", "multiple_faces", None),
        ]
    )
