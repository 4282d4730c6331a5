/**
 * Seeded pseudo-random numbers. `Math.random` is never used in the generator: the same options and seed must
 * give byte-identical files on every machine and Node version, so all randomness flows from here.
 */

const TWO_POW_32 = 4294967296;

// Module-level aliases: inside jest's vm sandbox every `Math.x` is a slow global lookup; locals are not.
const { floor, log, sqrt, exp, pow } = Math;

/** splitmix32 step: turns arbitrary (even sequential) integers into well-mixed 32-bit words; used for seeding. */
export function mix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/**
 * Derives an independent 32-bit seed from a user seed plus stream labels (numbers). Separate streams let one
 * part of the model (e.g. dirty-row injection) change without perturbing the others (e.g. the clean events).
 */
export function deriveSeed(seed: number, ...parts: number[]): number {
  // Fold in both halves so seeds beyond 2^32 (or negative) still differ.
  let h = mix32((seed >>> 0) ^ 0x5bd1e995);
  h = mix32(h ^ (floor(seed / TWO_POW_32) >>> 0));
  for (const p of parts) h = mix32(h ^ (p >>> 0) ^ (floor(p / TWO_POW_32) >>> 0));
  return h;
}

/** Stream labels, so call sites read `Streams.catalog` rather than a magic number. */
export const Streams = {
  catalog: 1,
  activity: 2,
  user: 3,
  dirty: 4,
  bots: 5,
} as const;

/**
 * sfc32 (Chris Doty-Humphrey's Small Fast Counting generator): 128-bit state, passes PractRand, and is made of
 * 32-bit integer ops that V8 keeps in registers — several times faster than a BigInt-based generator.
 */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare = 0;
  private hasSpare = false;

  constructor(seed: number) {
    this.a = mix32(seed);
    this.b = mix32(this.a ^ 0x6a09e667);
    this.c = mix32(this.b ^ 0xbb67ae85);
    this.d = 1;
    // Discard the first outputs: they are still correlated with the seed words.
    for (let i = 0; i < 12; i++) this.u32();
  }

  static derive(seed: number, ...parts: number[]): Rng {
    return new Rng(deriveSeed(seed, ...parts));
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1) with 32 bits of resolution (plenty for sampling; not for 53-bit doubles). */
  next(): number {
    return this.u32() / TWO_POW_32;
  }

  /** Uniform integer in [0, n) for n up to 2^32; the modulo bias of the float method is below 2^-20 here. */
  int(n: number): number {
    return floor(this.next() * n);
  }

  /** Standard normal (Marsaglia polar method; caches the second value). */
  normal(): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return this.spare;
    }
    let u: number;
    let v: number;
    let s: number;
    do {
      u = 2 * this.next() - 1;
      v = 2 * this.next() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const m = sqrt((-2 * log(s)) / s);
    this.spare = v * m;
    this.hasSpare = true;
    return u * m;
  }

  /** Exponential with mean 1. */
  exponential(): number {
    return -log(1 - this.next());
  }

  logNormal(mu: number, sigma: number): number {
    return exp(mu + sigma * this.normal());
  }

  /** Gamma(shape, 1) by Marsaglia–Tsang; shapes below 1 use the boost Gamma(a) = Gamma(a+1) * U^(1/a). */
  gamma(shape: number): number {
    if (shape < 1) {
      const g = this.gamma(shape + 1);
      return g * pow(1 - this.next(), 1 / shape);
    }
    const d = shape - 1 / 3;
    const c = 1 / sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = 1 - this.next();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v;
      if (log(u) < 0.5 * x * x + d * (1 - v + log(v))) return d * v;
    }
  }

  /** In-place Fisher–Yates shuffle. */
  shuffle<T extends Int32Array | number[]>(arr: T): T {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = arr[i];
      arr[i] = arr[j];
      arr[j] = tmp;
    }
    return arr;
  }
}
