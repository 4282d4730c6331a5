import { DuckDBInstance } from '@duckdb/node-api';
import { perUserMetricsSql, aggregateMetricsSql } from '../../evaluation/metrics.sql';
import { decideGates } from '../../evaluation/gates';
import { pairedDifferenceInterval, meanInterval } from '../../evaluation/bootstrap';

async function metrics(
  recs: [string, string, number, string][],
  relevant: [string, string][],
  k: number,
  catalogue: number,
) {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  await c.run(`CREATE TABLE recs (model VARCHAR, user_id VARCHAR, rank INTEGER, item_id VARCHAR)`);
  await c.run(`CREATE TABLE relevant (user_id VARCHAR, item_id VARCHAR)`);
  for (const r of recs) await c.run(`INSERT INTO recs VALUES ('${r[0]}', '${r[1]}', ${r[2]}, '${r[3]}')`);
  for (const r of relevant) await c.run(`INSERT INTO relevant VALUES ('${r[0]}', '${r[1]}')`);
  await c.run(perUserMetricsSql(k, catalogue));
  const rows = (await c.runAndReadAll(aggregateMetricsSql(k, catalogue))).getRowObjectsJson();
  c.closeSync();
  db.closeSync();
  return Object.fromEntries(rows.map((r) => [r.model as string, r as Record<string, number | string>]));
}

describe('ranking metrics (hand-computed)', () => {
  // u1: relevant {a, c}; recs a(1) b(2) c(3). u2: relevant {z}; recs x(1) y(2) w(3) (no hit).
  const recs: [string, string, number, string][] = [
    ['m', 'u1', 1, 'a'],
    ['m', 'u1', 2, 'b'],
    ['m', 'u1', 3, 'c'],
    ['m', 'u2', 1, 'x'],
    ['m', 'u2', 2, 'y'],
    ['m', 'u2', 3, 'w'],
  ];
  const relevant: [string, string][] = [
    ['u1', 'a'],
    ['u1', 'c'],
    ['u2', 'z'],
  ];

  test('precision, recall, hitrate, ndcg, map, mrr, coverage at k=3', async () => {
    const m = (await metrics(recs, relevant, 3, 10)).m;
    expect(Number(m['precision@k'])).toBeCloseTo((2 / 3 + 0) / 2, 10);
    expect(Number(m['recall@k'])).toBeCloseTo((1 + 0) / 2, 10);
    expect(Number(m['hitrate@k'])).toBeCloseTo(0.5, 10);
    const dcg = 1 / Math.log2(2) + 1 / Math.log2(4);
    const idcg = 1 / Math.log2(2) + 1 / Math.log2(3);
    expect(Number(m['ndcg@k'])).toBeCloseTo(dcg / idcg / 2, 10);
    // AP(u1) = (1/1 + 2/3) / min(2, 3); AP(u2) = 0.
    expect(Number(m['map@k'])).toBeCloseTo((1 + 2 / 3) / 2 / 2, 10);
    expect(Number(m['mrr@k'])).toBeCloseTo(0.5, 10);
    expect(Number(m.coverage)).toBeCloseTo(6 / 10, 10);
    // AUC over a catalogue of 10. u1: rel {a, c}, 8 non-relevant; a beats all 8, c beats 7 (b is above it):
    // 15/16. u2: rel {z} unranked, 9 non-relevant of which 3 ranked above it and 6 tied: 0.5 * 6 / 9.
    expect(Number(m.auc)).toBeCloseTo((15 / 16 + (0.5 * 6) / 9) / 2, 10);
  });

  test('k cuts the list: at k=1 only rank 1 counts', async () => {
    const m = (await metrics(recs, relevant, 1, 10)).m;
    expect(Number(m['precision@k'])).toBeCloseTo(0.5, 10);
    expect(Number(m['recall@k'])).toBeCloseTo(0.25, 10);
    expect(Number(m['ndcg@k'])).toBeCloseTo(0.5, 10);
    expect(Number(m.coverage)).toBeCloseTo(2 / 10, 10);
  });

  test('a user the model returned nothing for counts as zero', async () => {
    const r = await metrics(
      [
        ['m', 'u1', 1, 'a'],
        ['n', 'u1', 1, 'b'],
      ],
      [
        ['u1', 'a'],
        ['u2', 'q'],
      ],
      1,
      5,
    );
    expect(Number(r.m['hitrate@k'])).toBeCloseTo(0.5, 10);
    expect(Number(r.m.users)).toBe(2);
    expect(Number(r.n['hitrate@k'])).toBe(0);
  });
});

describe('bootstrap', () => {
  test('interval contains the mean, narrows with n, reproducible with the seed', () => {
    const xs = Array.from({ length: 400 }, (_, i) => (i % 7) / 7);
    const a = meanInterval(xs, 500);
    expect(a.low).toBeLessThanOrEqual(a.mean);
    expect(a.high).toBeGreaterThanOrEqual(a.mean);
    expect(meanInterval(xs, 500)).toEqual(a);
    const wide = meanInterval(xs.slice(0, 40), 500);
    expect(wide.high - wide.low).toBeGreaterThan(a.high - a.low);
  });

  test('paired difference of identical models is exactly zero', () => {
    const xs = Float64Array.from({ length: 100 }, (_, i) => Math.sin(i) ** 2);
    expect(pairedDifferenceInterval(xs, xs, 200)).toEqual({ mean: 0, low: 0, high: 0 });
    expect(() => pairedDifferenceInterval(xs, xs.slice(1), 10)).toThrow(/equal lengths/);
  });
});

