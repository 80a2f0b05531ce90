"""The manifests of ``reunite import``: their rows, and each row's photos with their dates.

A manifest lists one case per row: its ``kind``, ``agency``, ``external_ref``, its facts (the
fields of ``CaseFacts``) and its ``photos``, paths relative to the manifest's folder. It is CSV
(``.csv``: one column per field, ``photos`` separated by ``;``) or JSON lines (``.jsonl``: one
object per line, ``photos`` a list).

A photo may carry the date it was taken: ``path@YYYY-MM-DD`` (CSV, and JSONL strings), or a
JSONL object ``{"path": ..., "taken_on": "YYYY-MM-DD"}``. Only a trailing ``@`` followed by
digits and dashes is read as a date, so ``scans/a@b.jpg`` is a path. A photo's bad date is that
photo's problem (``ManifestPhoto.problem``), not the row's.

Reading checks the file's shape only; case facts are validated when the case is put.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from reunite.enrollment import check_taken_on
from reunite.errors import InvalidField, InvalidInput
from reunite.store import CaseFacts

CASE_COLUMNS = ("kind", "agency", "external_ref", *CaseFacts.model_fields)
"""The fields of a case a manifest row may give (besides ``photos``)."""
REQUIRED_COLUMNS = ("kind", "agency", "external_ref", "photos")
"""Columns a CSV manifest's header must have: agency and external_ref identify the case when
the import runs again."""

_DATED = re.compile(r"(?P<path>.*)@\s*(?P<date>[0-9][0-9-]*)", re.DOTALL)
"""A photo entry ending in ``@`` and something date-like (checked as YYYY-MM-DD after)."""
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PHOTO_KEYS = ("path", "taken_on")
_PHOTOS_SHAPE = (
    'photos must be a list of paths (strings, "path@YYYY-MM-DD" for a dated photo) or of '
    'objects {"path": ..., "taken_on": "YYYY-MM-DD"}.'
)


@dataclass(frozen=True)
class ManifestPhoto:
    """One photo of a row: its path as written, its date, and why it cannot be used (a bad
    date), if so."""

    path: str
    """Relative to the manifest's folder, as written (without its date)."""
    taken_on: date | None = None
    problem: InvalidField | None = None


@dataclass(frozen=True)
class ManifestRow:
    """One case of a manifest, as written; ``problem`` says why the row cannot be used at all."""

    row: int
    """Line number where the row starts (a CSV's header is line 1)."""
    fields: dict[str, Any]
    """Case fields given (blank ones left out); not yet validated."""
    photos: list[ManifestPhoto]
    """The row's photos, in the order written."""
    problem: InvalidInput | None = None

    @property
    def external_ref(self) -> str:
        return str(self.fields.get("external_ref") or "")


def manifest_rows(manifest: Path) -> Iterator[ManifestRow]:
    """The rows of a ``.csv`` or ``.jsonl`` manifest, read as they are consumed.

    Cost: one pass over the file, a few seconds per million rows; memory for one row.

    Raises:
        InvalidInput: a fatal problem with the whole file: missing or unreadable, another
            extension, not UTF-8, not CSV, or a CSV header without a required column or with an
            unknown one. A bad row is not fatal: it comes with its ``problem``.
    """
    suffix = manifest.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise InvalidInput(
            f"The manifest {manifest} must be a .csv or a .jsonl file (JSON lines), "
            f"not {suffix or 'a file without an extension'}."
        )
    try:
        handle = manifest.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InvalidInput(f"Cannot read the manifest {manifest}: {exc.strerror}.") from exc
    with handle:
        reader = _csv_rows(handle) if suffix == ".csv" else _jsonl_rows(handle)
        try:
            yield from reader
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"The manifest {manifest} is not UTF-8 text ({exc.reason}). Save it as UTF-8 "
                "and run again."
            ) from exc
        except csv.Error as exc:
            raise InvalidInput(f"The manifest {manifest} is not readable CSV: {exc}.") from exc


def manifest_photo(entry: str) -> ManifestPhoto:
    """A photo entry as written, ``path`` or ``path@YYYY-MM-DD`` (see ``dated_photo``)."""
    path = entry.strip()
    if dated := _DATED.fullmatch(path):
        return dated_photo(dated["path"], dated["date"])
    return ManifestPhoto(path)


