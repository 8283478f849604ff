"""FastAPI dependencies: `require("operator")` / `require("admin")` on a route."""

from collections.abc import Callable

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth.models import AdminSession, ApiToken
from app.auth.service import allows, authenticate, resolve_session
from app.db.engine import session_scope

bearer = HTTPBearer(auto_error=False, description="A token from `fabric token create`")

# The dashboard's login cookie. It also opens the read-only (GET) API, so that the dashboard's
# "source" links show the JSON behind each number; it never authorises a change by itself
# (those need a bearer token, or the dashboard's own forms with their CSRF token).
SESSION_COOKIE = "pf_session"
SAFE_METHODS = ("GET", "HEAD")


def require(role: str) -> Callable[..., ApiToken]:
    """A missing, unknown or revoked token is a 401; a token of too little role a 403. Both are
    answered before the route looks anything up, so neither tells whether a resource exists."""

    def dependency(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> ApiToken:
        if credentials is not None and credentials.scheme.lower() == "bearer":
            with session_scope() as session:
                token = authenticate(credentials.credentials, db_session=session)
                if token is not None:
                    session.expunge(token)
        elif request.method in SAFE_METHODS and request.cookies.get(SESSION_COOKIE):
            found = dashboard_session(request)
            token = found[1] if found else None
        else:
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        if token is None:
            raise HTTPException(401, "the token is unknown or revoked", headers={"WWW-Authenticate": "Bearer"})
        if not allows(token, role):
            raise HTTPException(403, f"this needs the {role} role; the token has {token.role}")
        request.state.token = token
        return token

    return dependency


def dashboard_session(request: Request) -> tuple[AdminSession, ApiToken] | None:
    """The live dashboard session of this request's cookie, detached from the database."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    with session_scope() as session:
        found = resolve_session(cookie, db_session=session)
        if found is not None:
            session.expunge_all()
    return found
