import {
  discreteGaussianSigma,
  gaussianRho,
  gaussianSigmaForRho,
  pureDpToRho,
  rhoForApproxDp,
  zcdpToEpsilon,
} from './calibration';
import { sampleDiscreteGaussian, sampleDiscreteLaplace } from './discrete';
import { doubleToRational, nextUp } from './numeric';
import type { SecureRng } from './rng';
import { assertIssuedSensitivity, type Sensitivity } from './sensitivity';
import type { PrivacySpend } from './spend';

/**
 * Privacy mechanisms. Each one has two entry points sharing one calibration:
 *  - `xxxSpend(sensitivity, params)`: the PrivacySpend, computed from public parameters only, so the ledger can
 *    reserve it *before* any data is read;
 *  - `xxxMechanism(values, sensitivity, params, rng)`: the noisy values and the same spend.
 *
 * Integer-valued queries (counts) use the exact discrete Laplace / discrete Gaussian samplers. Real-valued queries
 * use the snapping mechanism (Laplace) or a grid + discrete Gaussian (Gaussian), both of which keep the floating-point
 * implementation from leaking the input through the low-order bits of the output (Mironov 2012).
 */

export interface EpsilonParams {
  readonly epsilon: number;
}
/** (ε, δ)-DP target, or a ρ-zCDP target (with the δ at which ε is reported). */
export type GaussianParams =
  { readonly epsilon: number; readonly delta: number } | { readonly rho: number; readonly delta: number };

export interface Release<V> {
  readonly value: V;
  readonly spend: PrivacySpend;
}

function checkEpsilon(epsilon: number): void {
  if (!(epsilon > 0) || !Number.isFinite(epsilon))
    throw new RangeError(`epsilon must be positive, got ${epsilon}`);
}

function checkDelta(delta: number): void {
  if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
}

function requireInteger(s: Sensitivity): void {
  if (!s.integer)
    throw new TypeError(`query ${s.query} is real-valued; use laplaceMechanism / gaussianMechanism`);
}

function requirePositive(s: Sensitivity, norm: 'l1' | 'l2'): number {
  const v = s[norm];
  if (!(v > 0))
    throw new RangeError(`query ${s.query} has zero ${norm} sensitivity: nothing to protect or a bug`);
  return v;
}

function asArray(values: number | readonly number[]): { list: readonly number[]; scalar: boolean } {
  return typeof values === 'number' ? { list: [values], scalar: true } : { list: values, scalar: false };
}

function shape<V extends number | readonly number[]>(out: number[], scalar: boolean): V {
  return (scalar ? out[0] : out) as unknown as V;
}

function toSafeNumber(x: bigint): number {
  if (x > BigInt(Number.MAX_SAFE_INTEGER) || x < -BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new RangeError('noisy count outside the safe integer range');
  }
  return Number(x);
}

