"""Alembic's environment: runs migrations on the connection ``reunite.migrations.migrate`` gives it,
or, from the ``alembic`` command, on the store named by the settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from reunite.store import Base

target_metadata = Base.metadata


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    from reunite.config import Settings

    engine = create_engine(Settings().resolved_database_url)
    with engine.connect() as connection:
        _migrate(connection)


def _migrate(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite changes a table by copying it
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
