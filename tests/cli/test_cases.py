"""``reunite enroll``, ``import`` and ``search``, run in-process against a real store in a
temporary directory."""

import csv
import json
import shutil
from pathlib import Path

import pytest

from reunite import enrollment, manifests
from reunite.cli import cases, main


def copy_samples(faces_dir, folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(faces_dir / "samples" / name, folder / name)
    return folder


def lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_the_case_columns_are_the_importers():
    assert cases.CASE_COLUMNS == manifests.CASE_COLUMNS
    assert cases.FACE_CHOICES == enrollment.FACE_CHOICES


def test_enroll_a_folder_then_search_and_reindex(workdir, faces_dir, capsys):
    folder = copy_samples(faces_dir, workdir / "obama", "obama.jpg", "obama3.jpg")
    assert main(["enroll", str(folder), "--kind", "missing", "--name", "Barack"]) == 0
    enrolled = lines(capsys.readouterr().out)
    assert [e["created"] for e in enrolled] == [True, True] and enrolled[0]["case_id"] == 1

    assert main(["search", str(faces_dir / "samples" / "obama2.jpg"), "--json"]) == 0
    [face] = json.loads(capsys.readouterr().out)
    assert [c["case_id"] for c in face["candidates"]] == [1]
    assert face["candidates"][0]["distance"] < 0.6
    assert face["candidates"][0]["similarity_basis"] == "pair"  # one case: no cohort

    assert main(["search", str(faces_dir / "samples" / "biden.jpg")]) == 0
    assert "no case within tolerance" in capsys.readouterr().out

    assert main(["reindex"]) == 0
    assert json.loads(capsys.readouterr().out)["index"]["counts"] == {"missing": 2, "found": 0}


def test_import_a_manifest_twice_changes_nothing_the_second_time(workdir, faces_dir, capsys):
    photos = copy_samples(faces_dir, workdir / "photos", "obama.jpg", "obama2.jpg")
    manifest = workdir / "cases.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["kind", "agency", "external_ref", "name", "sex", "photos"])
        writer.writerow(["missing", "SH-PSB", "M-001", "张三", "male", "photos/obama.jpg"])
        writer.writerow(["found", "SH-RC", "F-001", "", "male", "photos/obama2.jpg"])
    assert photos.is_dir()
    assert main(["import", str(manifest), "--workers", "1"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["cases_created"], first["photos_enrolled"], first["new_candidates"]) == (2, 2, 1)

    assert main(["import", str(manifest), "--workers", "1"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert (second["cases_created"], second["cases_unchanged"]) == (0, 2)
    assert (second["photos_enrolled"], second["photos_already_enrolled"]) == (0, 2)
    assert second["new_candidates"] == 0


def test_a_bad_photo_in_a_batch_is_reported_and_the_rest_enrolled(workdir, faces_dir, capsys):
    folder = copy_samples(faces_dir, workdir / "mixed", "obama.jpg", "two_people.jpg")
    (folder / "broken.jpg").write_bytes(b"not a photo")
    assert main(["enroll", str(folder), "--kind", "found"]) == 1
    outcomes = {e["photo"].rsplit("/", 1)[1]: e for e in lines(capsys.readouterr().out)}
    assert outcomes["obama.jpg"]["created"] is True
    assert outcomes["two_people.jpg"]["error"] == "multiple_faces"
    assert outcomes["broken.jpg"]["error"] == "unsupported_image"


def test_a_bad_manifest_row_is_reported_and_the_other_rows_imported(workdir, faces_dir, capsys):
    copy_samples(faces_dir, workdir / "photos", "obama.jpg", "obama2.jpg")
    manifest = workdir / "cases.csv"
    manifest.write_text(
        "kind,agency,external_ref,date_found,photos\n"
        "lost,SH-PSB,M-1,,photos/obama.jpg\n"
        "missing,SH-PSB,M-2,2020-01-01,photos/obama.jpg\n"
        "found,SH-RC,F-1,2024-01-01,photos/obama2.jpg\n",
        encoding="utf-8",
    )
    report = workdir / "report.csv"
    assert main(["import", str(manifest), "--report", str(report), "--workers", "1"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert (summary["rows_failed"], summary["photos_enrolled"]) == (2, 1)
    with report.open(newline="", encoding="utf-8") as handle:
        failed = list(csv.DictReader(handle))
    assert [(r["external_ref"], r["code"]) for r in failed] == [
        ("M-1", "invalid_field"),
        ("M-2", "invalid_field"),
    ]


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["search", "/nonexistent/photo.jpg"], 4, "unreadable_file"),
        (["enroll", "/tmp", "--name", "x"], 4, "--kind is required"),
        (["enroll", "/nonexistent", "--kind", "found"], 4, "unreadable_file"),
    ],
)
def test_errors_become_exit_codes_with_a_reason(workdir, capsys, argv, code, message):
    assert main(argv) == code
    assert message in capsys.readouterr().err


def test_a_manifest_that_is_not_utf8_exits_4_with_the_reason(workdir, capsys):
    manifest = workdir / "cases.csv"
    manifest.write_bytes(
        "kind,agency,external_ref,name,photos\nmissing,SH,M-1,张三,a.jpg\n".encode("gb18030")
    )
    assert main(["import", str(manifest)]) == 4
    assert "not UTF-8" in capsys.readouterr().err


def test_enroll_takes_no_manifest(workdir, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["enroll", "--manifest", str(workdir / "cases.csv")])
    assert exited.value.code == 2


def test_search_of_a_text_file_exits_4(workdir, capsys):
    text = workdir / "notes.jpg"
    text.write_text("not a photo")
    assert main(["search", str(text)]) == 4
    assert "unsupported_image" in capsys.readouterr().err


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


def test_enroll_reports_a_case_it_cannot_create_as_a_json_line(workdir, capsys):
    folder = workdir / "photos"
    folder.mkdir()
    (folder / "never-read.jpg").write_bytes(b"")  # the case is refused before any photo is read
    argv = ["enroll", str(folder), "--kind", "missing"]
    assert main([*argv, "--birth-year-min", "1990", "--birth-year-max", "1980"]) == 1
    line = json.loads(capsys.readouterr().out)
    assert line["row"] == 1 and line["error"] == "invalid_field"
