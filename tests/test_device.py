"""REUNITE_DEVICE on a machine without a GPU (CI has none): the CPU path and the refusals."""

import logging

import pytest

from reunite import errors
from reunite.device import chosen_devices, dlib_cuda_devices
from reunite.service import Reunite
from tests.conftest import settings_in

pytestmark = pytest.mark.skipif(dlib_cuda_devices() > 0, reason="this machine has a CUDA GPU")


def test_auto_runs_on_the_cpu_and_says_why(caplog):
    with caplog.at_level(logging.INFO, logger="reunite.device"):
        devices = chosen_devices("auto")
    assert devices.name == "cpu" and not devices.dlib_cuda
    assert "running on the CPU" in caplog.text


def test_cuda_without_a_gpu_is_a_clear_start_up_error(tmp_path):
    with pytest.raises(errors.InvalidField, match="REUNITE_DEVICE=cuda"):
        chosen_devices("cuda")
    with pytest.raises(errors.InvalidField, match="REUNITE_DEVICE=cuda"):
        Reunite.open(settings_in(tmp_path, device="cuda"))


def test_the_cpu_uses_the_hog_detector_unless_told_otherwise(tmp_path, finder):
    with Reunite.open(settings_in(tmp_path), finder=finder) as service:
        assert service.pipeline.detector == "hog"
    with Reunite.open(settings_in(tmp_path, detector="cnn"), finder=finder) as service:
        assert service.pipeline.detector == "cnn"


def test_serve_refuses_cuda_without_a_gpu_with_exit_code_4(tmp_path, monkeypatch, capsys):
    from reunite.cli import main

    monkeypatch.setenv("REUNITE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REUNITE_DEVICE", "cuda")
    assert main(["serve", "--port", "1"]) == 4
    assert "REUNITE_DEVICE=cuda" in capsys.readouterr().err
