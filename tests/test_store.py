"""The store's schema comes from the Alembic migrations, on SQLite and PostgreSQL alike."""

import sqlite3
import subprocess
import sys

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from reunite.migrations import BASELINE_REVISION, MIGRATIONS_PATH
from reunite.store import Base, Store
from tests.server import settings_env


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_PATH))
    return str(ScriptDirectory.from_config(config).get_current_head())


def test_the_migrated_schema_is_the_models_schema(settings):
    store = Store(settings.resolved_database_url)
    try:
        assert store.revision == head_revision()
        with store.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        store.close()


def test_opening_twice_migrates_once_and_keeps_the_data(settings):
    from reunite.service import Reunite

    with Reunite.open(settings, load_index=False) as service:
        case = service.create_case({"kind": "missing", "name": "王秀英"}, actor="test")
    with Reunite.open(settings, load_index=False) as service:
        assert service.case(case.id).name == "王秀英"
        assert service.store.revision == head_revision()


def test_a_store_made_before_migrations_is_adopted(tmp_path):
    """Tables made by ``create_all`` (the first release), no ``alembic_version``: the store
    keeps its rows and is marked as the baseline, then upgraded."""
    path = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:  # the first release's tables: the baseline's schema
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_PATH))
        config.attributes["connection"] = connection
        command.upgrade(config, BASELINE_REVISION)
        connection.exec_driver_sql("DROP TABLE alembic_version")
        connection.exec_driver_sql(
            "INSERT INTO cases (kind, status, sex, created_at, updated_at) "
            "VALUES ('missing', 'open', 'unknown', '2026-01-01', '2026-01-01')"
        )
    engine.dispose()
    store = Store(f"sqlite:///{path}")
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM cases").fetchone() == (1,)
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == (
            head_revision(),
        )
        assert db.execute("SELECT name FROM locks").fetchall() == [("faces",)]


def test_reunite_migrate_prints_the_revision(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "reunite.cli", "migrate"],
        env=settings_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == f"schema at revision {head_revision()}"
