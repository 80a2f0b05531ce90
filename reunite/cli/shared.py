"""What every command shares: who acts, the settings (a bad value becomes one clear error),
and a progress display. Light: importing it imports neither pydantic nor the store."""

from __future__ import annotations

import getpass
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from reunite.errors import BadConfiguration

if TYPE_CHECKING:
    from reunite.config import Settings
    from reunite.store import Store


def actor() -> str:
    """Who the audit log names for this command: ``cli:<login name>``."""
    return f"cli:{getpass.getuser()}"


@contextmanager
def opened_store(settings: Settings) -> Iterator[Store]:
    """The store of ``settings`` (opening it migrates the schema), closed afterwards."""
    from reunite.store import Store

    store = Store(settings.resolved_database_url)
    try:
        yield store
    finally:
        store.close()


def loaded_settings(**overrides: Any) -> Settings:
    """The settings from ``REUNITE_*`` variables (and command-line ``overrides``).

    Raises:
        BadConfiguration: a value that is not valid, named by its variable (or option) with
            what is wrong, never the value itself (it may be a secret).
    """
    from pydantic import ValidationError

    from reunite.config import Settings

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            name = f"--{field}" if field in overrides else f"REUNITE_{field.upper()}"
            problems.append(f"{name}: {error['msg']}")
        raise BadConfiguration("; ".join(problems)) from None


@contextmanager
def progress_display(label: str, *, unit: str) -> Iterator[Callable[[int, int], None]]:
    """A progress callback (done, total): a bar with rate and ETA on a terminal, else a log
    line every 10 seconds (and at the end)."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        with tqdm(desc=label, unit=unit, dynamic_ncols=True) as bar:

            def advance(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            yield advance
        return
    started = time.monotonic()
    last_shown = [started]

    def log_line(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last_shown[0] >= 10 or done >= total:
            last_shown[0] = now
            rate = done / max(now - started, 1e-9)
            eta = (total - done) / rate if rate else float("inf")
            print(
                f"{label}: {done}/{total} {unit}s, {rate:.1f}/s, about {eta:.0f} s left",
                file=sys.stderr,
                flush=True,
            )

    yield log_line
