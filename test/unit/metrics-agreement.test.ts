import { withDb, lit } from '../../lib/duckdb';
import { perUserMetricsSql } from '../../evaluation/metrics.sql';
import { userMetrics } from '../../evaluation/ranking-metrics';
import { ndcgAtK, recallAtK } from '../../models/metrics';

/**
 * Two metric engines, one definition: the evaluation stage's SQL and the plain-code metrics (which early
 * stopping uses) must give the same value for every user, metric and k on the same lists — as the
 * recommenders projects test their metric engines against each other.
 */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

test.each([
  [1, 5],
  [2, 10],
  [3, 20],
])('SQL and plain-code metrics agree per user (seed %i, k %i)', async (seed, k) => {
  const r = rng(seed);
  const catalogue = 80;
  const users = Array.from({ length: 60 }, (_, u) => `u${u}`);
  const lists = new Map<string, number[]>();
  const relevant = new Map<string, Set<number>>();
  for (const u of users) {
    // Lists of varying length (some shorter than k, some empty) without duplicates, as the ranking SQL makes them.
    const len = Math.floor(r() * (k + 6));
    const pool = Array.from({ length: catalogue }, (_, i) => i).sort(() => r() - 0.5);
    lists.set(u, pool.slice(0, len));
    const rel = new Set(Array.from({ length: 1 + Math.floor(r() * 6) }, () => Math.floor(r() * catalogue)));
    relevant.set(u, rel);
  }
  const rows = await withDb(':memory:', { memoryLimit: '256MB', threads: 1 }, async (db) => {
    await db.run(`CREATE TABLE recs (model VARCHAR, user_id VARCHAR, rank INTEGER, item_id VARCHAR);
                  CREATE TABLE relevant (user_id VARCHAR, item_id VARCHAR);`);
    const recValues = users.flatMap((u) =>
      lists.get(u)!.map((it, q) => `('m', ${lit(u)}, ${q + 1}, 'i${it}')`),
    );
    if (recValues.length) await db.run(`INSERT INTO recs VALUES ${recValues.join(', ')}`);
    await db.run(
      `INSERT INTO relevant VALUES ${users.flatMap((u) => [...relevant.get(u)!].map((it) => `(${lit(u)}, 'i${it}')`)).join(', ')}`,
    );
    await db.run(perUserMetricsSql(k, catalogue));
    return db.all<Record<string, number | string>>(`SELECT * FROM per_user_metrics ORDER BY user_id`);
  });
  expect(rows).toHaveLength(users.length);
  for (const row of rows) {
    const u = String(row.user_id);
    const js = userMetrics(lists.get(u)!, relevant.get(u)!, k, catalogue);
    for (const m of ['ndcg', 'recall', 'precision', 'hitrate', 'map', 'mrr', 'auc'] as const)
      expect([u, m, Number(row[m])]).toEqual([u, m, expect.closeTo(js[m], 12)]);
  }
});

test('early stopping metrics (models/metrics.ts) equal the evaluation definition on scored lists', async () => {
  // 3 users x 6 items, factors chosen so the ranking is known: user u prefers items in order of item . u.
  const numUsers = 3;
  const numItems = 6;
  const dim = 2;
  const userFactors = Float32Array.from([1, 0, 0, 1, 1, 1]);
  const itemFactors = Float32Array.from([6, 0, 5, 1, 4, 2, 3, 3, 2, 4, 0, 6]);
  const f = { numUsers, numItems, dim, userFactors, itemFactors };
  const heldOut = { userIdx: Int32Array.from([0, 0, 1, 2]), itemIdx: Int32Array.from([1, 4, 0, 3]) };
  const k = 3;
  // Reference lists from the same scores (ties by lower index).
  const ranked = (u: number) =>
    Array.from({ length: numItems }, (_, i) => i).sort((a, b) => {
      const s = (i: number) =>
        userFactors[u * dim] * itemFactors[i * dim] + userFactors[u * dim + 1] * itemFactors[i * dim + 1];
      return s(b) - s(a) || a - b;
    });
  const rel = [new Set([1, 4]), new Set([0]), new Set([3])];
  const mean = (m: 'ndcg' | 'recall') =>
    [0, 1, 2].reduce((a, u) => a + userMetrics(ranked(u), rel[u], k, numItems)[m], 0) / 3;
  expect(await ndcgAtK(f, heldOut, k)).toBeCloseTo(mean('ndcg'), 6);
  expect(await recallAtK(f, heldOut, k)).toBeCloseTo(mean('recall'), 6);
});
