"""The HTTP API: routes, authentication, errors as problem details, limits, observability and
the OpenAPI document. ``reunite.app`` composes it with the staff pages into the application;
nothing here imports ``reunite.web`` or ``reunite.app``.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """TEMPORARY, until the command line builds the app from ``reunite.app``: the old
    ``reunite.api.create_app`` and ``reunite.api:app_from_environment`` (``reunite serve``)."""
    if name in ("create_app", "app_from_environment"):
        import reunite.app  # the one exception to the layers (tests/test_layers.py)

        return getattr(reunite.app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
