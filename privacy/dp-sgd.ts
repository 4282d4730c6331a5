import { DEFAULT_RDP_ORDERS, RdpAccountant } from './accountant';
import type { SecureRng } from './rng';

/**
 * What DP-SGD needs from the privacy library: the accounting of (σ, q, steps) composed with the run's other
 * releases, calibration of σ, and the two random draws of each step — the Poisson sample of users and the
 * Gaussian noise — from the secure generator. The tensor work lives in models/dp-sgd.ts.
 */

const TWO_32 = 4294967296;
const TWO_52 = 4503599627370496;

/**
 * Poisson sampling includes each user iff a uniform 32-bit integer is below `threshold`, so the rate actually
 * used is threshold / 2³² exactly. Rounding the configured rate *up* to that grid and accounting with the
 * rounded value keeps the accountant's q ≥ the true inclusion probability (the RDP bound grows with q).
 */
export function quantizeSamplingRate(q: number): { q: number; threshold: number } {
  if (!(q > 0 && q <= 1)) throw new RangeError(`sampling rate must be in (0, 1], got ${q}`);
  const threshold = Math.min(TWO_32, Math.ceil(q * TWO_32));
  return { q: threshold / TWO_32, threshold };
}

/** Indices in [0, n) kept by independent Bernoulli(threshold / 2³²) trials (Poisson subsampling). */
export function poissonSubsample(rng: SecureRng, n: number, threshold: number): Int32Array {
  if (threshold >= TWO_32) return Int32Array.from({ length: n }, (_, i) => i);
  const words = new Uint32Array(rng.bytes(4 * n).buffer);
  let count = 0;
  for (let i = 0; i < n; i++) if (words[i] < threshold) count++;
  const out = new Int32Array(count);
  let k = 0;
  for (let i = 0; i < n; i++) if (words[i] < threshold) out[k++] = i;
  return out;
}

const POW2_NEG = Float64Array.from({ length: 1024 }, (_, g) => Math.pow(2, -g));

/**
 * `count` full-precision uniforms on (0, 1) (Mironov's U*, the same construction as
 * `SecureRng.uniformOpenFullPrecision`), read from one bulk draw of bytes: a geometric binary exponent from
 * the leading zeros of a random word (more words in the 2⁻³² case it is all zero) and 52 uniform mantissa bits.
 * Log and cos/sin of these never meet the coarse grid near 0 that a k·2⁻⁵³ uniform would have.
 */
function fillUniformOpen(rng: SecureRng, out: Float64Array): void {
  const words = new Uint32Array(rng.bytes(12 * out.length).buffer);
  for (let k = 0; k < out.length; k++) {
    let g = 1;
    let w = words[3 * k];
    while (w === 0 && g <= 1022) {
      g += 32;
      w = rng.uint32();
    }
    if (w !== 0) g += Math.clz32(w);
    if (g > 1022) g = 1022;
    const mantissa = (words[3 * k + 1] >>> 12) * TWO_32 + words[3 * k + 2];
    out[k] = (1 + mantissa / TWO_52) * POW2_NEG[g];
  }
}

/**
 * Adds N(0, std²) noise to every entry of `out`, from the secure generator. Each value is
 * (Z₁ + Z₂ + Z₃ + Z₄) / 2 for four independent Box-Muller normals, which is again N(0, 1): Opacus' `secure_mode`
 * mitigation (after Holohan & Braghin 2021) against the floating-point attacks on single Gaussian draws of
 * Jin et al. 2022. It is a mitigation, not a proof; docs/privacy.md explains why float noise is accepted here.
 */
