"""From request bytes to a list of JSON values, one per snapshot.

Studio sends one JSON object with `Content-Type: application/json` (fetch) or
`text/plain;charset=UTF-8` (sendBeacon). Larger clients may gzip, or batch as a JSON array
or as NDJSON. Anything else is refused with the exact reason.
"""

import zlib
from dataclasses import dataclass
from typing import Any

import orjson

JSON_TYPES = {"application/json", "text/plain"}
NDJSON_TYPES = {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
ACCEPTED_TYPES = sorted(JSON_TYPES | NDJSON_TYPES)


@dataclass
class PayloadError(Exception):
    """The request as a whole cannot be read: no snapshot in it gets an answer of its own."""

    http_status: int
    reason_type: str
    detail: str


def media_type(content_type: str | None) -> tuple[str, str | None]:
    """('application/json', 'utf-8') from 'application/json; charset=UTF-8'."""
    if not content_type:
        return "", None
    kind, *params = (part.strip() for part in content_type.split(";"))
    charset = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return kind.lower(), charset


def decode_body(body: bytes, content_type: str | None, content_encoding: str | None, *, max_decoded_bytes: int) -> bytes:
    """Checks the content type and undoes gzip, refusing a body that inflates past the limit."""
    kind, charset = media_type(content_type)
    if kind not in JSON_TYPES | NDJSON_TYPES:
        raise PayloadError(
            415,
            "unsupported_media_type",
            f"Content-Type {content_type!r} is not accepted; send one of {', '.join(ACCEPTED_TYPES)}",
        )
    if charset not in (None, "utf-8", "utf8"):
        raise PayloadError(415, "unsupported_charset", f"charset {charset!r} is not accepted; send UTF-8")

    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise PayloadError(
            415, "unsupported_content_encoding", f"Content-Encoding {content_encoding!r} is not accepted; use gzip or none"
        )
    inflater = zlib.decompressobj(wbits=31)  # 31: gzip framing
    try:
        decoded = inflater.decompress(body, max_decoded_bytes + 1)
        if len(decoded) > max_decoded_bytes or inflater.unconsumed_tail:
            raise PayloadError(
                413, "decoded_body_too_large", f"gzip body inflates past {max_decoded_bytes} bytes"
            )
        if not inflater.eof:
            raise PayloadError(400, "malformed_gzip", "gzip body is truncated")
    except zlib.error as error:
        raise PayloadError(400, "malformed_gzip", f"gzip body cannot be decoded: {error}") from None
    return decoded


def parse_snapshots(body: bytes, content_type: str | None, *, max_snapshots: int) -> list[Any]:
    """One JSON value per snapshot: a JSON object, a JSON array of them, or NDJSON lines."""
    kind, _ = media_type(content_type)
    if not body.strip():
        raise PayloadError(400, "empty_body", "the body is empty; send a snapshot as JSON")
    if kind in NDJSON_TYPES:
        items = _parse_lines(body)
    else:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            # Several JSON documents on separate lines: NDJSON sent as text/plain or JSON.
            if b"\n" not in body.strip():
                raise PayloadError(400, "malformed_json", f"body is not valid JSON: {error}") from None
            items = _parse_lines(body, first_error=error)
        else:
            items = document if isinstance(document, list) else [document]
    if not items:
        raise PayloadError(400, "empty_batch", "the batch holds no snapshots")
    if len(items) > max_snapshots:
        raise PayloadError(
            413, "too_many_snapshots", f"{len(items)} snapshots in one request; at most {max_snapshots}"
        )
    return items


def _parse_lines(body: bytes, first_error: Exception | None = None) -> list[Any]:
    items = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as error:
            reason = first_error or error
            where = "" if first_error else f" (line {number})"
            raise PayloadError(400, "malformed_json", f"body is not valid JSON or NDJSON{where}: {reason}") from None
    return items


def readable_prefix(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """What an operator should see of a rejected body: inflated if it was gzip, at most `limit`
    bytes (plus one, so a cut can be told), and the raw bytes where inflating fails."""
    if (content_encoding or "").strip().lower() in ("gzip", "x-gzip"):
        try:
            return zlib.decompressobj(wbits=31).decompress(body, limit + 1)
        except zlib.error:
            pass
    return body[: limit + 1]
