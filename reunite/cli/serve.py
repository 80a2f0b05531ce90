"""``reunite serve``: the HTTP API and the staff pages, in one or several processes."""

from __future__ import annotations

import argparse

from reunite.cli.shared import loaded_settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve``."""
    serve = commands.add_parser(
        "serve", help="serve the HTTP API", description="Serve the HTTP API (docs at /docs)."
    )
    serve.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default 1, or REUNITE_WORKERS), forked from one supervisor "
        "that loaded the models; they map one saved index",
    )
    serve.set_defaults(run=serve_api)


def serve_api(args: argparse.Namespace) -> int:
    """Check the settings, then serve until stopped."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    from reunite.api.auth import session_secret
    from reunite.api.observability import configure_logging
    from reunite.device import chosen_devices

    overrides = {
        k: v
        for k, v in (("host", args.host), ("port", args.port), ("workers", args.workers))
        if v is not None
    }
    settings = loaded_settings(**overrides)
    configure_logging(settings.log_format)  # INFO: says how the index was made ready
    chosen_devices(settings.device)  # a bad REUNITE_DEVICE stops here, with its reason
    # Made here, once (so several workers do not race to create them), and checked: a weak
    # session key stops the start with its reason (exit 7), before any worker starts.
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    session_secret(settings)
    # Imported now: dlib's models load with it, once, before any worker is forked.
    from reunite.app import create_app
    from reunite.workers import served_exit_status, uvicorn_config

    if settings.workers > 1:
        return served_exit_status(settings)  # a supervisor, and workers forked from it
    server = uvicorn.Server(uvicorn_config(create_app(settings), settings))
    server.run()
    return 0 if server.started else STARTUP_FAILURE  # as uvicorn.run: the start failed
