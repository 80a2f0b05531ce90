"""Batch import (``reunite import``): real LFW photos linked into a temporary archive, real dlib
over a real process pool, real SQLite; a run killed with SIGKILL and resumed."""

import csv
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing, suppress
from pathlib import Path

import pytest
from PIL import Image

from reunite import errors
from reunite.cli import main
from reunite.importing import REPORT_COLUMNS, default_report_path, import_manifest
from reunite.service import Reunite
from tests.conftest import PROJECT_ROOT, settings_in
from tests.images import encoded

GOOD_ROWS = [
    # kind, agency, external_ref, name, photos
    ("missing", "city-police", "M-1", "Aaron", ["Aaron_Peirsol_0001", "Aaron_Peirsol_0002"]),
    ("found", "shelter", "F-1", "", ["Aaron_Peirsol_0003", "Aaron_Peirsol_0004"]),
    ("missing", "city-police", "M-2", "Al", ["Al_Gore_0001", "Al_Gore_0002"]),
    ("found", "shelter", "F-2", "", ["Al_Gore_0003"]),
    ("missing", "city-police", "M-3", "", ["Andre_Agassi_0001", "Andre_Agassi_0002"]),
    ("found", "shelter", "F-3", "", ["Angelina_Jolie_0001"]),
]
"""Ten photos of six cases; two pairs of cases show the same person (M-1/F-1, M-2/F-2)."""
EXPECTED_PAIRS = {("F-1", "M-1"), ("F-2", "M-2")}


@pytest.fixture
def archive(tmp_path, faces_dir):
    """A folder as an agency would hand it over: ``photos/`` (links to LFW photos, plus a blank
    image, a text file named .jpg and a photo of two people) and room for manifests. A real
    photo also lies just outside it, for ``../`` to reach."""
    lfw = faces_dir / "lfw"
    if not lfw.is_dir():
        pytest.skip(f"LFW not found at {lfw}")
    folder = tmp_path / "archive"
    photos = folder / "photos"
    photos.mkdir(parents=True)
    names = {n for row in GOOD_ROWS for n in row[4]} | {"Amelie_Mauresmo_0001"}
    for name in sorted(names):
        (photos / f"{name}.jpg").symlink_to(lfw / name.rsplit("_", 1)[0] / f"{name}.jpg")
    (photos / "blank.jpg").write_bytes(encoded(Image.new("RGB", (250, 250), "gray"), "JPEG"))
    (photos / "notes.jpg").write_text("not a photo")
    (photos / "group.jpg").symlink_to(faces_dir / "samples" / "kit_with_rose.jpg")
    (tmp_path / "outside.jpg").symlink_to(photos / "Amelie_Mauresmo_0001.jpg")
    return folder


def write_csv(path, rows, header=("kind", "agency", "external_ref", "name", "photos")):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def good_csv_rows():
    return [
        (kind, agency, ref, name, ";".join(f"photos/{p}.jpg" for p in photos))
        for kind, agency, ref, name, photos in GOOD_ROWS
    ]


def read_report(path):
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == REPORT_COLUMNS
    return [dict(zip(REPORT_COLUMNS, row, strict=True)) for row in rows[1:]]


def stored_state(data_dir):
    """What an import leaves in the store, by external_ref: cases, photo bytes, faces, candidate
    pairs, and how many audit events of each action."""
    with closing(sqlite3.connect(data_dir / "reunite.db")) as db:
        ref = dict(db.execute("SELECT id, external_ref FROM cases"))
        photos: dict[str, set[str]] = {}
        for case_id, sha256 in db.execute("SELECT case_id, sha256 FROM photos"):
            photos.setdefault(ref[case_id], set()).add(sha256)
        return {
            "cases": set(db.execute("SELECT agency, external_ref, kind, name, sex FROM cases")),
            "photos": photos,
            "faces": Counter(ref[c] for (c,) in db.execute("SELECT case_id FROM faces")),
            "pairs": {
                (ref[f], ref[m])
                for f, m in db.execute("SELECT found_case_id, missing_case_id FROM candidates")
            },
            "audit": Counter(a for (a,) in db.execute("SELECT action FROM audit_events")),
        }


