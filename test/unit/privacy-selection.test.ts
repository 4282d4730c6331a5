import * as path from 'node:path';
import {
  createSeededRng,
  discreteGaussianSpend,
  estimateUtility,
  itemUserCountSensitivity,
  partitionSelectionThreshold,
  planPartitionSelection,
  selectPartitions,
  zcdpToEpsilon,
} from '../../privacy';
import { discreteGaussianPmf } from '../../privacy/discrete';
import { composeSpends } from '../../privacy/accountant';
import { loadConfig } from '../../lib/config';
import {
  deltaSplit,
  plannedPartitionSelection,
  plannedReleases,
  plannedSpend,
  plannedUtility,
} from '../../privacy/run-plan';
import { ROOT } from '../helpers/env';

/** P[Z >= t] for Z ~ N_Z(0, σ²), summed directly from the pmf (an independent reference). */
function tailAtLeast(sigma: number, t: number): number {
  let s = 0;
  for (let y = Math.max(t, -Math.ceil(40 * sigma)); y <= Math.ceil(40 * sigma) + Math.abs(t); y++)
    s += discreteGaussianPmf(sigma, y);
  return s;
}

describe('DP partition selection (thresholded discrete Gaussian counts)', () => {
  test('the threshold is the smallest τ with P·P[Z >= τ − 1] <= δ', () => {
    for (const [sigma, P, delta] of [
      [3, 1, 1e-3],
      [5.5, 10, 1e-6],
      [13, 10, 5e-7],
      [40, 45, 1e-9],
    ] as const) {
      const tau = partitionSelectionThreshold(sigma, P, delta);
      expect(P * tailAtLeast(sigma, tau - 1)).toBeLessThanOrEqual(delta * (1 + 1e-9));
      expect(P * tailAtLeast(sigma, tau - 2)).toBeGreaterThan(delta);
    }
  });

  test('plan: ρ of the Gaussian on √P, the threshold δ as approximate zCDP, all from public parameters', () => {
    const s = itemUserCountSensitivity({
      maxEventsPerUser: 200,
      maxEventsPerUserItem: 5,
      maxItemsPerUser: 10,
    });
    const plan = planPartitionSelection(s, { rho: 0.03, thresholdDelta: 5e-7, delta: 5e-7 });
    expect(plan.sigma).toBeCloseTo(Math.sqrt(10) / Math.sqrt(0.06), 6);
    expect(plan.maxPartitionsPerUser).toBe(10);
    expect(plan.thresholdDelta).toBeLessThanOrEqual(5e-7);
    expect(plan.spend).toMatchObject({
      rho: 0.03,
      approxDelta: plan.thresholdDelta,
      mechanism: 'dp-partition-selection',
    });
    expect(plan.spend.delta).toBeCloseTo(5e-7 + plan.thresholdDelta, 18);
    expect(plan.spend.epsilon).toBeCloseTo(zcdpToEpsilon(0.03, 5e-7), 12);
    // Far above σ: an item needs tens of users before it can be released at all.
    expect(plan.threshold).toBeGreaterThan(5 * plan.sigma);
  });

  test('selection: popular keys pass, keys of one user essentially never; the spend is the planned one', () => {
    const s = itemUserCountSensitivity({ maxEventsPerUser: 20, maxEventsPerUserItem: 2, maxItemsPerUser: 4 });
    // A loose threshold δ so that the count-1 keys' pass rate is measurable: it must stay below δ_t / P.
    const params = { rho: 0.5, thresholdDelta: 0.2, delta: 1e-6 };
    const plan = planPartitionSelection(s, params);
    const rng = createSeededRng('partition-selection');
    const counts = [
      ...Array.from({ length: 2000 }, (_, i) => ({ key: `one-${i}`, users: 1 })),
      ...Array.from({ length: 50 }, (_, i) => ({
        key: `hot-${i}`,
        users: plan.threshold + Math.ceil(6 * plan.sigma),
      })),
    ];
    const out = selectPartitions(counts, s, params, rng);
    expect(out.spend).toEqual(plan.spend);
    expect(out.keys.filter((k) => k.startsWith('hot-'))).toHaveLength(50);
    const passRate = out.keys.filter((k) => k.startsWith('one-')).length / 2000;
    // P[1 + Z >= τ] <= δ_t / P = 0.05; with 2000 draws the rate stays well inside 0.05 + 5 standard errors.
    expect(passRate).toBeLessThanOrEqual(plan.thresholdDelta / 4 + 5 * Math.sqrt(0.05 / 2000));
    expect(tailAtLeast(plan.sigma, plan.threshold - 1)).toBeLessThanOrEqual(plan.thresholdDelta / 4);
  });
});

