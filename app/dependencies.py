"""FastAPI dependencies shared by every domain's views."""

from collections.abc import Iterator

from sqlalchemy.orm import Session

from app.database import get_sessionmaker


def get_session() -> Iterator[Session]:
    session = get_sessionmaker()()
    try:
        yield session
    finally:
        session.close()