def enrolled_photo_count(db_path):
    if not db_path.exists():
        return 0
    try:
        with closing(sqlite3.connect(db_path, timeout=5)) as db:
            return db.execute("SELECT count(*) FROM photos").fetchone()[0]
    except sqlite3.OperationalError:  # the tables are not made yet
        return 0


# ----------------------------------------------------------------------------------- library


def test_an_archive_is_imported_bad_rows_and_photos_reported_and_a_rerun_changes_nothing(
    archive, service, settings
):
    service.put_case("shelter", "F-9", {"kind": "found"}, actor="test")
    outside = str(archive.parent / "outside.jpg")
    manifest = write_csv(
        archive / "cases.csv",
        [
            *good_csv_rows()[:2],
            (
                "missing",
                "city-police",
                "M-2",
                "Al",
                f"photos/Al_Gore_0001.jpg;photos/absent.jpg;../outside.jpg;{outside}",
            ),
            (
                "found",
                "shelter",
                "F-2",
                "",
                "photos/Al_Gore_0003.jpg;photos/blank.jpg;photos/notes.jpg;photos/group.jpg",
            ),
            ("lost", "shelter", "F-4", "", "photos/Andre_Agassi_0001.jpg"),
            ("found", "shelter", "F-1", "", "photos/Al_Gore_0002.jpg"),
            ("missing", "shelter", "F-9", "", "photos/Angelina_Jolie_0001.jpg"),
            ("missing", "", "", "Nobody", "photos/Andre_Agassi_0002.jpg"),
        ],
    )
    summary = import_manifest(service, manifest, actor="test", workers=2, chunk_rows=3)

    assert (summary.rows, summary.rows_failed) == (8, 4)
    assert (summary.cases_created, summary.cases_updated, summary.cases_unchanged) == (4, 0, 0)
    assert (summary.photos_enrolled, summary.photos_already_enrolled) == (6, 0)
    assert (summary.photos_failed, summary.new_candidates) == (6, 2)
    assert summary.report == str(default_report_path(manifest))
    report = read_report(default_report_path(manifest))
    assert [(r["row"], r["external_ref"], r["photo"], r["code"]) for r in report] == [
        ("4", "M-2", "photos/absent.jpg", "unreadable_file"),
        ("4", "M-2", "../outside.jpg", "invalid_field"),
        ("4", "M-2", outside, "invalid_field"),
        ("5", "F-2", "photos/blank.jpg", "featureless_image"),
        ("5", "F-2", "photos/notes.jpg", "unsupported_image"),
        ("5", "F-2", "photos/group.jpg", "multiple_faces"),
        ("6", "F-4", "", "invalid_field"),
        ("7", "F-1", "", "conflict"),
        ("8", "F-9", "", "invalid_field"),
        ("9", "", "", "invalid_field"),
    ]
    reasons = [r["reason"] for r in report]
    assert "No such file" in reasons[0] and "out of the manifest's folder" in reasons[1]
    assert "absolute" in reasons[2] and "kind" in reasons[6] and "earlier row" in reasons[7]
    assert "kind cannot change" in reasons[8] and "agency and external_ref" in reasons[9]
    assert not Path(f"{summary.report}.partial").exists()

    first = stored_state(settings.data_dir)
    assert first["pairs"] == EXPECTED_PAIRS
    assert {ref: len(shas) for ref, shas in first["photos"].items()} == {
        "M-1": 2,
        "F-1": 2,
        "M-2": 1,
        "F-2": 1,
    }
    assert ("city-police", "M-1", "missing", "Aaron", "unknown") in first["cases"]

    again = import_manifest(service, manifest, actor="test", workers=2, chunk_rows=3)
    assert (again.cases_created, again.cases_updated, again.cases_unchanged) == (0, 0, 4)
    assert (again.photos_enrolled, again.photos_already_enrolled) == (0, 6)
    assert (again.photos_failed, again.rows_failed, again.new_candidates) == (6, 4, 0)
    assert read_report(default_report_path(manifest)) == report
    assert stored_state(settings.data_dir) == first  # no new rows, not even audit events


