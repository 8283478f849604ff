// Prime Fabric's Studio kit: a dependency-free ES module, served by the API at
// /studio/prime-fabric.js. encodeSnapshot is the model's input, equal to `fabric encode`
// (training/features.py, feature version fe-3, defined in training/MODEL_CARD.md) to 1e-6;
// applyGains plays the model's levels on Studio's stems as `fabric evaluate --audio` scores them,
// to 1e-5. tests/test_studio_kit.py runs both sides on the same inputs.

export const FEATURE_VERSION = "fe-3";
export const STEMS = ["vocals", "drums", "bass", "harmonic", "perc", "sub"];
export const KEYS = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
export const MODES = ["major", "minor"];
export const STREAMS = ["spectral", "temporal", "harmonic", "percussive", "stereo"];

export const STEP_SECONDS = 2.0;
export const MAX_STEPS = 150;
const MAX_STREAM_VALUES = 1000;
const EPS = 1e-5;

// How Studio's quantumStemEngine lays out each stream (training/studio_snapshot.py: STREAM_LAYOUT).
const N_FFT = 2048;
const BANDS = 32;
const BAND_SAMPLES = N_FFT / BANDS;
const LAYOUT = {
  spectral: { window: N_FFT, hop: 512, first: 0, perFrame: BANDS, margin: N_FFT, componentSamples: BAND_SAMPLES },
  temporal: { window: 1024, hop: 1024, first: 0, perFrame: 3, margin: 1024, componentSamples: 0 },
  harmonic: { window: N_FFT, hop: N_FFT, first: 0, perFrame: 16, margin: N_FFT, componentSamples: 0 },
  percussive: { window: 512, hop: 512, first: 512, perFrame: 4, margin: 512, componentSamples: 0 },
  stereo: { window: 1024, hop: 1024, first: 0, perFrame: 3, margin: 1024, componentSamples: 0 },
};

// Mean squared Hann weight of each 64-sample band of Studio's 2048-sample window.
const BAND_WEIGHTS = (() => {
  const weights = new Float64Array(BANDS);
  for (let band = 0; band < BANDS; band++) {
    let sum = 0;
    for (let i = band * BAND_SAMPLES; i < (band + 1) * BAND_SAMPLES; i++) {
      const w = 0.5 * (1 - Math.cos((2 * Math.PI * i) / (N_FFT - 1)));
      sum += w * w;
    }
    weights[band] = sum / BAND_SAMPLES;
  }
  return weights;
})();

const log10 = (v) => Math.log10(Math.abs(v) + EPS);
const octaves = (hz) => Math.log2(Math.max(hz, 27.5) / 27.5) / 10;
const pitchHz = (lag, rate) => (lag > 0 ? rate / Math.max(lag, 1) : 0);
const pitchBand = (low, high) => (lag, rate) => {
  const hz = pitchHz(lag, rate);
  return hz >= low && hz < high ? 1 : 0;
};
const range = (n, start = 0, step = 1) => Array.from({ length: n }, (_, i) => start + i * step);

// [column, stream, components, transform(value, sampleRate)]; null: spectral's ratio of sums.
const PITCH_BANDS_HZ = [[1, 80], [80, 250], [250, 1000], [1000, 1e9]];
const GROUPS = [
  ["spectral_log_power", "spectral", range(32), null],
  ["temporal_log_rms", "temporal", [0], (v) => log10(v)],
  ["temporal_zero_crossing_hz", "temporal", [1], (v, rate) => octaves((v * rate) / 2)],
  ["temporal_pitch_hz", "temporal", [2], (v, rate) => octaves(pitchHz(v, rate))],
  ["temporal_unpitched", "temporal", [2], (v) => (v <= 0 ? 1 : 0)],
  ...PITCH_BANDS_HZ.map(([low, high]) => [`temporal_pitch_${low}_hz`, "temporal", [2], pitchBand(low, high)]),
  ["harmonic_peak_share", "harmonic", range(8, 1, 2), (v) => (v > 0 ? 1 : 0)],
  ["percussive_log_energy", "percussive", [0], (v) => log10(v)],
  ["percussive_log_delta", "percussive", [1], (v) => log10(v)],
  ["percussive_transient", "percussive", [2], (v) => v],
  ["percussive_log_peak", "percussive", [3], (v) => log10(v)],
  ["stereo_correlation", "stereo", [0], (v) => v],
  ["stereo_pan", "stereo", [1], (v) => v],
  ["stereo_phase", "stereo", [2], (v) => v],
];
const SPREAD_GROUPS = ["spectral_log_power", "temporal_zero_crossing_hz", "percussive_log_energy", "stereo_pan"];
const STEP_COLUMN_COUNT = 3 * GROUPS.length + SPREAD_GROUPS.length + 2;
const CONTEXT_COLUMN_COUNT = 27;
export const FEATURE_DIM = STEP_COLUMN_COUNT + CONTEXT_COLUMN_COUNT;
const VALID_COLUMN = STEP_COLUMN_COUNT - 1;

// Python's round(): halves go to the even neighbour.
function roundHalfEven(x) {
  const rounded = Math.round(x);
  return Math.abs(x % 1) === 0.5 && rounded % 2 !== 0 ? rounded - 1 : rounded;
}

function framesOf(layout, length) {
  const end = length - layout.margin;
  return end > layout.first ? Math.max(0, Math.ceil((end - layout.first) / layout.hop)) : 0;
}

