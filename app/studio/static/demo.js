// The /studio/demo page: the whole loop on a song. The kit builds the song's snapshot in a worker,
// sends it, loads the latest model, draws each stem's predicted level over time, and plays
// Studio's filter stems with or without the model's gains (switchable while playing).
import * as tf from "/studio/vendor/tfjs-4.22.0.fesm.min.js";
import {
  MAX_STEPS, STEMS, STEP_SECONDS, applyGains, buildSnapshotInWorker, createExporter, loadLatestModel, renderFilterStems,
} from "/studio/prime-fabric.js";

const COLOURS = ["#d1495b", "#edae49", "#00798c", "#30638e", "#6a4c93", "#2e933c"];
const [LOW, HIGH] = [-40, 6]; // dB, the model's output range
const show = (id, text) => (document.getElementById(id).textContent = text);
const context = new AudioContext(); // the device's rate, as Studio decodes
const exporter = createExporter({ url: `${location.origin}/stem-separation` });
let player = null;

async function run(name, bytes) {
  stop();
  document.body.dataset.ready = "";
  show("song", name);
  const buffer = await context.decodeAudioData(bytes);
  const snapshot = await buildSnapshotInWorker(buffer);
  show("built", `${snapshot.originalAudio.duration.toFixed(1)} s at ${buffer.sampleRate} Hz, ` +
    `${snapshot.metadata.classification}, key ${snapshot.musicalContext.key}, ` +
    `${snapshot.musicalContext.transients.length} transients, ${Math.round(snapshot.metadata.processingTime)} ms`);
  exporter.enqueue(snapshot);
  await exporter.flush();
  show("posted", exporter.pending() ? "kept, to be sent again" : "201 stored");

  const model = await loadLatestModel(location.origin, { tf });
  show("model", `${model.version} (${model.manifest.files.length} files, SHA-256 checked)`);
  const levels = await model.predict(snapshot);
  draw(levels, snapshot.originalAudio.duration);

  const stems = await renderFilterStems(buffer, snapshot.metadata.classification);
  const mix = Array.from({ length: buffer.numberOfChannels }, (_, c) => buffer.getChannelData(c));
  const played = applyGains(stems, buffer.sampleRate, levels, mix, model.appliedStems);
  player = { filters: toBuffer(stems, buffer), gained: toBuffer(played, buffer) };
  document.getElementById("play").disabled = false;
  document.getElementById("gains").disabled = false;
  document.body.dataset.ready = "true";
}

// All six stems summed into one buffer per version: what Studio plays of its stems.
function toBuffer(stems, like) {
  const out = new AudioBuffer({ numberOfChannels: like.numberOfChannels, length: like.length, sampleRate: like.sampleRate });
  for (let c = 0; c < like.numberOfChannels; c++) {
    const channel = new Float32Array(like.length);
    for (const stem of Object.values(stems)) {
      const source = stem[Math.min(c, stem.length - 1)];
      for (let i = 0; i < like.length; i++) channel[i] += source[i];
    }
    out.copyToChannel(channel, c);
  }
  return out;
}

function play() {
  stop();
  const useGains = document.getElementById("gains").checked;
  const nodes = ["filters", "gained"].map((version) => {
    const source = context.createBufferSource();
    source.buffer = player[version];
    const level = context.createGain();
    level.gain.value = (version === "gained") === useGains ? 1 : 0;
    source.connect(level).connect(context.destination);
    return { version, source, level };
  });
  const start = context.currentTime + 0.05;
  for (const { source } of nodes) source.start(start);
  nodes[0].source.onended = stop;
  player.nodes = nodes;
  context.resume();
  document.body.dataset.playing = useGains ? "gained" : "filters";
  show("playing", useGains ? "playing with the model's gains" : "playing Studio's filter stems as they are");
}

// Both versions play in step; the switch moves which one is heard, without restarting.
function switchGains() {
  const useGains = document.getElementById("gains").checked;
  if (!player?.nodes) return;
  for (const { version, level } of player.nodes) level.gain.setTargetAtTime((version === "gained") === useGains ? 1 : 0, context.currentTime, 0.02);
  document.body.dataset.playing = useGains ? "gained" : "filters";
  show("playing", useGains ? "playing with the model's gains" : "playing Studio's filter stems as they are");
}

function stop() {
  for (const { source } of player?.nodes ?? []) {
    source.onended = null;
    source.stop();
  }
  if (player) player.nodes = null;
  delete document.body.dataset.playing;
  show("playing", "");
}

function draw(levels, durationS) {
  const steps = Math.min(MAX_STEPS, Math.ceil(durationS / STEP_SECONDS));
  const svg = document.getElementById("curves");
  const [left, right, top, bottom] = [46, 610, 10, 280];
  const end = steps * STEP_SECONDS;
  const x = (seconds) => left + ((right - left) * seconds) / end;
  const y = (db) => top + ((bottom - top) * (HIGH - db)) / (HIGH - LOW);
  const parts = [];
  for (const db of [0, -10, -20, -30, -40]) {
    parts.push(`<line class="axis" x1="${left}" x2="${right}" y1="${y(db)}" y2="${y(db)}"/>`);
    parts.push(`<text class="label" x="4" y="${y(db) + 4}">${db} dB</text>`);
  }
  const tick = [5, 10, 15, 30, 60].find((t) => end / t <= 10) ?? 120;
  for (let t = 0; t <= end; t += tick) {
    parts.push(`<line class="axis tick" x1="${x(t)}" x2="${x(t)}" y1="${bottom}" y2="${bottom + 5}"/>`);
    parts.push(`<text class="label time" x="${x(t)}" y="${bottom + 18}" text-anchor="middle">${t} s</text>`);
  }
  STEMS.forEach((stem, s) => {
    const points = Array.from(levels[stem].subarray(0, steps), (db, step) => `${x((step + 0.5) * STEP_SECONDS).toFixed(1)},${y(db).toFixed(1)}`);
    parts.push(`<polyline class="stem" data-stem="${stem}" fill="none" stroke="${COLOURS[s]}" stroke-width="2" points="${points.join(" ")}"/>`);
  });
  svg.innerHTML = parts.join("");
  document.getElementById("legend").innerHTML = STEMS.map((stem, s) => `<li><span style="background:${COLOURS[s]}"></span>${stem}</li>`).join("");
}

function failed(error) {
  const box = document.getElementById("error");
  box.hidden = false;
  box.textContent = `The demo stopped: ${error.message}`;
  document.body.dataset.ready = "error";
}

const bundled = async () => run("the bundled song (24 s, sampled instruments)", await (await fetch("/studio/demo-song.flac")).arrayBuffer());
document.getElementById("bundled").onclick = () => bundled().catch(failed);
document.getElementById("file").onchange = (event) => {
  const file = event.target.files[0];
  if (file) file.arrayBuffer().then((bytes) => run(file.name, bytes)).catch(failed);
};
document.getElementById("play").onclick = () => (player?.nodes ? stop() : play());
document.getElementById("gains").onchange = switchGains;
await tf.setBackend("cpu");
bundled().catch(failed);
