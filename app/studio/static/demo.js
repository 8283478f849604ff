// The /studio/demo page: post a snapshot, load the latest model through the kit, draw its levels.
import * as tf from "/studio/vendor/tfjs-4.22.0.fesm.min.js";
import { MAX_STEPS, STEMS, STEP_SECONDS, loadLatestModel } from "/studio/prime-fabric.js";

const COLOURS = ["#d1495b", "#edae49", "#00798c", "#30638e", "#6a4c93", "#2e933c"];
const [LOW, HIGH] = [-40, 6]; // dB, the model's output range
const show = (id, text) => (document.getElementById(id).textContent = text);

async function main() {
  await tf.setBackend("cpu");
  const snapshot = await (await fetch("/studio/demo-snapshot.json")).json();
  snapshot.id = crypto.randomUUID();
  const posted = await fetch("/stem-separation", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Prime-Fabric-Channel": "stem-separation" },
    body: JSON.stringify(snapshot),
  });
  const answer = await posted.json();
  show("posted", `${posted.status} ${answer.results?.[0]?.status ?? answer.detail}`);

  const model = await loadLatestModel(location.origin, { tf });
  show("model", `${model.version} (${model.manifest.files.length} files, SHA-256 checked)`);
  const levels = await model.predict(snapshot);
  draw(levels, Math.min(MAX_STEPS, Math.ceil(snapshot.originalAudio.duration / STEP_SECONDS)));
  document.body.dataset.ready = "true";
}

function draw(levels, steps) {
  const svg = document.getElementById("curves");
  const [left, right, top, bottom] = [40, 610, 10, 280];
  const x = (step) => left + ((right - left) * step) / Math.max(steps - 1, 1);
  const y = (db) => top + ((bottom - top) * (HIGH - db)) / (HIGH - LOW);
  const parts = [];
  for (const db of [0, -10, -20, -30, -40]) {
    parts.push(`<line class="axis" x1="${left}" x2="${right}" y1="${y(db)}" y2="${y(db)}"/>`);
    parts.push(`<text class="label" x="4" y="${y(db) + 4}">${db} dB</text>`);
  }
  STEMS.forEach((stem, s) => {
    const points = Array.from(levels[stem].subarray(0, steps), (db, step) => `${x(step).toFixed(1)},${y(db).toFixed(1)}`);
    parts.push(`<polyline class="stem" data-stem="${stem}" fill="none" stroke="${COLOURS[s]}" stroke-width="2" points="${points.join(" ")}"/>`);
  });
  svg.innerHTML = parts.join("");
  document.getElementById("legend").innerHTML = STEMS.map((stem, s) => `<li><span style="background:${COLOURS[s]}"></span>${stem}</li>`).join("");
}

main().catch((error) => {
  const box = document.getElementById("error");
  box.hidden = false;
  box.textContent = `The demo stopped: ${error.message}`;
  document.body.dataset.ready = "error";
});
