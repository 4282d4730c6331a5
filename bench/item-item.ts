import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { lit, withDb, type Db } from '../lib/duckdb';
import { itemItemSql, mostPopSql, type RecommendParams } from '../analytics/baselines.sql';
import { rankInto, type ItemItemScoring } from '../activities/support/scoring-batches';
import { writeResults, type BenchResult } from './common';
import { dataset } from './e2e';

/**
 * Item-item ranking (the default challenger with privacy on, and every run's baseline): the same users ranked by
 * the statement alone (`sql`: candidates aggregated in DuckDB) and with candidates scored in typed arrays
 * (`arrays`, the default), alternated, on generated data (users = events / 100, 10,000 items); the lists must be
 * identical (a hash over every user, rank, item and score). Both use the same DuckDB memory limit and threads.
 */
export interface ItemItemBenchOptions {
  events?: number;
  /** Users ranked per measurement (default 20,000). */
  users?: number;
  rounds?: number;
}

async function rankOnce(db: Db, p: RecommendParams, scoring: ItemItemScoring) {
  const t0 = process.hrtime.bigint();
  await rankInto(db, p, scoring);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const { rows, digest } = await db.one<{ rows: number; digest: string }>(
    `SELECT count(*) AS rows, CAST(sum(hash(user_id, rank, item_id, score)) AS VARCHAR) AS digest FROM ${p.into}`,
  );
  return { seconds, rows: Number(rows), digest };
}

export async function benchItemItem(root: string, o: ItemItemBenchOptions = {}): Promise<string> {
  const events = o.events ?? 5_000_000;
  const users = o.users ?? 20_000;
  const rounds = o.rounds ?? 2;
  const csv = (await dataset(events)).interactions;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-bench-ii-'));
  const limits = { memoryLimit: '2GB', threads: Math.min(2, os.cpus().length) };
  const best: Record<ItemItemScoring, number> = { sql: Infinity, arrays: Infinity };
  const digests = new Set<string>();
  let rows = 0;
  try {
    await withDb(path.join(work, 'bench.duckdb'), limits, async (db) => {
      await db.run(`
        COPY (SELECT user_id, item_id, CAST("timestamp" AS TIMESTAMP) AS ts, 1.0 AS weight FROM read_csv(${lit(csv)}))
          TO ${lit(path.join(work, 'events.parquet'))} (FORMAT parquet);
        CREATE VIEW events AS SELECT * FROM read_parquet(${lit(path.join(work, 'events.parquet'))});`);
      const model = path.join(work, 'itemitem.parquet');
      const pop = path.join(work, 'mostpop.parquet');
      await db.run(itemItemSql('events', model, 50, 100));
      await db.run(mostPopSql('events', pop));
      await db.run(
        `CREATE TABLE targets AS SELECT DISTINCT user_id FROM events ORDER BY hash(user_id) LIMIT ${users}`,
      );
      const p: RecommendParams = {
        kind: 'itemitem',
        modelFile: model,
        mostPopFile: pop,
        targets: 'targets',
        history: 'events',
        k: 10,
        maxHistory: 50,
        into: 'recs',
      };
      for (let r = 0; r < rounds; r++) {
        for (const scoring of ['sql', 'arrays'] as const) {
          const m = await rankOnce(db, p, scoring);
          console.log(`[bench item-item] ${scoring}: ${m.seconds.toFixed(2)} s, ${m.rows} rows`);
          best[scoring] = Math.min(best[scoring], m.seconds);
          digests.add(m.digest);
          rows = m.rows;
        }
      }
    });
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  const results: BenchResult[] = [
    {
      metric: 'itemitem_rank_seconds_arrays',
      value: best.arrays,
      unit: 's',
      baseline: 'the ranking statement alone (candidates aggregated in DuckDB), same users and memory',
      baselineValue: best.sql,
      ratio: best.arrays / best.sql,
    },
    { metric: 'itemitem_users_per_second_arrays', value: users / best.arrays, unit: 'users/s' },
    { metric: 'itemitem_users_per_second_sql', value: users / best.sql, unit: 'users/s' },
    { metric: 'itemitem_identical_lists', value: digests.size === 1 ? 1 : 0, unit: 'bool' },
  ];
  if (digests.size !== 1)
    throw new Error(`item-item bench: the two paths gave different lists (${rows} rows)`);
  return writeResults(root, 'item-item', results, {
    events,
    users,
    rounds,
    items: 10_000,
    neighbours: 100,
    maxHistory: 50,
    k: 10,
    duckdb: limits,
    load: fs.readFileSync('/proc/loadavg', 'utf8').trim(),
  });
}
