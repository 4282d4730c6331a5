/**
 * Cold-start benchmark: `npm run build && node dist/bench/cold-start.js [--datasets movielens-small,synthetic]`
 * → bench/results/cold-start.json. Measures the ranking SQL's cold start (analytics/cold-start.sql.ts) with and
 * without it, in the same run, on splits where new items appear; the "without" is the baseline of each ratio.
 *
 * Splits (train = rows before the cut; relevant = positive holdout items the user did not see in training; users
 * with training history and at least one relevant item are evaluated):
 * - movielens-small/global: one global time cut (the latest 20% of ratings held out; ratings >= 4 positive). Few
 *   users span the cut (MovieLens users rate in bursts), so the numbers are noisy; reported with the user count.
 * - movielens-small/per-user: each user's latest 20% of positives held out (bench/quality/split.ts, the quality
 *   bench's protocol); an item rated only inside users' holdout periods is new to training.
 * - synthetic/global: the bundled data (configs/default.yaml `dataset.generate`), the last 7 days held out (the
 *   pipeline's default split). The generator introduces no items late, so almost no item is new here.
 * - synthetic-launch/global: the same data where every 10th item (by a hash of its id) launches at the cut: its
 *   events before the cut are dropped, so it is new to training and only interacted with in the holdout.
 *
 * Models: MostPop and item-item (SQL baselines with configs/default.yaml's limits) and EASE (models/ease.ts, its
 * top 50 as a candidate file, like the pipeline's learned models), trained on the training rows,
 * ranked by recommendSql (the pipeline's ranking code) with each cold-start setting. Metrics: the pipeline's
 * NDCG@10 / Recall@10 (evaluation/metrics.sql.ts) over all evaluated users and over light users (fewer than 5
 * training events, the evaluation's new-user segment), and new-item recall: the share of relevant (user, new
 * item) pairs whose item is in the user's top 10.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { findProjectRoot } from '../lib/config';
import { selectBackend } from '../models/backend';
import { fitEASE } from '../models/ease';
import { scoreEASE } from '../models/ease-score';
import { buildUserItemsCSR } from '../models/mf';
import { lit, withDb, type Db } from '../lib/duckdb';
import { itemItemSql, mostPopSql, recommendSql } from '../analytics/baselines.sql';
import { COLD_START_OFF, type ColdStartParams } from '../analytics/cold-start.sql';
import { aggregateMetricsSql, perUserMetricsSql } from '../evaluation/metrics.sql';
import { writeResults, type BenchResult } from './common';
import { loadSource, type Source } from './quality/data';
import { parseInteractions } from './quality/rows';
import { DEFAULT_SPLIT, isPositive, splitByUser, type Row } from './quality/split';

const K = 10;
const LIGHT_SEGMENT = 5;
const MAX_HISTORY = 50;
const NEIGHBOURS = 50;
const EVENT_WEIGHTS: Record<string, number> = { view: 1, click: 2, cart: 4, purchase: 8, rating: 1 };

export interface Variant {
  name: string;
  coldStart: Omit<ColdStartParams, 'items'>;
}

const off = COLD_START_OFF;

/** The settings compared: off (the baseline), each part alone over a range, and combinations. */
export function variants(quick: boolean): Variant[] {
  const v = (
    name: string,
    lightUserEvents: number,
    newItemSlots: number,
    newItemRank: number,
    extra: Partial<ColdStartParams> = {},
  ): Variant => ({ name, coldStart: { ...off, lightUserEvents, newItemSlots, newItemRank, ...extra } });
  const out = [
    v('off', 0, 0, 1),
    v('light5', 5, 0, 1),
    v('new1@10', 0, 1, 10),
    v('light5+new1@10', 5, 1, 10),
  ];
  if (quick) return out;
  return [
    ...out,
    v('light3', 3, 0, 1),
    v('light10', 10, 0, 1),
    v('light20', 20, 0, 1),
    v('light1000', 1000, 0, 1),
    v('light5/backfill', 5, 0, 1, { lightBlend: 0 }),
    v('light5/blend0.5', 5, 0, 1, { lightBlend: 0.5 }),
    v('light5/blend2', 5, 0, 1, { lightBlend: 2 }),
    v('new1@1', 0, 1, 1),
    v('new1@5', 0, 1, 5),
    v('new2@9', 0, 2, 9),
    v('new1@10/category-only', 0, 1, 10, { priceWeight: 0, tokenWeight: 0 }),
    v('new1@10/no-tokens', 0, 1, 10, { tokenWeight: 0 }),
    v('new1@10/no-price', 0, 1, 10, { priceWeight: 0 }),
    v('new1@10/price0.5', 0, 1, 10, { priceWeight: 0.5 }),
    v('light5+privacy', 5, 1, 10, { privacy: true }),
  ];
}

