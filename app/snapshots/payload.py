"""From request bytes to a list of JSON values, one per snapshot.

Studio sends one JSON object with `Content-Type: application/json` (fetch) or
`text/plain;charset=UTF-8` (sendBeacon). Larger clients may gzip, or batch as a JSON array
or as NDJSON. Anything else is refused with the exact reason.
"""

import threading
import zlib
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import orjson
import simdjson

from training.contract import FEATURE_STREAMS, STEMS

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


# Gzip is inflated this much at a time, so the limits below stop a bomb early.
INFLATE_CHUNK_BYTES = 256 * 1024
GZIP_MAGIC = b"\x1f\x8b"


def decode_body(
    body: bytes, content_type: str | None, content_encoding: str | None, *, max_decoded_bytes: int, max_values: int
) -> bytes:
    """Checks the content type and undoes gzip. The decoded size and the number of JSON values
    are bounded while inflating, before any Python object is built from the text: 16 KB of gzip
    can inflate to a 16 MiB array of eight million zeros."""
    kind, charset = media_type(content_type)
    if kind not in JSON_TYPES | NDJSON_TYPES:
        raise PayloadError(
            415,
            "unsupported_media_type",
            f"Content-Type {content_type!r} is not accepted; send one of {', '.join(ACCEPTED_TYPES)}",
        )
    if charset not in (None, "utf-8", "utf8"):
        raise PayloadError(415, "unsupported_charset", f"charset {charset!r} is not accepted; send UTF-8")

    encoding = encoding_of(body, content_encoding)
    if encoding == "identity":
        _check_values(count_values(body), max_values)
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise PayloadError(
            415, "unsupported_content_encoding", f"Content-Encoding {content_encoding!r} is not accepted; use gzip or none"
        )
    inflater = zlib.decompressobj(wbits=31)  # 31: gzip framing
    decoded = bytearray()
    values = 0
    pending = body
    try:
        while True:
            chunk = inflater.decompress(pending, INFLATE_CHUNK_BYTES)
            pending = inflater.unconsumed_tail
            decoded += chunk
            if len(decoded) > max_decoded_bytes:
                raise PayloadError(413, "decoded_body_too_large", f"gzip body inflates past {max_decoded_bytes} bytes")
            values += count_values(chunk)
            _check_values(values, max_values)
            if inflater.eof and inflater.unused_data.startswith(GZIP_MAGIC):
                # Another gzip member follows (the Studio kit's beacons join one per snapshot).
                pending, inflater = inflater.unused_data, zlib.decompressobj(wbits=31)
                continue
            if inflater.eof or (not pending and len(chunk) < INFLATE_CHUNK_BYTES):
                break
    except zlib.error as error:
        raise PayloadError(400, "malformed_gzip", f"gzip body cannot be decoded: {error}") from None
    if not inflater.eof:
        raise PayloadError(400, "malformed_gzip", "gzip body is truncated")
    return bytes(decoded)


def encoding_of(body: bytes, content_encoding: str | None) -> str:
    """The body's content coding, lower-cased: the header's, or gzip for a body without one that
    starts with gzip's magic bytes (a beacon cannot set Content-Encoding; JSON never starts so)."""
    encoding = (content_encoding or "identity").strip().lower()
    return "gzip" if encoding == "identity" and body.startswith(GZIP_MAGIC) else encoding


def count_values(text: bytes) -> int:
    """An upper bound on the JSON values separated in `text`: its commas (those in strings
    too, so a bound, never an undercount of arrays' items)."""
    return _count_byte(text, b",")


def _check_values(values: int, max_values: int) -> None:
    if values > max_values:
        raise PayloadError(413, "too_many_values", f"the body holds more than {max_values} JSON values")


def parse_snapshots(body: bytes, content_type: str | None, *, max_snapshots: int) -> list[Any]:
    """One JSON value per snapshot: a JSON object, a JSON array of them, or NDJSON lines."""
    kind, _ = media_type(content_type)
    if not body.strip():
        raise PayloadError(400, "empty_body", "the body is empty; send a snapshot as JSON")
    if kind in NDJSON_TYPES:
        items = _parse_lines(body)
    elif (parsed := parse_with_float_arrays(body, max_snapshots)) is not None:
        items = parsed
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
        raise _too_many_snapshots(len(items), max_snapshots)
    return items


def _too_many_snapshots(count: int, max_snapshots: int) -> PayloadError:
    return PayloadError(413, "too_many_snapshots", f"{count} snapshots in one request; at most {max_snapshots}")


# Where a snapshot holds its big float arrays: ~7,000 numbers in a 100 KB snapshot.
FLOAT_ARRAYS = {"quantumFeatures": frozenset(FEATURE_STREAMS), "groundTruthStems": frozenset(STEMS)}
_parsers = threading.local()  # a simdjson parser is reused, and used by one thread at a time