function checkCounts(list: readonly number[]): void {
  for (const v of list)
    if (!Number.isSafeInteger(v)) throw new TypeError(`counts must be safe integers, got ${v}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Discrete Laplace (integer queries, pure ε-DP)
// ---------------------------------------------------------------------------------------------------------------

/**
 * Discrete Laplace mechanism: add Lap_Z(Δ₁/ε) per coordinate; ε-DP for L1 sensitivity Δ₁ (the ratio of pmfs at
 * neighbouring outputs is exp(ε |x - x'|₁ / Δ₁) <= e^ε). ε is used as the exact rational value of the double, so the
 * guarantee is exactly ε. Also (ε²/2)-zCDP.
 */
export function discreteLaplaceSpend(s: Sensitivity, p: EpsilonParams): PrivacySpend {
  assertIssuedSensitivity(s);
  requireInteger(s);
  checkEpsilon(p.epsilon);
  const l1 = requirePositive(s, 'l1');
  return {
    mechanism: 'discrete-laplace',
    epsilon: p.epsilon,
    delta: 0,
    rho: pureDpToRho(p.epsilon),
    sensitivity: { query: s.query, norm: 'L1', value: l1 },
    params: { scale: l1 / p.epsilon },
  };
}

export function discreteLaplaceMechanism<V extends number | readonly number[]>(
  values: V,
  s: Sensitivity,
  p: EpsilonParams,
  rng: SecureRng,
): Release<V> {
  const spend = discreteLaplaceSpend(s, p);
  const { list, scalar } = asArray(values);
  checkCounts(list);
  // scale t/s = Δ₁ / ε with ε = num/den exactly: t = Δ₁·den, s = num (Δ₁ is an integer for integer queries).
  const eps = doubleToRational(p.epsilon);
  const l1 = BigInt(Math.ceil(s.l1));
  const scale = { num: l1 * eps.den, den: eps.num };
  const out = list.map((v) => toSafeNumber(BigInt(v) + sampleDiscreteLaplace(rng, scale)));
  return { value: shape<V>(out, scalar), spend };
}

// ---------------------------------------------------------------------------------------------------------------
// Discrete Gaussian (integer queries, zCDP / approximate DP)
// ---------------------------------------------------------------------------------------------------------------

interface GaussianCalibration {
  sigma: number;
  rho: number;
  epsilon: number;
  delta: number;
  calibration: string;
}

/**
 * σ for an integer query with L2 sensitivity l2 (after any grid rounding). When one user changes at most one
 * coordinate (L0 <= 1, `scalarShift` = the max integer shift) and an (ε, δ) target is given, CKS Theorem 7 is exact
 * and tighter; otherwise calibrate through zCDP (ρ = Δ²/2σ², CKS Thm 14 for vectors) and its conversion.
 */
function calibrateDiscreteGaussian(
  l2: number,
  scalarShift: number | undefined,
  p: GaussianParams,
): GaussianCalibration {
  checkDelta(p.delta);
  if ('rho' in p) {
    if (!(p.rho > 0) || !Number.isFinite(p.rho)) throw new RangeError(`rho must be positive, got ${p.rho}`);
    const sigma = gaussianSigmaForRho(p.rho, l2);
    return { sigma, rho: p.rho, epsilon: zcdpToEpsilon(p.rho, p.delta), delta: p.delta, calibration: 'zcdp' };
  }
  checkEpsilon(p.epsilon);
  if (scalarShift !== undefined) {
    const sigma = discreteGaussianSigma(p.epsilon, p.delta, scalarShift);
    return {
      sigma,
      rho: gaussianRho(l2, sigma),
      epsilon: p.epsilon,
      delta: p.delta,
      calibration: 'CKS20-Thm7',
    };
  }
  const rho = rhoForApproxDp(p.epsilon, p.delta);
  return {
    sigma: gaussianSigmaForRho(rho, l2),
    rho,
    epsilon: p.epsilon,
    delta: p.delta,
    calibration: 'zcdp-CKS20-Cor13',
  };
}

/** σ² as an exact rational, rounded up a hair so the sampled noise is never smaller than calibrated. */
function sigma2Rational(sigma: number): { num: bigint; den: bigint } {
  return doubleToRational(nextUp(sigma * sigma * (1 + 1e-12)));
}

function discreteGaussianCalibration(s: Sensitivity, p: GaussianParams): GaussianCalibration {
  const l2 = requirePositive(s, 'l2');
  const scalarShift = s.l0 <= 1 && Number.isInteger(s.linf) ? s.linf : undefined;
  return calibrateDiscreteGaussian(l2, scalarShift, p);
}

function gaussianSpendOf(
  mechanism: string,
  s: Sensitivity,
  cal: GaussianCalibration,
  extra: PrivacySpend['params'],
): PrivacySpend {
  return {
    mechanism,
    epsilon: cal.epsilon,
    delta: cal.delta,
    rho: cal.rho,
    sensitivity: { query: s.query, norm: 'L2', value: s.l2 },
    params: { sigma: cal.sigma, calibration: cal.calibration, ...extra },
  };
}

/** Spend of the discrete Gaussian mechanism on an integer query (uses the L2 sensitivity). */
export function discreteGaussianSpend(s: Sensitivity, p: GaussianParams): PrivacySpend {
  assertIssuedSensitivity(s);
  requireInteger(s);
  return gaussianSpendOf('discrete-gaussian', s, discreteGaussianCalibration(s, p), {});
}

/** Adds exact discrete Gaussian noise N_Z(0, σ²) (CKS 2020) to each count. */
export function discreteGaussianMechanism<V extends number | readonly number[]>(
  values: V,
  s: Sensitivity,
  p: GaussianParams,
  rng: SecureRng,
): Release<V> {
  assertIssuedSensitivity(s);
  requireInteger(s);
  const cal = discreteGaussianCalibration(s, p);
  const spend = gaussianSpendOf('discrete-gaussian', s, cal, {});
  const { list, scalar } = asArray(values);
  checkCounts(list);
  const sigma2 = sigma2Rational(cal.sigma);
  const out = list.map((v) => toSafeNumber(BigInt(v) + sampleDiscreteGaussian(rng, sigma2)));
  return { value: shape<V>(out, scalar), spend };
}

// ---------------------------------------------------------------------------------------------------------------
// Laplace with snapping (real queries, pure ε-DP) — Mironov 2012
// ---------------------------------------------------------------------------------------------------------------

/** Smallest power of two >= x (x > 0), exactly. */
export function powerOfTwoAtLeast(x: number): number {
  if (!(x > 0) || !Number.isFinite(x)) throw new RangeError(`expected a positive finite number, got ${x}`);
  let e = Math.ceil(Math.log2(x));
  while (Math.pow(2, e) < x) e++;
  while (Math.pow(2, e - 1) >= x) e--;
  return Math.pow(2, e);
}

export interface SnappingParams extends EpsilonParams {
  /** B: inputs are clamped to [-B, B] and so are outputs. */
  readonly bound: number;
}

interface SnappingCalibration {
  lambda: number;
  Lambda: number;
  bound: number;
  analysisBound: number;
}

/**
 * Mironov's Theorem (2012, Sec. 5.2): for sensitivity 1 and λ < B < 2^46·λ, clamp_B(⌊clamp_B(x) ⊕ S⊗λ⊗ln(U*)⌉_Λ) is
 * (1/λ + 2^-49·B/λ)-DP. The 2^-49·B/λ term is the floating-point error of the noise computation on values bounded
 * by B; the exact part scales with the sensitivity, and the error term is paid once per coordinate that can change,
 * so for L1 sensitivity Δ₁ and L0 = d': ε = (Δ₁ + d'·2^-49·B)/λ, i.e. λ = (Δ₁ + d'·2^-49·B)/ε.
 * A B that is smaller than needed for the theorem only tightens the clamp: the analysis then uses B' = max(B, 4Δ₁/ε),
 * valid because clamp_B = clamp_B ∘ clamp_B' (post-processing).
 */
function calibrateSnapping(s: Sensitivity, p: SnappingParams): SnappingCalibration {
  checkEpsilon(p.epsilon);
  if (!(p.bound > 0) || !Number.isFinite(p.bound))
    throw new RangeError(`bound must be positive, got ${p.bound}`);
  const l1 = requirePositive(s, 'l1');
  const changed = Math.max(1, s.l0);
  const analysisBound = Math.max(p.bound, (4 * l1) / p.epsilon);
  // Two ulps up: λ must not fall below the real-number value because of rounding.
  const lambda = nextUp(nextUp((l1 + changed * Math.pow(2, -49) * analysisBound) / p.epsilon));
  if (!(analysisBound < Math.pow(2, 46) * lambda)) {
    throw new RangeError(`bound ${p.bound} is too large for the noise scale ${lambda} (needs B < 2^46·λ)`);
  }
  return { lambda, Lambda: powerOfTwoAtLeast(lambda), bound: p.bound, analysisBound };
}

export function laplaceSpend(s: Sensitivity, p: SnappingParams): PrivacySpend {
  assertIssuedSensitivity(s);
  const cal = calibrateSnapping(s, p);
  return {
    mechanism: 'laplace-snapping',
    epsilon: p.epsilon,
    delta: 0,
    rho: pureDpToRho(p.epsilon),
    sensitivity: { query: s.query, norm: 'L1', value: s.l1 },
    params: { lambda: cal.lambda, Lambda: cal.Lambda, bound: cal.bound, analysisBound: cal.analysisBound },
  };
}

function clamp(x: number, b: number): number {
  return x < -b ? -b : x > b ? b : x;
}

/** One snapped Laplace draw around x (already a double): the formula of Mironov's theorem, step by step. */
export function snappedLaplace(
  x: number,
  cal: { lambda: number; Lambda: number; bound: number },
  rng: SecureRng,
): number {
  if (Number.isNaN(x)) throw new TypeError('NaN input to the Laplace mechanism');
  const u = rng.uniformOpenFullPrecision(); // U*: every double in (0,1) with its true probability
  const sign = rng.coin() ? 1 : -1; // S
  const noise = sign * cal.lambda * Math.log(u); // S ⊗ λ ⊗ LN(U*): Laplace(λ) in floating point
  const y = clamp(x, cal.bound) + noise;
  // ⌊·⌉_Λ: Λ is a power of two, so y / Λ and k·Λ are exact; Math.round breaks ties towards +∞.
  const snapped = Math.round(y / cal.Lambda) * cal.Lambda;
  // + 0 turns -0 into 0: the sign of a zero would reveal on which side of 0 the unrounded value fell.
  return clamp(snapped, cal.bound) + 0;
}

/**
 * Laplace mechanism for real values with Mironov's snapping: ε-DP for L1 sensitivity Δ₁, outputs on the Λ grid
 * (or ±B when clamped), so no floating-point artefact of the noise can reveal the input.
 */
export function laplaceMechanism<V extends number | readonly number[]>(
  values: V,
  s: Sensitivity,
  p: SnappingParams,
  rng: SecureRng,
): Release<V> {
  const spend = laplaceSpend(s, p);
  const cal = calibrateSnapping(s, p);
  const { list, scalar } = asArray(values);
  return {
    value: shape<V>(
      list.map((x) => snappedLaplace(x, cal, rng)),
      scalar,
    ),
    spend,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Gaussian for real values: deterministic rounding to a power-of-two grid + discrete Gaussian
// ---------------------------------------------------------------------------------------------------------------

export type RealGaussianParams = GaussianParams & {
  /** Optional B: inputs are clamped to [-B, B] before rounding. */
  readonly bound?: number;
};

interface GridCalibration {
  grid: number;
  gridShift: number | undefined;
  gridL2: number;
  cal: GaussianCalibration;
}

/**
 * Grid γ = a power of two with Δ₂/γ >= 1024·√d' (d' = coordinates one user can change), so the rounding overhead
 * on the sensitivity is at most ~0.1%. Rounding x ↦ round(x/γ) moves each changed coordinate by at most 1/2 on each
 * side: ‖round(x/γ) - round(x'/γ)‖₂ <= Δ₂/γ + √d'; for one changed coordinate the shift is the integer ⌈Δ∞/γ⌉
 * (|⌊a+½⌋ - ⌊b+½⌋| <= ⌈|a - b|⌉).
 */
function calibrateRealGaussian(s: Sensitivity, p: RealGaussianParams): GridCalibration {
  const l2 = requirePositive(s, 'l2');
  const changed = Math.max(1, s.l0);
  const grid = Math.pow(2, Math.floor(Math.log2(l2 / (1024 * Math.sqrt(changed)))));
  if (s.l0 <= 1) {
    const gridShift = Math.ceil(s.linf / grid);
    return { grid, gridShift, gridL2: gridShift, cal: calibrateDiscreteGaussian(gridShift, gridShift, p) };
  }
  const gridL2 = l2 / grid + Math.sqrt(changed);
  return { grid, gridShift: undefined, gridL2, cal: calibrateDiscreteGaussian(gridL2, undefined, p) };
}

export function gaussianSpend(s: Sensitivity, p: RealGaussianParams): PrivacySpend {
  assertIssuedSensitivity(s);
  const g = calibrateRealGaussian(s, p);
  return gaussianSpendOf('gaussian-discretised', s, g.cal, {
    grid: g.grid,
    gridL2: g.gridL2,
    sigmaReal: g.cal.sigma * g.grid,
    ...(p.bound !== undefined ? { bound: p.bound } : {}),
  });
}

/**
 * Gaussian mechanism for real values: clamp (optional), round to the grid γZ, add exact discrete Gaussian noise in
 * grid units, scale back by γ (exact: γ is a power of two). The output distribution depends on the input only
 * through the integer round(x/γ), so the privacy analysis is that of the discrete Gaussian with no floating-point
 * gap. The reported σ in real units is σ_grid·γ.
 */
export function gaussianMechanism<V extends number | readonly number[]>(
  values: V,
  s: Sensitivity,
  p: RealGaussianParams,
  rng: SecureRng,
): Release<V> {
  const spend = gaussianSpend(s, p);
  const g = calibrateRealGaussian(s, p);
  const sigma2 = sigma2Rational(g.cal.sigma);
  const { list, scalar } = asArray(values);
  const out = list.map((x) => {
    if (!Number.isFinite(x)) throw new TypeError(`non-finite input to the Gaussian mechanism: ${x}`);
    const v = p.bound !== undefined ? clamp(x, p.bound) : x;
    const units = v / g.grid; // exact (power of two), barring underflow
    if (Math.abs(units) >= 2 ** 52) throw new RangeError('value too large for the grid; pass a bound');
    const k = BigInt(Math.floor(units + 0.5));
    return toSafeNumber(k + sampleDiscreteGaussian(rng, sigma2)) * g.grid;
  });
  return { value: shape<V>(out, scalar), spend };
}
