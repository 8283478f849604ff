"""The body parser's shortcut for float arrays (simdjson straight into numpy) must be invisible:
the same snapshots, rows, content hashes and rejection reasons as parsing with orjson alone."""

import gzip
import json
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import orjson
import pytest

from app.snapshots import payload
from app.snapshots.service import Accepted, Rejected, prepare_snapshot
from tests.support import FIXTURE_NAMES, amplified_gzip_body, fixture_bytes, fixture_snapshot


def _prepared_both_ways(body: bytes, monkeypatch) -> tuple[Accepted | Rejected, Accepted | Rejected]:
    fast = payload.parse_snapshots(body, "application/json", max_snapshots=10)
    with monkeypatch.context() as patched:
        patched.setattr(payload, "parse_with_float_arrays", lambda _body, _max=None: None)
        slow = payload.parse_snapshots(body, "application/json", max_snapshots=10)
    return prepare_snapshot(fast[0], 0), prepare_snapshot(slow[0], 0)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_studio_fixtures_take_the_shortcut_and_store_the_same_rows(name, monkeypatch):
    body = fixture_bytes(name)
    parsed = payload.parse_with_float_arrays(body)
    assert parsed is not None, "a Studio snapshot should not need the slow path"
    original = orjson.loads(body)
    for group, names in payload.FLOAT_ARRAYS.items():
        for key, value in (parsed[0].get(group) or {}).items():
            assert key in names
            sent = original[group][key]
            if None in sent:  # null (Studio's NaN) is left to the list validator
                assert value == sent
            else:
                assert isinstance(value, np.ndarray) and value.tolist() == sent
    fast, slow = _prepared_both_ways(body, monkeypatch)
    assert isinstance(fast, Accepted) and isinstance(slow, Accepted)
    assert fast.clean.content_hash == slow.clean.content_hash  # a retry after an upgrade stays a duplicate
    assert fast.clean.row == slow.clean.row and fast.clean.rules_fired == slow.clean.rules_fired


def _snapshot_with(**quantum_features) -> bytes:
    snapshot = fixture_snapshot()
    snapshot["quantumFeatures"].update(quantum_features)
    return json.dumps(snapshot).encode()


NOT_FOR_THE_SHORTCUT = {
    # simdjson would flatten these into [1, 2] or [1, 2]: the '[' count sees the extra arrays.
    "nested array in a float array": _snapshot_with(spectral=[0.5, [0.25]]),
    "only nested arrays": _snapshot_with(spectral=[[0.5], [0.25]]),
    "a repeated key": fixture_bytes("snapshot-with-ground-truth").replace(b'{"id"', b'{"metadata": 1, "id"', 1),
    "a byte-order mark": b"\xef\xbb\xbf" + fixture_bytes("snapshot-with-ground-truth"),
    "a key holding NUL": fixture_bytes("snapshot-with-ground-truth").replace(b'{"id"', b'{"a\\u0000b": 1, "id"', 1),
}
# What orjson's path makes of each: the rejection's locations, or the fixture's own row (the last
# of repeated keys wins, as in every JSON parser Studio's clients use; an unknown key is dropped).
ORJSON_ANSWERS = {
    "nested array in a float array": ["quantumFeatures.spectral.1"],
    "only nested arrays": ["quantumFeatures.spectral.0", "quantumFeatures.spectral.1"],
    "a repeated key": ("snapshot-with-ground-truth", {}),
    "a key holding NUL": ("snapshot-with-ground-truth", {"unknown_field_dropped": 1}),
}


@pytest.mark.parametrize("case", NOT_FOR_THE_SHORTCUT)
def test_what_the_shortcut_cannot_vouch_for_goes_to_orjson(case):
    body = NOT_FOR_THE_SHORTCUT[case]
    assert payload.parse_with_float_arrays(body) is None
    if case == "a byte-order mark":
        with pytest.raises(payload.PayloadError, match="byte order mark"):
            payload.parse_snapshots(body, "application/json", max_snapshots=10)
        return
    answer = prepare_snapshot(payload.parse_snapshots(body, "application/json", max_snapshots=10)[0], 0)
    expected = ORJSON_ANSWERS[case]
    if isinstance(expected, list):
        assert isinstance(answer, Rejected) and [r.loc for r in answer.reasons] == expected
        assert {r.type for r in answer.reasons} == {"float_type"}
    else:
        fixture, more_rules = expected
        row = prepare_snapshot(orjson.loads(fixture_bytes(fixture)), 0).clean.row
        assert isinstance(answer, Accepted)
        assert answer.clean.row == row | {"sanitizer_rules": row["sanitizer_rules"] | more_rules}


