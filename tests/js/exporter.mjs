// The Studio kit's exporter against a scripted service (no browser): Retry-After honoured, a
// stored id never sent again, a refusal not retried, and what never got through kept for the
// next page. Prints one JSON object of observations.
import { createExporter } from '../../app/studio/static/prime-fabric.js';

class MemoryStorage {  // localStorage's interface
  constructor() { this.items = new Map(); }
  get length() { return this.items.size; }
  key(i) { return [...this.items.keys()][i] ?? null; }
  getItem(k) { return this.items.has(k) ? this.items.get(k) : null; }
  setItem(k, v) { this.items.set(k, String(v)); }
  removeItem(k) { this.items.delete(k); }
}

function service(script) {  // answers in order; 'error' is a network failure
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ at: Date.now(), encoding: init.headers['Content-Encoding'] ?? null });
    const next = script.length ? script.shift() : 201;
    if (next === 'error') throw new TypeError('network down');
    const [status, retryAfter] = Array.isArray(next) ? next : [next];
    return new Response('{}', { status, headers: retryAfter ? { 'Retry-After': String(retryAfter) } : {} });
  };
  return { calls, fetch };
}

const snapshot = (id) => ({ id, timestamp: 1, payload: 'x'.repeat(1000) });
const settle = (exporter) => exporter.flush();
const out = {};

{ // 503 with Retry-After: 1 s, though the exporter's own delay is 50 ms
  const { calls, fetch } = service([[503, 1], 201]);
  const exporter = createExporter({ url: 'http://fabric/stem-separation', storage: new MemoryStorage(), fetch, retryDelayMs: 50 });
  exporter.enqueue(snapshot('a'));
  await settle(exporter);
  out.retryAfter = { calls: calls.length, waitedMs: calls[1].at - calls[0].at, pending: exporter.pending() };
}
{ // stored once: never sent again, not even by the next page
  const storage = new MemoryStorage();
  const { calls, fetch } = service([201]);
  const first = createExporter({ url: 'http://fabric/stem-separation', storage, fetch, retryDelayMs: 10 });
  first.enqueue(snapshot('b'));
  await settle(first);
  first.enqueue(snapshot('b'));
  await settle(first);
  const later = createExporter({ url: 'http://fabric/stem-separation', storage, fetch, retryDelayMs: 10 });
  later.enqueue(snapshot('b'));
  await settle(later);
  out.storedOnce = { calls: calls.length };
}
{ // a refusal (422: quarantined by the service) is not retried
  const { calls, fetch } = service([422]);
  const exporter = createExporter({ url: 'http://fabric/stem-separation', storage: new MemoryStorage(), fetch, retryDelayMs: 10 });
  exporter.enqueue(snapshot('c'));
  await settle(exporter);
  out.refused = { calls: calls.length, pending: exporter.pending() };
}
{ // the network down for every try: kept, and the next page sends it (gzipped by then)
  const storage = new MemoryStorage();
  const down = service(['error', 'error', 'error', 'error', 'error']);
  const exporter = createExporter({ url: 'http://fabric/stem-separation', storage, fetch: down.fetch, retryDelayMs: 10 });
  exporter.enqueue(snapshot('d'));
  await settle(exporter);
  await new Promise((resolve) => setTimeout(resolve, 50));  // its gzip is ready
  const keptAfterFailure = exporter.pending();
  const up = service([201]);
  const next = createExporter({ url: 'http://fabric/stem-separation', storage, fetch: up.fetch, retryDelayMs: 10 });
  await settle(next);
  out.keptForNextPage = { triesWhileDown: down.calls.length, keptAfterFailure, sentByNextPage: up.calls.length,
    encoding: up.calls[0]?.encoding, pendingAfter: next.pending() };
}
console.log(JSON.stringify(out));
process.exit(0);