describe('gates', () => {
  const base = {
    k: 10,
    challenger: 'itemitem',
    baseline: 'mostpop',
    evaluatedUsers: 400,
    metrics: {
      itemitem: { 'ndcg@10': 0.2, coverage: 0.5 },
      mostpop: { 'ndcg@10': 0.1, coverage: 0.02 },
    },
    gates: {
      minimums: { ndcg: 0.01, coverage: 0.01 },
      maxRegression: 0.02,
      mostPopMargin: 0.05,
      minUsers: 50,
    },
  };
  const named = (g: ReturnType<typeof decideGates>, part: string) =>
    g.checks.find((c) => c.name.includes(part))!;

  test('promotes when every check passes', () => {
    const g = decideGates(base);
    expect(g.decision).toBe('promote');
    expect(g.checks.map((c) => c.passed)).toEqual([true, true, true, true]);
  });

  test('rejects below a minimum, naming value and threshold', () => {
    const g = decideGates({ ...base, gates: { ...base.gates, minimums: { ndcg: 0.3 } } });
    expect(g.decision).toBe('reject');
    expect(named(g, '>= minimum')).toMatchObject({ passed: true }); // the users check
    expect(named(g, 'ndcg@10 >= minimum')).toMatchObject({ value: 0.2, threshold: 0.3, passed: false });
  });

  test('rejects when not beating MostPop by the margin', () => {
    const g = decideGates({ ...base, gates: { ...base.gates, mostPopMargin: 1.5 } });
    expect(g.decision).toBe('reject');
    expect(named(g, 'beats mostpop')).toMatchObject({ passed: false, value: 0.2 });
  });

  test('never passes on zero: no evaluated users fails every metric check, whatever the values', () => {
    const empty = {
      ...base,
      evaluatedUsers: 0,
      metrics: { itemitem: { 'ndcg@10': 0, coverage: 0 }, mostpop: { 'ndcg@10': 0, coverage: 0 } },
      gates: { ...base.gates, minimums: {} },
    };
    const g = decideGates(empty);
    expect(g.decision).toBe('reject');
    expect(named(g, 'beats mostpop')).toMatchObject({ passed: false, users: 0 });
    expect(named(g, 'beats mostpop').reason).toMatch(/only 0 evaluated users/);
  });

  test('too few users fails even where the values look good', () => {
    const g = decideGates({ ...base, evaluatedUsers: 12 });
    expect(g.decision).toBe('reject');
    expect(g.checks.every((c) => !c.passed)).toBe(true);
  });

  test('a challenger at zero NDCG does not beat a zero baseline', () => {
    const g = decideGates({
      ...base,
      metrics: { itemitem: { 'ndcg@10': 0, coverage: 0.5 }, mostpop: { 'ndcg@10': 0, coverage: 0.02 } },
    });
    expect(named(g, 'beats mostpop').passed).toBe(false);
  });

  test('the baseline is the non-private one, whatever else was evaluated', () => {
    const g = decideGates({
      ...base,
      baseline: 'mostpop-exact',
      metrics: { ...base.metrics, 'mostpop-exact': { 'ndcg@10': 0.25 } },
    });
    expect(g.decision).toBe('reject');
    expect(named(g, 'beats mostpop-exact')).toMatchObject({ threshold: 0.25 * 1.05, passed: false });
    // A baseline that was not evaluated fails the check instead of being taken as zero.
    expect(named(decideGates({ ...base, baseline: 'nothing' }), 'beats nothing').passed).toBe(false);
  });

  test('a regression vs the champion fails only when the whole CI is below the tolerance', () => {
    const noisy = decideGates({
      ...base,
      vsChampion: { version: 'v1', ndcg: 0.21, diff: { mean: -0.01, low: -0.03, high: 0.005 } },
    });
    expect(noisy.decision).toBe('promote');
    const real = decideGates({
      ...base,
      vsChampion: { version: 'v1', ndcg: 0.3, diff: { mean: -0.1, low: -0.12, high: -0.08 } },
    });
    expect(real.decision).toBe('reject');
    expect(named(real, 'champion').ci).toEqual([-0.12, -0.08]);
  });

  test('the refit check bounds the difference between the evaluated and the published model', () => {
    const gates = { ...base.gates, minRefitAgreement: 0.5 };
    expect(decideGates({ ...base, gates, refit: { agreement: 0.8, users: 300 } }).decision).toBe('promote');
    const diverged = decideGates({ ...base, gates, refit: { agreement: 0.1, users: 300 } });
    expect(diverged.decision).toBe('reject');
    expect(named(diverged, 'refit').value).toBe(0.1);
  });
});
