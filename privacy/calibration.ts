import { discreteGaussianNormalizer } from './discrete';
import { goldenMin, logErfc, logNdtr } from './numeric';

// Globals through module-local aliases: these loops run millions of times while calibrating, and inside a vm
// context (jest's test environment) every global lookup (Math, Infinity, Number) goes through the context's
// interceptors: 40x slower there (8.9 s vs 0.21 s per plan), long enough to miss an activity heartbeat.
const math = Math;
const num = Number;
const INFINITY = Infinity;

/**
 * Noise calibration and conversions between privacy definitions. Pure float math on *public* parameters only
 * (epsilon, delta, sensitivity): nothing here touches data, so floating point is fine. Every search returns the
 * conservative end of its bracket (more noise / larger epsilon), never the optimistic one.
 */

function checkPositive(name: string, x: number): void {
  if (!(x > 0) || !num.isFinite(x))
    throw new RangeError(`${name} must be a positive finite number, got ${x}`);
}

function checkDelta(delta: number): void {
  if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
}

/** a - b for a = exp(la), b = exp(lb) computed without cancellation blow-up; clamps at 0. */
function expDiff(la: number, lb: number): number {
  if (la === -INFINITY || lb >= la) return 0;
  return math.exp(la) * -math.expm1(lb - la);
}

/**
 * Exact delta of the (continuous) Gaussian mechanism with noise σ for L2 sensitivity Δ at a given epsilon
 * (Balle & Wang 2018, Theorem 8): δ = Φ(Δ/2σ - εσ/Δ) - e^ε Φ(-Δ/2σ - εσ/Δ).
 */
export function gaussianDelta(sigma: number, epsilon: number, l2Sensitivity: number): number {
  checkPositive('sigma', sigma);
  checkPositive('sensitivity', l2Sensitivity);
  if (epsilon < 0) throw new RangeError('epsilon must be >= 0');
  const u = l2Sensitivity / (2 * sigma);
  const v = (epsilon * sigma) / l2Sensitivity;
  return expDiff(logNdtr(u - v), epsilon + logNdtr(-u - v));
}

/** Bisection for the smallest σ (to relative precision 1e-12) with deltaAt(σ) <= target; returns the safe end. */
function smallestSigma(deltaAt: (sigma: number) => number, target: number, guess: number): number {
  let lo = guess;
  let hi = guess;
  while (deltaAt(hi) > target) {
    hi *= 2;
    if (hi > 1e300) throw new RangeError('no finite sigma achieves the requested delta');
  }
  while (lo > 1e-300 && deltaAt(lo) <= target) lo /= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (deltaAt(mid) <= target) hi = mid;
    else lo = mid;
  }
  return hi;
}

/**
 * The analytic Gaussian mechanism (Balle & Wang 2018): the smallest σ such that adding N(0, σ²) to a query with L2
 * sensitivity Δ is (ε, δ)-DP. Exact (the classical σ = Δ√(2 ln(1.25/δ))/ε is loose and only valid for ε < 1).
 */
export function analyticGaussianSigma(epsilon: number, delta: number, l2Sensitivity: number): number {
  checkPositive('epsilon', epsilon);
  checkDelta(delta);
  checkPositive('sensitivity', l2Sensitivity);
  const guess = (l2Sensitivity * math.sqrt(2 * math.log(1.25 / delta))) / epsilon;
  return smallestSigma((s) => gaussianDelta(s, epsilon, l2Sensitivity), delta, guess);
}

const EXACT_SUM_MAX_SIGMA = 4096;

/** Σ_{y >= m} exp(-y²/2σ²) for an integer m >= 0, summed until the remaining tail is negligible. */
function discreteGaussianUpperSum(sigma: number, m: number, normalizer: number): number {
  if (m === 0) return (normalizer + 1) / 2;
  const twoS2 = 2 * sigma * sigma;
  let sum = 0;
  for (let y = m; ; y++) {
    const term = math.exp((-y * y) / twoS2);
    sum += term;
    const ratio = math.exp(-(2 * y + 1) / twoS2); // next term / this term, decreasing in y
    if (term === 0 || (term * ratio) / (1 - ratio) < 1e-17 * sum) break;
  }
  return sum;
}

