"""The Studio kit's exporter in a real headless Chromium (Debian's, through Playwright): a page on
Studio's origin imports the kit from the API, queues 30 Studio-shaped snapshots and navigates
away without flush(); what was still pending is beaconed and kept in localStorage, and the next
page load of Studio sends it. Every snapshot ends up stored (none missing; the id is the table's
key, so none twice), with the API up, and with the API unreachable for the first 10 s."""

import functools
import json
import os
import shutil
import threading
import time
import uuid
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np
import psycopg
import pytest
from playwright.sync_api import sync_playwright
from sqlalchemy.engine import make_url

from tests.support import FIXTURE_NAMES, create_postgres_database, drop_postgres_database, fixture_snapshot
from tests.support.servers import CHROMIUM, CHROMIUM_FLAGS, TcpProxy, api_process, free_port, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PAGE = """<!doctype html><meta charset="utf-8"><title>Studio</title>
<script type="module">
import {{ createExporter }} from "{api}/studio/prime-fabric.js";
const exporter = createExporter({{ url: "{api}/stem-separation" }});
window.kitLoaded = true;
while (!window.go) await new Promise((resolve) => setTimeout(resolve, 20));
const snapshots = await (await fetch("snapshots.json")).json();
for (const snapshot of snapshots) exporter.enqueue(snapshot);
await new Promise((resolve) => setTimeout(resolve, {linger_ms}));
location.href = "next.html";  // away, without flush()
</script>"""
NEXT = """<!doctype html><meta charset="utf-8"><title>Studio, later</title>
<script type="module">
import {{ createExporter }} from "{api}/studio/prime-fabric.js";
createExporter({{ url: "{api}/stem-separation" }});  // sends what an earlier page left
window.resumed = true;
</script>"""


@pytest.fixture
def studio_site(tmp_path):
    """A static site standing for Studio, on its own origin."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def stored_ids(database_url: str) -> list[str]:
    plain = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as connection:
        return [str(row[0]) for row in connection.execute("SELECT id FROM snapshots")]


@pytest.mark.parametrize("outage_s", [0, 10])
def test_queued_snapshots_survive_leaving_the_page(studio_site, tmp_path, outage_s):
    directory, studio_origin = studio_site
    snapshots = [fixture_snapshot(FIXTURE_NAMES[i % 3], id=str(uuid.uuid4())) for i in range(30)]
    assert all(45_000 <= len(json.dumps(s)) <= 150_000 for s in snapshots)
    (directory / "snapshots.json").write_text(json.dumps(snapshots))
    database = create_postgres_database(f"fabric_kit_{os.getpid()}_{outage_s}")
    env = {"DATABASE_URL": database, "FABRIC_RATE_LIMIT_PER_S": "0", "FABRIC_CORS_ALLOWED_ORIGINS": json.dumps([studio_origin])}
    try:
        with api_process(env, log_path=tmp_path / "api.log") as base, TcpProxy(int(base.rsplit(":", 1)[1])) as proxy:
            api = f"http://127.0.0.1:{proxy.port}"
            env["FABRIC_PUBLIC_BASE_URLS"] = json.dumps([api])
            (directory / "page.html").write_text(PAGE.format(api=api, linger_ms=300))
            (directory / "next.html").write_text(NEXT.format(api=api))
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
                page = browser.new_page()
                page.goto(f"{studio_origin}/page.html")
                page.wait_for_function("window.kitLoaded === true", timeout=20_000)
                if outage_s:
                    proxy.block()  # the network fails: fetches and beacons get nowhere
                page.evaluate("window.go = true")
                page.wait_for_url(f"{studio_origin}/next.html", timeout=30_000)
                if outage_s:
                    time.sleep(outage_s)
                    proxy.unblock()
                    page.goto(f"{studio_origin}/next.html")  # Studio opened again later
                page.wait_for_function("window.resumed === true", timeout=20_000)
                wait_until(lambda: len(stored_ids(database)) >= len(snapshots), 90, "every snapshot to be stored")
                time.sleep(2)  # anything still in flight would show as an extra row now
                browser.close()
        ids = stored_ids(database)
        assert sorted(ids) == sorted(s["id"] for s in snapshots)  # each once: the id is the key, none missing
    finally:
        drop_postgres_database(database)


SONG_PAGE = """<!doctype html><meta charset="utf-8"><title>Studio</title>
<script type="module">
import * as tf from "{api}/studio/vendor/tfjs-4.22.0.fesm.min.js";
import {{ applyGains, buildSnapshotInWorker, createExporter, encodeSnapshot, loadLatestModel, renderFilterStems }}
  from "{api}/studio/prime-fabric.js";
