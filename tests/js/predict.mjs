// Loads a published graph model the way Studio does (tf.loadGraphModel over HTTP, tfjs 4.22 on
// the CPU backend) and writes its predictions for the given inputs.
//   node predict.mjs <model.json URL> <inputs.json> <outputs.json>
import * as tf from '@tensorflow/tfjs';
import { readFileSync, writeFileSync } from 'node:fs';

const [url, inputPath, outputPath] = process.argv.slice(2);
await tf.setBackend('cpu');
const model = await tf.loadGraphModel(url);
const { shape, data } = JSON.parse(readFileSync(inputPath, 'utf8'));
const input = tf.tensor(data, shape, 'float32');
let output = model.predict(input);
if (!(output instanceof tf.Tensor)) output = Array.isArray(output) ? output[0] : Object.values(output)[0];
writeFileSync(outputPath, JSON.stringify({
  shape: output.shape,
  data: Array.from(await output.data()),
  tfjs: tf.version.tfjs,
  backend: tf.getBackend(),
}));