// Time (s) and component of each of the `count` values Studio sent for a stream.
function valueTimes(stream, count, durationS, sampleRate) {
  const layout = LAYOUT[stream];
  const total = framesOf(layout, roundHalfEven(durationS * sampleRate)) * layout.perFrame;
  const stride = total <= MAX_STREAM_VALUES ? 1 : Math.ceil(total / MAX_STREAM_VALUES);
  const keptCount = total > 0 ? Math.ceil(total / stride) : 0;
  const times = new Float64Array(count);
  const components = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    // Not the count Studio's stride gives for this duration: spread the values evenly.
    const kept = keptCount === count ? i * stride : Math.floor(i * (total / Math.max(count, 1)));
    const frame = Math.floor(kept / layout.perFrame);
    const component = kept % layout.perFrame;
    const start = layout.first + frame * layout.hop;
    times[i] = layout.componentSamples
      ? (start + (component + 0.5) * layout.componentSamples) / sampleRate
      : (start + layout.window / 2) / sampleRate;
    components[i] = component;
  }
  return { times, components };
}

// Weighted mean per step of the finite values, and where a step had any.
function stepMeans(steps, values, weights) {
  const total = new Float64Array(MAX_STEPS);
  const count = new Float64Array(MAX_STEPS);
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i];
    const value = values[i];
    if (step < 0 || step >= MAX_STEPS || !Number.isFinite(value)) continue;
    const weight = weights ? weights[i] : 1;
    total[step] += value * weight;
    count[step] += weight;
  }
  const mean = new Float64Array(MAX_STEPS);
  const present = new Uint8Array(MAX_STEPS);
  for (let s = 0; s < MAX_STEPS; s++) {
    if (count[s] > 0) {
      present[s] = 1;
      mean[s] = total[s] / count[s];
    }
  }
  return { mean, present };
}

const float32 = (values) => Float32Array.from(values || [], (v) => (v === null || v === undefined ? NaN : v));

/**
 * The model input for one snapshot, as Studio sends it (camelCase JSON, null for NaN):
 * { shape: [150, 84], data: Float32Array } row-major, for the manifest's feature version.
 */
export function encodeSnapshot(snapshot, manifest) {
  const version = manifest && (manifest.featureVersion ?? manifest.feature_version);
  if (version && version !== FEATURE_VERSION) {
    throw new Error(`this kit encodes ${FEATURE_VERSION}; the model wants ${version}`);
  }
  const audio = snapshot.originalAudio;
  const context = snapshot.musicalContext;
  const features = snapshot.quantumFeatures;
  const durationS = audio.duration;
  const sampleRate = audio.sampleRate;
  const out = new Float64Array(MAX_STEPS * FEATURE_DIM);
  const set = (step, column, value) => {
    out[step * FEATURE_DIM + column] = value;
  };

  const located = {};
  for (const stream of STREAMS) {
    // Studio's values are float32: the same rounding as the Python side.
    let values = Float64Array.from(float32(features[stream]));
    if (stream === "stereo" && audio.channels < 2) values = new Float64Array(0); // mono placeholder
    const { times, components } = valueTimes(stream, values.length, durationS, sampleRate);
    const steps = Int32Array.from(times, (t) => Math.floor(t / STEP_SECONDS));
    located[stream] = { values, steps, components };
  }

  const groups = GROUPS.length;
  let spreadColumn = 3 * groups;
  GROUPS.forEach(([name, stream, wanted, transform], column) => {
    const { values, steps, components } = located[stream];
    const chosen = [];
    for (let i = 0; i < values.length; i++) if (wanted.includes(components[i])) chosen.push(i);
    let mean, present, transformed, spreadSteps;
    if (transform === null) {
      const chosenSteps = chosen.map((i) => steps[i]);
      const total = stepMeans(chosenSteps, chosen.map((i) => values[i]));
      const weight = stepMeans(chosenSteps, chosen.map((i) => BAND_WEIGHTS[components[i]]));
      present = total.present;
      mean = total.mean.map((t, s) => (present[s] ? log10(t / (weight.mean[s] > 0 ? weight.mean[s] : 1)) : 0));
      const central = chosen.filter((i) => BAND_WEIGHTS[Math.min(components[i], BANDS - 1)] > 0.1);
      transformed = central.map((i) => log10(values[i] / BAND_WEIGHTS[components[i]]));
      spreadSteps = central.map((i) => steps[i]);
    } else {
      transformed = chosen.map((i) => transform(values[i], sampleRate));
      spreadSteps = chosen.map((i) => steps[i]);
      ({ mean, present } = stepMeans(spreadSteps, transformed));
    }
    let trackSum = 0;
    let trackCount = 0;
    for (let s = 0; s < MAX_STEPS; s++) {
      set(s, column, mean[s]);
      set(s, groups + column, present[s]);
      if (present[s]) {
        trackSum += mean[s];
        trackCount += 1;
      }
    }
    if (trackCount > 0) {
      const trackMean = trackSum / trackCount;
      for (let s = 0; s < MAX_STEPS; s++) set(s, 2 * groups + column, present[s] ? mean[s] - trackMean : 0);
    }
    if (SPREAD_GROUPS.includes(name)) {
      const first = stepMeans(spreadSteps, transformed).mean;
      const second = stepMeans(spreadSteps, transformed.map((v) => v * v)).mean;
      for (let s = 0; s < MAX_STEPS; s++) set(s, spreadColumn, Math.sqrt(Math.max(second[s] - first[s] * first[s], 0)));
      spreadColumn += 1;
    }
  });
  const validSteps = Math.min(MAX_STEPS, Math.max(1, Math.ceil(durationS / STEP_SECONDS)));
  const contextColumns = encodeContext(snapshot);
  for (let s = 0; s < MAX_STEPS; s++) {
    set(s, spreadColumn, (s * STEP_SECONDS) / 300);
    set(s, VALID_COLUMN, s < validSteps ? 1 : 0);
    contextColumns.forEach((value, c) => set(s, STEP_COLUMN_COUNT + c, value));
  }
  return { shape: [MAX_STEPS, FEATURE_DIM], data: Float32Array.from(out) };
}