try {{
  // As Studio's FileInput does, at the device's rate (48 kHz here).
  const context = new AudioContext({{ sampleRate: 48000 }});
  const buffer = await context.decodeAudioData(await (await fetch("song.wav")).arrayBuffer());
  let ticks = 0;  // the main thread stays free while the worker builds
  const timer = setInterval(() => ticks++, 10);
  const snapshot = await buildSnapshotInWorker(buffer);
  clearInterval(timer);
  const exporter = createExporter({{ url: "{api}/stem-separation" }});
  exporter.enqueue(snapshot);
  await exporter.flush();
  await tf.setBackend("cpu");
  const model = await loadLatestModel("{api}", {{ tf }});
  const input = encodeSnapshot(snapshot, model.manifest);
  const levels = await model.predict(snapshot);
  const mix = Array.from({{ length: buffer.numberOfChannels }}, (_, c) => buffer.getChannelData(c));
  const stems = await renderFilterStems(buffer, snapshot.metadata.classification);
  const played = applyGains(stems, buffer.sampleRate, levels, mix);
  const energy = (channels) => channels.reduce((sum, channel) => sum + channel.reduce((s, v) => s + v * v, 0), 0);
  window.result = {{
    snapshot: {{ ...snapshot, musicalContext: {{ ...snapshot.musicalContext, transients: snapshot.musicalContext.transients.length }} }},
    sampleRate: buffer.sampleRate, length: buffer.length, ticks, pending: exporter.pending(),
    input: Array.from(input.data), shape: input.shape,
    energy: Object.fromEntries(Object.keys(stems).map((stem) => [stem, [energy(stems[stem]), energy(played[stem])]])),
  }};
}} catch (error) {{
  window.result = {{ error: String(error.stack || error) }};
}}
</script>"""


def test_a_song_of_minutes_decoded_in_chromium_is_described_stored_and_played(studio_site, tmp_path):
    """A Studio-origin page decodes a 48 kHz song of 2.5 minutes as Studio does, builds its snapshot
    with the kit in a worker, the exporter stores it once; its model input equals `fabric encode` of
    `fabric import-stems` on the same file to 1e-6; the latest model's levels play on Studio's
    filter stems (turned down only)."""
    import soundfile
    from typer.testing import CliRunner

    from app.artifacts import LocalStore
    from app.cli import cli
    from app.db.engine import session_scope
    from app.stem_models import service as stem_models
    from app.training_runs import service as runs
    from app.training_runs import stages
    from app.training_runs.schemas import RunParameters
    from tests.support import FETCH_HEADERS, reset_caches
    from training.features import encode_features, from_wire
    from training.render import render_song
    from training.synthetic import synthetic_snapshots

    directory, studio_origin = studio_site
    song = render_song(tmp_path / "songs", 960, 150.0, 48_000)
    stems = [soundfile.read(path, dtype="float32")[0] for path in sorted(song.glob("*.wav"))]
    # 32-bit float: Chromium decodes 16-bit PCM as v / 32767 above zero and v / 32768 below, where
    # libsndfile (and so import-stems) divides by 32768 throughout; float samples are taken as they are.
    soundfile.write(song / "mixture.wav", sum(stems).astype(np.float32), 48_000, subtype="FLOAT")
    shutil.copy(song / "mixture.wav", directory / "song.wav")

    database = create_postgres_database(f"fabric_kit_song_{os.getpid()}")
    artifacts = tmp_path / "artifacts"
    env = {
        "DATABASE_URL": database,
        "FABRIC_RATE_LIMIT_PER_S": "0",
        "FABRIC_CORS_ALLOWED_ORIGINS": json.dumps([studio_origin]),
        "FABRIC_ARTIFACTS_DIR": str(artifacts),
    }
    mp = pytest.MonkeyPatch()
    for name, value in env.items():
        mp.setenv(name, value)
    reset_caches()
    try:
        with api_process(env, log_path=tmp_path / "api.log") as api:
            with httpx.Client(base_url=api, headers=FETCH_HEADERS, timeout=30) as client:
                for snapshot in synthetic_snapshots(60, seed=5):
                    assert client.post("/stem-separation", json=snapshot).status_code == 201
            with session_scope() as session:
                run_id = runs.create_run(RunParameters(run_label="kit", epochs=3, candidates=["tiny"]), db_session=session).id
            stages.run_all_stages(run_id, LocalStore(artifacts), "kit-test")
            with session_scope() as session:
                model = stem_models.get_all(limit=1, db_session=session)[0]
                stem_models.promote(model.id, "test", "the page needs a latest model", force=True, db_session=session)
            wait_until(lambda: httpx.get(f"{api}/models/latest").status_code == 200, 10, "the model to be latest")
            (directory / "song.html").write_text(SONG_PAGE.format(api=api))
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=[*CHROMIUM_FLAGS, "--autoplay-policy=no-user-gesture-required"]
                )
                page = browser.new_page()
                page.goto(f"{studio_origin}/song.html")
                page.wait_for_function("window.result !== undefined", timeout=240_000)
                result = page.evaluate("window.result")
                browser.close()
            assert "error" not in result, result.get("error")
            ids = stored_ids(database)
    finally:
        mp.undo()
        reset_caches()
        drop_postgres_database(database)

    snapshot = result["snapshot"]
    assert (result["sampleRate"], result["length"]) == (48_000, 150 * 48_000)
    assert snapshot["originalAudio"] == {"duration": 150.0, "sampleRate": 48_000, "channels": 2}
    assert ids.count(snapshot["id"]) == 1 and len(ids) == 61 and result["pending"] == 0  # stored once, beside the 60 trained on
    assert result["ticks"] > 0  # timers ran while the snapshot was being built

    imported = CliRunner().invoke(cli, ["import-stems", str(tmp_path / "songs"), "--out", str(tmp_path / "out")])
    assert imported.exit_code == 0, imported.output
    [written] = (tmp_path / "out").glob("*.json")
    ours = json.loads(written.read_text())
    assert ours["quantumFeatures"] == snapshot["quantumFeatures"]
    assert len(ours["musicalContext"]["transients"]) == snapshot["musicalContext"]["transients"]
    expected = encode_features(from_wire(ours))
    assert result["shape"] == list(expected.shape)
    np.testing.assert_allclose(np.array(result["input"], np.float32).reshape(expected.shape), expected, rtol=0, atol=1e-6)

    for stem, (before, after) in result["energy"].items():
        assert after <= before * (1 + 1e-6), stem  # gains only turn a stem down
    assert sum(after < 0.99 * before for before, after in result["energy"].values() if before > 0) >= 1
