"""Creating, checking and revoking bearer tokens, and the dashboard sessions they open."""

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.auth.models import ROLES, AdminSession, ApiToken
from app.db.base import as_utc

TOKEN_PREFIX = "pf_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(name: str, role: str, *, db_session: Session) -> tuple[str, ApiToken]:
    """A new token: (the token itself, to show once; its stored row). Commits."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, role=role, token_hash=hash_token(token))
    db_session.add(row)
    db_session.commit()
    return token, row


def authenticate(token: str, *, db_session: Session) -> ApiToken | None:
    """The live token row for this token, or None (unknown or revoked)."""
    row = db_session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    return row if row is not None and row.revoked_at is None else None


def get_all_tokens(*, db_session: Session) -> list[ApiToken]:
    return list(db_session.scalars(select(ApiToken).order_by(ApiToken.id)))


def allows(token: ApiToken, role: str) -> bool:
    return ROLES.index(token.role) >= ROLES.index(role)


def revoke_token(token_id: int, *, db_session: Session) -> bool:
    row = db_session.get(ApiToken, token_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = datetime.now(UTC)
    db_session.commit()
    return True


def start_session(token: ApiToken, ttl_s: int, *, db_session: Session) -> tuple[str, AdminSession]:
    """A dashboard session for a live admin token: (the cookie value, its row). Commits, and
    clears sessions that have expired."""
    now = datetime.now(UTC)
    db_session.execute(delete(AdminSession).where(AdminSession.expires_at < now))
    cookie = secrets.token_urlsafe(32)
    row = AdminSession(
        session_hash=hash_token(cookie),
        token_id=token.id,
        csrf_token=secrets.token_urlsafe(32),
        expires_at=now + timedelta(seconds=ttl_s),
    )
    db_session.add(row)
    db_session.commit()
    return cookie, row


def resolve_session(cookie: str, *, db_session: Session) -> tuple[AdminSession, ApiToken] | None:
    """The live session this cookie names and its token, or None (unknown, expired, logged out,
    or its token revoked)."""
    found = db_session.execute(
        select(AdminSession, ApiToken)
        .join(ApiToken, ApiToken.id == AdminSession.token_id)
        .where(AdminSession.session_hash == hash_token(cookie), ApiToken.revoked_at.is_(None))
    ).first()
    if found is None or as_utc(found[0].expires_at) <= datetime.now(UTC):
        return None
    return found[0], found[1]


def end_session(cookie: str, *, db_session: Session) -> None:
    db_session.execute(delete(AdminSession).where(AdminSession.session_hash == hash_token(cookie)))
    db_session.commit()