describe('the run plan with and without a public catalogue', () => {
  const config = loadConfig({
    root: ROOT,
    env: {},
    overlay: path.join(ROOT, 'configs', 'private.yaml'),
  }).config;

  test('with an items file: four count releases fill the run (ε, δ); no partition selection', () => {
    const spend = plannedSpend(config, 'public-catalogue');
    expect(spend.approxDelta).toBeUndefined();
    expect(spend.params.itemSelection).toBe('public-catalogue');
    expect(spend.epsilon).toBeCloseTo(config.privacy.epsilon, 9);
    expect(plannedPartitionSelection(config, 'public-catalogue')).toBeNull();
  });

  test('without one: partition selection takes its share of ρ and of δ; the whole still spends the run (ε, δ)', () => {
    const spend = plannedSpend(config, 'dp-partition-selection');
    const ps = plannedPartitionSelection(config, 'dp-partition-selection')!;
    const r = plannedReleases(config, 'dp-partition-selection');
    const { thresholdDelta, zcdpDelta } = deltaSplit(config, 'dp-partition-selection');
    expect(thresholdDelta + zcdpDelta).toBeCloseTo(config.privacy.delta, 18);
    expect(spend.rho).toBeCloseTo(ps.spend.rho! + 2 * (r.popularity.rho + r.cooccurrence.rho), 12);
    expect(ps.spend.rho! / spend.rho!).toBeCloseTo(config.privacy.partitionSelection.share, 12);
    expect(spend.approxDelta).toBe(ps.thresholdDelta);
    expect(spend.approxDelta!).toBeLessThanOrEqual(thresholdDelta);
    expect(spend.delta).toBe(config.privacy.delta);
    expect(spend.epsilon).toBeLessThanOrEqual(config.privacy.epsilon * (1 + 1e-9));
    // The ledger's composition of this one spend gives back the run's ε at its δ.
    const c = composeSpends([spend], config.privacy.delta);
    expect(c.zcdp!.epsilon).toBeCloseTo(spend.epsilon, 9);
    // The counts' σ is higher than with a catalogue (their share of ρ is smaller).
    const pop = discreteGaussianSpend(r.popularity.sensitivity, { rho: r.popularity.rho, delta: zcdpDelta });
    expect(Number(pop.params.sigma)).toBeGreaterThan(Number(plannedSpend(config).params.popularitySigma));
    expect(spend.params.partitionSelectionThreshold).toBe(ps.threshold);
  });
});

describe('utility before spending', () => {
  test('the bundled population is weak signal, MovieLens-small noise, at ε 4 (the measured outcome)', () => {
    const config = loadConfig({
      root: ROOT,
      env: {},
      overlay: path.join(ROOT, 'configs', 'private.yaml'),
    }).config;
    const bundled = plannedUtility(config, 'public-catalogue', 2000);
    expect(bundled.verdict).toBe('weak');
    expect(bundled.expectedCooccurrenceSignal).toBeCloseTo((10000 * 45) / ((150 * 149) / 2), 2);
    expect(bundled.popularitySignalToNoise!).toBeGreaterThan(3);
    const ml = plannedUtility(
      { ...config, privacy: { ...config.privacy, expectedUsers: 610 } },
      'public-catalogue',
      9742,
    );
    expect(ml.verdict).toBe('noise');
    expect(ml.note).toMatch(/will be noise/);
  });

  test('the estimate is plain arithmetic over public inputs', () => {
    const u = estimateUtility({
      expectedUsers: 1000,
      maxItemsPerUser: 4,
      catalogueItems: 100,
      cooccurrenceItems: 10,
      popularitySigma: 2,
      cooccurrenceSigma: 3,
      partitionSelectionThreshold: null,
    });
    expect(u).toMatchObject({
      expectedPopularitySignal: 40,
      popularitySignalToNoise: 20,
      expectedCooccurrenceSignal: Math.round((1000 * 6 * 1000) / 45) / 1000,
      verdict: 'signal',
    });
  });
});
