"""The Studio kit served by the API, and its encoder equal to Python's: the JavaScript in
app/studio/static/prime-fabric.js runs in Node on the snapshots the Python encoder
(training/features.py) encodes here, so the two cannot drift apart."""

import copy
import json
import subprocess
from pathlib import Path

import pytest

from tests.support import FIXTURE_NAMES, STUDIO_ORIGIN, fixture_snapshot
from training.features import FEATURE_DIM, MAX_STEPS, encode_features, from_wire
from training.synthetic import synthetic_snapshots

JS_DIR = Path(__file__).parent / "js"


def edge_cases() -> dict[str, dict]:
    base = fixture_snapshot("snapshot-with-corrections-and-nan")
    cases = {}
    mono = copy.deepcopy(base)
    mono["originalAudio"]["channels"] = 1
    mono["quantumFeatures"]["stereo"] = [0, 0, 0]
    cases["mono"] = mono
    bare = copy.deepcopy(base)
    bare["musicalContext"].pop("mode", None)
    bare["musicalContext"]["bpm"] = None
    bare["musicalContext"]["transients"] = []
    bare["quantumFeatures"]["energy"] = []
    cases["no mode, bpm, transients or energy"] = bare
    odd = copy.deepcopy(base)
    odd["quantumFeatures"]["spectral"] = odd["quantumFeatures"]["spectral"][:777]  # not Studio's stride
    odd["quantumFeatures"]["temporal"] = [None, 0.5, *odd["quantumFeatures"]["temporal"][2:]]
    cases["odd counts and nulls"] = odd
    long = copy.deepcopy(base)
    long["originalAudio"]["duration"] = 421.3  # longer than the 150 steps
    cases["longer than five minutes"] = long
    short = copy.deepcopy(base)
    short["originalAudio"].update(duration=1.5, sampleRate=22050)
    cases["shorter than a step"] = short
    return cases


def test_the_kit_encodes_every_snapshot_as_python_does(tmp_path, instrument_snapshots):
    snapshots = {name: fixture_snapshot(name) for name in FIXTURE_NAMES}
    snapshots |= {f"synthetic {i}": s for i, s in enumerate(synthetic_snapshots(12, seed=7))}
    snapshots |= {f"instrument song {i}": s for i, s in enumerate(instrument_snapshots[:6])}
    snapshots |= edge_cases()
    cases = [
        {"name": name, "snapshot": snapshot, "expected": encode_features(from_wire(snapshot)).ravel().tolist()}
        for name, snapshot in snapshots.items()
    ]
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    subprocess.run(
        ["node", str(JS_DIR / "encode_parity.mjs"), str(tmp_path / "cases.json"), str(tmp_path / "out.json")],
        check=True,
        timeout=120,
    )
    results = {r["name"]: r for r in json.loads((tmp_path / "out.json").read_text())}
    assert set(results) == set(snapshots)
    for name, result in results.items():
        assert result["shape"] == [MAX_STEPS, FEATURE_DIM] and result["length"] == MAX_STEPS * FEATURE_DIM, name
        assert result["maxAbs"] is not None and result["maxAbs"] <= 1e-6, (name, result)


