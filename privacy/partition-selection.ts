import { discreteGaussianTailUpper, zcdpToEpsilon } from './calibration';
import { discreteGaussianMechanism, discreteGaussianSpend } from './mechanisms';
import type { SecureRng } from './rng';
import { assertIssuedSensitivity, type Sensitivity } from './sensitivity';
import type { PrivacySpend } from './spend';

/**
 * DP partition selection (which keys may be released at all) by thresholded discrete Gaussian counts — the
 * "Gaussian thresholding" strategy of Google's differential-privacy library and PipelineDP, with the exact
 * discrete Gaussian of this library instead of a float sampler.
 *
 * Input: for every key that occurs in the (contribution-bounded) data, the number of distinct users with it; each
 * user contributes 1 to at most P keys (P = the sensitivity's L0, e.g. maxItemsPerUser). Output: the keys whose
 * count plus N_Z(0, σ²) reaches the threshold τ; nothing else (not even how many keys were dropped).
 *
 * Why it is private. Let D' = D plus one user u, whose keys absent from D form N (|N| <= P, count 1 each in D').
 * Over the universe U = keys(D) ∪ N, thresholding noisy counts of every key in U (zeros included) is the discrete
 * Gaussian on a fixed key set followed by post-processing: ρ-zCDP with ρ = P / (2σ²) (L2 sensitivity √P). The real
 * mechanism equals it on D' and differs from it on D only in that keys of N are never output. Splitting any output
 * set S by the event E = "some key of N is output":
 *   P[A(D') ∈ S] <= e^ε P[A(D) ∈ S] + δ_z + P[some key of N passes in D'] <= … + δ_z + P·P[1 + Z >= τ],
 *   P[A(D) ∈ S] <= P[B(D) ∈ S] + P·P[Z >= τ] <= e^ε P[A(D') ∈ S] + δ_z + P·P[Z >= τ],
 * so the release is (ε(ρ, δ_z), δ_z + δ_t)-DP with δ_t = P·P[Z >= τ − 1] — approximate zCDP (ρ, δ_t), which
 * composes by adding ρ and δ_t (the spend's `rho` and `approxDelta`). τ is the smallest integer with that δ_t
 * within the target.
 */

export interface PartitionSelectionParams {
  /** zCDP budget of the noisy counts. */
  readonly rho: number;
  /** Largest δ_t = P·P[Z >= τ − 1] the threshold may cost. */
  readonly thresholdDelta: number;
  /** δ at which ρ is reported as ε (the rest of the run's δ). */
  readonly delta: number;
}

export interface PartitionSelectionPlan {
  sigma: number;
  threshold: number;
  /** The δ_t the threshold actually costs (<= thresholdDelta). */
  thresholdDelta: number;
  maxPartitionsPerUser: number;
  spend: PrivacySpend;
}

/** The smallest integer τ >= 1 with P·P[Z >= τ − 1] <= δ_t, Z ~ N_Z(0, σ²) (rigorous upper tail). */
export function partitionSelectionThreshold(
  sigma: number,
  maxPartitionsPerUser: number,
  delta: number,
): number {
  if (!(delta > 0 && delta < 1)) throw new RangeError(`threshold delta must be in (0, 1), got ${delta}`);
  if (!(maxPartitionsPerUser >= 1)) throw new RangeError('maxPartitionsPerUser must be >= 1');
  // P[Z >= t] = P[Z > t − 1]: the cost of threshold τ is P·P[Z > τ − 2].
  const cost = (tau: number) => maxPartitionsPerUser * discreteGaussianTailUpper(sigma, tau - 2);
  let hi = Math.max(2, Math.ceil(sigma));
  while (cost(hi) > delta) hi *= 2;
  let lo = 1;
  if (cost(lo) <= delta) return lo;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (cost(mid) <= delta) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** The plan and spend of a partition selection, from public parameters only (reserve before reading data). */
export function planPartitionSelection(s: Sensitivity, p: PartitionSelectionParams): PartitionSelectionPlan {
  assertIssuedSensitivity(s);
  if (s.linf > 1) throw new RangeError('partition selection needs counts of distinct users (L∞ <= 1)');
  if (!(p.delta > 0 && p.thresholdDelta > 0)) throw new RangeError('delta and thresholdDelta must be > 0');
  const base = discreteGaussianSpend(s, { rho: p.rho, delta: p.delta });
  const sigma = Number(base.params.sigma);
  const P = Math.max(1, Math.round(s.l0));
  const threshold = partitionSelectionThreshold(sigma, P, p.thresholdDelta);
  const thresholdDelta = P * discreteGaussianTailUpper(sigma, threshold - 2);
  return {
    sigma,
    threshold,
    thresholdDelta,
    maxPartitionsPerUser: P,
    spend: {
      mechanism: 'dp-partition-selection',
      epsilon: zcdpToEpsilon(p.rho, p.delta),
      delta: p.delta + thresholdDelta,
      rho: p.rho,
      approxDelta: thresholdDelta,
      sensitivity: base.sensitivity,
      params: { ...base.params, threshold, thresholdDelta, maxPartitionsPerUser: P },
    },
  };
}

/**
 * Selects the keys to release: `counts` holds every key that occurs in the bounded data with its distinct-user
 * count. Returns the selected keys in input order, and the spend (equal to planPartitionSelection's).
 */
export function selectPartitions<K>(
  counts: readonly { key: K; users: number }[],
  s: Sensitivity,
  p: PartitionSelectionParams,
  rng: SecureRng,
): { keys: K[]; spend: PrivacySpend; threshold: number } {
  const plan = planPartitionSelection(s, p);
  const noisy = discreteGaussianMechanism(
    counts.map((c) => c.users),
    s,
    { rho: p.rho, delta: p.delta },
    rng,
  ).value;
  const keys = counts.filter((_, i) => noisy[i] >= plan.threshold).map((c) => c.key);
  return { keys, spend: plan.spend, threshold: plan.threshold };
}
