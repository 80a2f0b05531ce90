"""The command line as a whole: help, version, and errors (bad settings included) become exit
codes with one line of reason."""

import argparse
import subprocess
import sys

import pytest

import reunite
from reunite.cli import build_parser, main


def parsers(parser):
    """The parser and every subparser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from parsers(sub)


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
    assert "resolved against the folder the command starts in" in " ".join(done.stdout.split())


def test_every_option_and_command_has_help():
    missing = [
        f"{parser.prog} {action.dest}"
        for parser in parsers(build_parser())
        for action in parser._actions
        if not action.help
    ]
    assert missing == []
    assert len(list(parsers(build_parser()))) == 29  # reunite, 14 commands, 7 + 3 + 4 actions


def test_version_prints_the_package_version():
    done = subprocess.run(
        [sys.executable, "-m", "reunite.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == f"reunite {reunite.__version__}\n"


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [("REUNITE_TOP_K", "abc", "valid integer"), ("REUNITE_TOLERANCE", "9", "less than or equal")],
)
@pytest.mark.parametrize("argv", [["keys", "list"], ["serve"], ["search", "PHOTO"]])
def test_a_bad_setting_exits_8_with_one_line_naming_it(
    workdir, faces_dir, capsys, monkeypatch, argv, variable, value, problem
):
    monkeypatch.setenv(variable, value)
    argv = [str(faces_dir / "samples" / "obama.jpg") if a == "PHOTO" else a for a in argv]
    assert main(argv) == 8
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error (bad_configuration): {variable}: ")
    assert problem in err and value not in err.split(": ", 1)[1].replace(variable, "")


def test_a_bad_setting_is_no_traceback_in_a_fresh_process(workdir):
    done = subprocess.run(
        [sys.executable, "-m", "reunite.cli", "migrate"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "REUNITE_TOP_K": "abc"},
    )
    assert done.returncode == 8
    assert done.stderr.splitlines() == [
        "error (bad_configuration): REUNITE_TOP_K: Input should be a valid integer, unable to "
        "parse string as an integer"
    ]


def test_a_bad_serve_option_names_the_option(workdir, capsys):
    assert main(["serve", "--workers", "100"]) == 8
    assert "--workers: Input should be less than or equal to 64" in capsys.readouterr().err