interface Prepared {
  id: string;
  /** Training rows and relevant pairs as CSV files for DuckDB. */
  eventsCsv: string;
  relevantCsv: string;
  /** EASE's candidates (user_id, item_id, score) for the evaluated users, as a `recs` model file. */
  easeCsv: string;
  itemsFile: string;
  note: string;
}

const csvCell = (s: string) => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

function writeRows(file: string, rows: readonly Row[], idx: Iterable<number>): void {
  const out: string[] = ['user_id,item_id,event_type,rating,ts\n'];
  for (const i of idx) {
    const r = rows[i];
    out.push(
      `${csvCell(r.user)},${csvCell(r.item)},${r.eventType},${r.rating ?? ''},${new Date(r.ts * 1000).toISOString()}\n`,
    );
  }
  fs.writeFileSync(file, out.join(''));
}

function writeRelevant(file: string, pairs: Iterable<[string, string]>): void {
  const out: string[] = ['user_id,item_id\n'];
  for (const [u, i] of pairs) out.push(`${csvCell(u)},${csvCell(i)}\n`);
  fs.writeFileSync(file, out.join(''));
}

/**
 * EASE (models/ease.ts; λ 300, the quality bench's MovieLens choice; positives only on explicit data) fitted on
 * the training rows; its top 50 unseen items per evaluated user become a `recs` candidate file, as the pipeline's
 * learned models hand theirs to the ranking SQL.
 */
async function easeCandidates(
  rows: readonly Row[],
  train: readonly number[],
  targets: Iterable<string>,
  rule: Source['positive'],
  file: string,
): Promise<void> {
  const users = new Map<string, number>();
  const items = new Map<string, number>();
  const itemIds: string[] = [];
  for (const i of train) {
    const r = rows[i];
    if (!users.has(r.user)) users.set(r.user, users.size);
    if (!items.has(r.item)) {
      items.set(r.item, items.size);
      itemIds.push(r.item);
    }
  }
  const pos = train.filter((i) => isPositive(rows[i], rule));
  const data = {
    userIdx: Int32Array.from(pos, (i) => users.get(rows[i].user)!),
    itemIdx: Int32Array.from(pos, (i) => items.get(rows[i].item)!),
    numUsers: users.size,
    numItems: items.size,
  };
  const { model } = await fitEASE(data, { lambda: 300 });
  const exclude = buildUserItemsCSR(
    Int32Array.from(train, (i) => users.get(rows[i].user)!),
    Int32Array.from(train, (i) => items.get(rows[i].item)!),
    users.size,
  );
  const userIds = [...users.keys()];
  const want = Int32Array.from([...targets].filter((u) => users.has(u)).map((u) => users.get(u)!));
  const out: string[] = ['user_id,item_id,score\n'];
  await scoreEASE(model, data, {
    topN: 50,
    users: want,
    exclude,
    onBlock: (b) =>
      b.users.forEach((u, r) => {
        for (let q = 0; q < b.topN; q++) {
          const it = b.items[r * b.topN + q];
          if (it >= 0)
            out.push(`${csvCell(userIds[u])},${csvCell(itemIds[it])},${b.scores[r * b.topN + q]}\n`);
        }
      }),
  });
  fs.writeFileSync(file, out.join(''));
}

/** FNV-1a of the id: a stable, id-order-free choice of launched items. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * A global time cut: the training rows are those before it; relevant = each user's positive rows at or after it
 * whose item the user has no training row for. `launched`: items whose rows before the cut are dropped.
 */
async function globalSplit(
  dir: string,
  id: string,
  src: Source,
  rows: readonly Row[],
  cut: number,
  launched?: (item: string) => boolean,
): Promise<Prepared> {
  const train: number[] = [];
  const seen = new Map<string, Set<string>>();
  rows.forEach((r, i) => {
    if (r.ts >= cut || launched?.(r.item)) return;
    train.push(i);
    let s = seen.get(r.user);
    if (!s) seen.set(r.user, (s = new Set()));
    s.add(r.item);
  });
  const relevant = new Set<string>();
  for (const r of rows) {
    if (r.ts < cut || !isPositive(r, src.positive)) continue;
    const s = seen.get(r.user);
    if (!s || s.has(r.item)) continue;
    relevant.add(`${r.user}\u0000${r.item}`);
  }
  fs.mkdirSync(dir, { recursive: true });
  const eventsCsv = path.join(dir, 'train.csv');
  const relevantCsv = path.join(dir, 'relevant.csv');
  writeRows(eventsCsv, rows, train);
  const pairs = [...relevant].map((k) => k.split('\u0000') as [string, string]);
  writeRelevant(relevantCsv, pairs);
  const easeCsv = path.join(dir, 'ease.csv');
  await easeCandidates(rows, train, new Set(pairs.map(([u]) => u)), src.positive, easeCsv);
  return {
    id,
    eventsCsv,
    relevantCsv,
    easeCsv,
    itemsFile: src.items!,
    note: `global cut at ${new Date(cut * 1000).toISOString()}`,
  };
}

