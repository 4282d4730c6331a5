import { loadConfig } from '../../lib/config';
import { gateCounts, qualityChecks, type CleanContext } from '../../activities/clean';
import { ROOT } from '../helpers/env';

function plan(quality: Record<string, unknown> = {}): Pick<CleanContext, 'config' | 'startedAt'> {
  const { config } = loadConfig({ root: ROOT, env: {}, overrides: { dataDir: '/tmp/x', quality } });
  return { config, startedAt: '2026-11-23T00:00:00Z' };
}

const drift = {
  previousRunId: 'r0',
  volumeChange: 0.1,
  maxPsi: 0.05,
  newUsersShare: 0.1,
  newItemsShare: 0.1,
  status: 'ok' as const,
};
const failed = (cs: { name: string; passed: boolean }[]) => cs.filter((c) => !c.passed).map((c) => c.name);

describe('quality gates', () => {
  test('a clean dataset passes every check', () => {
    const cs = qualityChecks(
      plan(),
      { kept: 9900, total: 10000, byReason: { duplicate: 100 }, newest: '2026-11-22T00:00:00Z' },
      drift,
    );
    expect(failed(cs)).toEqual([]);
    expect(cs.map((c) => c.name)).toEqual(
      expect.arrayContaining([
        'min_rows',
        'max_quarantine_share',
        'max_drift_psi',
        'max_volume_change',
        'max_quarantine_share[bad_timestamp]',
      ]),
    );
  });

  test('too few rows and too dirty overall fail with value and threshold', () => {
    const cs = qualityChecks(
      plan(),
      { kept: 500, total: 1000, byReason: { duplicate: 500 }, newest: null },
      null,
    );
    expect(failed(cs)).toEqual(['min_rows', 'max_quarantine_share']);
    expect(cs.find((c) => c.name === 'max_quarantine_share')).toMatchObject({ value: 0.5, threshold: 0.2 });
  });

  test('a per-reason limit fails although the total is fine', () => {
    const cs = qualityChecks(
      plan(),
      { kept: 9400, total: 10000, byReason: { bad_timestamp: 600 }, newest: null },
      null,
    );
    expect(failed(cs)).toEqual(['max_quarantine_share[bad_timestamp]']);
  });

  test('drift and volume change against the last good run', () => {
    const cs = qualityChecks(
      plan(),
      { kept: 10000, total: 10000, byReason: {}, newest: null },
      { ...drift, maxPsi: 2, volumeChange: -3.5 },
    );
    expect(failed(cs)).toEqual(['max_drift_psi', 'max_volume_change']);
  });

  test('freshness only when configured', () => {
    const counts = { kept: 10000, total: 10000, byReason: {}, newest: '2026-11-10T00:00:00Z' };
    expect(failed(qualityChecks(plan(), counts, null))).toEqual([]);
    const cs = qualityChecks(plan({ maxStalenessDays: 2 }), counts, null);
    expect(failed(cs)).toEqual(['max_staleness_days']);
    expect(cs.at(-1)!.value).toBeCloseTo(13, 6);
  });
});

describe('gate counts over the run’s new lines', () => {
  test('k-core removals and rows already ingested by an earlier run are not defects of this run', () => {
    const g = gateCounts(
      { '*': 1300, already_ingested: 1000, k_core: 40, malformed_line: 10, duplicate: 20 },
      '2026-03-04T00:00:00Z',
    );
    expect(g).toEqual({
      total: 300,
      kept: 270,
      byReason: { malformed_line: 10, duplicate: 20 },
      newest: '2026-03-04T00:00:00Z',
    });
  });

  test('a run of only repeats has nothing to judge: zero rows (min_rows then fails)', () => {
    expect(gateCounts({ '*': 500, already_ingested: 500 }, null)).toMatchObject({ total: 0, kept: 0 });
  });
});
