"""The Studio kit over HTTP: public, CORS for Studio's origins (the app's CORS middleware),
revalidated by ETag."""

from fastapi import APIRouter, HTTPException, Request, Response

from app.studio.service import KIT_FILES, kit_file

router = APIRouter(tags=["studio kit"])


@router.get(
    "/studio/{name}",
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
    file = kit_file(name)
    headers = {"ETag": file.etag, "Cache-Control": "no-cache"}
    if file.etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(file.body, media_type=file.media_type, headers=headers)
