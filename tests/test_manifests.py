"""Reading manifests: photo entries with their dates, in CSV and JSON lines (no photos needed:
reading checks the file's shape, the import reads the photos)."""

import json
from datetime import date, timedelta

import pytest

from reunite.manifests import ManifestPhoto, manifest_photo, manifest_rows


def photos_of(row):
    """(path, taken_on, problem code, problem message) of each photo of a row."""
    return [
        (p.path, p.taken_on, p.problem and p.problem.code, p.problem and p.problem.message)
        for p in row.photos
    ]


TOMORROW = (date.today() + timedelta(days=1)).isoformat()


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("photos/a.jpg", ManifestPhoto("photos/a.jpg")),
        ("photos/a.jpg@2009-06-30", ManifestPhoto("photos/a.jpg", date(2009, 6, 30))),
        (" photos/a.jpg @ 2009-06-30 ", ManifestPhoto("photos/a.jpg", date(2009, 6, 30))),
        # Only a trailing @ and a date-like ending is a date: these are paths.
        ("mail@home/a.jpg", ManifestPhoto("mail@home/a.jpg")),
        ("scans/a@2x.jpg", ManifestPhoto("scans/a@2x.jpg")),
        ("a@2001-01-01/b.jpg", ManifestPhoto("a@2001-01-01/b.jpg")),
        ("a.jpg@", ManifestPhoto("a.jpg@")),
        # The last @ is the date's; one before it is the path's.
        ("x@y/a.jpg@2001-02-03", ManifestPhoto("x@y/a.jpg", date(2001, 2, 3))),
    ],
)
def test_a_photo_entry_is_a_path_with_perhaps_a_trailing_date(entry, expected):
    assert manifest_photo(entry) == expected


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("a.jpg@2009-6-30", 'The photo date "2009-6-30" is not a date in the form YYYY-MM-DD'),
        ("a.jpg@20090630", 'The photo date "20090630" is not a date in the form YYYY-MM-DD'),
        ("a.jpg@2009-02-30", "The photo date 2009-02-30 is not a day of the calendar"),
        ("a.jpg@1850-01-01", "taken_on must be between 1900-01-01 and today, not 1850-01-01"),
        (f"a.jpg@{TOMORROW}", f"taken_on must be between 1900-01-01 and today, not {TOMORROW}"),
    ],
)
def test_a_bad_date_is_the_photos_problem_naming_it(entry, reason):
    photo = manifest_photo(entry)
    assert (photo.path, photo.taken_on) == ("a.jpg", None)
    assert photo.problem is not None and photo.problem.code == "invalid_field"
    assert photo.problem.message.startswith(reason)
    assert "\n" not in photo.problem.message


def test_csv_photos_carry_their_dates(tmp_path):
    manifest = tmp_path / "cases.csv"
    manifest.write_text(
        "kind,agency,external_ref,photos\n"
        "missing,police,M-1,a.jpg@1990-05-01; b@c.jpg ;d.jpg@1990-13-01;;e.jpg\n",
        encoding="utf-8",
    )
    [row] = manifest_rows(manifest)
    assert row.problem is None
    photos = photos_of(row)
    assert photos[:2] == [("a.jpg", date(1990, 5, 1), None, None), ("b@c.jpg", None, None, None)]
    assert photos[2][:3] == ("d.jpg", None, "invalid_field")
    assert "1990-13-01 is not a day of the calendar" in photos[2][3]
    assert photos[3] == ("e.jpg", None, None, None)


def test_json_lines_photos_are_strings_or_objects_with_a_date(tmp_path):
    manifest = tmp_path / "cases.jsonl"
    rows = [
        {
            "kind": "missing",
            "agency": "police",
            "external_ref": "M-1",
            "photos": [
                "a.jpg",
                "b.jpg@1990-05-01",
                {"path": "c.jpg", "taken_on": "1991-06-02"},
                {"path": "d@1990-05-01.jpg@x", "taken_on": None},
                {"path": "e.jpg@1990-05-01"},  # an object's path is taken literally
                {"path": "f.jpg", "taken_on": "June 1991"},
                {"path": "g.jpg", "taken_on": 1991},
            ],
        },
        {"kind": "found", "agency": "s", "external_ref": "F-1", "photos": [{"file": "a.jpg"}]},
        {"kind": "found", "agency": "s", "external_ref": "F-2", "photos": [{"path": 3}]},
        {"kind": "found", "agency": "s", "external_ref": "F-3", "photos": [["a.jpg"]]},
    ]
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    first, *bad = manifest_rows(manifest)
    assert first.problem is None
    photos = photos_of(first)
    assert [p[:3] for p in photos] == [
        ("a.jpg", None, None),
        ("b.jpg", date(1990, 5, 1), None),
        ("c.jpg", date(1991, 6, 2), None),
        ("d@1990-05-01.jpg@x", None, None),
        ("e.jpg@1990-05-01", None, None),
        ("f.jpg", None, "invalid_field"),
        ("g.jpg", None, "invalid_field"),
    ]
    assert 'The photo date "June 1991" is not a date in the form YYYY-MM-DD' in photos[5][3]
    assert "The photo date 1991 is not a date" in photos[6][3]
    for row in bad:
        assert row.photos == [] and row.problem is not None
        assert row.problem.code == "invalid_field"
        assert '{"path": ..., "taken_on": "YYYY-MM-DD"}' in row.problem.message
