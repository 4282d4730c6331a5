import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { lit, logTiming, type Db } from '../../lib/duckdb';
import { readTypedColumns } from '../../lib/typed-columns';
import { shardPredicate } from '../../analytics/baselines.sql';
import {
  fitsExactSum,
  groupByUser,
  itemItemTopK,
  maxAbs,
  neighbourCsr,
  type NeighbourCsr,
} from '../../models/item-item-topk';

/**
 * Item-item personal candidates computed in typed arrays (models/item-item-topk.ts) for the ranking statement to
 * read as a table, instead of the statement's own candidate aggregate. DuckDB supplies the inputs (the model, each
 * user's recent and seen items as integer columns) and takes the output back; the lists, scores and ties are the
 * statement's exactly (test/unit/item-item-topk.test.ts runs both on the same data).
 */

export interface ItemItemPersonalParams {
  modelFile: string;
  /** Table of the users to rank (column user_id). */
  targets: string;
  shard?: { index: number; of: number };
  /** Table of (user_id, item_id, ts) events: the history and the seen items. */
  history: string;
  maxHistory: number;
  k: number;
  excludeItems?: string;
  /** Users with fewer history events keep all their candidates (cold start's light users); 0: none. */
  lightUserEvents: number;
  /** Result table: (user_id, item_id, score), each user's best k unseen, available candidates. */
  into: string;
}

interface LoadedModel {
  modelFile: string;
  csr: NeighbourCsr;
  maxAbsSim: number;
}

/** With RECFORGE_SQL_TIMING, each step's wall time in the statements' log format (for the benchmarks' profiles). */
async function step<T>(label: string, fn: () => Promise<T> | T): Promise<T> {
  if (!process.env.RECFORGE_SQL_TIMING) return fn();
  const t0 = process.hrtime.bigint();
  const out = await fn();
  logTiming(t0, `item-item arrays: ${label}`);
  return out;
}

/** The model is loaded once per database session (a run's activity ranks several batches with one model). */
const loaded = new WeakMap<Db, LoadedModel>();

async function loadModel(db: Db, modelFile: string): Promise<LoadedModel> {
  const cached = loaded.get(db);
  if (cached?.modelFile === modelFile) return cached;
  // Item numbers in id order, so ordering by number is ordering by id (the statement's tie-break).
  await db.run(`
    CREATE OR REPLACE TEMP TABLE ii_dict AS
      SELECT item_id, CAST(row_number() OVER (ORDER BY item_id) - 1 AS INTEGER) AS idx FROM (
        SELECT item_id FROM read_parquet(${lit(modelFile)})
        UNION SELECT neighbour_id FROM read_parquet(${lit(modelFile)}))`);
  const items = Number(await db.scalar(`SELECT count(*) FROM ii_dict`));
  const { columns: cols } = await readTypedColumns(
    db,
    `
    SELECT s.idx AS src, d.idx AS dst, n.sim FROM read_parquet(${lit(modelFile)}) n
    JOIN ii_dict s ON s.item_id = n.item_id JOIN ii_dict d ON d.item_id = n.neighbour_id`,
    { src: 'i32', dst: 'i32', sim: 'f64' },
  );
  const model = {
    modelFile,
    maxAbsSim: maxAbs(cols.sim),
    csr: neighbourCsr(cols.src, cols.dst, cols.sim, items),
  };
  loaded.set(db, model);
  return model;
}

/**
 * Writes `p.into`. Returns false, writing nothing, where the typed-array path cannot be exact (similarities or a
 * history limit outside its bounds): the caller then lets the statement rank on its own.
 */
