"""The Studio kit over HTTP: public, CORS for Studio's origins (the app's CORS middleware),
revalidated by ETag."""

from fastapi import APIRouter, HTTPException, Request, Response

from app.http_caching import etag_matches
from app.studio.service import KIT_FILES, kit_file

router = APIRouter(tags=["studio kit"])


DEMO_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; worker-src 'self' blob:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


@router.get(
    "/studio/demo",
    summary="A page showing the loop with the kit",
    response_class=Response,
    responses={200: {"content": {"text/html": {"example": "<!doctype html>..."}}}},
)
def demo(request: Request):
    """The loop on a song (a bundled one, or one the visitor picks): the kit builds its snapshot
    and sends it, loads the latest model, draws its levels over time and plays Studio's filter
    stems with and without them."""
    return _answer("demo.html", request, DEMO_HEADERS)


@router.get(
    "/studio/{name:path}",
    summary="The Studio kit: prime-fabric.js (an ES module) and its types",
    responses={
        200: {"content": {"text/javascript": {"example": "export function encodeSnapshot(snapshot, manifest) { ... }"}}},
        304: {"description": "Not modified (If-None-Match)"},
        404: {"description": "Not a file of the kit"},
    },
)
def studio_kit(name: str, request: Request):
    if name not in KIT_FILES:
        raise HTTPException(404, f"no such file; the kit is {', '.join(sorted(KIT_FILES))}")
    return _answer(name, request)


def _answer(name: str, request: Request, extra_headers: dict | None = None) -> Response:
    file = kit_file(name)
    headers = {"ETag": file.etag, "Cache-Control": "no-cache", **(extra_headers or {})}
    if etag_matches(request, file.etag):
        return Response(status_code=304, headers=headers)
    return Response(file.body, media_type=file.media_type, headers=headers)
