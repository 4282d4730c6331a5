import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { lit, withDb } from '../../lib/duckdb';
import { recommendSql, type RecommendParams } from '../../analytics/baselines.sql';
import { batchesFor, itemItemBatches, rankInBatches } from '../../activities/support/scoring-batches';

const limits = { memoryLimit: '1GB', threads: 2 };

test('batchesFor: candidates over the per-GB budget, at least one batch', () => {
  expect(batchesFor(0, '2GB')).toBe(1);
  expect(batchesFor(29_000_000, '2GB')).toBe(1);
  expect(batchesFor(31_000_000, '2GB')).toBe(2);
  // The 20M-event scale run's evaluation: 46,875 users × 50 history × 179 neighbours under 3.9 GB.
  expect(batchesFor(46_875 * 50 * 179, '4212700501B')).toBe(7);
});

test('item-item ranking in batches of users gives exactly the lists of one statement', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-batches-'));
  const model = path.join(dir, 'neighbours.parquet');
  const pop = path.join(dir, 'mostpop.parquet');
  await withDb(':memory:', limits, async (db) => {
    // 300 users with 3..20 events over 60 items; neighbours: 8 per item with tied and distinct similarities.
    await db.run(`
      CREATE TABLE train_events AS
      SELECT 'u' || u AS user_id, 'i' || ((u * 7 + e * 13) % 60) AS item_id,
             TIMESTAMP '2026-01-01' + INTERVAL (u * 31 + e) MINUTE AS ts
      FROM range(300) a(u), range(20) b(e) WHERE e < 3 + u % 18`);
    await db.run(
      `CREATE TABLE eval_targets AS SELECT DISTINCT user_id FROM train_events WHERE hash(user_id) % 5 <> 0`,
    );
    await db.run(`
      COPY (SELECT 'i' || i AS item_id, 'i' || ((i + j * 11) % 60) AS neighbour_id, round(1.0 / (1 + (i * j) % 5), 3) AS sim
            FROM range(60) a(i), range(1, 9) b(j)) TO ${lit(model)} (FORMAT parquet)`);
    await db.run(`
      COPY (SELECT item_id, count(*)::DOUBLE AS score FROM train_events GROUP BY item_id) TO ${lit(pop)} (FORMAT parquet)`);
    const p: RecommendParams = {
      kind: 'itemitem',
      modelFile: model,
      mostPopFile: pop,
      targets: 'eval_targets',
      history: 'train_events',
      k: 10,
      maxHistory: 15,
      into: 'one',
    };
    await db.run(recommendSql(p));
    // ~240 users × ≤ 15 history × 8 neighbours ≈ 20k candidates; 100 kB of memory allows 1,500 per batch in the
    // statement; the typed-array path's ~2,600 history rows allow 500 per batch.
    const tiny = '100000B';
    const rows = (t: string) =>
      db.all<Record<string, unknown>>(
        `SELECT user_id, rank, item_id, score FROM ${t} ORDER BY user_id, rank`,
      );
    const one = await rows('one');
    expect(one.length).toBe(10 * Number(await db.scalar<number>(`SELECT count(*) FROM eval_targets`)));
    for (const scoring of ['sql', 'arrays'] as const) {
      const planned = await itemItemBatches(
        db,
        {
          kind: 'itemitem',
          modelFile: model,
          history: 'train_events',
          users: 'user_id IN (SELECT user_id FROM eval_targets)',
          maxHistory: 15,
          memoryLimit: tiny,
        },
        scoring,
      );
      expect([scoring, planned]).toEqual([scoring, expect.any(Number)]);
      expect(planned).toBeGreaterThan(4);
      const batches = await rankInBatches(db, { ...p, into: `batched_${scoring}` }, tiny, scoring);
      expect(batches).toBe(planned);
      expect(await rows(`batched_${scoring}`)).toEqual(one);
    }
    // Other kinds are not multiplied by neighbours: one statement.
    expect(await rankInBatches(db, { ...p, kind: 'mostpop', into: 'pop' }, tiny)).toBe(1);
  });
  fs.rmSync(dir, { recursive: true, force: true });
});
