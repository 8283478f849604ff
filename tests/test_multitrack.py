"""Multitrack songs in, Studio's snapshots out: `fabric import-stems` computes every stream as
Studio does and skips (with the reason) only the songs that cannot be used; `fabric encode`
prints exactly what training feeds the model; `fabric evaluate --audio` scores Studio's filter
stems with and without the model's gains against the true stems."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from typer.testing import CliRunner

from app.cli import cli
from app.snapshots.schemas import Snapshot
from tests.support import FIXTURE_NAMES, FIXTURES
from training.contract import STEMS
from training.features import encode_features, encode_targets, from_wire
from training.render import render_song

RATE = 16_000
runner = CliRunner()


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> Path:
    """Three usable songs (one with two stems only) and five that cannot be used, each for its own reason."""
    root = tmp_path_factory.mktemp("multitrack")
    for seed in (900, 901):
        render_song(root, seed, 8.0, RATE, audio_format="flac" if seed == 901 else "wav")
    noise = (np.random.default_rng(0).normal(scale=0.1, size=(RATE * 4, 2))).astype(np.float32)

    def song(name: str, files: dict[str, tuple[np.ndarray, int] | bytes]) -> None:
        folder = root / name
        folder.mkdir()
        for file, content in files.items():
            if isinstance(content, bytes):
                (folder / file).write_bytes(content)
            else:
                soundfile.write(folder / file, content[0], content[1])

    song("rates-differ", {"vocals.wav": (noise, RATE), "drums.wav": (noise, 22050)})
    song("lengths-differ", {"vocals.wav": (noise, RATE), "bass.wav": (noise[: RATE * 3], RATE)})
    song("unreadable", {"vocals.wav": b"RIFF not really a wave file", "drums.wav": (noise, RATE)})
    song("silent", {"vocals.wav": (np.zeros_like(noise), RATE), "drums.wav": (np.zeros_like(noise), RATE)})
    song("no-stems", {"notes.txt": b"nothing to see", "mixture.wav": (noise, RATE), "track01.wav": (noise, RATE)})
    song("two-stems", {"vocals.wav": (noise, RATE), "other.flac": (0.5 * noise, RATE)})  # the rest unknown
    return root


def run(*args: str):
    return runner.invoke(cli, list(args), catch_exceptions=False)


def test_import_stems_writes_studio_snapshots_and_skips_only_what_is_bad(songs, tmp_path):
    result = run("import-stems", str(songs), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "3 songs imported, 5 skipped" in result.output
    for reason in (
        "different sample rates",
        "different lengths",
        "cannot read vocals.wav",
        "the mix is silent",
        "no-stems: no stem files",
        "two-stems: no file for drums, bass, perc, sub: imported as unknown",
    ):
        assert reason in result.output, reason
    written = sorted((tmp_path / "out").glob("*.json"))
    assert len(written) == 3
    partial = [json.loads(p.read_text()) for p in written if len(json.loads(p.read_text())["groundTruthStems"]) == 2]
    assert len(partial) == 1 and set(partial[0]["groundTruthStems"]) == {"vocals", "harmonic"}  # MUSDB18's "other"
    for path in (p for p in written if len(json.loads(p.read_text())["groundTruthStems"]) == 6):
        snapshot = json.loads(path.read_text())
        Snapshot.model_validate(snapshot)  # what the ingest endpoint accepts
        assert set(snapshot["groundTruthStems"]) == set(STEMS)
        assert all(len(v) <= 500 for v in snapshot["groundTruthStems"].values())
        assert all(len(v) <= 1000 for v in snapshot["quantumFeatures"].values())
        assert snapshot["originalAudio"] == {"duration": 8.0, "sampleRate": RATE, "channels": 2}
        targets, weights = encode_targets(from_wire(snapshot))
        assert weights[:, :4].all() and not weights[:, 4:].any()  # 8 s = 4 steps, all stems known
    # importing again sends the same ids: the endpoint stores each song once
    run("import-stems", str(songs), "--out", str(tmp_path / "again"))
    assert sorted(p.name for p in (tmp_path / "again").glob("*.json")) == [p.name for p in written]


def test_import_stems_posts_to_the_ingest_endpoint(songs, tmp_path, configure, sqlite_url):
    from tests.support.servers import api_process

    env = {"DATABASE_URL": sqlite_url, "FABRIC_RATE_LIMIT_PER_S": "0"}
    configure(**env)
    good = tmp_path / "good"
    shutil.copytree(songs / "song-00900", good / "song-00900")
    with api_process(env) as base:
        first = run("import-stems", str(good), "--post", f"{base}/stem-separation")
        again = run("import-stems", str(good), "--post", f"{base}/stem-separation")
    assert "1 songs imported, 0 skipped" in first.output and "1 songs imported" in again.output
    import uuid

    from app.db.engine import session_scope
    from app.snapshots.models import Snapshot as Row
    from training.multitrack import read_song, snapshot_id

    with session_scope() as session:
        row = session.get(Row, uuid.UUID(snapshot_id(read_song(good / "song-00900"))))
        assert row.has_ground_truth and row.duplicates_absorbed == 1  # stored once, the second import a duplicate


def test_a_folder_without_songs_is_a_clear_error(tmp_path):
    result = run("import-stems", str(tmp_path / "missing"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "is not a folder" in result.output


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_encode_prints_exactly_what_training_feeds_the_model(name):
    result = run("encode", str(FIXTURES / f"{name}.json"))
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    expected = encode_features(from_wire(json.loads((FIXTURES / f"{name}.json").read_text())))
    assert printed["featureVersion"] == "fe-2" and printed["shape"] == list(expected.shape)
    assert len(printed["columns"]) == expected.shape[1]
    np.testing.assert_array_equal(np.array(printed["data"], dtype=np.float32).reshape(expected.shape), expected)


def test_encode_refuses_what_is_not_a_snapshot(tmp_path):
    (tmp_path / "bad.json").write_text('{"quantumFeatures": 3}')
    result = run("encode", str(tmp_path / "bad.json"))
    assert result.exit_code == 2 and "not a snapshot" in result.output


def test_evaluate_audio_scores_filters_model_and_oracle(songs, tmp_path, instrument_splits):
    import dataclasses

    from training.model import TINY
    from training.train import train

    train(instrument_splits["train"], instrument_splits["validation"], dataclasses.replace(TINY, epochs=3), tmp_path / "run")
    clean = tmp_path / "songs"
    for name in ("song-00900", "song-00901", "silent"):  # the good songs and one to skip
        shutil.copytree(songs / name, clean / name)
    result = run("evaluate", "--modelDir", str(tmp_path / "run"), "--audio", str(clean), "--out", str(tmp_path / "audio.json"))
    assert result.exit_code == 0, result.output
    assert "skipped: silent: the mix is silent" in result.output
    figures = json.loads((tmp_path / "audio.json").read_text())
    assert figures["headline"]["songs"] == 2
    for stem, row in figures["per_stem"].items():
        assert stem in STEMS and row["songs"] >= 1
        # oracle gains follow the true stem's level: never worse than the unchanged filter on SIR
        assert row["oracle_sir"] >= row["filters_sir"] - 0.5, (stem, row)
    assert np.isfinite(figures["headline"]["sir_oracle_share"])


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node")
@pytest.mark.parametrize(("seconds", "channels"), [(12.0, 2), (7.3, 1)])
def test_streams_equal_studios_own_loops(tmp_path, seconds, channels):
    """training/studio.py against a line-by-line port of Studio's TypeScript to JavaScript, run
    in Node on the same samples: loud enough that harmonic peaks and transients fire."""
    import subprocess

    from tests.tfjs import JS_DIR
    from training.studio import ground_truth_values, studio_streams

    song = render_song(tmp_path, 910 + channels, seconds, 22050)
    stems = [soundfile.read(path, dtype="float32", always_2d=True)[0].T for path in sorted(song.glob("*.wav"))]
    audio = (4 * sum(stems))[:channels].astype(np.float32)  # louder than a mix needs to be: peaks over 0.1
    audio.tofile(tmp_path / "audio.f32")
    subprocess.run(
        ["node", str(JS_DIR / "studio_streams.mjs"), str(tmp_path / "audio.f32"), str(channels), str(tmp_path / "js.json")],
        check=True,
        timeout=300,
    )
    studio = json.loads((tmp_path / "js.json").read_text())
    ours = studio_streams(audio)
    for stream in ("spectral", "temporal", "harmonic", "percussive", "stereo", "energy"):
        theirs, mine = np.array(studio[stream], dtype=np.float32), np.array(ours[stream], dtype=np.float32)
        assert theirs.shape == mine.shape, stream
        np.testing.assert_allclose(mine, theirs, rtol=2e-5, atol=1e-7, err_msg=stream)
    assert ground_truth_values(audio) == pytest.approx(studio["groundTruth"])
    assert (np.array(studio["harmonic"]) > 0).mean() > 0.05  # the peak picking was exercised
