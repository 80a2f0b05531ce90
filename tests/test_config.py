"""Settings: relative paths are made absolute once; the shipped calibration is in the package."""

import os
from pathlib import Path

from reunite.config import SHIPPED_CALIBRATION_PATH, Settings


def test_relative_paths_are_made_absolute_against_the_working_directory_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REUNITE_INDEX_DIR", "var/../index")
    settings = Settings(data_dir=Path("data"), calibration_path=Path("mine.json"))
    os.chdir("/")  # later changes of the working directory do not move them
    assert settings.data_dir == tmp_path / "data"
    assert settings.index_dir == tmp_path / "index"
    assert settings.calibration_path == tmp_path / "mine.json"
    assert settings.photos_dir == tmp_path / "data" / "photos"
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'data' / 'reunite.db'}"


def test_the_shipped_calibration_is_found_inside_the_package_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Settings().calibration_path == SHIPPED_CALIBRATION_PATH
    assert SHIPPED_CALIBRATION_PATH.is_file()
    assert (SHIPPED_CALIBRATION_PATH.parent / "README.md").is_file()  # beside the model card
    assert Settings(calibration_path="/etc/reunite/c.json").calibration_path == Path(
        "/etc/reunite/c.json"
    )


def test_a_calibration_left_at_the_old_default_place_is_named_in_a_warning(
    tmp_path, monkeypatch, caplog
):
    from reunite.calibration import warn_of_a_calibration_left_behind

    monkeypatch.chdir(tmp_path)
    warn_of_a_calibration_left_behind(SHIPPED_CALIBRATION_PATH, shipped=SHIPPED_CALIBRATION_PATH)
    assert not caplog.records  # nothing left behind: nothing to say
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "calibration.json").write_text("{}")
    own = tmp_path / "own.json"
    warn_of_a_calibration_left_behind(own, shipped=SHIPPED_CALIBRATION_PATH)
    assert not caplog.records  # a calibration chosen on purpose: nothing to say
    warn_of_a_calibration_left_behind(SHIPPED_CALIBRATION_PATH, shipped=SHIPPED_CALIBRATION_PATH)
    assert (
        "REUNITE_CALIBRATION_PATH=" + str(tmp_path / "models" / "calibration.json") in caplog.text
    )


def test_the_time_zone_is_read_as_reunite_timezone_and_under_its_old_name(monkeypatch):
    monkeypatch.delenv("REUNITE_TIMEZONE", raising=False)
    monkeypatch.delenv("REUNITE_DISPLAY_TIMEZONE", raising=False)
    assert Settings().timezone == "UTC"
    monkeypatch.setenv("REUNITE_DISPLAY_TIMEZONE", "Europe/Paris")  # deprecated, still read
    assert Settings().timezone == "Europe/Paris"
    monkeypatch.setenv("REUNITE_TIMEZONE", "Asia/Shanghai")  # the new name wins
    assert Settings().timezone == "Asia/Shanghai"
    assert Settings(timezone="Asia/Tokyo").timezone == "Asia/Tokyo"
