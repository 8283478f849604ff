"""Alembic's migrations, installed with the package (`fabric db upgrade` works from a wheel);
alembic.ini at the repository's top is only for running `alembic` by hand in a checkout."""
