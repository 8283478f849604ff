"""Turns a validated snapshot into what is stored, and records which rules fired.

Validation (schemas.py) has already rejected what cannot be Studio's: wrong types, arrays
longer than Studio sends, out-of-range numbers, unknown enumerations. What is left here
changes data rather than refusing it, and every change is counted in `rules_fired`:
- `null_values.<array>`: Studio's NaN/inf arrive as null; they are kept as NaN and counted.
- `classification_scrubbed`: a free string that fails its pattern (it could be a file name,
  path, URL, e-mail or person's name) is replaced, so it never reaches the database.
- `transients_summarised`: transient timings become count, density and mean strength.
- `unknown_field_dropped`: fields Studio's contract does not name are not stored.
- `empty_ground_truth_stem_dropped`: a ground-truth stem with no values counts as absent.
"""

import hashlib
import typing
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from pydantic import BaseModel
from typing_extensions import is_typeddict

from app.privacy import CLASSIFICATION_PATTERN, SCRUBBED_CLASSIFICATION
from app.snapshots import arrays
from app.snapshots.schemas import Snapshot
from training.contract import FEATURE_STREAMS, STEMS


@dataclass(frozen=True)
class SanitisedSnapshot:
    """A snapshot ready to store: column values, correction rows and the rules that fired."""

    row: dict[str, Any]
    corrections: list[dict[str, Any]]
    rules_fired: dict[str, int]
    content_hash: str = field(default="")


def sanitise(snapshot: Snapshot, raw: dict[str, Any] | None = None) -> SanitisedSnapshot:
    rules: Counter[str] = Counter()
    if raw is not None:
        dropped = _count_unknown_fields(Snapshot, raw)
        if dropped:
            rules["unknown_field_dropped"] = dropped

    features = snapshot.quantum_features
    context = snapshot.musical_context
    audio = snapshot.original_audio

    blobs: dict[str, bytes | None] = {}
    null_count = 0
    for stream in FEATURE_STREAMS:
        blob, nulls = _pack_counting_nulls(getattr(features, stream))
        blobs[stream] = blob
        if nulls:
            rules[f"null_values.{stream}"] = nulls
            null_count += nulls

    truth = snapshot.ground_truth_stems
    for stem in STEMS:
        values = getattr(truth, stem) if truth is not None else None
        if values is not None and len(values) == 0:
            rules["empty_ground_truth_stem_dropped"] += 1
            values = None
        if values is None:
            blobs[f"gt_{stem}"] = None
            continue
        blob, nulls = _pack_counting_nulls(values)
        blobs[f"gt_{stem}"] = blob
        if nulls:
            rules[f"null_values.gt_{stem}"] = nulls
            null_count += nulls

    classification = snapshot.metadata.classification.strip().lower()
    if not CLASSIFICATION_PATTERN.fullmatch(classification):
        classification = SCRUBBED_CLASSIFICATION
        rules["classification_scrubbed"] = 1
    elif classification != snapshot.metadata.classification:
        rules["classification_normalised"] = 1

    transients = context.transients
    if transients:
        rules["transients_summarised"] = len(transients)
    strengths = [t["strength"] for t in transients]

    corrections = [
        {
            "position": position,
            "stem": c.corrected_stem,
            "correction_type": c.correction_type,
            "frequency_low_hz": c.frequency_range[0] if c.frequency_range else None,
            "frequency_high_hz": c.frequency_range[1] if c.frequency_range else None,
            "time_start_s": c.time_range[0] if c.time_range else None,
            "time_end_s": c.time_range[1] if c.time_range else None,
            "strength": c.strength,
        }
        for position, c in enumerate(snapshot.user_corrections or [])
    ]

    row: dict[str, Any] = {
        "id": snapshot.id,
        "client_timestamp_ms": snapshot.timestamp,
        "duration_s": audio.duration,
        "sample_rate": audio.sample_rate,
        "channels": audio.channels,
        "classification": classification,
        "confidence": snapshot.metadata.confidence,
        "processing_time_ms": snapshot.metadata.processing_time,
        "key": context.key,
        "mode": context.mode,
        "bpm": context.bpm,
        "tension": context.harmonic_content.tension_level,
        "transient_count": len(transients),
        "transient_density": len(transients) / audio.duration,
        # Each value over the count, then summed: a plain mean of large finite strengths
        # (validation bounds them below, not above) overflows to inf (found by the fuzzer).
        "transient_mean_strength": float(np.sum(np.divide(strengths, len(strengths)))) if strengths else None,
        "dominant_frequencies": arrays.pack(arrays.to_float32(context.harmonic_content.dominant_frequencies)),
        **blobs,
        "has_ground_truth": any(blobs[f"gt_{stem}"] is not None for stem in STEMS),
        "correction_count": len(corrections),
        "null_count": null_count,
        "sanitizer_rules": dict(rules),
    }
    return SanitisedSnapshot(
        row=row,
        corrections=corrections,
        rules_fired=dict(rules),
        content_hash=_content_hash(row, corrections),
    )