def test_a_changed_fact_updates_its_case_and_nothing_else(archive, service, settings):
    manifest = write_csv(archive / "cases.csv", good_csv_rows()[:2])
    import_manifest(service, manifest, actor="test", workers=1)
    before = stored_state(settings.data_dir)
    rows = good_csv_rows()[:2]
    rows[0] = (*rows[0][:3], "Aaron P.", rows[0][4])
    write_csv(manifest, rows)
    summary = import_manifest(service, manifest, actor="test", workers=1)
    assert (summary.cases_created, summary.cases_updated, summary.cases_unchanged) == (0, 1, 1)
    assert (summary.photos_enrolled, summary.photos_already_enrolled) == (0, 4)
    after = stored_state(settings.data_dir)
    assert after["audit"] - before["audit"] == Counter({"case.update": 1})
    assert service.case_by_external_ref("city-police", "M-1").name == "Aaron P."


def test_a_json_lines_manifest_imports_the_same_cases(archive, service, settings):
    lines = [
        json.dumps(
            {"kind": kind, "agency": agency, "external_ref": ref, "name": name or None}
            | {"photos": [f"photos/{p}.jpg" for p in photos]}
        )
        for kind, agency, ref, name, photos in GOOD_ROWS
    ]
    bad = [
        "{not json",
        "[1, 2]",
        '{"kind": "found", "agency": "shelter", "external_ref": "F-6", "photos": "a.jpg"}',
        '{"kind": "found", "agency": "shelter", "external_ref": "F-7", "nickname": "x"}',
        '{"kind": "found", "agency": "shelter", "external_ref": "F-8", "sex": "f"}',
    ]
    manifest = archive / "cases.jsonl"
    manifest.write_text("\n".join([*lines[:3], "", *bad, *lines[3:]]) + "\n", encoding="utf-8")
    report = archive.parent / "failures.csv"
    summary = import_manifest(service, manifest, actor="test", workers=2, report=report)
    assert (summary.rows, summary.rows_failed, summary.cases_created) == (11, 5, 6)
    assert (summary.photos_enrolled, summary.photos_failed, summary.new_candidates) == (10, 0, 2)
    assert [(r["row"], r["external_ref"], r["code"]) for r in read_report(report)] == [
        ("5", "", "invalid_field"),
        ("6", "", "invalid_field"),
        ("7", "F-6", "invalid_field"),
        ("8", "F-7", "invalid_field"),
        ("9", "F-8", "invalid_field"),
    ]
    state = stored_state(settings.data_dir)
    assert state["pairs"] == EXPECTED_PAIRS
    assert {ref: len(state["photos"][ref]) for ref in state["photos"]} == {
        ref: len(photos) for _, _, ref, _, photos in GOOD_ROWS
    }


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("absent.csv", None, "Cannot read the manifest"),
        ("cases.txt", "kind,agency,external_ref,photos\n", "must be a .csv or a .jsonl"),
        ("cases.csv", "kind,agency,photos\nfound,shelter,a.jpg\n", "missing: external_ref"),
        ("cases.csv", "kind,agency,external_ref,nick,photos\n", "unknown: nick"),
        ("cases.csv", "kind,agency,external_ref,photos\nfound,sh,\xff,a\n", "not UTF-8"),
    ],
)
def test_an_unusable_manifest_imports_nothing(archive, service, settings, name, content, message):
    manifest = archive / name
    if content is not None:
        manifest.write_bytes(content.encode("latin-1"))
    with pytest.raises(errors.InvalidInput, match=message):
        import_manifest(service, manifest, actor="test", workers=1)
    assert service.cases().total == 0
    assert not default_report_path(manifest).exists()


# ------------------------------------------------------------------------------- photo dates

CAMPBELL = ("Alastair_Campbell_0001", "Alastair_Campbell_0002")
"""Two LFW photos of one man, 0.62 apart (reunite's pipeline): beyond the tolerance (0.55),
within the cross-age tolerance (0.7)."""


