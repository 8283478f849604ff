"""The declarative base every domain's `models.py` builds on, and the types its columns and
routes share."""

from datetime import UTC, datetime
from typing import Annotated

from annotated_types import Ge, Le
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names, so Alembic migrations are the same on Postgres and SQLite.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# What an INTEGER primary key can hold: ids outside it are refused (422) before any query,
# which Postgres would otherwise answer with an error (found by the fuzzer).
ROW_ID_MAX = 2**31 - 1
RowId = Annotated[int, Ge(1), Le(ROW_ID_MAX)]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def as_utc(moment: datetime | None) -> datetime | None:
    """Every timestamp here is UTC: a naive one (SQLite hands them back without their zone, and
    a query parameter may lack one) is taken as UTC, an aware one converted to it."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