const slog = (v) => Math.sign(v) * Math.log1p(Math.abs(v));

function encodeContext(snapshot) {
  const context = new Float64Array(CONTEXT_COLUMN_COUNT);
  const musical = snapshot.musicalContext;
  const audio = snapshot.originalAudio;
  const key = KEYS.indexOf(musical.key);
  if (key < 0) throw new Error(`unknown key ${musical.key}`);
  context[key] = 1;
  const mode = MODES.indexOf(musical.mode);
  context[12 + (mode >= 0 ? mode : 2)] = 1;
  if (musical.bpm === null || musical.bpm === undefined) context[16] = 1;
  else context[15] = Math.min(Math.max((musical.bpm - 60) / 120, 0), 1);
  context[17] = Math.log1p((musical.transients || []).length / audio.duration);
  context[18] = musical.harmonicContent.tensionLevel;
  const energy = Array.from(float32(snapshot.quantumFeatures.energy));
  if (energy.length === 4 && energy.every(Number.isFinite)) energy.forEach((v, i) => (context[19 + i] = slog(v)));
  else context[23] = 1;
  context[24] = Math.log1p(audio.duration);
  context[25] = audio.channels >= 2 ? 1 : 0;
  context[26] = snapshot.metadata.confidence;
  return context;
}

// --- Playing the model's levels -------------------------------------------------------------
// training/audio_eval.py apply_levels: each filter stem is turned down, step by step, to the
// level the model predicts for it (dB relative to the mix): gain = sqrt(target power / stem
// power), at most 1 (gains only turn a stem down), linear between step centres, so no clicks.

// The channels' mean, as numpy's float32 mean.
function monoOf(channels) {
  const length = channels[0].length;
  const mono = new Float64Array(length);
  for (let i = 0; i < length; i++) {
    let sum = 0;
    for (const channel of channels) sum = Math.fround(sum + channel[i]);
    mono[i] = Math.fround(sum / channels.length);
  }
  return mono;
}

// Mean square per step (0 past the end).
function stepPower(signal, sampleRate) {
  const size = roundHalfEven(STEP_SECONDS * sampleRate);
  const steps = Math.min(MAX_STEPS, Math.ceil(signal.length / size));
  const power = new Float64Array(MAX_STEPS);
  for (let s = 0; s < steps; s++) {
    const end = Math.min(signal.length, (s + 1) * size);
    let sum = 0;
    for (let i = s * size; i < end; i++) sum += signal[i] * signal[i];
    power[s] = sum / Math.min(Math.max(signal.length - s * size, 1), size);
  }
  return power;
}

// Per-sample gains from per-step gains: linear between step centres, held beyond the ends.
function gainCurve(stepGains, length, sampleRate) {
  const curve = new Float64Array(length);
  const centre = (s) => (s + 0.5) * STEP_SECONDS * sampleRate;
  const last = MAX_STEPS - 1;
  let step = 0;
  for (let i = 0; i < length; i++) {
    if (i <= centre(0)) curve[i] = stepGains[0];
    else if (i >= centre(last)) curve[i] = stepGains[last];
    else {
      while (centre(step + 1) <= i) step += 1;
      const slope = (stepGains[step + 1] - stepGains[step]) / (centre(step + 1) - centre(step));
      curve[i] = slope * (i - centre(step)) + stepGains[step];
    }
  }
  return curve;
}

/**
 * Studio's filter stems with the model's predicted levels applied.
 * stems: {stem: [Float32Array per channel]}, the filter stems Studio made of `mix`
 * mix: [Float32Array per channel]; prediction: {stem: 150 levels in dB relative to the mix}
 * applied: the stems whose gains help (the model's appliedStems); the others come back untouched.
 * Returns {stem: [Float32Array per channel]} for the stems given.
 */
export function applyGains(stems, sampleRate, prediction, mix, applied = STEMS) {
  const mixPower = stepPower(monoOf(mix), sampleRate);
  const played = {};
  for (const [stem, channels] of Object.entries(stems)) {
    if (!applied.includes(stem)) {
      played[stem] = channels;
      continue;
    }
    const levels = prediction[stem];
    if (!levels) throw new Error(`no predicted levels for ${stem}`);
    const stemPower = stepPower(monoOf(channels), sampleRate);
    const gains = new Float64Array(MAX_STEPS);
    for (let s = 0; s < MAX_STEPS; s++) {
      const target = mixPower[s] * 10 ** (Math.fround(levels[s]) / 10);
      const gain = stemPower[s] > 0 ? Math.sqrt(target / Math.max(stemPower[s], 1e-20)) : 0;
      gains[s] = Math.min(Math.max(gain, 0), 1);
    }
    const curve = gainCurve(gains, channels[0].length, sampleRate);
    played[stem] = channels.map((channel) => Float32Array.from(channel, (value, i) => value * curve[i]));
  }
  return played;
}

