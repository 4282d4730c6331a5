import { rdpPointToEpsilon, rdpPointToLogDelta, zcdpToEpsilon } from './calibration';
import { logAdd, logBinom, logErfc } from './numeric';
import type { PrivacySpend } from './spend';

// Globals through module-local aliases: these loops run millions of times while calibrating, and inside a vm
// context (jest's test environment) every global lookup (Math, Infinity, Number) goes through the context's
// interceptors: 40x slower there (8.9 s vs 0.21 s per plan), long enough to miss an activity heartbeat.
const math = Math;
const num = Number;
const INFINITY = Infinity;

/**
 * Rényi-DP accounting for the Poisson-subsampled Gaussian mechanism (DP-SGD), a port of TF Privacy's
 * `compute_rdp` (now `dp_accounting.rdp.RdpAccountant`, which Opacus' `RDPAccountant` also follows):
 * Mironov, Talwar & Zhang (2019), "Rényi Differential Privacy of the Sampled Gaussian Mechanism", integer orders
 * by the binomial expansion (Sec. 3.2) and fractional orders by the two-sided series of Sec. 3.3.
 *
 * RDP → (ε, δ) uses the improved conversion of Canonne, Kamath & Steinke 2020 (Prop. 12) / Balle et al. 2020
 * (Thm. 21), ε = r + log(1 - 1/α) - (log δ + log α)/(α - 1), exactly as dp_accounting >= 0.1 and Opacus do.
 * The classical conversion of Mironov 2017 (Prop. 3), ε = r + log(1/δ)/(α - 1), is kept as
 * `rdpToEpsilonClassic` because the epsilons published with the original TF Privacy tutorials were computed with it.
 */

/** dp_accounting's DEFAULT_RDP_ORDERS: 1.1 … 10.9 by 0.1, 11 … 63, and 128, 256, 512, 1024. */
export const DEFAULT_RDP_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, x) => 1 + (x + 1) / 10),
  ...Array.from({ length: 53 }, (_, x) => 11 + x),
  128,
  256,
  512,
  1024,
]);

/** The order list of TF Privacy's compute_dp_sgd_privacy and Opacus' DEFAULT_ALPHAS: 1.1 … 10.9, 12 … 63. */
export const TF_PRIVACY_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, x) => 1 + (x + 1) / 10),
  ...Array.from({ length: 52 }, (_, x) => 12 + x),
]);

/** log A_α for integer α (MTZ19 Sec 3.2): A_α = Σ_i C(α,i) q^i (1-q)^(α-i) exp((i² - i) / 2σ²). */
function logAInt(q: number, sigma: number, alpha: number): number {
  let logA = -INFINITY;
  const log1mq = math.log1p(-q);
  const logq = math.log(q);
  for (let i = 0; i <= alpha; i++) {
    const logCoef = logBinom(alpha, i) + i * logq + (alpha - i) * log1mq;
    logA = logAdd(logA, logCoef + (i * i - i) / (2 * sigma * sigma));
  }
  return logA;
}

const MAX_STEPS_LOG_A_FRAC = 1000;

/** log A_α for fractional α (MTZ19 Sec 3.3): the integrals over (-∞, z0] and [z0, ∞) as two series. */
function logAFrac(q: number, sigma: number, alpha: number): number {
  let logA0 = -INFINITY;
  let logA1 = -INFINITY;
  const z0 = sigma * sigma * math.log(1 / q - 1) + 0.5;
  const log1mq = math.log1p(-q);
  const logq = math.log(q);
  let lastS0 = -INFINITY;
  let lastS1 = -INFINITY;
  for (let i = 0; i < MAX_STEPS_LOG_A_FRAC; i++) {
    const logCoef = logBinom(alpha, i);
    const j = alpha - i;
    const logT0 = logCoef + i * logq + j * log1mq;
    const logT1 = logCoef + j * logq + i * log1mq;
    const logE0 = math.log(0.5) + logErfc((i - z0) / (math.SQRT2 * sigma));
    const logE1 = math.log(0.5) + logErfc((z0 - j) / (math.SQRT2 * sigma));
    const logS0 = logT0 + (i * i - i) / (2 * sigma * sigma) + logE0;
    const logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1;
    logA0 = logAdd(logA0, logS0);
    logA1 = logAdd(logA1, logS1);
    const total = logAdd(logA0, logA1);
    // Stop once both series decrease and their terms are negligible next to the total.
    if (logS0 < lastS0 && logS1 < lastS1 && math.max(logS0, logS1) < total - 30) return total;
    lastS0 = logS0;
    lastS1 = logS1;
  }
  // Like TF Privacy: an order whose series did not converge is excluded (its RDP is +∞, never chosen).
  return INFINITY;
}

/**
 * RDP ε(α) of ONE step of the Poisson-subsampled Gaussian mechanism with sampling rate q and noise multiplier σ
 * (noise std / L2 clipping norm), at each order. Multiply by the number of steps for composition.
 */
