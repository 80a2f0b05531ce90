"""Fixtures of the command-line tests: a real store in a temporary directory."""

import pytest


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("REUNITE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REUNITE_INDEX_DIR", str(tmp_path / "index"))
    return tmp_path
