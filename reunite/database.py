"""The database connection: one SQLAlchemy engine per store URL.

SQLite (the embedded default) gets its pragmas on every connection: foreign keys, WAL, full
sync and ``secure_delete`` (erased rows are overwritten, not left in free pages). PostgreSQL
gets ``pool_pre_ping`` (an idle connection is checked before use, so a restarted server costs
one reconnect) and a hook that turns a server that refuses or drops the connection into
``StoreUnavailable``: 503 ``store_unavailable`` with ``Retry-After`` in the API, an error page
on the staff pages, exit code 11 on the command line, one warning line in the background loops.
Every engine hides statement parameters from its error messages, so a log never carries names
or embedding bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, ExceptionContext, make_url

from reunite.errors import StoreUnavailable
from reunite.files import ensure_owner_only_file

STORE_UNAVAILABLE = (
    "The database cannot be reached right now (the connection was refused or lost), so this "
    "may not have been done. Try again in a few seconds; if it lasts, an operator should check "
    "the database server and its address, name and password in REUNITE_DATABASE_URL."
)


def engine_for(url: str) -> Engine:
    """A new engine for the store at ``url`` (any SQLAlchemy URL)."""
    if not url.startswith("sqlite"):
        engine = create_engine(url, pool_pre_ping=True, hide_parameters=True)
        event.listen(engine, "handle_error", _unreachable_database)
        return engine
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        ensure_owner_only_file(Path(database))  # names, contacts, embeddings: owner-only
    # hide_parameters: an error message must never carry names or embedding bytes into a log.
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True
    )

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        # Deleted content is overwritten with zeros in the database file, so erased names and
        # embeddings do not linger in free pages (PostgreSQL: until VACUUM reclaims them).
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    return engine


def _unreachable_database(context: ExceptionContext) -> None:
    """SQLAlchemy's ``handle_error`` hook: a database server that refuses the connection
    (down, restarting) or drops it mid-request raises ``StoreUnavailable`` (503, exit code 11)
    instead of the driver's error. Other database errors pass through unchanged."""
    if context.is_pre_ping:
        return  # the pool's check of an idle connection: it reconnects, or fails below
    if context.is_disconnect or context.connection is None:
        raise StoreUnavailable(STORE_UNAVAILABLE) from context.original_exception
