// The Studio kit's applyGains on audio the Python side wrote; writes what it would play.
//   node gains_parity.mjs <dir>   (dir/case.json: {sampleRate, channels, length, stems}; *.f32)
import { readFileSync, writeFileSync } from 'node:fs';
import { applyGains } from '../../app/studio/static/prime-fabric.js';

const dir = process.argv[2];
const spec = JSON.parse(readFileSync(`${dir}/case.json`, 'utf8'));
const read = (name) => {
  const raw = readFileSync(`${dir}/${name}.f32`);
  return new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
};
const channelsOf = (data) => Array.from({ length: spec.channels }, (_, c) => data.slice(c * spec.length, (c + 1) * spec.length));
const levels = read('levels');
const prediction = Object.fromEntries(spec.stems.map((stem, s) => [stem, levels.slice(s * 150, (s + 1) * 150)]));
const stems = Object.fromEntries(spec.stems.map((stem) => [stem, channelsOf(read(stem))]));
const played = applyGains(stems, spec.sampleRate, prediction, channelsOf(read('mix')));
for (const stem of spec.stems) {
  const out = new Float32Array(spec.channels * spec.length);
  played[stem].forEach((channel, c) => out.set(channel, c * spec.length));
  writeFileSync(`${dir}/played-${stem}.f32`, Buffer.from(out.buffer));
}
