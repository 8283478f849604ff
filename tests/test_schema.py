"""The published JSON Schema (schemas/snapshot.schema.json) is the pydantic models' schema,
and an independent validator (jsonschema) agrees with pydantic on real and broken snapshots."""

import copy
import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from app.snapshots.schemas import Snapshot
from tests.support import FIXTURE_NAMES, fixture_snapshot

FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER
SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schemas" / "snapshot.schema.json"


@pytest.fixture(scope="module")
def published_schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


def test_published_schema_is_the_models_schema(published_schema):
    assert published_schema == json.loads(json.dumps(Snapshot.model_json_schema(by_alias=True))), (
        "schemas/snapshot.schema.json is out of date: run `fabric schema`"
    )


def test_published_schema_is_valid_json_schema(published_schema):
    jsonschema.Draft202012Validator.check_schema(published_schema)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_studio_fixtures_pass_both_validators(published_schema, name):
    snapshot = fixture_snapshot(name)
    jsonschema.validate(snapshot, published_schema, format_checker=FORMATS)
    Snapshot.model_validate(snapshot)


def _broken(path: str, value) -> dict:
    snapshot = fixture_snapshot("snapshot-with-corrections-and-nan")
    *parents, last = path.split(".")
    target = snapshot
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is DELETE:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return snapshot


DELETE = object()
BROKEN = {
    "missing id": ("id", DELETE),
    "id not a uuid": ("id", "track-01"),
    "timestamp as string": ("timestamp", "1764875008845"),
    "timestamp in seconds": ("timestamp", 1764875008),
    "sample rate below 8 kHz": ("originalAudio.sampleRate", 4000),
    "channels zero": ("originalAudio.channels", 0),
    "duration negative": ("originalAudio.duration", -1.0),
    "bool in a feature stream": ("quantumFeatures.spectral.0", True),
    "string in a feature stream": ("quantumFeatures.temporal.0", "0.5"),
    "raw audio in a feature stream": ("quantumFeatures.spectral", [0.0] * 44100),
    "raw audio in ground truth": ("groundTruthStems.vocals", [0.0] * 44100),
    "energy of three values": ("quantumFeatures.energy", [0.1, 0.2, 0.3]),
    "value beyond float32": ("quantumFeatures.energy", [1e39, 0.0, 0.0, 0.0]),
    "flat key name": ("musicalContext.key", "Db"),
    "unknown mode": ("musicalContext.mode", "dorian"),
    "tension above 1": ("musicalContext.harmonicContent.tensionLevel", 1.2),
    "eleven dominant frequencies": ("musicalContext.harmonicContent.dominantFrequencies", [100.0] * 11),
    "unknown stem": ("userCorrections.0.correctedStem", "guitar"),
    "unknown correction": ("userCorrections.0.correctionType", "reverse"),
    "strength above 1": ("userCorrections.0.strength", 2),
    "range of three": ("userCorrections.0.frequencyRange", [1.0, 2.0, 3.0]),
    "confidence below 0": ("metadata.confidence", -0.1),
    "classification not a string": ("metadata.classification", 7),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_snapshots_fail_both_validators(published_schema, case):
    snapshot = _broken(*BROKEN[case])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(snapshot, published_schema, format_checker=FORMATS)
    with pytest.raises(ValidationError):
        Snapshot.model_validate(snapshot)


def test_reversed_range_fails_pydantic(published_schema):
    # JSON Schema cannot say "low <= high"; the models do. This is the one known difference.
    snapshot = _broken("userCorrections.0.timeRange", [5.0, 1.0])
    jsonschema.validate(snapshot, published_schema, format_checker=FORMATS)
    with pytest.raises(ValidationError, match="timeRange must be"):
        Snapshot.model_validate(copy.deepcopy(snapshot))
