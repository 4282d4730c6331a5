import { lit, type Db } from '../../lib/duckdb';
import { parseByteSize } from '../../contracts/config';
import { coldStartParts } from '../../analytics/cold-start.sql';
import { recommendSql, type RecommendParams } from '../../analytics/baselines.sql';
import { itemItemPersonalInto } from './item-item-personal';
import { fitsExactSum } from '../../models/item-item-topk';

/**
 * How item-item candidates are scored: `arrays` (the default) in typed arrays beside the statement
 * (./item-item-personal.ts), `sql` inside it. Both give the same lists; RECFORGE_ITEMITEM_SCORING=sql forces the
 * statement (benchmarks compare the two).
 */
export type ItemItemScoring = 'arrays' | 'sql';
const defaultScoring = (): ItemItemScoring =>
  process.env.RECFORGE_ITEMITEM_SCORING === 'sql' ? 'sql' : 'arrays';

/**
 * Runs one ranking statement (recommendSql) into `p.into`; item-item candidates are scored in typed arrays first
 * unless `scoring` says `sql` or the model is outside the arrays' exact bounds.
 */
export async function rankInto(
  db: Db,
  p: RecommendParams,
  scoring: ItemItemScoring = defaultScoring(),
): Promise<void> {
  if (p.kind === 'itemitem' && scoring === 'arrays' && !p.personalTable) {
    const cs = coldStartParts(p.coldStart);
    const table = `${p.into}_personal`;
    const done = await itemItemPersonalInto(db, {
      modelFile: p.modelFile,
      targets: p.targets,
      shard: p.shard,
      history: p.history,
      maxHistory: p.maxHistory,
      k: p.k,
      excludeItems: p.excludeItems,
      lightUserEvents: cs.light ? p.coldStart!.lightUserEvents : 0,
      into: table,
    });
    if (done) {
      await db.run(recommendSql({ ...p, personalTable: table }));
      await db.run(`DROP TABLE ${table}`);
      return;
    }
  }
  await db.run(recommendSql(p));
}

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
 * (user, item) history rows the typed-array path (./item-item-personal.ts) may take per batch and GB of DuckDB's
 * memory limit: it reads them into JavaScript arrays (~40 bytes a row while they are converted) and the statement
 * after it handles each user's k + seen-count backfill rows, never history × neighbours.
 */
export const HISTORY_ROWS_PER_GB = 5_000_000;

/**
 * How many batches of users an item-item ranking over `users` must be cut into so that each stays within the memory
 * limit. In the statement (`sql` scoring): Σ_u min(distinct items of u in `history`, maxHistory) × the model's
 * neighbours per item candidate rows, over CANDIDATES_PER_GB; in typed arrays: the users' distinct history rows
 * over HISTORY_ROWS_PER_GB (a model outside the arrays' exact bounds is ranked by the statement, and batched for
 * it). Only item-item scoring multiplies rows; other kinds read at most the model's rows, so they take one batch.
 * A user's list depends only on that user's history, so batches (sub-shards of the user hash) change nothing in
 * the output.
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
  scoring: ItemItemScoring = defaultScoring(),
): Promise<number> {
  if (p.kind !== 'itemitem') return 1;
  const { candidates, rows, max_sim } = await db.one<{
    candidates: number | null;
    rows: number | bigint;
    max_sim: number | null;
  }>(`
    WITH per_user AS (SELECT count(DISTINCT item_id) AS n FROM ${p.history} WHERE ${p.users} GROUP BY user_id),
    model AS (
      SELECT count(*) / greatest(count(DISTINCT item_id), 1) AS per_item, max(abs(sim)) AS max_sim
      FROM read_parquet(${lit(p.modelFile)}))
    SELECT (SELECT sum(least(n, ${Math.trunc(p.maxHistory)})) FROM per_user) * (SELECT per_item FROM model)::DOUBLE
             AS candidates,
           (SELECT coalesce(sum(n), 0) FROM per_user) AS rows,
           (SELECT max_sim FROM model) AS max_sim`);
  if (scoring === 'arrays' && fitsExactSum(Number(max_sim ?? 0), p.maxHistory)) {
    const budget = (parseByteSize(p.memoryLimit) / 1e9) * HISTORY_ROWS_PER_GB;
    return Math.max(1, Math.ceil(Number(rows) / budget));
  }
  return batchesFor(Number(candidates ?? 0), p.memoryLimit);
}

/**
 * recommendSql into `p.into`, its target users cut into as many batches as itemItemBatches asks for (each a
 * statement of its own, appended to `p.into`). Returns the number of batches.
 */
export async function rankInBatches(
  db: Db,
  p: RecommendParams,
  memoryLimit: string,
  scoring: ItemItemScoring = defaultScoring(),
): Promise<number> {
  const batches = await itemItemBatches(
    db,
    {
      kind: p.kind,
      modelFile: p.modelFile,
      history: p.history,
      users: `user_id IN (SELECT user_id FROM ${p.targets})`,
      maxHistory: p.maxHistory,
      memoryLimit,
    },
    scoring,
  );
  if (batches === 1) {
    await rankInto(db, p, scoring);
    return 1;
  }
  const part = `${p.into}_batch`;
  for (let b = 0; b < batches; b++) {
    await rankInto(db, { ...p, into: part, shard: { index: b, of: batches } }, scoring);
    await db.run(
      b === 0
        ? `CREATE OR REPLACE TEMP TABLE ${p.into} AS SELECT * FROM ${part}`
        : `INSERT INTO ${p.into} SELECT * FROM ${part}`,
    );
  }
  await db.run(`DROP TABLE ${part}`);
  return batches;
}
