import * as path from 'node:path';
import { loadConfig, ConfigError } from '../../lib/config';
import {
  assertDpSgdWithinReservation,
  plannedDpSgd,
  plannedReleases,
  plannedSpend,
  reservedDpSgd,
} from '../../privacy/run-plan';
import { rhoForApproxDp } from '../../privacy';
import { ROOT } from '../helpers/env';

const PRIVATE = path.join(ROOT, 'configs', 'private.yaml');
const mfDp = () =>
  loadConfig({ root: ROOT, env: {}, overlay: [PRIVATE, path.join(ROOT, 'configs', 'mf-dp.yaml')] }).config;

describe('the run plan with DP-SGD (configs/private.yaml + configs/mf-dp.yaml)', () => {
  const config = mfDp();
  const spend = plannedSpend(config);

  test('training and the count releases together fill, and never exceed, the run ε', () => {
    expect(spend.mechanism).toBe('discrete-gaussian + dp-sgd');
    expect(spend.epsilon).toBeLessThanOrEqual(config.privacy.epsilon);
    expect(spend.epsilon).toBeGreaterThan(config.privacy.epsilon * 0.999);
    expect(spend.delta).toBe(config.privacy.delta);
    expect(spend.rho).toBeUndefined();
    // The counts keep (1 - trainingShare) of the run's ρ, split over the four releases as before.
    const rho = rhoForApproxDp(config.privacy.epsilon, config.privacy.delta);
    const r = plannedReleases(config);
    expect(2 * (r.popularity.rho + r.cooccurrence.rho)).toBeCloseTo(
      rho * (1 - config.privacy.dpSgd.trainingShare),
      12,
    );
    expect(spend.params.countsRho).toBeCloseTo(rho * (1 - config.privacy.dpSgd.trainingShare), 12);
  });

  test('the reservation records the DP-SGD parameters and training re-checks them against it', () => {
    const dp = reservedDpSgd(spend);
    expect(dp).toEqual(plannedDpSgd(config));
    expect(spend.params.dpSgdMechanism).toBe('dp-sgd');
    expect(dp.stepsEval).toBe(config.privacy.dpSgd.epochs * Math.ceil(1 / config.privacy.dpSgd.samplingRate));
    expect(assertDpSgdWithinReservation(config, spend, dp)).toBeLessThanOrEqual(spend.epsilon);
    // Less noise, or more steps, than reserved would overspend: refused before training.
    expect(() =>
      assertDpSgdWithinReservation(config, spend, { ...dp, noiseMultiplier: dp.noiseMultiplier * 0.98 }),
    ).toThrow(/privacy accounting mismatch/);
    expect(() =>
      assertDpSgdWithinReservation(config, spend, { ...dp, stepsFull: dp.stepsFull + 20 }),
    ).toThrow(/privacy accounting mismatch/);
  });

  test('without DP-SGD the plan is the four count releases, as before', () => {
    const itemitem = loadConfig({ root: ROOT, env: {}, overlay: PRIVATE }).config;
    const s = plannedSpend(itemitem);
    expect(s.mechanism).toBe('discrete-gaussian');
    expect(s.epsilon).toBeCloseTo(itemitem.privacy.epsilon, 9);
    expect(s.params.dpSgdMechanism).toBeUndefined();
  });

  test('config validation: two-tower, the linear challengers and non-private mf options are refused with privacy on', () => {
    const msg = (overrides: Record<string, unknown>) => {
      try {
        loadConfig({ root: ROOT, env: {}, overlay: PRIVATE, overrides });
        return '';
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
    };
    expect(msg({ training: { challenger: 'two-tower' } })).toMatch(/two-tower.*not differentially private/);
    for (const linear of ['blend', 'ease', 'ials'])
      expect(msg({ training: { challenger: linear } })).toMatch(
        new RegExp(`${linear}.*not differentially private`),
      );
    expect(msg({ training: { challenger: 'mf', mf: { negativeSampling: 'popularity' } } })).toMatch(
      /uniform/,
    );
    expect(msg({ training: { challenger: 'mf', mf: { recencyHalfLifeDays: 7 } } })).toMatch(
      /recencyHalfLifeDays/,
    );
    expect(msg({ training: { challenger: 'mf' } })).toBe('');
  });
});