// Studio's filter stems (its default path, training/studio_snapshot.py filter_stems): the whole mix through
// static Web Audio biquads, the same at every moment. What applyGains turns down.
const FILTER_CHAINS = {
  vocals: [["peaking", 1500, 2, 6], ["highpass", 80], ["lowpass", 8000]],
  drums: [["highpass", 200]],
  bass: [["lowpass", 250]],
  harmonic: [["highpass", 250], ["notch", 1500, 2]],
  perc: [["highpass", 2000]],
  sub: [["lowpass", 60], ["lowpass", 60]],
};
const FILTER_GAINS = { drums: 1.2 };

/**
 * Studio's filter stems of an AudioBuffer, rendered offline in the browser: {stem: Float32Array[]}.
 * The vocal stem is silent unless the classification is `twotrack` or `full`, as in Studio.
 */
export async function renderFilterStems(audioBuffer, classification = "full") {
  const stems = {};
  for (const stem of STEMS) {
    const context = new OfflineAudioContext(audioBuffer.numberOfChannels, audioBuffer.length, audioBuffer.sampleRate);
    const source = context.createBufferSource();
    source.buffer = audioBuffer;
    let node = source;
    for (const [type, frequency, q, gain] of FILTER_CHAINS[stem]) {
      if (frequency >= audioBuffer.sampleRate / 2) continue;
      const filter = context.createBiquadFilter();
      filter.type = type;
      filter.frequency.value = frequency;
      if (q !== undefined) filter.Q.value = q;
      if (gain !== undefined) filter.gain.value = gain;
      node.connect(filter);
      node = filter;
    }
    const level = context.createGain();
    level.gain.value = stem === "vocals" && !["twotrack", "full"].includes(classification) ? 0 : FILTER_GAINS[stem] ?? 1;
    node.connect(level);
    level.connect(context.destination);
    source.start(0);
    const rendered = await context.startRendering();
    stems[stem] = Array.from({ length: rendered.numberOfChannels }, (_, c) => rendered.getChannelData(c));
  }
  return stems;
}

// --- Loading the latest model ---------------------------------------------------------------

const CACHE_NAME = "prime-fabric-models"; // Cache Storage: files are immutable, keyed by URL
const loaded = new Map(); // version -> model, for this page
let lastManifest = null; // {etag, manifest}, to revalidate with If-None-Match

async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// A file the manifest lists, from Cache Storage or the network, checked against its SHA-256
// and size before anything uses it.
async function verifiedFile(file, fetchFile) {
  const storage = globalThis.caches ? await globalThis.caches.open(CACHE_NAME) : null;
  const cached = storage ? await storage.match(file.url) : undefined;
  const response = cached || (await fetchFile(file.url));
  if (!response.ok) throw new Error(`${file.path}: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const digest = await sha256Hex(bytes);
  if (digest !== file.sha256 || bytes.length !== file.size) {
    if (cached) await storage.delete(file.url);
    throw new Error(`${file.path}: SHA-256 ${digest} (${bytes.length} bytes) is not the manifest's ${file.sha256}; refusing the model`);
  }
  if (storage && !cached) await storage.put(file.url, new Response(bytes));
  return bytes;
}

/**
 * The latest published model, checked and loaded with the caller's @tensorflow/tfjs (4.22):
 * { version, stems, unit, manifest, predict(snapshot) -> {stem: Float32Array of levels} }.
 * The manifest is revalidated by ETag; files are checked against their SHA-256 before use and
 * kept in Cache Storage (where the browser has it), a model in memory by version.
 */
