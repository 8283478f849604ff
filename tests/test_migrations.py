"""Alembic migrations build exactly the tables the models describe, on Postgres and SQLite,
and can be rolled back."""

import os

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.db.base import Base
from app.db.engine import build_engine
from app.models import load_all_models


def test_migrated_schema_matches_the_models(database_url):
    load_all_models()
    engine = build_engine(database_url, pool_size=1)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == [], "models and migrations differ: write a migration (alembic revision --autogenerate)"


@pytest.mark.postgres
def test_downgrade_to_base_and_upgrade_again():
    from alembic import command
    from alembic.config import Config

    from app.db.migrate import upgrade_database
    from tests.support import create_postgres_database, drop_postgres_database

    postgres_url = create_postgres_database(f"fabric_migrations_{os.getpid()}")
    config = Config("alembic.ini")
    config.attributes["database_url"] = postgres_url
    config.attributes["configure_logger"] = False
    command.downgrade(config, "base")
    engine = build_engine(postgres_url, pool_size=1)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade_database(postgres_url)
    assert {"snapshots", "snapshot_corrections", "quarantine"} <= set(inspect(engine).get_table_names())
    engine.dispose()
    drop_postgres_database(postgres_url)