export async function itemItemPersonalInto(db: Db, p: ItemItemPersonalParams): Promise<boolean> {
  const model = await loadModel(db, p.modelFile);
  if (!fitsExactSum(model.maxAbsSim, p.maxHistory)) return false;
  await db.run(`
    CREATE OR REPLACE TEMP TABLE ii_users AS
      SELECT user_id, CAST(row_number() OVER (ORDER BY user_id) - 1 AS INTEGER) AS uid
      FROM (SELECT DISTINCT user_id FROM ${p.targets} WHERE ${shardPredicate('user_id', p.shard)})`);
  const users = Number(await db.scalar(`SELECT count(*) FROM ii_users`));
  // Each user's distinct items, newest first (latest event per item, ties by item id), ranked over all of them
  // before items unknown to the model (no neighbours, never a candidate) are dropped.
  const { columns: hist } = await step('read histories', () =>
    readTypedColumns(
      db,
      `
    SELECT u.uid, d.idx, h.rn, h.events FROM (
      SELECT user_id, item_id, row_number() OVER (PARTITION BY user_id ORDER BY max(ts) DESC, item_id) AS rn,
             sum(count(*)) OVER (PARTITION BY user_id) AS events
      FROM ${p.history} WHERE user_id IN (SELECT user_id FROM ii_users) GROUP BY user_id, item_id) h
    JOIN ii_users u ON u.user_id = h.user_id JOIN ii_dict d ON d.item_id = h.item_id`,
      { uid: 'i32', idx: 'i32', rn: 'i32', events: 'f64' },
    ),
  );
  const seen = groupByUser(hist.uid, hist.idx, users);
  let recentRows = 0;
  for (let r = 0; r < hist.rn.length; r++) if (hist.rn[r] <= p.maxHistory) recentRows++;
  const recentUser = new Int32Array(recentRows);
  const recentItem = new Int32Array(recentRows);
  for (let r = 0, at = 0; r < hist.rn.length; r++)
    if (hist.rn[r] <= p.maxHistory) {
      recentUser[at] = hist.uid[r];
      recentItem[at++] = hist.idx[r];
    }
  const recent = groupByUser(recentUser, recentItem, users);
  let keepAll: Uint8Array | undefined;
  if (p.lightUserEvents > 0) {
    // Light users as cold start counts them: fewer than lightUserEvents history rows (all of the user's events,
    // counted before items unknown to the model were dropped; a user with no row left has no candidates anyway).
    keepAll = new Uint8Array(users);
    for (let r = 0; r < hist.uid.length; r++)
      if (hist.events[r] < p.lightUserEvents) keepAll[hist.uid[r]] = 1;
  }
  let blocked: Uint8Array | undefined;
  if (p.excludeItems) {
    blocked = new Uint8Array(model.csr.items);
    const x = await db.columns(
      `SELECT d.idx FROM ii_dict d WHERE d.item_id IN (SELECT item_id FROM ${p.excludeItems})`,
    );
    for (const i of x.idx as number[]) blocked[i] = 1;
  }
  const top = await step('score', () =>
    itemItemTopK(
      model.csr,
      {
        users,
        historyOffsets: recent.offsets,
        history: recent.items,
        seenOffsets: seen.offsets,
        seen: seen.items,
        keepAll,
      },
      p.k,
      blocked,
    ),
  );
  if (top.count === 0) {
    await db.run(`CREATE OR REPLACE TEMP TABLE ${p.into} (user_id VARCHAR, item_id VARCHAR, score DOUBLE)`);
    return true;
  }
  // Back into DuckDB as CSV: JavaScript prints each double in its shortest form that reads back to the same bits.
  const csv = path.join(os.tmpdir(), `recforge-ii-${process.pid}-${randomBytes(4).toString('hex')}.csv`);
  const fd = await step('write candidates', () => fs.openSync(csv, 'w'));
  try {
    try {
      const CHUNK = 65_536;
      for (let start = 0; start < top.count; start += CHUNK) {
        const lines: string[] = [];
        for (let r = start; r < Math.min(top.count, start + CHUNK); r++)
          lines.push(`${top.user[r]},${top.item[r]},${top.score[r]}`);
        fs.writeSync(fd, lines.join('\n') + '\n');
      }
    } finally {
      // Also when a write fails (disk full): a worker serving runs for months must not leak descriptors.
      fs.closeSync(fd);
    }
    await db.run(`
      CREATE OR REPLACE TEMP TABLE ${p.into} AS
        SELECT u.user_id, d.item_id, r.score
        FROM read_csv(${lit(csv)}, header = false, columns = {'uid': 'INTEGER', 'idx': 'INTEGER', 'score': 'DOUBLE'}) r
        JOIN ii_users u ON u.uid = r.uid JOIN ii_dict d ON d.idx = r.idx`);
  } finally {
    fs.rmSync(csv, { force: true });
  }
  return true;
}