export async function loadLatestModel(baseUrl, { tf, fetch: fetchImpl = globalThis.fetch.bind(globalThis), float16 = false } = {}) {
  if (!tf) throw new Error("loadLatestModel needs { tf }: the page's @tensorflow/tfjs");
  const manifestUrl = `${baseUrl.replace(/\/$/, "")}/models/latest`;
  const headers = lastManifest ? { "If-None-Match": lastManifest.etag } : {};
  const answer = await fetchImpl(manifestUrl, { headers });
  let manifest;
  if (answer.status === 304 && lastManifest) manifest = lastManifest.manifest;
  else if (answer.ok) {
    manifest = await answer.json();
    lastManifest = { etag: answer.headers.get("ETag"), manifest };
  } else throw new Error(`${manifestUrl}: HTTP ${answer.status}`);
  const key = `${manifest.version}/${float16 ? "float16" : "float32"}`;
  if (loaded.has(key)) return loaded.get(key);

  const modelJsonUrl = float16 ? manifest.float16ModelJsonUrl : manifest.modelJsonUrl;
  const byUrl = new Map(manifest.files.map((file) => [file.url, file]));
  const listed = (url) => {
    const file = byUrl.get(url);
    if (!file) throw new Error(`${url} is not in the manifest; refusing the model`);
    return file;
  };
  const modelJson = JSON.parse(new TextDecoder().decode(await verifiedFile(listed(modelJsonUrl), fetchImpl)));
  const shards = [];
  for (const group of modelJson.weightsManifest) {
    for (const path of group.paths) shards.push(await verifiedFile(listed(new URL(path, modelJsonUrl).href), fetchImpl));
  }
  const weightData = new Uint8Array(shards.reduce((total, shard) => total + shard.length, 0));
  shards.reduce((offset, shard) => (weightData.set(shard, offset), offset + shard.length), 0);
  const graph = await tf.loadGraphModel(
    tf.io.fromMemory({
      modelTopology: modelJson.modelTopology,
      format: modelJson.format,
      generatedBy: modelJson.generatedBy,
      convertedBy: modelJson.convertedBy,
      signature: modelJson.signature,
      userDefinedMetadata: modelJson.userDefinedMetadata,
      weightSpecs: modelJson.weightsManifest.flatMap((group) => group.weights),
      weightData: weightData.buffer,
    }),
  );
  const stems = manifest.stems;
  const model = {
    version: manifest.version,
    stems,
    appliedStems: manifest.appliedStems ?? stems,
    unit: manifest.output.unit,
    manifest,
    async predict(snapshot) {
      const { shape, data } = encodeSnapshot(snapshot, manifest);
      const input = tf.tensor(data, [1, ...shape], "float32");
      let output = graph.predict(input);
      if (!(output instanceof tf.Tensor)) output = Array.isArray(output) ? output[0] : Object.values(output)[0];
      const values = await output.data();
      input.dispose();
      output.dispose();
      const steps = output.shape[2];
      const [low, high] = manifest.output.range || [-Infinity, Infinity];
      return Object.fromEntries(
        stems.map((stem, s) => [stem, Float32Array.from(values.subarray(s * steps, (s + 1) * steps), (v) => Math.min(Math.max(v, low), high))]),
      );
    },
  };
  loaded.set(key, model);
  return model;
}

// --- Sending snapshots ----------------------------------------------------------------------
// Each snapshot is sent at once with fetch, as Studio does, and kept in localStorage until the
// service has stored it, so nothing is lost when the page goes away: on `pagehide` what is still
// pending goes by navigator.sendBeacon, gzipped, as far as Chromium's 64 KiB beacon quota allows
// (Studio's snapshots are 27-48 KB gzipped: one or two), and all of it stays kept until a later
// page load sends it again (the service absorbs a second copy as a duplicate).

const BEACON_QUOTA = 64 * 1024;
const PENDING_PREFIX = "prime-fabric:pending:";
const STORED_KEY = "prime-fabric:stored";
const STORED_REMEMBERED = 1000; // ids the service has confirmed, so none is sent again
const FINAL_STATUSES = new Set([400, 404, 409, 413, 415, 422]); // refused and quarantined: do not retry

async function gzip(text) {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function toBase64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Sends Studio's snapshots to Prime Fabric and keeps each until it is stored.
 * url: the channel's ingest URL (.../stem-separation: beacons cannot name the channel otherwise)
 * maxQueue: snapshots held in memory and sent at once; more wait in localStorage
 * Returns { enqueue(snapshot), flush(), pending() }.
 */
export function createExporter({
  url,
  channel = "stem-separation",
  maxQueue = 50,
  storage = globalThis.localStorage,
  fetch: fetchImpl = globalThis.fetch?.bind(globalThis),
  retryDelayMs = 2000,
  maxAttempts = 5,
} = {}) {
  const queue = new Map(); // id -> { json?, gz? }, what this page is sending
  const sending = new Map(); // id -> promise
  const keyOf = (id) => `${PENDING_PREFIX}${channel}:${id}`;
  const read = (key, fallback) => {
    try {
      const value = storage?.getItem(key);
      return value === null || value === undefined ? fallback : JSON.parse(value);
    } catch {
      return fallback;
    }
  };
  const write = (key, value) => {
    try {
      storage?.setItem(key, JSON.stringify(value));
      return true;
    } catch {
      return false; // storage full or unavailable: this page still sends it
    }
  };
  const stored = new Set(read(STORED_KEY, []));

  function keep(id, entry) {
    write(keyOf(id), entry.gz ? { gz: toBase64(entry.gz) } : { json: entry.json });
  }

  function done(id, confirmedStored) {
    queue.delete(id);
    try {
      storage?.removeItem(keyOf(id));
    } catch {}
    if (confirmedStored) {
      stored.add(id);
      write(STORED_KEY, [...stored].slice(-STORED_REMEMBERED));
    }
  }

  async function post(entry) {
    const headers = { "X-Prime-Fabric-Channel": channel, "Content-Type": "application/json" };
    if (entry.gz) headers["Content-Encoding"] = "gzip";
    return fetchImpl(url, { method: "POST", headers, body: entry.gz ?? entry.json });
  }

  async function deliver(id) {
    for (let attempt = 1; attempt <= maxAttempts && queue.has(id) && !stored.has(id); attempt++) {
      let waitMs = retryDelayMs;
      try {
        const response = await post(queue.get(id));
        if (response.ok) return done(id, true);
        if (FINAL_STATUSES.has(response.status)) return done(id, false); // the service kept it in quarantine
        const retryAfter = Number(response.headers.get("Retry-After"));
        if ((response.status === 429 || response.status === 503) && retryAfter > 0) waitMs = retryAfter * 1000;
      } catch {
        // the network or the service is down: try again
      }
      if (attempt < maxAttempts) await sleep(waitMs);
    }
    // Still pending: it stays in storage for flush() or the next page load.
  }

  function send(id) {
    if (!sending.has(id)) sending.set(id, deliver(id).finally(() => sending.delete(id)));
    return sending.get(id);
  }

  function admit(id, entry) {
    if (stored.has(id) || queue.has(id)) return;
    if (queue.size >= maxQueue) {
      keep(id, entry); // waits in storage for room
      return;
    }
    queue.set(id, entry);
    keep(id, entry);
    if (!entry.gz) {
      gzip(entry.json).then((bytes) => {
        if (!queue.has(id)) return;
        entry.gz = bytes; // smaller to keep and to send, and ready for a beacon
        delete entry.json;
        keep(id, entry);
      });
    }
    send(id);
  }

  // What an earlier page left unsent.
  function resume() {
    const prefix = `${PENDING_PREFIX}${channel}:`;
    const keys = [];
    for (let i = 0; i < (storage?.length ?? 0); i++) {
      const key = storage.key(i);
      if (key && key.startsWith(prefix)) keys.push(key);
    }
    for (const key of keys) {
      const kept = read(key, null);
      if (!kept) continue;
      admit(key.slice(prefix.length), kept.gz ? { gz: fromBase64(kept.gz) } : { json: kept.json });
    }
  }

  function beaconPending() {
    if (!globalThis.navigator?.sendBeacon) return;
    let budget = BEACON_QUOTA;
    const members = [];
    for (const entry of queue.values()) {
      if (!entry.gz || entry.gz.length > budget) continue;
      members.push(entry.gz);
      budget -= entry.gz.length;
    }
    // One gzip member per snapshot, joined: the service reads them as NDJSON, no header needed.
    if (members.length) navigator.sendBeacon(url, new Blob(members, { type: "text/plain" }));
  }

  if (globalThis.addEventListener) {
    globalThis.addEventListener("pagehide", beaconPending);
    globalThis.document?.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") beaconPending();
    });
  }
  resume();

  return {
    enqueue(snapshot) {
      admit(String(snapshot.id), { json: JSON.stringify(snapshot) });
    },
    async flush() {
      resume();
      await Promise.all([...queue.keys()].map(send));
    },
    pending() {
      let count = 0;
      for (let i = 0; i < (storage?.length ?? 0); i++) if (storage.key(i)?.startsWith(`${PENDING_PREFIX}${channel}:`)) count++;
      return Math.max(count, queue.size);
    },
  };
}