async function perUserSplit(dir: string, id: string, src: Source, rows: readonly Row[]): Promise<Prepared> {
  const split = splitByUser(rows, src.positive, DEFAULT_SPLIT);
  fs.mkdirSync(dir, { recursive: true });
  const eventsCsv = path.join(dir, 'train.csv');
  const relevantCsv = path.join(dir, 'relevant.csv');
  writeRows(eventsCsv, rows, split.trainIdx);
  writeRelevant(
    relevantCsv,
    [...split.holdout].flatMap(([u, items]) => items.map((i) => [u, i] as [string, string])),
  );
  const easeCsv = path.join(dir, 'ease.csv');
  await easeCandidates(rows, split.trainIdx, split.holdout.keys(), src.positive, easeCsv);
  return {
    id,
    eventsCsv,
    relevantCsv,
    easeCsv,
    itemsFile: src.items!,
    note: "each user's latest 20% of positives held out",
  };
}

/** The time below which `share` of the rows lie (the cut of a global split holding out the rest). */
function quantileTs(rows: readonly Row[], share: number): number {
  const ts = rows.map((r) => r.ts).sort((a, b) => a - b);
  return ts[Math.min(ts.length - 1, Math.floor(ts.length * share))];
}

interface Measured {
  ndcg: number;
  recall: number;
  users: number;
  lightNdcg: number;
  lightRecall: number;
  lightUsers: number;
  newItemRecall: number;
  newItemPairs: number;
  newItemLists: number;
}

async function loadTables(db: Db, p: Prepared): Promise<void> {
  const weight = `CASE event_type ${Object.entries(EVENT_WEIGHTS)
    .map(([t, w]) => `WHEN ${lit(t)} THEN ${w}`)
    .join(' ')} ELSE 1 END`;
  await db.run(`
    CREATE OR REPLACE TABLE train_events AS
      SELECT user_id, item_id, event_type, TRY_CAST(rating AS DOUBLE) AS rating, CAST(ts AS TIMESTAMP) AS ts,
             ${weight} AS weight
      FROM read_csv(${lit(p.eventsCsv)}, header = true, all_varchar = true);
    CREATE OR REPLACE TABLE relevant AS
      SELECT DISTINCT user_id, item_id FROM read_csv(${lit(p.relevantCsv)}, header = true, all_varchar = true);
    CREATE OR REPLACE TABLE eval_targets AS SELECT DISTINCT user_id FROM relevant;
    CREATE OR REPLACE TABLE raw_items AS
      SELECT item_id, category, price, title, in_stock
      FROM read_csv(${lit(p.itemsFile)}, header = true, all_varchar = true);
    CREATE OR REPLACE TABLE light AS
      SELECT user_id FROM train_events GROUP BY user_id HAVING count(*) < ${LIGHT_SEGMENT};
    CREATE OR REPLACE TABLE new_items AS
      SELECT DISTINCT trim(item_id) AS item_id FROM raw_items
      WHERE trim(item_id) NOT IN (SELECT item_id FROM train_events);`);
}

async function measure(db: Db, recs: string): Promise<Measured> {
  const catalogue = Math.max(1, await db.scalar<number>(`SELECT count(DISTINCT item_id) FROM train_events`));
  await db.run(
    `CREATE OR REPLACE TABLE recs AS SELECT 'm' AS model, user_id, rank, item_id, score FROM ${recs}`,
  );
  await db.run(perUserMetricsSql(K, catalogue));
  const all = await db.one<{ 'ndcg@k': number; 'recall@k': number; users: number }>(
    aggregateMetricsSql(K, catalogue),
  );
  const light = await db.one<{ ndcg: number; recall: number; users: number }>(`
    SELECT coalesce(avg(ndcg), 0) AS ndcg, coalesce(avg(recall), 0) AS recall, count(*) AS users
    FROM per_user_metrics WHERE user_id IN (SELECT user_id FROM light)`);
  const fresh = await db.one<{ pairs: number; hits: number; lists: number }>(`
    SELECT (SELECT count(*) FROM relevant v WHERE v.item_id IN (SELECT item_id FROM new_items)) AS pairs,
           (SELECT count(*) FROM relevant v JOIN recs r ON r.user_id = v.user_id AND r.item_id = v.item_id
            WHERE r.rank <= ${K} AND v.item_id IN (SELECT item_id FROM new_items)) AS hits,
           (SELECT count(DISTINCT user_id) FROM recs WHERE item_id IN (SELECT item_id FROM new_items)) AS lists`);
  return {
    ndcg: Number(all['ndcg@k']),
    recall: Number(all['recall@k']),
    users: Number(all.users),
    lightNdcg: Number(light.ndcg),
    lightRecall: Number(light.recall),
    lightUsers: Number(light.users),
    newItemRecall: Number(fresh.pairs) > 0 ? Number(fresh.hits) / Number(fresh.pairs) : 0,
    newItemPairs: Number(fresh.pairs),
    newItemLists: Number(fresh.lists),
  };
}

