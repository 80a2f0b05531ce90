"""``reunite serve``: the HTTP API and the staff pages, in one or several processes."""

from __future__ import annotations

import argparse
from typing import Any

from reunite.cli.shared import loaded_settings

APP_FACTORY = "reunite.app:app_from_environment"
"""``module:function`` that builds the app from the environment; every worker process calls it
(one worker: this process, after the checks below)."""


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
        help="worker processes (default 1, or REUNITE_WORKERS); each loads the index",
    )
    serve.set_defaults(run=serve_api)


def serve_api(args: argparse.Namespace) -> int:
    """Check the settings, then serve until stopped."""
    import uvicorn

    from reunite.api.auth import session_secret
    from reunite.api.connections import PROTOCOL
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
    one_process = settings.workers == 1
    app: Any = APP_FACTORY  # each worker process builds its app from the environment
    if one_process:
        from reunite.app import create_app

        app = create_app(settings)  # with the command line's overrides
    uvicorn.run(
        app,
        factory=not one_process,
        workers=None if one_process else settings.workers,
        host=settings.host,
        port=settings.port,
        http=PROTOCOL,  # h11, with a timeout on request headers (REUNITE_HEADER_TIMEOUT_S)
        # uvicorn answers 503 once the open connections (this one counted) reach the limit.
        limit_concurrency=settings.max_connections + 1,
        access_log=False,
        log_config=None,
    )
    return 0
