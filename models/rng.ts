/**
 * Seeded, serialisable pseudo-random numbers for shuffling and negative sampling.
 *
 * Why not Math.random / tf.random*: training must be reproducible from a seed and resumable from a checkpoint,
 * so the generator state has to be a handful of integers we can store in JSON and restore exactly.
 * xoshiro128** is fast in JS (pure 32-bit integer ops), has a 2^128-1 period and passes BigCrush.
 */

export type RngState = [number, number, number, number];

/** splitmix32: expands one 32-bit seed into well-mixed words (recommended seeding for xoshiro). */
function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** Mixes several integers into one 32-bit seed, e.g. (seed, epoch) for per-epoch shuffles. */
export function mixSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    const next = splitmix32((h ^ (p >>> 0)) >>> 0);
    h = next();
    h = (h ^ Math.imul(p | 0, 0x27d4eb2d)) >>> 0;
  }
  return h >>> 0;
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number | RngState) {
    if (Array.isArray(seed)) {
      [this.s0, this.s1, this.s2, this.s3] = seed.map((v) => v >>> 0) as RngState;
    } else {
      const sm = splitmix32(seed);
      this.s0 = sm();
      this.s1 = sm();
      this.s2 = sm();
      this.s3 = sm();
    }
    // The all-zero state is a fixed point of xoshiro; never allow it.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Uniform uint32. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    this.s0 >>>= 0;
    this.s1 >>>= 0;
    this.s2 >>>= 0;
    return result;
  }

  /** Uniform float in [0, 1) with 32 bits of randomness. */
  nextFloat(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n) via floor(u * n): bias < n / 2^32, irrelevant for n up to millions. */
  nextInt(n: number): number {
    return Math.floor(this.nextFloat() * n);
  }

  getState(): RngState {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  setState(state: RngState): void {
    [this.s0, this.s1, this.s2, this.s3] = state.map((v) => v >>> 0) as RngState;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** In-place Fisher-Yates shuffle. */
export function shuffleInPlace(arr: Int32Array, rng: Rng): void {
  for (let i = arr.length - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1);
    const t = arr[i];
    arr[i] = arr[j];
    arr[j] = t;
  }
}

/** Permutation of 0..n-1 that depends only on (seed, epoch), so a resumed run can rebuild it without storing it. */
export function epochPermutation(n: number, seed: number, epoch: number): Int32Array {
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  shuffleInPlace(perm, new Rng(mixSeed(seed, 0x5eed, epoch)));
  return perm;
}

/**
 * Walker/Vose alias table: O(1) draws from a fixed discrete distribution (popularity-smoothed negatives).
 * Built once per training run; sampling uses the caller's Rng so the draw sequence is part of the checkpointed state.
 */
export class AliasSampler {
  readonly n: number;
  private readonly prob: Float64Array;
  private readonly alias: Int32Array;

  constructor(weights: ArrayLike<number>) {
    const n = weights.length;
    if (n === 0) throw new Error('AliasSampler: empty distribution');
    this.n = n;
    this.prob = new Float64Array(n);
    this.alias = new Int32Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const w = weights[i];
      if (!(w >= 0) || !Number.isFinite(w)) throw new Error(`AliasSampler: invalid weight ${w} at ${i}`);
      total += w;
    }
    if (total <= 0) throw new Error('AliasSampler: all weights are zero');
    const scaled = new Float64Array(n);
    const small: number[] = [];
    const large: number[] = [];
    for (let i = 0; i < n; i++) {
      scaled[i] = (weights[i] * n) / total;
      (scaled[i] < 1 ? small : large).push(i);
    }
    while (small.length > 0 && large.length > 0) {
      const s = small.pop() as number;
      const l = large.pop() as number;
      this.prob[s] = scaled[s];
      this.alias[s] = l;
      scaled[l] = scaled[l] + scaled[s] - 1;
      (scaled[l] < 1 ? small : large).push(l);
    }
    for (const i of large) this.prob[i] = 1;
    for (const i of small) this.prob[i] = 1; // numerical leftovers
  }

  sample(rng: Rng): number {
    const i = rng.nextInt(this.n);
    return rng.nextFloat() < this.prob[i] ? i : this.alias[i];
  }
}