@pytest.fixture
def campbell(archive, faces_dir):
    """``archive`` with the two photos of ``CAMPBELL`` in ``photos/``."""
    for name in CAMPBELL:
        (archive / "photos" / f"{name}.jpg").symlink_to(
            faces_dir / "lfw" / "Alastair_Campbell" / f"{name}.jpg"
        )
    return archive


@pytest.mark.parametrize(
    ("form", "child_photo", "child_facts", "proposed"),
    [
        ("csv", "@1967-06-01", {}, True),
        ("jsonl", "1967-06-01", {}, True),
        ("csv", "", {"date_missing": "1967-06-01"}, True),  # undated: taken on the date missing
        ("csv", "", {}, False),  # no date: no age in the photo, the same-age tolerance
    ],
)
def test_photo_dates_give_an_imported_archive_the_cross_age_tolerance(
    campbell, service, form, child_photo, child_facts, proposed
):
    # A boy born in 1957, photographed aged 10; a man found looking 43-53 in a 2003 photo.
    missing = {"kind": "missing", "agency": "police", "external_ref": "M-1"}
    missing |= {"birth_date": "1957-05-25", **child_facts}
    found = {"kind": "found", "agency": "shelter", "external_ref": "F-1"}
    found |= {"birth_year_min": 1950, "birth_year_max": 1960, "date_found": "2003-02-01"}
    child, adult = (f"photos/{name}.jpg" for name in CAMPBELL)
    if form == "csv":
        header = ("kind", "agency", "external_ref", "birth_date", "date_missing")
        header += ("birth_year_min", "birth_year_max", "date_found", "photos")
        missing["photos"] = child + child_photo
        found["photos"] = f"{adult}@2003-01-15"
        manifest = write_csv(
            campbell / "cases.csv",
            [[row.get(c, "") for c in header] for row in (missing, found)],
            header,
        )
    else:
        missing["photos"] = [{"path": child, "taken_on": child_photo}]
        found["photos"] = [{"path": adult, "taken_on": "2003-01-15"}]
        manifest = campbell / "cases.jsonl"
        manifest.write_text(f"{json.dumps(missing)}\n{json.dumps(found)}\n", encoding="utf-8")

    summary = import_manifest(service, manifest, actor="test", workers=1)

    assert (summary.photos_enrolled, summary.failed) == (2, 0)
    assert summary.new_candidates == int(proposed)
    views = service.candidates(service.case_by_external_ref("shelter", "F-1").id)
    if not proposed:
        assert views == []
        return
    [view] = views
    settings = service.settings
    assert settings.tolerance < view.candidate.distance <= settings.cross_age_tolerance
    [flag] = view.flags
    assert flag.code == "photo_age_gap"
    assert flag.facts["missing_photo_age"] == [10, 10] and flag.facts["found_photo_age"] == [43, 53]


def test_photo_dates_are_stored_and_a_bad_one_is_a_report_line_run_after_run(
    archive, service, settings
):
    manifest = write_csv(
        archive / "cases.csv",
        [
            (
                "missing",
                "city-police",
                "M-1",
                "",
                "photos/Aaron_Peirsol_0001.jpg@2002-02-30;photos/Aaron_Peirsol_0002.jpg@2003-04-05",
            ),
            ("found", "shelter", "F-1", "", "photos/Aaron_Peirsol_0003.jpg@2999-01-01"),
        ],
    )
    summary = import_manifest(service, manifest, actor="test", workers=2)
    assert (summary.photos_enrolled, summary.photos_failed) == (1, 2)
    report = read_report(default_report_path(manifest))
    assert [(r["row"], r["photo"], r["code"]) for r in report] == [
        ("2", "photos/Aaron_Peirsol_0001.jpg", "invalid_field"),
        ("3", "photos/Aaron_Peirsol_0003.jpg", "invalid_field"),
    ]
    assert "2002-02-30 is not a day of the calendar" in report[0]["reason"]
    assert "between 1900-01-01 and today, not 2999-01-01" in report[1]["reason"]
    with closing(sqlite3.connect(settings.data_dir / "reunite.db")) as db:
        assert db.execute("SELECT taken_on FROM photos").fetchall() == [("2003-04-05",)]

    before = stored_state(settings.data_dir)
    again = import_manifest(service, manifest, actor="test", workers=2)
    assert (again.photos_enrolled, again.photos_already_enrolled, again.photos_failed) == (0, 1, 2)
    assert read_report(default_report_path(manifest)) == report
    assert stored_state(settings.data_dir) == before