// ---- Studio's snapshot, built from audio --------------------------------------------------------
// buildSnapshot is what Studio's own code (classifier.ts, quantumStemEngine.ts's extractors,
// musicalContextStemEngine.ts's analyzeMusicalContext, stemSeparationSnapshot.ts) puts in a
// snapshot, value for value, without the step that makes Studio's own code fail on real songs
// (createQuantumSuperposition: an N x 2N dense layer over all N stream values) and without
// skipping tracks classified `vocal`. Studio keeps every ceil(n/1000)-th value of each stream, so
// only those are computed, each by Studio's own arithmetic (float32 arrays, float64 sums):
// tests/test_snapshot_builder.py holds it to Studio's code run on reference songs, bit for bit.
// training/studio_snapshot.py is its Python twin (`fabric import-stems`).

const HANN_2048 = hannWindow(N_FFT);
const NOTE_FFT = 2048;
const TRANSIENT_THRESHOLD = 0.35;
const CLASSIFICATION_CONFIDENCE = { vocal: 0.7, twotrack: 0.65, full: 0.6 };
const MAX_STEM_VALUES = 500;

function hannWindow(length) {
  const window = new Float64Array(length);
  for (let i = 0; i < length; i++) window[i] = 0.5 * (1 - Math.cos((2 * Math.PI * i) / (length - 1)));
  return window;
}

// The indices convertFeatures keeps of `length` values.
function* keptIndices(length, cap) {
  const step = length <= cap ? 1 : Math.ceil(length / cap);
  for (let i = 0; i < length; i += step) yield i;
}

function rmsOf(x, start, size) {
  let sum = 0;
  for (let i = start; i < start + size; i++) sum += x[i] * x[i];
  return Math.sqrt(sum / size);
}

// applyHanningWindow then computePowerSpectrum of x[start, start + 2048), into `power`.
function windowedPower(x, start, power) {
  for (let i = 0; i < N_FFT; i++) {
    const windowed = Math.fround(x[start + i] * HANN_2048[i]);
    power[i] = windowed * windowed; // a Float32Array rounds it as Studio's does
  }
  return power;
}