export function addGaussianNoise(rng: SecureRng, out: Float32Array, std: number): void {
  if (!(std >= 0) || !Number.isFinite(std)) throw new RangeError(`noise std must be finite and >= 0: ${std}`);
  if (std === 0) return;
  const CHUNK = 16384;
  const u = new Float64Array(4 * CHUNK);
  const half = std / 2;
  for (let start = 0; start < out.length; start += CHUNK) {
    const n = Math.min(CHUNK, out.length - start);
    const uu = u.subarray(0, 4 * n);
    fillUniformOpen(rng, uu);
    for (let k = 0; k < n; k++) {
      // Two Box-Muller pairs give four independent standard normals.
      const r1 = Math.sqrt(-2 * Math.log(uu[4 * k]));
      const t1 = 2 * Math.PI * uu[4 * k + 1];
      const r2 = Math.sqrt(-2 * Math.log(uu[4 * k + 2]));
      const t2 = 2 * Math.PI * uu[4 * k + 3];
      const z = r1 * Math.cos(t1) + r1 * Math.sin(t1) + r2 * Math.cos(t2) + r2 * Math.sin(t2);
      out[start + k] += half * z;
    }
  }
}

/** One step's randomness for DP-SGD, from a secure generator (models/dp-sgd.ts takes this interface). */
export interface DpSgdRandomness {
  /** Poisson sample of [0, n) at the quantised rate. */
  sampleUsers(n: number): Int32Array;
  /** Adds N(0, std²) to each entry. */
  addNoise(out: Float32Array, std: number): void;
}

export function secureDpSgdRandomness(rng: SecureRng, samplingRate: number): DpSgdRandomness {
  const { threshold } = quantizeSamplingRate(samplingRate);
  return {
    sampleUsers: (n) => poissonSubsample(rng, n, threshold),
    addNoise: (out, std) => addGaussianNoise(rng, out, std),
  };
}

export interface DpSgdAccounting {
  /** Poisson sampling rate (already quantised with quantizeSamplingRate). */
  samplingRate: number;
  noiseMultiplier: number;
  steps: number;
  /** zCDP ρ of the run's other releases, composed in RDP (αρ at order α) with the DP-SGD curve. */
  otherRho: number;
  delta: number;
}

/** ε at δ of DP-SGD (σ, q, steps) composed with ρ-zCDP releases, by the RDP accountant. */
export function composedDpSgdEpsilon(a: DpSgdAccounting): number {
  const acc = new RdpAccountant(DEFAULT_RDP_ORDERS).composeSubsampledGaussian(
    a.samplingRate,
    a.noiseMultiplier,
    a.steps,
  );
  if (a.otherRho > 0) acc.composeZcdp(a.otherRho);
  return acc.getEpsilon(a.delta);
}

/**
 * The smallest noise multiplier σ (to a relative 10⁻⁵) whose DP-SGD composed with the other releases has
 * ε ≤ targetEpsilon at δ. Bisection on σ (ε decreases with σ); returns the upper, conservative end.
 */
export function calibrateNoiseMultiplier(
  a: Omit<DpSgdAccounting, 'noiseMultiplier'> & { targetEpsilon: number },
): number {
  const eps = (sigma: number) => composedDpSgdEpsilon({ ...a, noiseMultiplier: sigma });
  const refuse = () =>
    new RangeError(
      `no noise multiplier reaches ε ≤ ${a.targetEpsilon} (the other releases alone spend ρ = ${a.otherRho})`,
    );
  // Zero steps is the limit σ → ∞: if the other releases alone do not fit, nothing will.
  if (composedDpSgdEpsilon({ ...a, steps: 0, noiseMultiplier: 1 }) >= a.targetEpsilon) throw refuse();
  let hi = 1;
  while (eps(hi) > a.targetEpsilon) {
    hi *= 2;
    if (hi > 1e4) throw refuse();
  }
  let lo = hi / 2;
  while (lo > 1e-3 && eps(lo) <= a.targetEpsilon) {
    hi = lo;
    lo /= 2;
  }
  while ((hi - lo) / hi > 1e-5) {
    const mid = (lo + hi) / 2;
    if (eps(mid) <= a.targetEpsilon) hi = mid;
    else lo = mid;
  }
  return hi;
}
