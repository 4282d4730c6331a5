import { isqrt } from './numeric';
import type { SecureRng } from './rng';

/**
 * Exact samplers for the discrete Laplace and discrete Gaussian distributions, following Canonne, Kamath & Steinke
 * (2020), "The Discrete Gaussian for Differential Privacy", Algorithms 1-3. All parameters are rationals
 * (bigint numerator/denominator) and every random decision is an exact Bernoulli trial on a rational probability,
 * so the output distribution is exactly the one the privacy proof assumes: no floating point in the sampling path.
 */

/** A non-negative rational num/den with den > 0. */
export interface Rational {
  readonly num: bigint;
  readonly den: bigint;
}

function checkRational(r: Rational, what: string): void {
  if (r.den <= 0n) throw new RangeError(`${what}: denominator must be positive`);
  if (r.num < 0n) throw new RangeError(`${what}: must be non-negative`);
}

/** CKS Algorithm 1, case 0 <= γ <= 1: K is the first index with a failed Bernoulli(γ/K); return whether K is odd. */
function bernoulliExpNegAtMostOne(rng: SecureRng, num: bigint, den: bigint): boolean {
  let k = 1n;
  while (rng.bernoulli(num, den * k)) k++;
  return (k & 1n) === 1n;
}

/**
 * Exact Bernoulli(exp(-γ)) for rational γ = num/den >= 0 (CKS Algorithm 1). For γ > 1 it multiplies ⌊γ⌋ trials of
 * Bernoulli(exp(-1)) with one of Bernoulli(exp(-(γ - ⌊γ⌋))), stopping at the first failure.
 */
export function bernoulliExpNeg(rng: SecureRng, gamma: Rational): boolean {
  checkRational(gamma, 'gamma');
  let num = gamma.num;
  const den = gamma.den;
  while (num > den) {
    if (!bernoulliExpNegAtMostOne(rng, 1n, 1n)) return false;
    num -= den;
  }
  return bernoulliExpNegAtMostOne(rng, num, den);
}

/**
 * Exact discrete Laplace (two-sided geometric) with scale t/s: P[X = x] ∝ exp(-|x| · s / t) over the integers
 * (CKS Algorithm 2). `scale` = t/s must be positive.
 */
export function sampleDiscreteLaplace(rng: SecureRng, scale: Rational): bigint {
  checkRational(scale, 'scale');
  const t = scale.num;
  const s = scale.den;
  if (t <= 0n) throw new RangeError('discrete Laplace scale must be positive');
  for (;;) {
    const u = rng.uniformBigInt(t);
    if (!bernoulliExpNeg(rng, { num: u, den: t })) continue;
    let v = 0n;
    while (bernoulliExpNeg(rng, { num: 1n, den: 1n })) v++;
    const x = u + t * v; // geometric with parameter exp(-1/t)
    const y = x / s; // ⌊x / s⌋: geometric with parameter exp(-s/t)
    const negative = rng.coin();
    if (negative && y === 0n) continue; // otherwise 0 would be counted twice
    return negative ? -y : y;
  }
}

/**
 * Exact discrete Gaussian N_Z(0, σ²) for rational σ² (CKS Algorithm 3): P[X = x] ∝ exp(-x² / 2σ²).
 * Rejection sampling from a discrete Laplace of integer scale t = ⌊σ⌋ + 1, accepting Y with probability
 * exp(-(|Y| - σ²/t)² / 2σ²), a rational exponent: (|Y|·t·b - a)² / (2·a·b·t²) for σ² = a/b.
 */
export function sampleDiscreteGaussian(rng: SecureRng, sigma2: Rational): bigint {
  checkRational(sigma2, 'sigma2');
  const a = sigma2.num;
  const b = sigma2.den;
  if (a === 0n) return 0n;
  const t = isqrt(a / b) + 1n; // ⌊σ⌋ + 1 since ⌊√x⌋ = ⌊√⌊x⌋⌋
  const den = 2n * a * b * t * t;
  for (;;) {
    const y = sampleDiscreteLaplace(rng, { num: t, den: 1n });
    const absY = y < 0n ? -y : y;
    const diff = absY * t * b - a;
    if (bernoulliExpNeg(rng, { num: diff * diff, den })) return y;
  }
}

/** P[X = x] for the discrete Laplace with scale b (float; for tests and documentation, not for sampling). */
export function discreteLaplacePmf(scale: number, x: number): number {
  const r = Math.exp(-1 / scale);
  return ((1 - r) / (1 + r)) * Math.pow(r, Math.abs(x));
}

/** Normalising constant Σ_{y∈Z} exp(-y²/2σ²) (direct sum for small σ, Poisson summation for large σ). */
export function discreteGaussianNormalizer(sigma: number): number {
  if (sigma <= 0) throw new RangeError('sigma must be positive');
  if (sigma >= 8) {
    // Poisson summation: Σ_y e^{-y²/2σ²} = σ√(2π) (1 + 2 Σ_{k≥1} e^{-2π²σ²k²}); the correction is < e^-1263 here.
    return sigma * Math.sqrt(2 * Math.PI);
  }
  let sum = 1;
  for (let y = 1; ; y++) {
    const term = Math.exp((-y * y) / (2 * sigma * sigma));
    sum += 2 * term;
    if (term < 1e-18 * sum) break;
  }
  return sum;
}

/** P[X = x] for the discrete Gaussian N_Z(0, σ²) (float; for tests and calibration, not for sampling). */
export function discreteGaussianPmf(sigma: number, x: number): number {
  return Math.exp((-x * x) / (2 * sigma * sigma)) / discreteGaussianNormalizer(sigma);
}
