/**
 * Paired bootstrap over users: the confidence interval of mean(a) − mean(b) where a[i] and b[i] are the same
 * user's metric under two models. Pairing removes the between-user variance that dominates ranking metrics.
 */
export interface Interval {
  mean: number;
  low: number;
  high: number;
}

/** Small, fast, seedable PRNG (mulberry32): evaluation must be reproducible, not secret. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function meanInterval(
  values: ArrayLike<number>,
  samples: number,
  confidence = 0.95,
  seed = 1,
): Interval {
  const n = values.length;
  if (n === 0) return { mean: 0, low: 0, high: 0 };
  let total = 0;
  for (let i = 0; i < n; i++) total += values[i];
  const rand = mulberry32(seed);
  const means = new Float64Array(samples);
  for (let s = 0; s < samples; s++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += values[Math.floor(rand() * n)];
    means[s] = sum / n;
  }
  means.sort();
  const alpha = (1 - confidence) / 2;
  const at = (q: number) => means[Math.min(samples - 1, Math.max(0, Math.floor(q * samples)))];
  return { mean: total / n, low: at(alpha), high: at(1 - alpha) };
}

export function pairedDifferenceInterval(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  samples: number,
  confidence = 0.95,
  seed = 1,
): Interval {
  if (a.length !== b.length)
    throw new Error(`paired bootstrap needs equal lengths (${a.length} vs ${b.length})`);
  const diff = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) diff[i] = a[i] - b[i];
  return meanInterval(diff, samples, confidence, seed);
}