export function rdpSubsampledGaussian(
  q: number,
  noiseMultiplier: number,
  orders: readonly number[],
): number[] {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`sampling rate must be in [0, 1], got ${q}`);
  if (!(noiseMultiplier >= 0)) throw new RangeError(`noise multiplier must be >= 0, got ${noiseMultiplier}`);
  return orders.map((alpha) => {
    if (!(alpha > 1)) throw new RangeError(`RDP orders must be > 1, got ${alpha}`);
    if (q === 0) return 0;
    if (!num.isFinite(alpha) || noiseMultiplier === 0) return INFINITY;
    if (q === 1) return alpha / (2 * noiseMultiplier * noiseMultiplier);
    const logA = num.isInteger(alpha)
      ? logAInt(q, noiseMultiplier, alpha)
      : logAFrac(q, noiseMultiplier, alpha);
    return logA / (alpha - 1);
  });
}

/** RDP of `steps` compositions of the subsampled Gaussian (RDP composes additively at each order). */
export function computeRdp(
  q: number,
  noiseMultiplier: number,
  steps: number,
  orders: readonly number[],
): number[] {
  if (!num.isSafeInteger(steps) || steps < 0)
    throw new RangeError(`steps must be an integer >= 0, got ${steps}`);
  return rdpSubsampledGaussian(q, noiseMultiplier, orders).map((r) => r * steps);
}

export interface EpsilonAtOrder {
  epsilon: number;
  /** The order that achieved the minimum. */
  order: number;
}

function checkCurve(orders: readonly number[], rdp: readonly number[]): void {
  if (orders.length !== rdp.length || orders.length === 0) throw new RangeError('orders and rdp must align');
  for (const a of orders) if (!(a >= 1)) throw new RangeError(`Rényi order must be >= 1, got ${a}`);
}

/**
 * Smallest ε over the orders for the given δ, improved conversion (CKS20 Prop. 12 / Balle et al. 2020), with the
 * KL shortcut of dp_accounting: when δ² > 1 - exp(-r) the pair is (0, δ)-DP.
 */
export function rdpToEpsilon(
  orders: readonly number[],
  rdp: readonly number[],
  delta: number,
): EpsilonAtOrder {
  checkCurve(orders, rdp);
  if (!(delta > 0 && delta <= 1)) throw new RangeError(`delta must be in (0, 1], got ${delta}`);
  let best: EpsilonAtOrder = { epsilon: INFINITY, order: orders[0] };
  orders.forEach((a, i) => {
    const r = rdp[i];
    let eps: number;
    if (r < 0) eps = 0;
    else if (delta * delta + math.expm1(-r) > 0) eps = 0;
    else if (a > 1.01) eps = rdpPointToEpsilon(a, r, delta);
    else eps = INFINITY; // the bound is numerically unstable as α → 1 and useless there anyway
    if (eps < best.epsilon) best = { epsilon: eps, order: a };
  });
  return { epsilon: math.max(0, best.epsilon), order: best.order };
}

/** Smallest δ over the orders at a given ε (the inverse conversion, plus the KL bound δ <= √(1 - e^-r)). */
export function rdpToDelta(
  orders: readonly number[],
  rdp: readonly number[],
  epsilon: number,
): { delta: number; order: number } {
  checkCurve(orders, rdp);
  if (!(epsilon >= 0)) throw new RangeError(`epsilon must be >= 0, got ${epsilon}`);
  let best = { logDelta: INFINITY, order: orders[0] };
  orders.forEach((a, i) => {
    const r = rdp[i];
    let logDelta = r <= 0 ? -INFINITY : 0.5 * math.log1p(-math.exp(-r));
    if (a > 1.01) logDelta = math.min(logDelta, rdpPointToLogDelta(a, r, epsilon));
    if (logDelta < best.logDelta) best = { logDelta, order: a };
  });
  return { delta: math.min(1, math.exp(best.logDelta)), order: best.order };
}

/** The classical conversion ε = min_α r(α) + log(1/δ)/(α - 1) (Mironov 2017, Prop. 3): looser, for reproducing old numbers. */
export function rdpToEpsilonClassic(
  orders: readonly number[],
  rdp: readonly number[],
  delta: number,
): EpsilonAtOrder {
  checkCurve(orders, rdp);
  let best: EpsilonAtOrder = { epsilon: INFINITY, order: orders[0] };
  orders.forEach((a, i) => {
    const eps = rdp[i] - math.log(delta) / (a - 1);
    if (eps < best.epsilon) best = { epsilon: eps, order: a };
  });
  return best;
}

/**
 * An RDP accountant: composes events at a fixed list of orders and converts on demand. Use one per training run
 * (or per release plan) and record `spend()` in the ledger.
 */
export class RdpAccountant {
  private readonly rdp: number[];
  private readonly events: string[] = [];