async function benchSplit(
  db: Db,
  p: Prepared,
  vs: Variant[],
  dir: string,
  log: (s: string) => void,
): Promise<{ results: BenchResult[]; table: Record<string, Record<string, Measured>> }> {
  await loadTables(db, p);
  const mostPop = path.join(dir, 'mostpop.parquet');
  const itemItem = path.join(dir, 'itemitem.parquet');
  await db.run(mostPopSql('train_events', mostPop));
  await db.run(itemItemSql('train_events', itemItem, MAX_HISTORY, NEIGHBOURS));
  const ease = path.join(dir, 'ease.parquet');
  await db.run(`COPY (SELECT user_id, item_id, CAST(score AS DOUBLE) AS score
                      FROM read_csv(${lit(p.easeCsv)}, header = true, all_varchar = true)) TO ${lit(ease)} (FORMAT parquet)`);
  const counts = await db.one<{ users: number; light: number; newItems: number; newPairs: number }>(`
    SELECT (SELECT count(*) FROM eval_targets) AS users,
           (SELECT count(*) FROM eval_targets WHERE user_id IN (SELECT user_id FROM light)) AS light,
           (SELECT count(*) FROM new_items) AS "newItems",
           (SELECT count(*) FROM relevant WHERE item_id IN (SELECT item_id FROM new_items)) AS "newPairs"`);
  log(
    `${p.id}: ${counts.users} evaluated users (${counts.light} light), ${counts.newItems} new items, ` +
      `${counts.newPairs} relevant pairs with new items (${p.note})`,
  );
  const results: BenchResult[] = [];
  const table: Record<string, Record<string, Measured>> = {};
  for (const [model, kind, file] of [
    ['ease', 'recs', ease],
    ['itemitem', 'itemitem', itemItem],
    ['mostpop', 'mostpop', mostPop],
  ] as const) {
    table[model] = {};
    for (const v of vs) {
      await db.run(
        recommendSql({
          kind,
          modelFile: file,
          mostPopFile: mostPop,
          targets: 'eval_targets',
          history: 'train_events',
          k: K,
          maxHistory: MAX_HISTORY,
          into: 'cs_recs',
          coldStart: { ...v.coldStart, items: 'raw_items' },
        }),
      );
      table[model][v.name] = await measure(db, 'cs_recs');
    }
    const base = table[model]['off'];
    for (const v of vs) {
      const m = table[model][v.name];
      const row = (metric: string, value: number, baselineValue: number, unit = '') => {
        const r: BenchResult = { metric: `${p.id}/${model}/${v.name}/${metric}`, value: round(value), unit };
        if (v.name !== 'off') {
          r.baseline = `${p.id}/${model}/off/${metric}`;
          r.baselineValue = round(baselineValue);
          r.ratio = baselineValue > 0 ? round(value / baselineValue, 3) : undefined;
          if (r.ratio === undefined) delete r.ratio;
        }
        results.push(r);
      };
      row('ndcg@10', m.ndcg, base.ndcg);
      row('recall@10', m.recall, base.recall);
      row('ndcg@10_light', m.lightNdcg, base.lightNdcg);
      row('recall@10_light', m.lightRecall, base.lightRecall);
      row('new_item_recall@10', m.newItemRecall, base.newItemRecall);
    }
    results.push(
      { metric: `${p.id}/users`, value: Number(counts.users), unit: 'users' },
      { metric: `${p.id}/light_users`, value: Number(counts.light), unit: 'users' },
      { metric: `${p.id}/new_items`, value: Number(counts.newItems), unit: 'items' },
      { metric: `${p.id}/new_item_pairs`, value: Number(counts.newPairs), unit: 'pairs' },
    );
  }
  return { results: dedupe(results), table };
}

