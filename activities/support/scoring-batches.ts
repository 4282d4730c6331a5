import { lit, type Db } from '../../lib/duckdb';
import { parseByteSize } from '../../contracts/config';
import { recommendSql, type RecommendParams } from '../../analytics/baselines.sql';

/**
 * Personal candidate rows (a user's history × each history item's neighbours) one item-item ranking statement may
 * handle per GB of DuckDB memory. The candidate aggregate and the per-user ranking after it are the statement's
 * peak, and the ranking's window cannot spill: measured on 2 threads, 25M candidates fit in 1 GB and 75M in 2 GB
 * (both at the edge); 250M (1M users × 5 events × 50 neighbours) did not fit in 6 GB, nor did 420M (46,875
 * evaluated users × 50 history × 179 neighbours, the 20M-event scale run) in 3.9 GB. Two thirds of the lower rate
 * leaves room for skew between batches.
 */
export const CANDIDATES_PER_GB = 15_000_000;

/** Batches for `candidates` rows under `memoryLimit` (DuckDB's byte-size string): at least 1. */
export function batchesFor(candidates: number, memoryLimit: string): number {
  const budget = (parseByteSize(memoryLimit) / 1e9) * CANDIDATES_PER_GB;
  return Math.max(1, Math.ceil(candidates / budget));
}

/**
 * How many batches of users an item-item ranking (recommendSql) over `users` must be cut into so that each statement
 * stays within the memory limit: Σ_u min(distinct items of u in `history`, maxHistory) × the model's neighbours per
 * item, over what the limit allows. Only item-item scoring multiplies rows; other kinds read at most the model's
 * rows, so they take one batch. A user's list depends only on that user's history, so batches (sub-shards of the
 * user hash) change nothing in the output.
 */
export async function itemItemBatches(
  db: Db,
  p: {
    kind: string;
    modelFile: string;
    /** Table of (user_id, item_id, …) rows the lists are ranked from. */
    history: string;
    /** SQL predicate on `user_id` naming the users to be ranked. */
    users: string;
    maxHistory: number;
    memoryLimit: string;
  },
): Promise<number> {
  if (p.kind !== 'itemitem') return 1;
  const { candidates } = await db.one<{ candidates: number | null }>(`
    SELECT (SELECT sum(least(n, ${Math.trunc(p.maxHistory)})) FROM (
              SELECT count(DISTINCT item_id) AS n FROM ${p.history} WHERE ${p.users} GROUP BY user_id))
         * (SELECT count(*) / greatest(count(DISTINCT item_id), 1)
            FROM read_parquet(${lit(p.modelFile)}))::DOUBLE AS candidates`);
  return batchesFor(Number(candidates ?? 0), p.memoryLimit);
}

/**
 * recommendSql into `p.into`, its target users cut into as many batches as itemItemBatches asks for (each a
 * statement of its own, appended to `p.into`). Returns the number of batches.
 */
export async function rankInBatches(db: Db, p: RecommendParams, memoryLimit: string): Promise<number> {
  const batches = await itemItemBatches(db, {
    kind: p.kind,
    modelFile: p.modelFile,
    history: p.history,
    users: `user_id IN (SELECT user_id FROM ${p.targets})`,
    maxHistory: p.maxHistory,
    memoryLimit,
  });
  if (batches === 1) {
    await db.run(recommendSql(p));
    return 1;
  }
  const part = `${p.into}_batch`;
  for (let b = 0; b < batches; b++) {
    await db.run(recommendSql({ ...p, into: part, shard: { index: b, of: batches } }));
    await db.run(
      b === 0
        ? `CREATE OR REPLACE TEMP TABLE ${p.into} AS SELECT * FROM ${part}`
        : `INSERT INTO ${p.into} SELECT * FROM ${part}`,
    );
  }
  await db.run(`DROP TABLE ${part}`);
  return batches;
}
