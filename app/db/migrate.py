"""The database's schema against this code's: bringing it to the newest Alembic revision
(`fabric db upgrade`, `make run`) and telling whether it is there (`/readyz`)."""

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

import migrations
from app.config import get_settings
from app.db.engine import get_engine, normalise_url

SCRIPT_LOCATION = Path(migrations.__file__).resolve().parent  # inside the installed package


def _config(url: str | None = None) -> Config:
    config = Config()  # no ini file: logging stays the app's
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    return config


def upgrade_database(url: str | None = None) -> None:
    """Brings the database to the newest Alembic revision (creating a SQLite file's folder)."""
    url = url or get_settings().database_url
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(_config(url), "head")


@cache
def head_revision() -> str:
    """The revision this code's models are written for."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def schema_problem() -> str | None:
    """Why the database cannot serve this code (None when it can): raises one of the engine's
    UNAVAILABLE_ERRORS when the database cannot be reached."""
    with get_engine().connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current == head_revision():
        return None
    return f"the database schema is at {current or 'no revision'}, this code needs {head_revision()}: run `fabric db upgrade`"