# ------------------------------------------------------------------------------ command line


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("REUNITE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REUNITE_INDEX_DIR", str(tmp_path / "index"))
    return tmp_path


def test_reunite_import_prints_a_summary_and_progress_and_logs_no_names(
    archive, workdir, capsys, caplog
):
    caplog.set_level(logging.DEBUG)
    manifest = write_csv(archive / "cases.csv", good_csv_rows())
    assert main(["import", str(manifest), "--workers", "2"]) == 0
    printed = capsys.readouterr()
    summary = json.loads(printed.out)
    assert summary["photos_enrolled"] == 10 and summary["new_candidates"] == 2
    assert summary["report"] == str(default_report_path(manifest))
    assert read_report(default_report_path(manifest)) == []
    # Not a terminal: a plain line every 10 s and at the end.
    progress = [line for line in printed.err.splitlines() if line.startswith("import: ")]
    assert progress[-1].startswith("import: 10/10 photos")
    for private in ("Aaron", "Peirsol", "Al_Gore", str(archive)):
        assert private not in caplog.text and private not in printed.err

    write_csv(manifest, [*good_csv_rows(), ("found", "shelter", "F-4", "", "photos/notes.jpg")])
    report = workdir / "failures.csv"
    assert main(["import", str(manifest), "--report", str(report), "--workers", "1"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert (summary["photos_already_enrolled"], summary["photos_failed"]) == (10, 1)
    assert [r["code"] for r in read_report(report)] == ["unsupported_image"]


def test_reunite_import_of_an_unusable_manifest_exits_4_with_the_reason(workdir, capsys):
    assert main(["import", str(workdir / "absent.csv")]) == 4
    assert "Cannot read the manifest" in capsys.readouterr().err
    (workdir / "cases.csv").write_text("kind,agency,photos\n", encoding="utf-8")
    assert main(["import", str(workdir / "cases.csv")]) == 4
    assert "missing: external_ref" in capsys.readouterr().err


# ---------------------------------------------------------------------- killed, then resumed


def live_processes_in_group(group: int) -> int:
    """Processes of a process group that still run (zombies excluded); Linux's /proc."""
    alive = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group and fields[0] != "Z":
                alive += 1
    return alive


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_an_import_killed_midway_resumes_without_redoing_work_to_the_same_end(
    archive, tmp_path, monkeypatch, capsys
):
    manifest = write_csv(
        archive / "cases.csv", [*good_csv_rows(), ("found", "shelter", "F-4", "", "photos/x.jpg")]
    )
    total = sum(len(row[4]) for row in GOOD_ROWS)

    # One run, never stopped.
    whole = tmp_path / "whole"
    monkeypatch.setenv("REUNITE_DATA_DIR", str(whole / "data"))
    monkeypatch.setenv("REUNITE_INDEX_DIR", str(whole / "index"))
    argv = ["import", str(manifest), "--workers", "2", "--report"]
    assert main([*argv, str(whole / "report.csv")]) == 1
    assert json.loads(capsys.readouterr().out)["photos_enrolled"] == total

    # One run killed (SIGKILL, the importer only) once a photo is stored, then run again.
    resumed = tmp_path / "resumed"
    env = os.environ | {
        "REUNITE_DATA_DIR": str(resumed / "data"),
        "REUNITE_INDEX_DIR": str(resumed / "index"),
    }
    killed_argv = [sys.executable, "-m", "reunite", *argv, str(resumed / "report.csv")]
    log_file = (tmp_path / "killed.log").open("w")
    process = subprocess.Popen(
        killed_argv, env=env, stdout=log_file, stderr=log_file, start_new_session=True
    )
    db = resumed / "data" / "reunite.db"
    try:
        deadline = time.monotonic() + 60
        while (enrolled := enrolled_photo_count(db)) < 1:
            assert process.poll() is None, (tmp_path / "killed.log").read_text()
            assert time.monotonic() < deadline, "no photo enrolled within 60 s"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        # Its workers notice that their parent is gone and end too.
        deadline = time.monotonic() + 10
        while live_processes_in_group(process.pid):
            assert time.monotonic() < deadline, "pool workers outlived the killed importer"
            time.sleep(0.1)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        log_file.close()
    enrolled = enrolled_photo_count(db)
    assert 1 <= enrolled < total, "the kill came after the end; nothing was resumed"

    done = subprocess.run(
        [sys.executable, "scripts/import_cases.py", *argv[1:], str(resumed / "report.csv")],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    assert summary["photos_already_enrolled"] == enrolled  # skipped before detection
    assert summary["photos_enrolled"] == total - enrolled
    assert summary["cases_created"] + summary["cases_unchanged"] == len(GOOD_ROWS) + 1

    assert stored_state(resumed / "data") == stored_state(whole / "data")
    assert stored_state(whole / "data")["pairs"] == EXPECTED_PAIRS
    assert read_report(resumed / "report.csv") == read_report(whole / "report.csv")
    with Reunite.open(settings_in(resumed)) as service:  # the index caught up with the store
        assert sum(service.index_report.counts.values()) == total


@pytest.fixture
def database_url() -> None:
    """These tests read the SQLite file directly: SQLite only (the import itself is store
    independent, and the store tests run on PostgreSQL too)."""
    return None


def test_photos_with_several_faces_are_refused_unless_the_import_may_choose_one(
    archive, workdir, faces_dir, capsys
):
    # Obama beside Biden (the same size, Obama nearer the centre); an LFW portrait with a
    # second face at its edge; Obama alone.
    (archive / "photos" / "two.jpg").symlink_to(faces_dir / "samples" / "two_people.jpg")
    (archive / "photos" / "obama.jpg").symlink_to(faces_dir / "samples" / "obama.jpg")
    (archive / "photos" / "hakim.jpg").symlink_to(
        faces_dir / "lfw" / "Abdel_Aziz_Al-Hakim" / "Abdel_Aziz_Al-Hakim_0001.jpg"
    )
    manifest = write_csv(
        archive / "cases.csv",
        [
            ("missing", "police", "M-1", "", "photos/two.jpg"),
            ("found", "shelter", "F-1", "", "photos/obama.jpg"),
            ("found", "shelter", "F-2", "", "photos/hakim.jpg"),
        ],
    )
    assert main(["import", str(manifest), "--workers", "1"]) == 1  # --face refuse
    assert json.loads(capsys.readouterr().out)["photos_failed"] == 2
    report = read_report(default_report_path(manifest))
    assert [(r["photo"], r["code"]) for r in report] == [
        ("photos/two.jpg", "multiple_faces"),
        ("photos/hakim.jpg", "multiple_faces"),
    ]
    assert "--face largest" in report[0]["reason"] and "face_index" not in report[0]["reason"]

    for choice in ("largest", "central"):  # the second run finds nothing left to do
        assert main(["import", str(manifest), "--workers", "2", "--face", choice]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (summary["photos_enrolled"], summary["photos_already_enrolled"]) == (0, 3)

    with Reunite.open(settings_in(workdir)) as service:
        faces = {
            ref: service.photos(service.case_by_external_ref(agency, ref).id)[0][1][0]
            for agency, ref in (("police", "M-1"), ("shelter", "F-1"), ("shelter", "F-2"))
        }
        assert {ref: f.face_choice for ref, f in faces.items()} == {
            "M-1": "largest",
            "F-1": None,  # one face: nothing was chosen
            "F-2": "largest",
        }
        assert faces["F-2"].left < 125 < faces["F-2"].right  # the portrait's subject
        [view] = service.candidates(faces["F-1"].case_id)  # Obama, chosen beside Biden
        assert view.candidate.missing_case_id == faces["M-1"].case_id
        assert [(f.code, f.facts) for f in view.flags] == [
            ("face_chosen_automatically", {"side": "missing", "choice": "largest"})
        ]
