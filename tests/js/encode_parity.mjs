// The Studio kit's encodeSnapshot against the Python encoder's output on the same snapshots.
//   node encode_parity.mjs <cases.json> <out.json>
// cases: [{name, snapshot, expected: [150 * 84 numbers]}]; out: [{name, shape, maxAbs, worst}]
import { readFileSync, writeFileSync } from 'node:fs';
import { encodeSnapshot } from '../../app/studio/static/prime-fabric.js';

const [casesPath, outPath] = process.argv.slice(2);
const cases = JSON.parse(readFileSync(casesPath, 'utf8'));
const results = cases.map(({ name, snapshot, expected }) => {
  const { shape, data } = encodeSnapshot(snapshot, { featureVersion: 'fe-3' });
  let maxAbs = 0;
  let worst = -1;
  for (let i = 0; i < expected.length; i++) {
    const difference = Math.abs(data[i] - expected[i]) / Math.max(1, Math.abs(expected[i]));
    if (!(difference <= maxAbs)) { maxAbs = difference; worst = i; }
  }
  return { name, shape, length: data.length, maxAbs, worst, got: data[worst], expected: expected[worst] };
});
writeFileSync(outPath, JSON.stringify(results));