/** ∫_m^∞ exp(-y²/2σ²) dy = σ √(π/2) erfc(m / (σ√2)), in log space. */
function logGaussianIntegralFrom(sigma: number, m: number): number {
  return math.log(sigma) + 0.5 * math.log(math.PI / 2) + logErfc(m / (sigma * math.SQRT2));
}

/**
 * Upper and lower bounds on P[Y > c] for Y ~ N_Z(0, σ²): equal (a direct sum) for σ <= 4096; for larger σ a direct
 * sum over at most σ + 1 terms plus convexity bounds on the rest, relative gap O(1/σ).
 */
function discreteGaussianTail(sigma: number, c: number): { upper: number; lower: number } {
  const norm = discreteGaussianNormalizer(sigma);
  // P[Y > c] = S(⌊c⌋ + 1) / N for c >= 0, and 1 - S(-⌊c⌋) / N for c < 0 (symmetry), S(m) = Σ_{y>=m} f(y).
  const positive = c >= 0;
  const m = positive ? math.floor(c) + 1 : -math.floor(c);
  let sLow: number;
  let sHigh: number;
  if (sigma <= EXACT_SUM_MAX_SIGMA) {
    sLow = sHigh = discreteGaussianUpperSum(sigma, m, norm);
  } else {
    // Exact terms while f(y) = exp(-y²/2σ²) may be concave (y < σ + 1), then f is convex on [M - ½, ∞), so
    // the trapezoid rule over-estimates and the midpoint rule under-estimates its integral:
    //   ∫_M^∞ f + f(M)/2 <= Σ_{y>=M} f(y) <= ∫_{M-½}^∞ f.
    const M = math.max(m, math.ceil(sigma) + 1);
    let exact = 0;
    for (let y = m; y < M; y++) exact += math.exp((-y * y) / (2 * sigma * sigma));
    sLow = exact + math.exp(logGaussianIntegralFrom(sigma, M)) + math.exp((-M * M) / (2 * sigma * sigma)) / 2;
    sHigh = exact + math.exp(logGaussianIntegralFrom(sigma, M - 0.5));
  }
  if (positive) return { upper: math.min(1, sHigh / norm), lower: sLow / norm };
  return { upper: math.min(1, 1 - sLow / norm), lower: math.max(0, 1 - sHigh / norm) };
}

/** A rigorous upper bound on P[Y > c] for Y ~ N_Z(0, σ²) (exact sum for σ <= 4096). */
export function discreteGaussianTailUpper(sigma: number, c: number): number {
  checkPositive('sigma', sigma);
  return discreteGaussianTail(sigma, c).upper;
}

/**
 * An upper bound on the delta of the discrete Gaussian mechanism N_Z(0, σ²) for an integer-valued scalar query with
 * sensitivity Δ (Canonne, Kamath & Steinke 2020, Theorem 7):
 *   δ = P[Y > εσ²/Δ - Δ/2] - e^ε P[Y > εσ²/Δ + Δ/2].
 * The tails are summed exactly for σ <= 4096 and bounded rigorously (trapezoid/midpoint on the convex part) above.
 */
export function discreteGaussianDelta(sigma: number, epsilon: number, sensitivity: number): number {
  checkPositive('sigma', sigma);
  checkPositive('sensitivity', sensitivity);
  if (epsilon < 0) throw new RangeError('epsilon must be >= 0');
  const base = (epsilon * sigma * sigma) / sensitivity;
  const a = discreteGaussianTail(sigma, base - sensitivity / 2).upper;
  const b = discreteGaussianTail(sigma, base + sensitivity / 2).lower;
  return math.max(0, a - math.exp(epsilon) * b);
}

/** The smallest σ for which the scalar discrete Gaussian mechanism is (ε, δ)-DP (CKS Theorem 7). */
export function discreteGaussianSigma(epsilon: number, delta: number, sensitivity: number): number {
  checkPositive('epsilon', epsilon);
  checkDelta(delta);
  checkPositive('sensitivity', sensitivity);
  const guess = analyticGaussianSigma(epsilon, delta, sensitivity);
  return smallestSigma((s) => discreteGaussianDelta(s, epsilon, sensitivity), delta, guess);
}

