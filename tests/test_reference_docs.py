"""The generated reference pages (docs/configuration.md, docs/cli.md) match what
scripts/reference_docs.py makes from ``Settings`` and the command line's parser."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def reference_docs() -> ModuleType:
    path = ROOT / "scripts" / "reference_docs.py"
    spec = importlib.util.spec_from_file_location("reference_docs", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_committed_reference_pages_are_up_to_date() -> None:
    stale = reference_docs().stale_pages()
    assert not stale, (
        f"out of date: {', '.join(str(p.relative_to(ROOT)) for p in stale)}; "
        "run .venv/bin/python scripts/reference_docs.py and commit the pages"
    )


def test_pages_name_every_setting_and_command() -> None:
    from reunite.cli import build_parser
    from reunite.config import Settings

    module = reference_docs()
    configuration = module.configuration_page()
    for name in Settings.model_fields:
        assert f"`REUNITE_{name.upper()}`" in configuration
    cli = module.cli_page()
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in commands:
        assert f"### `reunite {name}`" in cli


def test_output_does_not_depend_on_the_terminal_width(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    module = reference_docs()
    monkeypatch.setenv("COLUMNS", "40")
    narrow = module.cli_page()
    monkeypatch.setenv("COLUMNS", "300")
    assert module.cli_page() == narrow
