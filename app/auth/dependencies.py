"""FastAPI dependencies: `require("operator")` / `require("admin")` on a route."""

from collections.abc import Callable

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth.models import ApiToken
from app.auth.service import allows, authenticate
from app.database import session_scope

bearer = HTTPBearer(auto_error=False, description="A token from `fabric token create`")


def require(role: str) -> Callable[..., ApiToken]:
    """A missing, unknown or revoked token is a 401; a token of too little role a 403. Both are
    answered before the route looks anything up, so neither tells whether a resource exists."""

    def dependency(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> ApiToken:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        with session_scope() as session:
            token = authenticate(session, credentials.credentials)
            if token is not None:
                session.expunge(token)
        if token is None:
            raise HTTPException(401, "the token is unknown or revoked", headers={"WWW-Authenticate": "Bearer"})
        if not allows(token, role):
            raise HTTPException(403, f"this needs the {role} role; the token has {token.role}")
        request.state.token = token
        return token

    return dependency