function streamValues(stream, x, left, right) {
  const layout = LAYOUT[stream];
  const frames = framesOf(layout, x.length);
  const total = frames * layout.perFrame;
  const out = [];
  const power = new Float32Array(N_FFT);
  let lastFrame = -1;
  let peaks = null;
  let energies = null;
  for (const kept of keptIndices(total, MAX_STREAM_VALUES)) {
    const frame = Math.floor(kept / layout.perFrame);
    const component = kept % layout.perFrame;
    const start = layout.first + frame * layout.hop;
    let value;
    if (stream === "spectral") {
      windowedPower(x, start, power);
      let sum = 0;
      for (let j = component * BAND_SAMPLES; j < (component + 1) * BAND_SAMPLES; j++) sum += power[j];
      value = sum / BAND_SAMPLES;
    } else if (stream === "temporal") {
      value = temporalValue(x, start, component);
    } else if (stream === "harmonic") {
      if (frame !== lastFrame) peaks = harmonicPeaks(windowedPower(x, start, power));
      value = peaks[component];
    } else if (stream === "percussive") {
      energies ??= percussiveEnergies(x, frames);
      const energy = energies[frame];
      const delta = Math.abs(energy - (frame > 0 ? energies[frame - 1] : 0));
      if (component === 0) value = energy;
      else if (component === 1) value = delta;
      else if (component === 2) value = delta > 0.1 ? 1 : 0;
      else {
        value = 0;
        for (let i = start; i < start + layout.window; i++) value = Math.max(value, Math.abs(x[i]));
      }
    } else {
      value = stereoValue(left, right, start, component);
    }
    lastFrame = frame;
    out.push(Math.fround(value));
  }
  return out;
}

function temporalValue(x, start, component) {
  const size = 1024;
  if (component === 0) return rmsOf(x, start, size);
  if (component === 1) {
    let crossings = 0;
    for (let i = start + 1; i < start + size; i++) {
      if ((x[i - 1] >= 0 && x[i] < 0) || (x[i - 1] < 0 && x[i] >= 0)) crossings++;
    }
    return crossings / size;
  }
  // computeAutocorrelation's lags 10..499, the only ones estimatePitchFromAutocorr reads.
  let maxPeak = 0;
  let maxLag = 0;
  for (let lag = 10; lag < 500; lag++) {
    let sum = 0;
    for (let i = start; i < start + size - lag; i++) sum += x[i] * x[i + lag];
    const value = Math.fround(sum / (size - lag));
    if (value > maxPeak) {
      maxPeak = value;
      maxLag = lag;
    }
  }
  return maxLag > 0 ? maxLag : 0;
}

function harmonicPeaks(power) {
  const peaks = [];
  for (let i = 1; i < power.length - 1 && peaks.length < 16; i++) {
    if (power[i] > power[i - 1] && power[i] > power[i + 1] && power[i] > 0.1) peaks.push(i, power[i]);
  }
  while (peaks.length < 16) peaks.push(0, 0);
  return peaks;
}

function percussiveEnergies(x, frames) {
  const energies = new Float64Array(frames);
  for (let frame = 0; frame < frames; frame++) energies[frame] = rmsOf(x, 512 + frame * 512, 512);
  return energies;
}

function stereoValue(left, right, start, component) {
  const size = 1024;
  if (component === 2) {
    let phase = 0;
    for (let i = start; i < start + size; i++) phase += Math.atan2(right[i], left[i]);
    return phase / size;
  }
  let both = 0;
  let leftSum = 0;
  let rightSum = 0;
  for (let i = start; i < start + size; i++) {
    both += left[i] * right[i];
    leftSum += left[i] * left[i];
    rightSum += right[i] * right[i];
  }
  if (component === 0) {
    const denominator = Math.sqrt(leftSum * rightSum);
    return denominator > 0 ? both / denominator : 0;
  }
  const leftRms = Math.sqrt(leftSum / size);
  const rightRms = Math.sqrt(rightSum / size);
  return (rightRms - leftRms) / (leftRms + rightRms + 0.0001);
}

function energyValues(x) {
  const envelope = [];
  for (let i = 0; i < x.length - 2048; i += 2048) envelope.push(rmsOf(x, i, 2048));
  if (!envelope.length) return [];
  const mean = envelope.reduce((a, b) => a + b, 0) / envelope.length;
  const variance = envelope.reduce((sum, v) => sum + Math.pow(v - mean, 2), 0) / envelope.length;
  let max = -Infinity;
  let min = Infinity;
  for (const v of envelope) {
    max = Math.max(max, v);
    min = Math.min(min, v);
  }
  return [mean, variance, max, min].map(Math.fround);
}

/** classifier.ts classifyAudio: the first, middle and last thirds' energy (by position). */
export function classifyAudio(x) {
  const length = x.length;
  let low = 0;
  let mid = 0;
  let high = 0;
  for (let i = 0; i < length; i += 128) {
    const sample = Math.abs(x[i]);
    if (i < length * 0.33) low += sample;
    else if (i < length * 0.66) mid += sample;
    else high += sample;
  }
  const type = high > mid && high > low ? "vocal" : mid > low ? "twotrack" : "full";
  return { type, confidence: CLASSIFICATION_CONFIDENCE[type] };
}