def test_a_bracket_inside_a_string_only_costs_the_shortcut(monkeypatch):
    snapshot = fixture_snapshot()
    snapshot["metadata"]["classification"] = "full[1]"
    body = json.dumps(snapshot).encode()
    assert payload.parse_with_float_arrays(body) is None
    assert payload.parse_snapshots(body, "application/json", max_snapshots=1) == [orjson.loads(body)]


@pytest.mark.parametrize(
    "values, reason",
    [
        ([0.5, 1e39], ("quantumFeatures.spectral.1", "less_than_equal")),  # beyond float32
        ([0.5, -1e39], ("quantumFeatures.spectral.1", "greater_than_equal")),
        ([0.5, True], ("quantumFeatures.spectral.1", "float_type")),
        ([0.5, "0.5"], ("quantumFeatures.spectral.1", "float_type")),
        ([0.5] * 1001, ("quantumFeatures.spectral", "too_long")),
    ],
)
def test_bad_values_get_the_same_reasons_either_way(values, reason, monkeypatch):
    fast, slow = _prepared_both_ways(_snapshot_with(spectral=values), monkeypatch)
    assert isinstance(fast, Rejected) and isinstance(slow, Rejected)
    assert fast.reasons == slow.reasons
    assert [(r.loc, r.type) for r in fast.reasons] == [reason]


def test_batches_take_the_shortcut_too():
    body = b"[" + b",".join(fixture_bytes(name) for name in FIXTURE_NAMES) + b"]"
    parsed = payload.parse_with_float_arrays(body)
    assert parsed is not None and len(parsed) == 3
    assert [item["id"] for item in parsed] == [item["id"] for item in orjson.loads(body)]


def test_each_thread_parses_with_its_own_parser():
    bodies = [fixture_bytes(name) for name in FIXTURE_NAMES] * 50
    expected = [orjson.loads(body)["quantumFeatures"]["spectral"] for body in bodies]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda body: payload.parse_with_float_arrays(body)[0]["quantumFeatures"]["spectral"], bodies))
    assert [np.asarray(g, dtype=np.float64).tolist() for g in got] == expected


AMPLIFIED = amplified_gzip_body()


def test_a_small_gzip_body_of_millions_of_values_is_refused_while_inflating():
    """~16 KB of gzip inflating to a 16 MiB array: refused for its number of values before the
    whole of it is inflated, let alone parsed into Python objects."""
    assert len(AMPLIFIED) < 40_000
    tracemalloc.start()
    try:
        with pytest.raises(payload.PayloadError) as refused:
            payload.decode_body(
                AMPLIFIED, "application/json", "gzip", max_decoded_bytes=16 * 1024 * 1024 + 1, max_values=1_500_000
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (refused.value.http_status, refused.value.reason_type) == (413, "too_many_values")
    assert peak < 8 * 1024 * 1024, f"{peak / 2**20:.1f} MiB allocated to refuse it"


def test_the_value_bound_counts_plain_bodies_and_leaves_studio_snapshots_alone():
    with pytest.raises(payload.PayloadError, match="more than 1000 JSON values"):
        payload.decode_body(b"[" + b"1," * 1001 + b"1]", "application/json", None, max_decoded_bytes=10**6, max_values=1000)
    for name in FIXTURE_NAMES:
        body = fixture_bytes(name)
        assert payload.decode_body(gzip.compress(body), "text/plain", "gzip", max_decoded_bytes=10**6, max_values=10_000) == body


def test_a_long_top_level_array_is_refused_without_converting_its_items():
    body = b"[" + b"{}," * 100_000 + b"{}]"
    with pytest.raises(payload.PayloadError, match="100001 snapshots in one request; at most 100"):
        payload.parse_snapshots(body, "application/json", max_snapshots=100)
    assert payload.parse_with_float_arrays(fixture_bytes(FIXTURE_NAMES[0])) is not None  # the parser is reusable


def test_a_beacon_of_gzip_members_is_read_without_a_content_encoding():
    """sendBeacon cannot set Content-Encoding: a body that starts with gzip's magic bytes is
    inflated, and members joined one per snapshot read as NDJSON."""
    bodies = [fixture_bytes(name) for name in FIXTURE_NAMES]
    beacon = b"".join(gzip.compress(body + b"\n") for body in bodies)
    decoded = payload.decode_body(beacon, "text/plain;charset=UTF-8", None, max_decoded_bytes=10**6, max_values=10**6)
    assert decoded == b"".join(body + b"\n" for body in bodies)
    items = payload.parse_snapshots(decoded, "text/plain;charset=UTF-8", max_snapshots=10)
    assert [item["id"] for item in items] == [json.loads(body)["id"] for body in bodies]
    with pytest.raises(payload.PayloadError, match="truncated"):
        payload.decode_body(beacon[:-10], "text/plain", None, max_decoded_bytes=10**6, max_values=10**6)
