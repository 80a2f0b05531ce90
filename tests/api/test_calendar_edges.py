"""Date-times at the ends of the calendar, with every offset, in every date parameter and in
forged cursors: each is answered (200) or refused with a 422 naming the range, never a 500.

A moment is refused exactly when it leaves the calendar once converted to UTC
(``9999-12-31T23:00:00-05:00`` is in the year 10000): the test computes which ones do."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from pydantic import TypeAdapter, ValidationError

from reunite.api.routes import Timestamp, decoded_cursor
from reunite.config import Settings
from reunite.errors import InvalidField
from tests.api.test_routes import API, assert_problem
from tests.conftest import settings_in

EDGES = (
    "0001-01-01T00:00:00",
    "0001-01-01T23:59:59",
    "0001-01-02T05:00:00",
    "9999-12-31T00:00:00",
    "9999-12-31T23:59:59.999999",
)
OFFSETS = [
    *sorted(
        {f"{sign}{hours:02d}:00" for sign in "+-" for hours in (0, 1, 5, 8, 12, 14, 23)}
        | {"+23:59", "-23:59", "+05:45", "-09:30", "+00:30", "-00:01"}
    ),
    "Z",
]
PARAMETERS = (
    ("/cases", "updated_since"),
    ("/candidates?order=updated", "updated_since"),
    ("/audit", "since"),
    ("/audit", "until"),
)
CURSORS = (("/cases", ""), ("/candidates", "order=updated"))


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    """Both stores; no rate limit (a thousand requests)."""
    return settings_in(tmp_path, database_url=database_url, rate_limit_burst=100_000)


def in_calendar(moment: str) -> bool:
    """Whether ``moment`` stays in years 1-9999 in UTC."""
    try:
        datetime.fromisoformat(moment).astimezone(UTC)
    except OverflowError:
        return False
    return True


def moments() -> list[str]:
    return [edge + offset for edge in EDGES for offset in OFFSETS]


def test_the_offsets_cover_both_sides_of_the_calendar():
    outside = [m for m in moments() if not in_calendar(m)]
    assert any(m.startswith("0001") for m in outside)
    assert any(m.startswith("9999") for m in outside)
    assert len(outside) < len(moments())


@pytest.mark.parametrize(("path", "name"), PARAMETERS)
def test_every_date_parameter_answers_or_refuses_never_500(client, path, name):
    separator = "&" if "?" in path else "?"
    for moment in moments():
        response = client.get(f"{API}{path}{separator}{name}={quote(moment)}")
        if in_calendar(moment):
            assert response.status_code == 200, (moment, response.text)
        else:
            body = assert_problem(response, 422, "invalid_request")
            assert "9999-12-31" in json.dumps(body), (moment, body)


def cursor(values: list[object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize(("path", "query"), CURSORS)
def test_forged_cursors_at_the_calendars_ends_are_refused(client, path, query):
    for moment in moments():
        if moment.endswith("Z"):
            continue  # a cursor's time is written with its offset
        url = f"{API}{path}?{query}&cursor={cursor([moment, 1])}"
        response = client.get(url)
        if in_calendar(moment):
            assert response.status_code == 200, (moment, response.text)
        else:
            assert_problem(response, 422, "invalid_field")


def every_offset() -> list[str]:
    """Every whole-minute UTC offset ISO 8601 allows, -23:59 to +23:59, and Z."""
    minutes = range(-(24 * 60 - 1), 24 * 60)
    return [f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}" for m in minutes] + ["Z"]


def test_every_offset_at_both_ends_is_taken_or_refused_as_the_calendar_says():
    """The two outermost moments with all 2,880 offsets, through the type every date parameter
    uses (``Timestamp``, checked below) and through cursor decoding: no other exception."""
    timestamps = TypeAdapter(Timestamp)
    for edge in ("0001-01-01T00:00:00", "9999-12-31T23:59:59.999999"):
        for offset in every_offset():
            moment = edge + offset
            try:
                taken = timestamps.validate_python(moment)
            except ValidationError as refusal:
                assert not in_calendar(moment), (moment, refusal)
                assert "9999-12-31" in str(refusal)
            else:
                assert in_calendar(moment) and taken.tzinfo is UTC, moment
            if offset != "Z":
                try:
                    decoded_cursor(cursor([moment, 1]), order="updated")
                except InvalidField:
                    assert not in_calendar(moment), moment
                else:
                    assert in_calendar(moment), moment


def test_every_date_parameter_is_a_timestamp_and_fuzzed_here(app_client):
    """Every date-time query parameter the API documents is in ``PARAMETERS`` (so a new one is
    fuzzed) and is validated by ``Timestamp``."""
    document = app_client.get("/openapi.json").json()
    documented = {
        (path, parameter["name"])
        for path, methods in document["paths"].items()
        for operation in methods.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query"
        and any(
            choice.get("format") == "date-time"
            for choice in [parameter["schema"], *parameter["schema"].get("anyOf", [])]
        )
    }
    fuzzed = {(f"/api/v1{path.split('?')[0]}", name) for path, name in PARAMETERS}
    assert documented == fuzzed
