"""Alembic migrations build exactly the tables the models describe, on Postgres and SQLite,
and can be rolled back."""

import os

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.db.base import Base
from app.db.engine import build_engine
from app.tables import load_all_tables


def test_migrated_schema_matches_the_models(database_url):
    load_all_tables()
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


def test_local_paths_become_artifact_keys(tmp_path):
    """0011: datasets and models recorded by local folder before the artifact store are named by
    key, which the local store at the same FABRIC_ARTIFACTS_DIR resolves to the same folders."""
    import sqlite3

    from alembic import command
    from alembic.config import Config

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    config = Config("alembic.ini")
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    command.upgrade(config, "0010")
    with sqlite3.connect(tmp_path / "old.sqlite3") as connection:
        connection.execute(
            "INSERT INTO datasets (id, content_hash, run_label, feature_version, train_ratio, train_count,"
            " validation_count, test_count, path, manifest) VALUES (1, 'abc', 'x', 'fe-2', 0.7, 1, 1, 1,"
            " '/srv/var/artifacts/datasets/0123456789abcdef', '{}')"
        )
        connection.execute(
            "INSERT INTO stem_models (id, version, run_id, dataset_id, path, manifest, decision, reason)"
            " VALUES (1, 'r1-01234567', 1, 1, '/srv/var/artifacts/models/r1-01234567', '{}', 'published', 'ok')"
        )
    command.upgrade(config, "head")
    with sqlite3.connect(tmp_path / "old.sqlite3") as connection:
        assert connection.execute("SELECT artifact_key FROM datasets").fetchall() == [("datasets/0123456789abcdef",)]
        assert connection.execute("SELECT artifact_key FROM stem_models").fetchall() == [("models/r1-01234567",)]
