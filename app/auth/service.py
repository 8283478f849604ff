"""Creating, checking and revoking bearer tokens."""

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import ROLES, ApiToken

TOKEN_PREFIX = "pf_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, role: str) -> tuple[str, ApiToken]:
    """A new token: (the token itself, to show once; its stored row). Commits."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, role=role, token_hash=hash_token(token))
    session.add(row)
    session.commit()
    return token, row


def authenticate(session: Session, token: str) -> ApiToken | None:
    """The live token row for this token, or None (unknown or revoked)."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    return row if row is not None and row.revoked_at is None else None


def allows(token: ApiToken, role: str) -> bool:
    return ROLES.index(token.role) >= ROLES.index(role)


def revoke_token(session: Session, token_id: int) -> bool:
    row = session.get(ApiToken, token_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = datetime.now(UTC)
    session.commit()
    return True