  constructor(readonly orders: readonly number[] = DEFAULT_RDP_ORDERS) {
    checkCurve(orders, orders);
    for (const a of orders) if (!(a > 1)) throw new RangeError(`Rényi order must be > 1, got ${a}`);
    this.rdp = orders.map(() => 0);
  }

  private add(curve: readonly number[], label: string): this {
    curve.forEach((r, i) => (this.rdp[i] += r));
    this.events.push(label);
    return this;
  }

  /** `steps` steps of DP-SGD: Poisson sampling at rate q, Gaussian noise with the given multiplier. */
  composeSubsampledGaussian(q: number, noiseMultiplier: number, steps = 1): this {
    return this.add(
      computeRdp(q, noiseMultiplier, steps, this.orders),
      `poisson-gaussian(q=${q},z=${noiseMultiplier})x${steps}`,
    );
  }

  /** `count` full-batch Gaussian mechanisms with noise multiplier σ/Δ: RDP α/(2z²) each. */
  composeGaussian(noiseMultiplier: number, count = 1): this {
    return this.composeSubsampledGaussian(1, noiseMultiplier, count);
  }

  /** A ρ-zCDP mechanism is (α, αρ)-RDP at every order. */
  composeZcdp(rho: number): this {
    if (!(rho >= 0)) throw new RangeError(`rho must be >= 0, got ${rho}`);
    return this.add(
      this.orders.map((a) => a * rho),
      `zcdp(rho=${rho})`,
    );
  }

  /** The RDP curve composed so far. */
  curve(): number[] {
    return [...this.rdp];
  }

  getEpsilon(delta: number): number {
    return rdpToEpsilon(this.orders, this.rdp, delta).epsilon;
  }

  getDelta(epsilon: number): number {
    return rdpToDelta(this.orders, this.rdp, epsilon).delta;
  }

  /** The (ε, δ) spend at the given δ, for the ledger. */
  spend(delta: number, label = 'rdp-accountant'): PrivacySpend {
    const { epsilon, order } = rdpToEpsilon(this.orders, this.rdp, delta);
    return {
      mechanism: label,
      epsilon,
      delta,
      sensitivity: { query: 'clipped-gradient', norm: 'L2', value: 1 },
      params: { conversion: 'CKS20-Prop12', order, events: this.events.join(';') },
    };
  }
}

export interface ComposedSpend {
  /** Basic composition: Σε, Σδ (Dwork et al.). Always valid. */
  basic: { epsilon: number; delta: number };
  /**
   * zCDP composition: Σρ (and Σ approxDelta of approximate-zCDP spends, added to δ outside ρ), converted at the
   * target δ. Present only when every spend carries ρ and the approximate part leaves room in the target δ.
   */
  zcdp?: { rho: number; approxDelta: number; epsilon: number; delta: number };
  /** The tighter of the two (smaller ε among those with δ <= the target δ). */
  best: { epsilon: number; delta: number; via: 'basic' | 'zcdp' };
}

/** Sum of ρ (zCDP composes additively, Bun & Steinke 2016 Lemma 2.3). */
export function composeZcdp(rhos: readonly number[]): number {
  let sum = 0;
  for (const r of rhos) {
    if (!(r >= 0) || !num.isFinite(r)) throw new RangeError(`rho must be finite and >= 0, got ${r}`);
    sum += r;
  }
  return sum;
}

/**
 * Composes spends two ways and reports the tighter. `targetDelta` is the δ at which the zCDP total is converted
 * (normally the budget's δ); the zCDP route only counts as "best" when basic composition is not already better.
 * Approximate zCDP composes as (Σρ, Σδ₀) (Bun & Steinke 2016, Lemma 8.3): the ρ part is converted at
 * targetDelta − Σδ₀ and the result's δ is targetDelta.
 */
export function composeSpends(spends: readonly PrivacySpend[], targetDelta: number): ComposedSpend {
  let eps = 0;
  let delta = 0;
  let approx = 0;
  for (const s of spends) {
    eps += s.epsilon;
    delta += s.delta;
    approx += s.approxDelta ?? 0;
  }
  const basic = { epsilon: eps, delta };
  const allRho = spends.length > 0 && spends.every((s) => typeof s.rho === 'number');
  let zcdp: ComposedSpend['zcdp'];
  const room = targetDelta - approx;
  if (allRho && targetDelta > 0 && targetDelta < 1 && room > 0) {
    const rho = composeZcdp(spends.map((s) => s.rho as number));
    zcdp = {
      rho,
      approxDelta: approx,
      epsilon: zcdpToEpsilon(rho, room),
      delta: rho === 0 ? approx : targetDelta,
    };
  }
  let best: ComposedSpend['best'] = { ...basic, via: 'basic' };
  const basicFits = basic.delta <= targetDelta;
  if (zcdp && (!basicFits || zcdp.epsilon < basic.epsilon))
    best = { epsilon: zcdp.epsilon, delta: zcdp.delta, via: 'zcdp' };
  return zcdp ? { basic, zcdp, best } : { basic, best };
}