function dedupe(rs: BenchResult[]): BenchResult[] {
  const seen = new Set<string>();
  return rs.filter((r) => (seen.has(r.metric) ? false : (seen.add(r.metric), true)));
}

function round(x: number, d = 4): number {
  return Number.isFinite(x) ? Number(x.toFixed(d)) : x;
}

function printTable(id: string, table: Record<string, Record<string, Measured>>): void {
  console.log(`\n[cold-start] ${id}`);
  const head = [
    'model',
    'variant',
    'NDCG@10',
    'Recall@10',
    'NDCG light',
    'Recall light',
    'new-item R',
    'new lists',
  ];
  const body: string[][] = [];
  for (const [model, byVariant] of Object.entries(table)) {
    const base = byVariant['off'];
    for (const [v, m] of Object.entries(byVariant)) {
      const rel = (a: number, b: number) => (v === 'off' || b <= 0 ? '' : ` (${(a / b).toFixed(3)})`);
      body.push([
        model,
        v,
        m.ndcg.toFixed(4) + rel(m.ndcg, base.ndcg),
        m.recall.toFixed(4) + rel(m.recall, base.recall),
        m.lightNdcg.toFixed(4) + rel(m.lightNdcg, base.lightNdcg),
        m.lightRecall.toFixed(4) + rel(m.lightRecall, base.lightRecall),
        m.newItemRecall.toFixed(4),
        String(m.newItemLists),
      ]);
    }
  }
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  console.log(line(head));
  for (const b of body) console.log(line(b));
}

export async function benchColdStart(
  root: string,
  o: { datasets: string[]; quick: boolean; threads: number },
): Promise<string> {
  const log = (s: string) => console.log(`[cold-start] ${s}`);
  const work = path.join(root, 'data', 'bench', 'cold-start');
  const vs = variants(o.quick);
  await selectBackend('auto');
  const results: BenchResult[] = [];
  const details: Record<string, unknown> = {};
  for (const ds of o.datasets) {
    if (ds !== 'movielens-small' && ds !== 'synthetic') throw new Error(`unknown dataset ${ds}`);
    const got = await loadSource(root, ds, { movielensSource: 'dslabs', log });
    if (!got.ok) throw new Error(got.reason);
    const src = got.source;
    if (!src.items) throw new Error(`${ds} has no items file: nothing to cold-start from`);
    const rows = parseInteractions(fs.readFileSync(src.interactions, 'utf8'), src.parse).rows;
    const splits: Prepared[] = [];
    if (ds === 'movielens-small') {
      splits.push(
        await globalSplit(
          path.join(work, 'ml-global'),
          'movielens-small/global',
          src,
          rows,
          quantileTs(rows, 0.8),
        ),
        await perUserSplit(path.join(work, 'ml-per-user'), 'movielens-small/per-user', src, rows),
      );
    } else {
      const cut = rows.reduce((m, r) => Math.max(m, r.ts), -Infinity) - 7 * 86400;
      splits.push(
        await globalSplit(path.join(work, 'synthetic'), 'synthetic/global', src, rows, cut),
        await globalSplit(
          path.join(work, 'synthetic-launch'),
          'synthetic-launch/global',
          src,
          rows,
          cut,
          (item) => hash(item) % 10 === 0,
        ),
      );
    }
    for (const p of splits) {
      const t0 = Date.now();
      const r = await withDb(':memory:', { memoryLimit: '4GB', threads: o.threads }, (db) =>
        benchSplit(db, p, vs, path.dirname(p.eventsCsv), log),
      );
      printTable(p.id, r.table);
      results.push(...r.results);
      details[p.id] = { note: p.note, seconds: (Date.now() - t0) / 1000 };
    }
  }
  return writeResults(root, 'cold-start', results, {
    k: K,
    lightSegment: `fewer than ${LIGHT_SEGMENT} training events`,
    models: `mostpop, itemitem (maxHistory ${MAX_HISTORY}, neighbours ${NEIGHBOURS}), ease (lambda 300, top 50)`,
    variants: Object.fromEntries(vs.map((v) => [v.name, v.coldStart])),
    splits: details,
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      datasets: { type: 'string' },
      quick: { type: 'boolean' },
      threads: { type: 'string' },
    },
  });
  const file = await benchColdStart(findProjectRoot(), {
    datasets: (values.datasets ?? 'movielens-small,synthetic').split(',').map((s) => s.trim()),
    quick: values.quick ?? false,
    threads: Number(values.threads ?? 4),
  });
  console.log(`[cold-start] wrote ${file}`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
