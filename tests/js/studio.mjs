// What Studio does with the latest-weights manifest: fetch it, check every file's size and
// SHA-256, load the model from its URL and predict.
//   node studio.mjs <manifest URL> <inputs.json> <outputs.json>
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';

const [manifestUrl, inputPath, outputPath] = process.argv.slice(2);
await tf.setBackend('cpu');
const manifest = await (await fetch(manifestUrl)).json();
for (const file of manifest.files) {
  const bytes = Buffer.from(await (await fetch(file.url)).arrayBuffer());
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== file.sha256 || bytes.length !== file.size) {
    throw new Error(`${file.path}: sha256 ${sha256} / ${bytes.length} bytes, manifest says ${file.sha256} / ${file.size}`);
  }
}
const model = await tf.loadGraphModel(manifest.modelJsonUrl);
const { shape, data } = JSON.parse(readFileSync(inputPath, 'utf8'));
let output = model.predict(tf.tensor(data, shape, 'float32'));
if (!(output instanceof tf.Tensor)) output = Array.isArray(output) ? output[0] : Object.values(output)[0];
writeFileSync(outputPath, JSON.stringify({
  version: manifest.version,
  stems: manifest.stems,
  filesChecked: manifest.files.length,
  shape: output.shape,
  data: Array.from(await output.data()),
}));