function analyzeMusicalContext(x, sampleRate) {
  // key.ts detectKey and analyzeHarmonicContent walk the same 2048-sample chunks.
  const noteCounts = new Array(12).fill(0);
  const bins = new Array(128).fill(0);
  for (let i = 0; i < x.length - NOTE_FFT; i += NOTE_FFT) {
    let max = 0;
    let maxIndex = 0;
    for (let j = 0; j < NOTE_FFT; j++) {
      const v = Math.abs(x[i + j]);
      if (v > max) {
        max = v;
        maxIndex = j;
      }
    }
    const midi = 12 * Math.log2((maxIndex * sampleRate) / NOTE_FFT / 440) + 69;
    const note = Math.round(midi) % 12;
    if (!Number.isNaN(note) && note >= 0 && note < 12) noteCounts[(note + 12) % 12]++;
    for (let j = 0; j < 128; j++) bins[j] += Math.abs(x[i + j]);
  }
  const key = KEYS[noteCounts.indexOf(Math.max(...noteCounts))] || "C";

  // bpm.ts detectBPM
  let bpm = null;
  let previousPeak = -1;
  let frequencySum = 0;
  let intervals = 0;
  for (let i = 0; i < x.length; i += 512) {
    if (Math.abs(x[i]) > 0.6) {
      if (previousPeak >= 0) {
        frequencySum += sampleRate / (i - previousPeak);
        intervals++;
      }
      previousPeak = i;
    }
  }
  if (intervals > 0) bpm = Math.round((frequencySum / intervals) * 60);

  // transients.ts detectTransients: every rise above 0.35
  const transients = [];
  for (let i = 1; i < x.length; i++) {
    const current = Math.abs(x[i]);
    if (current > TRANSIENT_THRESHOLD && Math.abs(x[i - 1]) <= TRANSIENT_THRESHOLD) {
      transients.push({ time: i / sampleRate, strength: Math.min(1.0, current / TRANSIENT_THRESHOLD) });
    }
  }

  const dominantFrequencies = bins
    .map((energy, index) => ({ energy, freq: (index * sampleRate) / (2 * NOTE_FFT) }))
    .sort((a, b) => b.energy - a.energy)
    .slice(0, 10)
    .map((d) => d.freq);
  return { key, bpm, transients, harmonicContent: { dominantFrequencies, tensionLevel: 0.5 } };
}

// stemsToFeatures: channel 0, every ceil(n/500)-th sample.
function stemFeatures(stem) {
  const channel = stem.getChannelData ? stem.getChannelData(0) : stem[0];
  return Array.from(keptIndices(channel.length, MAX_STEM_VALUES), (i) => channel[i]);
}

function channelsOf(audio) {
  if (audio.getChannelData) {
    return Array.from({ length: audio.numberOfChannels }, (_, c) => audio.getChannelData(c));
  }
  return audio.channels;
}

/**
 * The snapshot Studio's builder makes for a decoded buffer, ready for createExporter().enqueue.
 * `audio`: an AudioBuffer, or {channels: Float32Array[], sampleRate}. Options: groundTruthStems
 * (stem -> AudioBuffer or Float32Array[]), userCorrections, processingTime (ms; default: the time
 * this call took), id and timestamp (default: a new UUID v4 and now).
 */
export function buildSnapshot(audio, options = {}) {
  const started = performance.now();
  const channels = channelsOf(audio);
  const sampleRate = audio.sampleRate;
  const x = channels[0];
  const stereo = channels.length >= 2;
  const quantumFeatures = {};
  for (const stream of STREAMS) {
    quantumFeatures[stream] = stream === "stereo" && !stereo ? [0, 0, 0] : streamValues(stream, x, channels[0], channels[1]);
  }
  quantumFeatures.energy = energyValues(x);
  const classification = classifyAudio(x);
  const snapshot = {
    id: options.id ?? crypto.randomUUID(),
    timestamp: options.timestamp ?? Date.now(),
    originalAudio: { duration: x.length / sampleRate, sampleRate, channels: channels.length },
    quantumFeatures,
    musicalContext: analyzeMusicalContext(x, sampleRate),
  };
  if (options.groundTruthStems) {
    snapshot.groundTruthStems = {};
    for (const stem of STEMS) {
      const given = options.groundTruthStems[stem];
      if (given) snapshot.groundTruthStems[stem] = stemFeatures(given);
    }
  }
  if (options.userCorrections) snapshot.userCorrections = options.userCorrections;
  snapshot.metadata = {
    classification: classification.type,
    confidence: classification.confidence,
    processingTime: options.processingTime ?? performance.now() - started,
  };
  return snapshot;
}

/**
 * buildSnapshot off the page's main thread, in a module Web Worker (/studio/snapshot-worker.js,
 * started from a blob so that it runs for a page of another origin). The channels are copied once
 * and handed over, not cloned again. Resolves with the snapshot.
 */
export function buildSnapshotInWorker(audio, options = {}) {
  const workerUrl = new URL("snapshot-worker.js", import.meta.url).href;
  const shim = URL.createObjectURL(new Blob([`import ${JSON.stringify(workerUrl)};`], { type: "text/javascript" }));
  const worker = new Worker(shim, { type: "module" });
  const copy = (source) => channelsOf(source).map((channel) => channel.slice());
  const channels = copy(audio);
  const groundTruthStems = options.groundTruthStems
    ? Object.fromEntries(Object.entries(options.groundTruthStems).filter(([, v]) => v).map(([stem, v]) => [stem, [channelsOf(v)[0].slice()]]))
    : undefined;
  const transfer = [...channels, ...Object.values(groundTruthStems ?? {}).flat()].map((channel) => channel.buffer);
  return new Promise((resolve, reject) => {
    const done = () => {
      worker.terminate();
      URL.revokeObjectURL(shim);
    };
    worker.onmessage = ({ data }) => {
      done();
      if (data.error) reject(new Error(data.error));
      else resolve(data.snapshot);
    };
    worker.onerror = (event) => {
      done();
      reject(new Error(`snapshot worker failed: ${event.message || "could not start"}`));
    };
    worker.postMessage({ channels, sampleRate: audio.sampleRate, options: { ...options, groundTruthStems } }, transfer);
  });
}
