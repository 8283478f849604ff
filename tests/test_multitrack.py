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


@pytest.mark.parametrize("name", ["r01-stereo-44k-1s", "r04-mono-44k-3s", "r09-stereo-44k-10s-loud"])
def test_import_stems_sends_what_studios_own_code_sends(tmp_path, name):
    """A song's mixture file (a mono one stays mono) with its stems as ground truth, against the
    snapshot Studio's own code made of the same files."""
    from tests.support.reference_songs import SONGS_DIR, STUDIO_DIR, assert_same_snapshot

    shutil.copytree(SONGS_DIR / name, tmp_path / "songs" / name)
    result = run("import-stems", str(tmp_path / "songs"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    [written] = (tmp_path / "out").glob("*.json")
    assert_same_snapshot(json.loads(written.read_text()), json.loads((STUDIO_DIR / f"{name}.json").read_text()))


def test_import_stems_describes_a_song_at_the_rate_a_browser_decodes_it(tmp_path):
    from tests.support.reference_songs import SONGS_DIR

    shutil.copytree(SONGS_DIR / "r04-mono-44k-3s", tmp_path / "songs" / "r04")
    result = run("import-stems", str(tmp_path / "songs"), "--out", str(tmp_path / "out"), "--sample-rate", "48000")
    assert result.exit_code == 0, result.output
    [written] = (tmp_path / "out").glob("*.json")
    snapshot = json.loads(written.read_text())
    assert snapshot["originalAudio"] == {"duration": 3.0, "sampleRate": 48000, "channels": 1}
    assert snapshot["quantumFeatures"]["stereo"] == [0.0, 0.0, 0.0]
    # 3 s at 48 kHz: (144000 - 1024) / 1024 -> 140 temporal frames of 3 values, all kept
    assert len(snapshot["quantumFeatures"]["temporal"]) == 420
    assert all(len(values) == 500 for values in snapshot["groundTruthStems"].values())


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_encode_prints_exactly_what_training_feeds_the_model(name):
    result = run("encode", str(FIXTURES / f"{name}.json"))
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    expected = encode_features(from_wire(json.loads((FIXTURES / f"{name}.json").read_text())))
    assert printed["featureVersion"] == "fe-3" and printed["shape"] == list(expected.shape)
    assert len(printed["columns"]) == expected.shape[1]
    np.testing.assert_array_equal(np.array(printed["data"], dtype=np.float32).reshape(expected.shape), expected)


def test_encode_refuses_a_model_of_another_feature_version():
    result = run("encode", str(FIXTURES / f"{FIXTURE_NAMES[0]}.json"), "--feature-version", "fe-2")
    assert result.exit_code == 2 and "the model wants fe-2" in result.output
    assert run("encode", str(FIXTURES / f"{FIXTURE_NAMES[0]}.json"), "--feature-version", "fe-3").exit_code == 0


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
    # The ceiling is the best level-only gain on MDX SDR: filters alone (every gain 1) and the
    # oracle's gains are among those it chose from.
    for song in figures["songs"]:
        for stem, ceiling in song["scores"]["ceiling"].items():
            best_other = max(song["scores"][system][stem]["sdr_mdx"] for system in ("filters", "oracle", "model"))
            assert ceiling["sdr_mdx"] >= best_other - 1e-3, (song["song"], stem)
    headline = figures["headline"]
    assert headline["sdr_ceiling_share"] <= 1.0 + 1e-9 and 0.0 <= headline["worst_stem_worse_share"] <= 1.0


def test_the_ceiling_finds_the_gains_that_made_a_stem():
    """A reference made from the filtered signal by a known gain curve in [0, 1] is recovered."""
    from training.audio_eval import ceiling_gains, gain_curve, mdx_sdr

    rate, seconds = 8000, 13.0
    rng = np.random.default_rng(4)
    filtered = rng.normal(size=int(rate * seconds))
    truth = np.clip(rng.uniform(-0.2, 1.2, size=150), 0.0, 1.0)  # some knots at the bounds
    reference = filtered * gain_curve(truth, len(filtered), rate)
    found = ceiling_gains(reference, filtered, rate)
    steps = int(np.ceil(seconds / 2.0))  # the knots a 13 s song reaches (centres at 1, 3, ... 13 s)
    np.testing.assert_allclose(found[:steps], truth[:steps], atol=1e-6)
    assert mdx_sdr(reference, filtered * gain_curve(found, len(filtered), rate)) > 80
    assert ((found >= 0) & (found <= 1)).all()


def test_only_stems_whose_gains_help_on_validation_are_applied():
    from training.audio_eval import AudioEvaluation, SongResult

    def song(name: str, gains: dict[str, float]) -> SongResult:
        scores = {system: {} for system in ("filters", "model", "oracle", "ceiling")}
        for stem, gain in gains.items():
            base = {"sdr": 0.0, "sir": 0.0, "sdr_mdx": 1.0}
            scores["filters"][stem] = base
            scores["model"][stem] = {**base, "sdr_mdx": 1.0 + gain}
            scores["oracle"][stem] = base
            scores["ceiling"][stem] = {**base, "sdr_mdx": 3.0}
        return SongResult(name, scores)

    # drums help in every song; bass helps in sum but is worse in 2 of 3; perc is worse.
    songs = [song(f"s{i}", {"drums": 0.5, "bass": [-0.1, -0.1, 3.0][i], "perc": -0.2}) for i in range(3)]
    evaluation = AudioEvaluation(songs, [])
    assert evaluation.helpful_stems() == ["drums"]
    played = evaluation.applied_only(["drums"])
    for result in played.songs:
        assert result.scores["model"]["bass"] == result.scores["filters"]["bass"]  # untouched: its filter stem
        assert result.scores["model"]["drums"]["sdr_mdx"] == 1.5
    assert played.per_stem()["perc"]["worse_share"] == 0.0 and evaluation.per_stem()["perc"]["worse_share"] == 1.0
    validation, test = AudioEvaluation([song(f"song-{i}", {"drums": 0.1}) for i in range(40)], ["x"]).split()
    names = [s.song for s in validation.songs] + [s.song for s in test.songs]
    assert sorted(names) == sorted(f"song-{i}" for i in range(40)) and validation.songs and test.songs
    assert test.skipped == ["x"]