def parse_with_float_arrays(body: bytes, max_items: int | None = None) -> list[Any] | None:
    """A JSON object or array of objects, like orjson.loads, except that the FLOAT_ARRAYS that
    hold only numbers come back as float64 numpy arrays, read by simdjson straight from the text.
    Creating, validating and converting a Python float per value was ~40% of the API's CPU per
    snapshot; schemas.float32_array takes these arrays as they are.

    None when this parser cannot say: invalid JSON (orjson then words the error, as for every
    other body), a byte-order mark (orjson refuses it; simdjson would not), or a nested array
    hiding in a float array (simdjson would flatten it: see _count_arrays).
    """
    if body.startswith(b"\xef\xbb\xbf"):
        return None
    parser = getattr(_parsers, "parser", None) or _new_parser()
    try:
        document = parser.parse(body)
        found = [0]  # arrays converted, to check against the '[' in the text
        if isinstance(document, simdjson.Object):
            items = [_snapshot(document, found)]
        elif isinstance(document, simdjson.Array):
            if max_items is not None and (count := len(document)) > max_items:  # counted in C, nothing converted
                del document  # a live document keeps the parser from parsing again
                raise _too_many_snapshots(count, max_items)
            items = [_snapshot(item, found) if isinstance(item, simdjson.Object) else _plain(item, found) for item in document]
            found[0] += 1
        else:
            return None
        del document
    except PayloadError:
        raise
    except Exception:  # simdjson's errors (ValueError, RuntimeError, KeyError for odd keys...)
        # Only a shortcut: whatever it cannot read, orjson reads (or words the error) as for any body.
        _new_parser()  # a failed parse may leave this one unusable
        return None
    # Every '[' in the text opens an array we converted, unless it sits in a string. A count that
    # differs means a string holds one (rare, harmless) or a float array had a nested array that
    # simdjson flattened: either way orjson parses the body instead, and validation sees it as sent.
    return items if _count_byte(body, b"[") == found[0] else None


def _count_byte(body: bytes, byte: bytes) -> int:
    # numpy compares 16 bytes at a time, several times faster than bytes.count.
    return int(np.count_nonzero(np.frombuffer(body, dtype=np.uint8) == byte[0]))


def _new_parser() -> simdjson.Parser:
    _parsers.parser = simdjson.Parser()
    return _parsers.parser


def _snapshot(document: simdjson.Object, found: list[int]) -> dict[str, Any]:
    snapshot = {}
    for key in _unique_keys(document):
        value = document[key]  # containers stay simdjson proxies until converted (items() would convert)
        names = FLOAT_ARRAYS.get(key)
        if names is not None and isinstance(value, simdjson.Object):
            snapshot[key] = {}
            for name in _unique_keys(value):
                array = value[name]
                is_float_array = name in names and isinstance(array, simdjson.Array)
                snapshot[key][name] = _float_array(array, found) if is_float_array else _plain(array, found)
        else:
            snapshot[key] = _plain(value, found)
    return snapshot


def _unique_keys(document: simdjson.Object) -> list[str]:
    keys = list(document.keys())
    if len(set(keys)) != len(keys):  # orjson keeps a repeated key's last value, simdjson's [] its first
        raise ValueError("repeated key")
    return keys


def _float_array(array: simdjson.Array, found: list[int]) -> np.ndarray | list:
    try:
        values = np.frombuffer(array.as_buffer(of_type="d"), dtype=np.float64)
    except TypeError:  # not numbers only: null (Studio's NaN), or something validation will refuse
        return _plain(array, found)
    found[0] += 1
    return values


def _plain(value: Any, found: list[int]) -> Any:
    """A simdjson value as Python objects, counting the arrays in it."""
    if isinstance(value, simdjson.Object):
        converted = value.as_dict()
    elif isinstance(value, simdjson.Array):
        converted = value.as_list()
    else:
        return value
    found[0] += _count_arrays(converted)
    return converted


def _count_arrays(value: Any) -> int:
    """Arrays in a parsed JSON value, itself included. Lists of flat objects (Studio's 200
    transients) and of scalars are checked a level at a time in C (map, chain), not per item."""
    if type(value) is dict:
        count, children = 0, list(value.values())
    elif type(value) is list:
        count, children = 1, value
    else:
        return 0
    kinds = set(map(type, children))
    if kinds == {dict}:
        grandchildren = list(chain.from_iterable(map(dict.values, children)))
        if not _CONTAINERS & set(map(type, grandchildren)):
            return count
    elif not _CONTAINERS & kinds:
        return count
    return count + sum(_count_arrays(child) for child in children if type(child) in _CONTAINERS)


_CONTAINERS = frozenset({dict, list})


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
    if encoding_of(body, content_encoding) in ("gzip", "x-gzip"):
        try:
            return zlib.decompressobj(wbits=31).decompress(body, limit + 1)
        except zlib.error:
            pass
    return body[: limit + 1]