def test_the_kit_is_served_with_an_etag_and_cors_for_studio(client):
    answer = client.get("/studio/prime-fabric.js", headers={"Origin": STUDIO_ORIGIN})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/javascript")
    assert answer.headers["access-control-allow-origin"] == STUDIO_ORIGIN
    assert "export function encodeSnapshot" in answer.text
    again = client.get("/studio/prime-fabric.js", headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    types = client.get("/studio/prime-fabric.d.ts")
    assert types.status_code == 200 and "encodeSnapshot" in types.text
    assert client.get("/studio/../app/main.py").status_code == 404
    assert client.get("/studio/prime-fabric.py").status_code == 404


@pytest.mark.parametrize("version", ["fe-1", "fe-2"])
def test_the_kit_refuses_a_model_of_another_feature_version(tmp_path, version):
    script = tmp_path / "refuse.mjs"
    kit = (Path(__file__).resolve().parent.parent / "app/studio/static/prime-fabric.js").as_uri()
    script.write_text(
        f"import {{ encodeSnapshot }} from '{kit}';\n"
        f"try {{ encodeSnapshot({json.dumps(fixture_snapshot())}, {{featureVersion: '{version}'}}); process.exit(3); }}\n"
        f"catch (error) {{ console.log(error.message); }}\n"
    )
    run = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and f"the model wants {version}" in run.stdout


def test_apply_gains_leaves_stems_that_are_not_applied_untouched(tmp_path):
    kit = (Path(__file__).resolve().parent.parent / "app/studio/static/prime-fabric.js").as_uri()
    script = tmp_path / "applied.mjs"
    script.write_text(
        f"import {{ applyGains }} from '{kit}';\n"
        "const n = 44100 * 5, mix = [Float32Array.from({length: n}, (_, i) => Math.sin(i / 7))];\n"
        "const stems = {drums: [mix[0].map((v) => v * 0.5)], bass: [mix[0].map((v) => v * 0.5)]};\n"
        "const prediction = {drums: new Float32Array(150).fill(-30), bass: new Float32Array(150).fill(-30)};\n"
        "const played = applyGains(stems, 44100, prediction, mix, ['drums']);\n"
        "console.log(JSON.stringify({bassSame: played.bass === stems.bass, drumsTurnedDown: played.drums[0][1000] !== stems.drums[0][1000]}));\n"
    )
    run = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=60)
    assert json.loads(run.stdout) == {"bassSame": True, "drumsTurnedDown": True}, run.stderr


@pytest.mark.parametrize("claimed_rate, length", [(None, None), (44_100, 317_771)])
def test_the_kits_gains_are_what_the_audio_evaluation_plays(tmp_path, instrument_songs, claimed_rate, length):
    """applyGains on Studio's filter stems of a real-instrument song equals apply_levels, the
    function `fabric evaluate --audio` scores, to 1e-5."""
    import numpy as np

    from training.audio_eval import apply_levels
    from training.contract import STEMS
    from training.multitrack import read_song, song_folders
    from training.studio_snapshot import filter_stems

    song = read_song(song_folders(instrument_songs)[3])
    mix = song.mix[:, :length].astype(np.float32)
    rate = claimed_rate or song.sample_rate
    filters = {stem: channels.astype(np.float32) for stem, channels in filter_stems(mix, rate).items()}
    levels = np.random.default_rng(5).uniform(-40, 6, (len(STEMS), MAX_STEPS)).astype(np.float32)
    expected = apply_levels(filters, mix, rate, levels)

    spec = {"sampleRate": rate, "channels": mix.shape[0], "length": mix.shape[1], "stems": list(STEMS)}
    (tmp_path / "case.json").write_text(json.dumps(spec))
    mix.tofile(tmp_path / "mix.f32")
    levels.tofile(tmp_path / "levels.f32")
    for stem in STEMS:
        filters[stem].tofile(tmp_path / f"{stem}.f32")
    subprocess.run(["node", str(JS_DIR / "gains_parity.mjs"), str(tmp_path)], check=True, timeout=120)
    for stem in STEMS:
        played = np.fromfile(tmp_path / f"played-{stem}.f32", dtype=np.float32).reshape(mix.shape)
        assert np.abs(played - expected[stem]).max() <= 1e-5, stem
        assert not np.allclose(played, filters[stem])  # the gains did something


def test_the_exporter_honours_retry_after_and_never_sends_a_stored_id_twice():
    """createExporter against a scripted service in Node (tests/js/exporter.mjs)."""
    run = subprocess.run(["node", str(JS_DIR / "exporter.mjs")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert seen["retryAfter"]["calls"] == 2 and seen["retryAfter"]["waitedMs"] >= 1000  # not its own 50 ms
    assert seen["retryAfter"]["pending"] == 0
    assert seen["storedOnce"] == {"calls": 1}  # enqueued three times, by two pages
    assert seen["refused"] == {"calls": 1, "pending": 0}
    assert seen["keptForNextPage"] == {
        "triesWhileDown": 5,
        "keptAfterFailure": 1,
        "sentByNextPage": 1,
        "encoding": "gzip",
        "pendingAfter": 0,
    }
