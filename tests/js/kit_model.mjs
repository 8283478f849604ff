// Studio's path to the model through the kit: loadLatestModel against the running API with
// tfjs 4.22, predictions for the given snapshots, a second load (cached), and a tampered file.
//   node kit_model.mjs <baseUrl> <snapshots.json> <out.json>
import * as tf from '@tensorflow/tfjs';
import { readFileSync, writeFileSync } from 'node:fs';

const kit = await import('../../app/studio/static/prime-fabric.js');
const [baseUrl, snapshotsPath, outPath] = process.argv.slice(2);
await tf.setBackend('cpu');
const requests = [];
const counting = (url, init) => { requests.push(url); return fetch(url, init); };

const model = await kit.loadLatestModel(baseUrl, { tf, fetch: counting });
const firstLoad = requests.length;
const snapshots = JSON.parse(readFileSync(snapshotsPath, 'utf8'));
const predictions = [];
for (const snapshot of snapshots) {
  const levels = await model.predict(snapshot);
  predictions.push(model.stems.map((stem) => Array.from(levels[stem])));
}
requests.length = 0;
const again = await kit.loadLatestModel(baseUrl, { tf, fetch: counting });
const secondLoad = { requests: requests.length, same: again === model };

// A fresh copy of the kit (nothing cached in it) whose weights arrive with one byte changed.
const fresh = await import(`../../app/studio/static/prime-fabric.js?fresh=${Date.now()}`);
const tampering = async (url, init) => {
  const response = await fetch(url, init);
  if (!url.endsWith('.bin')) return response;
  const bytes = new Uint8Array(await response.arrayBuffer());
  bytes[bytes.length >> 1] ^= 0xff;
  return new Response(bytes, { status: 200 });
};
let tamperError = null;
try { await fresh.loadLatestModel(baseUrl, { tf, fetch: tampering }); } catch (error) { tamperError = error.message; }

writeFileSync(outPath, JSON.stringify({ version: model.version, stems: model.stems, unit: model.unit, firstLoad,
  secondLoad, tamperError, predictions }));
