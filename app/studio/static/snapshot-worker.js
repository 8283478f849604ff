// Prime Fabric's snapshot worker: buildSnapshot off the page's main thread. The kit's
// buildSnapshotInWorker starts it; it answers one message {channels, sampleRate, options} with
// {snapshot} or {error}.
import { buildSnapshot } from "./prime-fabric.js";

self.onmessage = ({ data }) => {
  try {
    self.postMessage({ snapshot: buildSnapshot({ channels: data.channels, sampleRate: data.sampleRate }, data.options) });
  } catch (error) {
    self.postMessage({ error: String(error && error.stack ? error.stack : error) });
  }
};
