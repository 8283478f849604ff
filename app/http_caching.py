"""Conditional GETs: what Studio's polls and file fetches send back to skip unchanged answers."""

from fastapi import Request


def etag_matches(request: Request, etag: str) -> bool:
    """Whether the request's If-None-Match names this ETag (the answer is then a bare 304)."""
    return etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]
