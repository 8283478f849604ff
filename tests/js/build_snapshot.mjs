// The Studio kit's buildSnapshot in Node, on raw audio the test hands over.
//   node build_snapshot.mjs <cases.json> <out.json>
// cases: [{name, sampleRate, channels: [path of float32 samples, ...], stems?: {stem: path}}];
// out: [{name, snapshot, ms}] with the id and timestamp fixed, so only what Studio computes differs.
import { readFileSync, writeFileSync } from 'node:fs';
import { buildSnapshot } from '../../app/studio/static/prime-fabric.js';

const read = (path) => {
  const raw = readFileSync(path);
  return new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
};
const [casesPath, outPath] = process.argv.slice(2);
const cases = JSON.parse(readFileSync(casesPath, 'utf8'));
const results = cases.map(({ name, sampleRate, channels, stems }) => {
  const audio = { channels: channels.map(read), sampleRate };
  const groundTruthStems = stems ? Object.fromEntries(Object.entries(stems).map(([stem, path]) => [stem, [read(path)]])) : undefined;
  const started = performance.now();
  const snapshot = buildSnapshot(audio, { id: 'fixed', timestamp: 0, groundTruthStems });
  return { name, snapshot, ms: performance.now() - started };
});
writeFileSync(outPath, JSON.stringify(results));
