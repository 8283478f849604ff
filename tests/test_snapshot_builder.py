"""Our snapshot builders held to Studio's own code. tests/fixtures/studio_reference holds 13 songs
(mono and stereo, 44.1 and 48 kHz, 1 s to 3 min) and the snapshots Studio's unchanged TypeScript
made of them (tests/support/reference_songs.py says how). The kit's buildSnapshot (in Node) and
training/studio.studio_snapshot (what `fabric import-stems` sends) must give the same snapshot:
streams and ground truth bit for bit, context and classification equal. Ingest stores each of
Studio's snapshots."""

import json
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest

from app.config import get_settings
from app.db.engine import session_scope
from app.snapshots.models import Snapshot
from tests.support import FETCH_HEADERS
from tests.support.reference_songs import SONGS, STUDIO_DIR, assert_same_snapshot, song_audio
from training.studio_snapshot import studio_snapshot

JS_DIR = Path(__file__).resolve().parent / "js"
NAMES = [song.name for song in SONGS]


def studio_reference(name: str) -> dict:
    return json.loads((STUDIO_DIR / f"{name}.json").read_text())


def test_the_references_cover_what_the_builders_must_handle():
    runs = [json.loads((STUDIO_DIR / f"{name}.run.json").read_text()) for name in NAMES]
    snapshots = [studio_reference(name) for name in NAMES]
    assert {run["channels"] for run in runs} == {1, 2} and {run["sampleRate"] for run in runs} == {44100, 48000}
    assert {run["classification"]["type"] for run in runs} == {"vocal", "twotrack", "full"}
    assert max(run["length"] / run["sampleRate"] for run in runs) >= 180
    # Where Studio's own step failed, and still its streams were captured.
    assert any(run["extractFeatures"].startswith("threw RangeError") for run in runs)
    assert any(s["musicalContext"]["bpm"] is not None for s in snapshots)
    assert max(len(s["musicalContext"]["transients"]) for s in snapshots) > 1000
    assert sum(bool(s.get("groundTruthStems")) for s in snapshots) >= 4


@pytest.mark.parametrize("name", NAMES)
def test_python_builder_equals_studio(name):
    song = next(song for song in SONGS if song.name == name)
    audio = song_audio(song)
    mixture = audio.pop("mixture")
    studio = studio_reference(name)
    ours = studio_snapshot(mixture, song.sample_rate, snapshot_id=studio["id"], timestamp=0, ground_truth=audio or None)
    assert_same_snapshot(ours, studio)


def test_kit_builder_in_node_equals_studio(tmp_path):
    cases = []
    for song in SONGS:
        audio = song_audio(song)
        mixture = audio.pop("mixture")
        channels = []
        for index, channel in enumerate(mixture):
            channel.tofile(path := tmp_path / f"{song.name}.{index}.f32")
            channels.append(str(path))
        stems = {}
        for stem, samples in audio.items():
            samples[0].tofile(path := tmp_path / f"{song.name}.{stem}.f32")
            stems[stem] = str(path)
        cases.append({"name": song.name, "sampleRate": song.sample_rate, "channels": channels, "stems": stems or None})
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    subprocess.run(
        ["node", str(JS_DIR / "build_snapshot.mjs"), str(tmp_path / "cases.json"), str(tmp_path / "out.json")],
        check=True,
        timeout=300,
    )
    results = json.loads((tmp_path / "out.json").read_text())
    assert [result["name"] for result in results] == NAMES
    for result in results:
        assert_same_snapshot(result["snapshot"], studio_reference(result["name"]))


@pytest.mark.parametrize("name", NAMES)
def test_ingest_stores_what_studio_sends(client, name):
    body = (STUDIO_DIR / f"{name}.json").read_bytes()
    studio = json.loads(body)

    response = client.post("/stem-separation", content=body, headers=FETCH_HEADERS)

    assert response.status_code == 201, response.text
    result = response.json()["results"][0]
    assert (result["id"], result["status"]) == (studio["id"], "stored")
    with session_scope() as session:
        row = session.get(Snapshot, uuid.UUID(studio["id"]))
        assert row.transient_count == len(studio["musicalContext"]["transients"])
        assert row.bpm == studio["musicalContext"]["bpm"] and row.key == studio["musicalContext"]["key"]


def test_ingest_takes_ten_loud_minutes_of_transients_and_says_why_beyond(client):
    """Studio sends every rise above 0.35, as the time i / sampleRate: ten minutes of a loud mix at
    600 a second, at 48 kHz, must be stored (through the default body limit); one more is refused."""
    from app.snapshots.schemas import MAX_TRANSIENTS

    studio = studio_reference("r13-mono-44k-180s")
    studio["originalAudio"] = {"duration": 600.0, "sampleRate": 48_000, "channels": 1}
    studio["musicalContext"]["bpm"] = 2583  # a loud song: detectBPM's mean rate of samples above 0.6
    onsets = np.sort(np.random.default_rng(1).choice(600 * 48_000, MAX_TRANSIENTS, replace=False))
    studio["musicalContext"]["transients"] = [{"time": int(i) / 48_000, "strength": 1} for i in onsets]
    studio["id"] = str(uuid.uuid4())
    body = json.dumps(studio).encode()
    assert MAX_TRANSIENTS >= 600 * 600 and len(body) <= get_settings().max_body_bytes
    assert client.post("/stem-separation", content=body, headers=FETCH_HEADERS).status_code == 201

    studio["musicalContext"]["transients"].append({"time": 599.99, "strength": 1})
    studio["id"] = str(uuid.uuid4())
    response = client.post("/stem-separation", json=studio, headers=FETCH_HEADERS)
    assert response.status_code == 422
    assert "transients" in response.text and str(MAX_TRANSIENTS) in response.text.replace(",", "")