def dated_photo(path: str, taken_on: object) -> ManifestPhoto:
    """A photo's ``path`` (taken literally) and its date as written (None or "": undated). A
    date that is not YYYY-MM-DD, not a day of the calendar or not plausible
    (``check_taken_on``) is the photo's ``problem``."""
    path = path.strip()
    if taken_on is None or taken_on == "":
        return ManifestPhoto(path)
    try:
        return ManifestPhoto(path, _photo_date(taken_on))
    except InvalidField as exc:
        return ManifestPhoto(path, problem=exc)


def _photo_date(written: object) -> date:
    """A photo's date as a manifest gives it. Raises ``InvalidField``, saying how to fix it."""
    text = written.strip() if isinstance(written, str) else written
    if not isinstance(text, str) or not _ISO_DATE.fullmatch(text):
        raise InvalidField(
            f"The photo date {json.dumps(written, ensure_ascii=False)} is not a date in the "
            "form YYYY-MM-DD (e.g. photos/a.jpg@2009-06-30)."
        )
    try:
        taken_on = date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidField(f"The photo date {text} is not a day of the calendar ({exc}).") from exc
    check_taken_on(taken_on)
    return taken_on


def _csv_rows(handle: TextIO) -> Iterator[ManifestRow]:
    reader = csv.reader(handle)
    header = [name.strip() for name in next(reader, [])]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    unknown = [name for name in header if name not in (*CASE_COLUMNS, "photos")]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if missing or unknown or repeated:
        problems = [
            f"{label}: {', '.join(names)}"
            for label, names in (("missing", missing), ("unknown", unknown), ("repeated", repeated))
            if names
        ]
        raise InvalidInput(
            f"The manifest's header has bad columns ({'; '.join(problems)}). Columns: "
            f"{', '.join(CASE_COLUMNS)}, photos; {', '.join(REQUIRED_COLUMNS)} are required."
        )
    while True:
        start = reader.line_num + 1
        cells = next(reader, None)
        if cells is None:
            return
        if not any(cell.strip() for cell in cells):
            continue
        values = {name: cell.strip() for name, cell in zip(header, cells, strict=False)}
        photos = [manifest_photo(p) for p in values.pop("photos", "").split(";") if p.strip()]
        fields = {name: value for name, value in values.items() if value}
        problem = None
        if len(cells) > len(header):
            problem = InvalidField(
                f"The row has {len(cells)} cells and the header {len(header)} columns. "
                "Quote cells that contain commas."
            )
        yield ManifestRow(start, fields, photos, problem)


def _jsonl_rows(handle: TextIO) -> Iterator[ManifestRow]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield ManifestRow(
                number, {}, [], InvalidField(f"Not valid JSON: {exc.msg} at column {exc.colno}.")
            )
            continue
        if not isinstance(value, dict):
            yield ManifestRow(number, {}, [], InvalidField("Each line must be a JSON object."))
            continue
        items = value.pop("photos", None) or []
        fields = {k: v for k, v in value.items() if v is not None and v != ""}
        problem: InvalidInput | None = None
        photos = _jsonl_photos(items)
        unknown = sorted(k for k in fields if k not in CASE_COLUMNS)
        if photos is None:
            problem = InvalidField(_PHOTOS_SHAPE)
        elif unknown:
            problem = InvalidField(
                f"Unknown keys: {', '.join(unknown)}. Keys: {', '.join(CASE_COLUMNS)}, photos."
            )
        yield ManifestRow(number, fields, photos or [], problem)


def _jsonl_photos(items: object) -> list[ManifestPhoto] | None:
    """A JSONL row's photos, or None when ``photos`` is not a list of strings and objects with
    a string ``path`` (and at most ``taken_on`` besides)."""
    if not isinstance(items, list):
        return None
    photos = []
    for item in items:
        if isinstance(item, str):
            photo = manifest_photo(item)
        elif (
            isinstance(item, dict)
            and isinstance(item.get("path"), str)
            and all(key in _PHOTO_KEYS for key in item)
        ):
            photo = dated_photo(item["path"], item.get("taken_on"))
        else:
            return None
        if photo.path:
            photos.append(photo)
    return photos
