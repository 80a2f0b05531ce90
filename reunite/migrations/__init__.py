"""Alembic migrations of the store's schema, for SQLite and PostgreSQL alike: ``migrate`` brings
a database up to this version's schema (``reunite.store.Store`` calls it at start). Add one
with::

    .venv/bin/alembic -c reunite/migrations/alembic.ini revision --autogenerate -m "what changes"
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

MIGRATIONS_PATH = Path(__file__).parent


def migrate(engine: Engine) -> str:
    """Bring the database's schema up to this version's (Alembic ``upgrade head``); returns the
    revision it is at. Safe with several processes starting at once: they take turns (an
    advisory lock on PostgreSQL, a file lock beside a SQLite file). Cost: milliseconds when
    the schema is current.

    A database made before migrations existed (tables, no ``alembic_version``) gets its missing
    tables and is marked as the baseline revision.
    """
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    from reunite.store import FACES_LOCK, Base  # the models import this module

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_PATH))
    with _migration_lock(engine), engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(7350431)"))
        tables = set(inspect(connection).get_table_names())
        config.attributes["connection"] = connection
        if "cases" in tables and "alembic_version" not in tables:
            baseline = [t for t in Base.metadata.sorted_tables if t.name in BASELINE_TABLES]
            Base.metadata.create_all(connection, tables=baseline)
            connection.execute(
                text("INSERT INTO locks (name) SELECT :n WHERE NOT EXISTS "
                     "(SELECT 1 FROM locks WHERE name = :n)"),
                {"n": FACES_LOCK},
            )  # fmt: skip
            command.stamp(config, BASELINE_REVISION)
        command.upgrade(config, "head")
        return str(MigrationContext.configure(connection).get_current_revision())


BASELINE_REVISION = "0001"
BASELINE_TABLES = frozenset(
    ("api_keys", "audit_events", "batch_jobs", "cases", "locks", "removed_faces", "users",
     "webhooks", "outbox_events", "photos", "faces", "candidates", "candidate_decisions")
)  # fmt: skip
"""The tables of the first release; an adopted store gets the missing ones, later revisions
add theirs."""


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """On SQLite, an exclusive ``flock`` on ``<database file>.migrate.lock`` (DDL there is not
    transactional); elsewhere nothing (PostgreSQL takes an advisory lock in the transaction)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    Path(database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(f"{database}.migrate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
