"""Small helpers shared by the domains' views."""

from fastapi import HTTPException
from sqlalchemy.orm import Session


def get_or_404(session: Session, model: type, row_id: int, what: str):
    """The row, or a 404 that names what was not found."""
    row = session.get(model, row_id)
    if row is None:
        raise HTTPException(404, f"no {what} {row_id}")
    return row
