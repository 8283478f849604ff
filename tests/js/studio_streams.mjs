// Studio's snapshot streams, computed sample by sample the way Studio's TypeScript does
// (quantumStemEngine.ts extract*Features, stemSeparationSnapshot.ts convertFeatures and
// stemsToFeatures): plain loops over Float32Arrays, no shortcuts. The Python side
// (training/studio.py) computes only the kept values, vectorised; the test compares the two.
//   node studio_streams.mjs <audio.f32> <channels> <out.json>
import { readFileSync, writeFileSync } from 'node:fs';

const [audioPath, channelCount, outPath] = process.argv.slice(2);
const raw = readFileSync(audioPath);
const all = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
const channels = Number(channelCount);
const length = all.length / channels;
const channel = (c) => all.subarray(c * length, (c + 1) * length);

const hann = (data) => {
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i] * (0.5 * (1 - Math.cos((2 * Math.PI * i) / (data.length - 1))));
  return out;
};
const power = (w) => { const p = new Float32Array(w.length); for (let i = 0; i < w.length; i++) p[i] = w[i] * w[i]; return p; };
const rms = (d) => { let s = 0; for (let i = 0; i < d.length; i++) s += d[i] * d[i]; return Math.sqrt(s / d.length); };

function spectral(x) {
  const f = [];
  for (let i = 0; i < x.length - 2048; i += 512) {
    const p = power(hann(x.slice(i, i + 2048)));
    const size = Math.floor(2048 / 32);
    for (let b = 0; b < 32; b++) {
      let sum = 0;
      for (let j = b * size; j < Math.min(b * size + size, p.length); j++) sum += p[j];
      f.push(sum / size);
    }
  }
  return new Float32Array(f);
}

function temporal(x) {
  const f = [];
  for (let i = 0; i < x.length - 1024; i += 1024) {
    const w = x.slice(i, i + 1024);
    let crossings = 0;
    for (let k = 1; k < w.length; k++) if ((w[k - 1] >= 0 && w[k] < 0) || (w[k - 1] < 0 && w[k] >= 0)) crossings++;
    const ac = new Float32Array(w.length);
    for (let lag = 0; lag < w.length; lag++) {
      let s = 0;
      for (let k = 0; k < w.length - lag; k++) s += w[k] * w[k + lag];
      ac[lag] = s / (w.length - lag);
    }
    let maxPeak = 0, maxLag = 0;
    for (let lag = 10; lag < Math.min(ac.length, 500); lag++) if (ac[lag] > maxPeak) { maxPeak = ac[lag]; maxLag = lag; }
    f.push(rms(w), crossings / w.length, maxLag > 0 ? maxLag : 0);
  }
  return new Float32Array(f);
}

function harmonic(x) {
  const f = [];
  for (let i = 0; i < x.length - 2048; i += 2048) {
    const p = power(hann(x.slice(i, i + 2048)));
    const peaks = [];
    for (let k = 1; k < p.length - 1; k++) {
      if (p[k] > p[k - 1] && p[k] > p[k + 1] && p[k] > 0.1) { peaks.push(k, p[k]); if (peaks.length >= 16) break; }
    }
    while (peaks.length < 16) peaks.push(0, 0);
    f.push(...peaks.slice(0, 16));
  }
  return new Float32Array(f);
}

function percussive(x) {
  const f = [];
  let previous = 0;
  for (let i = 512; i < x.length - 512; i += 512) {
    const w = x.slice(i, i + 512);
    const e = rms(w), delta = Math.abs(e - previous);
    let peak = 0;
    for (let k = 0; k < w.length; k++) peak = Math.max(peak, Math.abs(w[k]));
    f.push(e, delta, delta > 0.1 ? 1 : 0, peak);
    previous = e;
  }
  return new Float32Array(f);
}

function stereo(left, right) {
  if (channels < 2) return new Float32Array([0, 0, 0]);
  const f = [];
  for (let i = 0; i < Math.min(left.length, right.length) - 1024; i += 1024) {
    const l = left.slice(i, i + 1024), r = right.slice(i, i + 1024);
    let s = 0, ls = 0, rs = 0, phase = 0;
    for (let k = 0; k < l.length; k++) { s += l[k] * r[k]; ls += l[k] * l[k]; rs += r[k] * r[k]; phase += Math.atan2(r[k], l[k]); }
    const d = Math.sqrt(ls * rs);
    const le = rms(l), re = rms(r);
    f.push(d > 0 ? s / d : 0, (re - le) / (le + re + 0.0001), phase / l.length);
  }
  return new Float32Array(f);
}

function energy(x) {
  const env = [];
  for (let i = 0; i < x.length - 2048; i += 2048) env.push(rms(x.slice(i, i + 2048)));
  if (!env.length) return new Float32Array([]);
  const mean = env.reduce((a, b) => a + b, 0) / env.length;
  const variance = env.reduce((s, v) => s + Math.pow(v - mean, 2), 0) / env.length;
  return new Float32Array([mean, variance, Math.max(...env), Math.min(...env)]);
}

const convert = (arr, max) => {
  if (arr.length <= max) return Array.from(arr);
  const step = Math.ceil(arr.length / max), out = [];
  for (let i = 0; i < arr.length; i += step) out.push(arr[i]);
  return out;
};

const x = channel(0);
writeFileSync(outPath, JSON.stringify({
  spectral: convert(spectral(x), 1000),
  temporal: convert(temporal(x), 1000),
  harmonic: convert(harmonic(x), 1000),
  percussive: convert(percussive(x), 1000),
  stereo: convert(stereo(channel(0), channels > 1 ? channel(1) : null), 1000),
  energy: convert(energy(x), 1000),
  groundTruth: convert(x, 500),
}));
