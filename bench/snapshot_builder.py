"""The kit's buildSnapshot on a 3-minute stereo 48 kHz song in headless Chromium (Debian's,
through Playwright): time on the page's main thread and through buildSnapshotInWorker (median of
--repeats each), and the browser's memory (resident set of all its processes, sampled every 5 ms)
at its peak, over the decoded audio's float32 size. Targets: at most 1.5 s, at most 3x. With
--studio (the git dir that `fetch github:mixclubonline-del/mixx-glass-studio` returns), Studio's own
snapshot code runs on the same file through ../shared/studio-reference, to say how it fares.

    .venv/bin/python bench/snapshot_builder.py [--seconds 180] [--repeats 5] [--studio GIT_DIR]
"""

import argparse
import functools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
RATE = 48_000
PAGE = """<!doctype html><meta charset="utf-8"><title>buildSnapshot bench</title>
<script type="module">
import { buildSnapshot, buildSnapshotInWorker } from "./prime-fabric.js";
let buffer = null;
window.decode = async () => {
  const context = new AudioContext({ sampleRate: 48000 });
  buffer = await context.decodeAudioData(await (await fetch("song/mixture.wav")).arrayBuffer());
  return [buffer.length, buffer.numberOfChannels];
};
const timed = async (build) => {
  const started = performance.now();
  const snapshot = await build(buffer);
  return { ms: performance.now() - started, transients: snapshot.musicalContext.transients.length,
           classification: snapshot.metadata.classification };
};
window.buildMain = () => timed((b) => buildSnapshot(b));
window.buildWorker = () => timed((b) => buildSnapshotInWorker(b));
window.ready = true;
</script>"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class PeakRss:
    """The browser's resident memory (all its processes), sampled every 5 ms while `with` lasts."""

    def __init__(self, pid: int):
        self.root = psutil.Process(pid)

    def now(self) -> int:
        total = 0
        for process in [self.root, *self.root.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                pass
        return total

    def __enter__(self):
        self.peak, self.running = self.now(), True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.now())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()


def song(seconds: float, folder: Path) -> Path:
    """A rendered song (sampled instruments), its mixture as 16-bit PCM, as a user gives Studio."""
    import soundfile

    from training.render import render_song

    path = render_song(folder, 970, seconds, RATE)
    stems = [soundfile.read(p, dtype="float32")[0] for p in sorted(path.glob("*.wav"))]
    soundfile.write(path / "mixture.wav", np.clip(sum(stems), -1, 1), RATE, subtype="PCM_16")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--studio", type=Path, help="Studio's git dir: also run Studio's own code on the song")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from tests.support.servers import CHROMIUM, CHROMIUM_FLAGS

    with tempfile.TemporaryDirectory() as scratch_name:
        site = Path(scratch_name)
        for name in ("prime-fabric.js", "snapshot-worker.js"):
            shutil.copy(ROOT / "app/studio/static" / name, site / name)
        song_folder = song(args.seconds, site / "songs")
        shutil.copytree(song_folder, site / "song")
        (site / "bench.html").write_text(PAGE)
        handler = functools.partial(QuietHandler, directory=str(site))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/bench.html")
            page.wait_for_function("window.ready === true")
            memory = PeakRss(next(p.pid for p in psutil.Process().children(recursive=True) if "chrom" in p.name()))
            before = memory.now()
            with memory:
                length, channels = page.evaluate("window.decode()")
            decoded, decode_peak = length * channels * 4, memory.peak
            time.sleep(1)
            after_decode = memory.now()
            figures = {}
            for name, call in (("main thread", "window.buildMain()"), ("worker", "window.buildWorker()")):
                runs = []
                with memory:
                    for _ in range(args.repeats):
                        runs.append(page.evaluate(call))
                figures[name] = (statistics.median(r["ms"] for r in runs), memory.peak, runs[0])
            browser.close()
        server.shutdown()

        print(f"song: {length / RATE:.0f} s, {channels} channels at {RATE} Hz; decoded float32 {decoded / 1e6:.1f} MB")
        print(
            f"browser memory: {before / 1e6:.0f} MB before decoding; Chromium's decodeAudioData (Studio's own step) "
            f"peaks at +{(decode_peak - before) / decoded:.2f}x the decoded size and leaves +{(after_decode - before) / decoded:.2f}x"
        )
        for name, (ms, peak, run) in figures.items():
            print(
                f"buildSnapshot, {name}: median {ms:.0f} ms of {args.repeats}; adds at its peak "
                f"{(peak - after_decode) / decoded:.2f}x the decoded size to the decoded page "
                f"(whole browser {(peak - before) / decoded:.2f}x above the page before decoding); "
                f"{run['transients']} transients, classified {run['classification']}"
            )
        if args.studio:
            out = site / "studio-out"
            started = time.perf_counter()
            subprocess.run(
                ["bash", str(ROOT.parent / "shared/studio-reference/run.sh"), str(args.studio), str(site / "songs"), str(out)],
                check=True,
                capture_output=True,
            )
            run = json.loads(next(out.glob("*.run.json")).read_text())
            print(
                f"Studio's own code on the same file ({time.perf_counter() - started:.0f} s with its build): "
                f"classified {run['classification']['type']}; extractFeatures {run['extractFeatures'][:120]} after "
                f"{run['extractMs']:.0f} ms; {run['superpositionInputValues']} values into its dense layer; "
                f"would send a snapshot: {run['studioWouldSendSnapshot']}"
            )


if __name__ == "__main__":
    main()
