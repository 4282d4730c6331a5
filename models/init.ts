/**
 * Seeded weight initialisers. Normal draws use tf.randomNormal with a fixed seed: tfjs generates those values in JS
 * (seedrandom + Marsaglia polar), so they are identical on every backend. Not wrapped in tf.tidy on purpose: tidy
 * walks its return value key by key, which for a large typed array means every element.
 */
import { getTf } from './backend';
import { Rng } from './rng';

export function randomNormalArray(size: number, std: number, seed: number): Float32Array {
  if (size === 0) return new Float32Array(0);
  const tf = getTf();
  const t = tf.randomNormal([size], 0, std, 'float32', seed);
  const out = (t.dataSync() as Float32Array).slice();
  t.dispose();
  return out;
}

/** Glorot/Xavier uniform for a [fanIn, fanOut] matrix. */
export function glorotUniform(fanIn: number, fanOut: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  const out = new Float32Array(fanIn * fanOut);
  for (let i = 0; i < out.length; i++) out[i] = (2 * rng.nextFloat() - 1) * limit;
  return out;
}