/** zCDP of the (discrete or continuous) Gaussian mechanism: ρ = Δ² / (2σ²) (Bun & Steinke 2016; CKS Thm 14). */
export function gaussianRho(l2Sensitivity: number, sigma: number): number {
  checkPositive('sigma', sigma);
  if (!(l2Sensitivity >= 0)) throw new RangeError('sensitivity must be >= 0');
  return (l2Sensitivity * l2Sensitivity) / (2 * sigma * sigma);
}

/** The σ giving exactly ρ-zCDP for L2 sensitivity Δ: σ = Δ / √(2ρ). */
export function gaussianSigmaForRho(rho: number, l2Sensitivity: number): number {
  checkPositive('rho', rho);
  checkPositive('sensitivity', l2Sensitivity);
  return l2Sensitivity / math.sqrt(2 * rho);
}

/** ε-DP implies (ε²/2)-zCDP (Bun & Steinke 2016, Proposition 1.4). */
export function pureDpToRho(epsilon: number): number {
  if (!(epsilon >= 0)) throw new RangeError('epsilon must be >= 0');
  return (epsilon * epsilon) / 2;
}

/**
 * Epsilon of one RDP point (α, r) at delta, by the conversion of Canonne, Kamath & Steinke 2020 (Prop. 12) / Balle
 * et al. 2020 (Thm. 21): ε = r + log(1 - 1/α) - (log δ + log α) / (α - 1). The same formula TF Privacy's
 * dp_accounting and Opacus use.
 */
export function rdpPointToEpsilon(alpha: number, rdp: number, delta: number): number {
  return rdp + math.log1p(-1 / alpha) - (math.log(delta) + math.log(alpha)) / (alpha - 1);
}

/** log δ of one RDP point (α, r) at epsilon (the inverse of rdpPointToEpsilon). */
export function rdpPointToLogDelta(alpha: number, rdp: number, epsilon: number): number {
  return (alpha - 1) * (rdp - epsilon + math.log1p(-1 / alpha)) - math.log(alpha);
}

/**
 * ρ-zCDP → (ε, δ)-DP: the smaller of Bun & Steinke's ε = ρ + 2√(ρ ln(1/δ)) and the CKS 2020 (Corollary 13)
 * conversion optimised over the Rényi order α > 1 (ρ-zCDP is (α, αρ)-RDP for every α).
 */
export function zcdpToEpsilon(rho: number, delta: number): number {
  if (!(rho >= 0) || !num.isFinite(rho)) throw new RangeError(`rho must be a finite number >= 0, got ${rho}`);
  checkDelta(delta);
  if (rho === 0) return 0;
  const classic = rho + 2 * math.sqrt(rho * math.log(1 / delta));
  // ε(α) is unimodal in log(α - 1); search a wide bracket.
  const best = goldenMin((u) => rdpPointToEpsilon(1 + math.exp(u), (1 + math.exp(u)) * rho, delta), -20, 30);
  return math.max(0, math.min(classic, best.fx));
}

/** ρ-zCDP → δ at a given ε (CKS 2020 Corollary 13, optimised over α). */
export function zcdpToDelta(rho: number, epsilon: number): number {
  if (!(rho >= 0) || !num.isFinite(rho)) throw new RangeError(`rho must be a finite number >= 0, got ${rho}`);
  if (rho === 0) return 0;
  const best = goldenMin(
    (u) => rdpPointToLogDelta(1 + math.exp(u), (1 + math.exp(u)) * rho, epsilon),
    -20,
    30,
  );
  return math.min(1, math.exp(best.fx));
}

/** The largest ρ whose zCDP guarantee converts to (ε, δ)-DP (for calibrating vector Gaussian releases). */
export function rhoForApproxDp(epsilon: number, delta: number): number {
  checkPositive('epsilon', epsilon);
  checkDelta(delta);
  let lo = 0;
  let hi = epsilon;
  while (zcdpToEpsilon(hi, delta) <= epsilon) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-15 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (zcdpToEpsilon(mid, delta) <= epsilon) lo = mid;
    else hi = mid;
  }
  return lo;
}
