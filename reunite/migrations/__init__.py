"""Alembic migrations of the store's schema, for SQLite and PostgreSQL alike (see
``reunite.store.migrate``). Add one with::

    .venv/bin/alembic -c reunite/migrations/alembic.ini revision --autogenerate -m "what changes"
"""