def _pack_counting_nulls(array: np.ndarray) -> tuple[bytes, int]:
    return arrays.pack(array), int(np.count_nonzero(np.isnan(array)))


def _content_hash(row: dict[str, Any], corrections: list[dict[str, Any]]) -> str:
    """SHA-256 of what is stored, less the id: blobs as bytes, the rest as sorted JSON."""
    digest = hashlib.sha256()
    scalars = {}
    for name in sorted(row):
        value = row[name]
        if name == "id":
            continue
        if isinstance(value, bytes) or value is None and name.startswith("gt_"):
            digest.update(name.encode() + b"\0" + (value if value is not None else b"-") + b"\0")
        else:
            scalars[name] = value
    digest.update(orjson.dumps(scalars, option=orjson.OPT_SORT_KEYS))
    digest.update(orjson.dumps(corrections, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()


def _count_unknown_fields(model: type, raw: Any) -> int:
    """How many keys in the raw JSON the model does not know, at every depth."""
    if not isinstance(raw, dict):
        return 0
    known, children = _FIELD_MAPS[model]
    count = len(raw.keys() - known)
    for key, child_model in children.items():
        value = raw.get(key)
        if isinstance(value, list):
            child_known, grandchildren = _FIELD_MAPS[child_model]
            if grandchildren:
                count += sum(_count_unknown_fields(child_model, item) for item in value)
            elif child_known == _REQUIRED_KEYS.get(child_model):
                # Flat objects whose keys are all required, so present once validated (transients):
                # the extra keys are what is beyond them, counted in C.
                count += sum(map(len, value)) - len(child_known) * len(value)
            else:
                count += sum(len(item.keys() - child_known) for item in value if isinstance(item, dict))
        elif value is not None:
            count += _count_unknown_fields(child_model, value)
    return count


def _field_maps(model: type, maps: dict) -> dict:
    """For each wire model (or TypedDict): its JSON keys, and which keys hold nested ones (or lists of them)."""
    if is_typeddict(model):  # its keys are its annotations, with no aliases
        fields = {name: (name, annotation) for name, annotation in typing.get_type_hints(model).items()}
    else:
        fields = {name: (info.alias or name, info.annotation) for name, info in model.model_fields.items()}
    known, children = set(), {}
    for key, annotation in fields.values():
        known.add(key)
        for candidate in _types_in(annotation):
            if isinstance(candidate, type) and (issubclass(candidate, BaseModel) or is_typeddict(candidate)):
                children[key] = candidate
                _field_maps(candidate, maps)
    maps[model] = (frozenset(known), children)
    return maps


def _types_in(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    return [annotation] if not args else [t for arg in args for t in _types_in(arg)]


_FIELD_MAPS = _field_maps(Snapshot, {})
_REQUIRED_KEYS = {model: frozenset(model.__required_keys__) for model in _FIELD_MAPS if is_typeddict(model)}
