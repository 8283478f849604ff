// Types of Prime Fabric's Studio kit (/studio/prime-fabric.js).

export declare const FEATURE_VERSION: "fe-3";
export declare const STEMS: readonly ["vocals", "drums", "bass", "harmonic", "perc", "sub"];
export declare const KEYS: readonly string[];
export declare const MODES: readonly ["major", "minor"];
export declare const STREAMS: readonly ["spectral", "temporal", "harmonic", "percussive", "stereo"];
export declare const STEP_SECONDS: number;
export declare const MAX_STEPS: number;
export declare const FEATURE_DIM: number;

/** A stem-separation snapshot as Studio sends it (camelCase JSON; null where Studio had NaN). */
export interface Snapshot {
  id: string;
  timestamp: number;
  originalAudio: { duration: number; sampleRate: number; channels: number };
  quantumFeatures: Record<"spectral" | "temporal" | "harmonic" | "percussive" | "stereo" | "energy", (number | null)[]>;
  musicalContext: {
    key: string;
    mode?: "major" | "minor" | null;
    bpm?: number | null;
    transients?: { time: number; strength: number }[];
    harmonicContent: { dominantFrequencies?: number[]; tensionLevel: number };
  };
  groundTruthStems?: Partial<Record<(typeof STEMS)[number], (number | null)[]>> | null;
  userCorrections?: unknown[] | null;
  metadata: { classification: string; confidence: number; processingTime?: number };
}

/** What encodeSnapshot reads of /models/latest: the feature version the model was trained on. */
export interface ManifestLike {
  featureVersion?: string;
}

/** The model input for a snapshot: [MAX_STEPS, FEATURE_DIM] float32, row-major. */
export declare function encodeSnapshot(
  snapshot: Snapshot,
  manifest?: ManifestLike,
): { shape: [number, number]; data: Float32Array };

/** Audio per channel, as Studio holds a stem or the mix. */
export type Channels = Float32Array[];

/**
 * Studio's filter stems with the model's predicted levels applied: each stem turned down, step by
 * step, to its predicted level (dB relative to the mix), never up, linear between step centres.
 * `prediction` maps each stem to its 150 levels; `mix` is what the filter stems were made from.
 */
export declare function applyGains(
  stems: Partial<Record<(typeof STEMS)[number], Channels>>,
  sampleRate: number,
  prediction: Partial<Record<(typeof STEMS)[number], ArrayLike<number>>>,
  mix: Channels,
  /** The stems whose gains help (StemModel.appliedStems); the others come back untouched. Default: all. */
  applied?: readonly string[],
): Partial<Record<(typeof STEMS)[number], Channels>>;

/** The latest model, checked and loaded: predict() gives each stem's 150 levels (unit: `unit`). */
export interface StemModel {
  version: string;
  stems: (typeof STEMS)[number][];
  /** The stems whose gains helped on validation audio: pass to applyGains. */
  appliedStems: (typeof STEMS)[number][];
  unit: string;
  manifest: Record<string, unknown>;
  predict(snapshot: Snapshot): Promise<Record<(typeof STEMS)[number], Float32Array>>;
}

/**
 * Fetches /models/latest (revalidated by ETag), checks every file against its SHA-256 before use
 * (kept in Cache Storage where there is one), and loads the graph model with the caller's
 * @tensorflow/tfjs 4.22. Rejects a model any of whose files does not match its manifest.
 */
export declare function loadLatestModel(
  baseUrl: string,
  options: { tf: unknown; fetch?: typeof fetch; float16?: boolean },
): Promise<StemModel>;

/**
 * Sends snapshots as Studio does (fetch, X-Prime-Fabric-Channel, retried 2 s apart up to 5 times,
 * honouring Retry-After on 429/503) and keeps each in localStorage until the service has stored
 * it: on pagehide what is pending goes by sendBeacon (gzipped, within the 64 KiB quota) and stays
 * kept; the next page that creates an exporter sends what is left. A stored id is never sent again.
 */
export declare function createExporter(options: {
  url: string;
  channel?: string;
  maxQueue?: number;
  storage?: Storage;
  fetch?: typeof fetch;
  retryDelayMs?: number;
  maxAttempts?: number;
}): { enqueue(snapshot: Snapshot): void; flush(): Promise<void>; pending(): number };

/** Decoded audio as Studio holds it: an AudioBuffer, or its channels and rate. */
export type AudioLike = AudioBuffer | { channels: Float32Array[]; sampleRate: number };

export interface BuildOptions {
  /** The true stems (each as decoded audio), sent as Studio's groundTruthStems: channel 0, every ceil(n/500)-th sample. */
  groundTruthStems?: Partial<Record<(typeof STEMS)[number], AudioLike | Float32Array[]>>;
  userCorrections?: Snapshot["userCorrections"];
  /** ms; default: the time the build took. */
  processingTime?: number;
  /** Default: a new UUID v4. */
  id?: string;
  /** ms since the epoch; default: now. */
  timestamp?: number;
}

/**
 * The snapshot Studio's own code makes of a decoded buffer (classifyAudio, extractFeatures' six
 * streams, analyzeMusicalContext, buildStemSeparationSnapshot), value for value, for songs of any
 * length and any classification; ready for createExporter().enqueue. Runs in browsers and Node.
 */
export declare function buildSnapshot(audio: AudioLike, options?: BuildOptions): Snapshot;

/** buildSnapshot in a module worker (/studio/snapshot-worker.js), so the page stays responsive. */
export declare function buildSnapshotInWorker(audio: AudioLike, options?: BuildOptions): Promise<Snapshot>;

/** Studio's classifyAudio on channel 0: the type and confidence the snapshot's metadata carries. */
export declare function classifyAudio(channel: Float32Array): { type: "vocal" | "twotrack" | "full"; confidence: number };

/** Studio's filter stems of a buffer, rendered offline with Web Audio biquads (browser only). */
export declare function renderFilterStems(
  audioBuffer: AudioBuffer,
  classification?: string,
): Promise<Record<(typeof STEMS)[number], Channels>>;
