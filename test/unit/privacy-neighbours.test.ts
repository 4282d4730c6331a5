import * as fs from 'node:fs';
import * as path from 'node:path';
import { Db, lit } from '../../lib/duckdb';
import { loadConfig, type RecforgeConfig } from '../../lib/config';
import { cleanRows, splitAndBound, type CleanContext } from '../../activities/clean';
import { cooccurrenceCountsSql, observedItemUsersSql, popularityCountsSql } from '../../activities/train/dp';
import { plannedReleases, type ItemSelection } from '../../privacy/run-plan';
import { itemUserCountSensitivity, type Sensitivity } from '../../privacy';
import { ROOT, tempDir } from '../helpers/env';

/**
 * The neighbour harness: user-level DP holds only if every statistic a release computes moves by at most the
 * sensitivity its noise was calibrated to when one user is added or removed — after *all* the steps between
 * reading the data and the release (cleaning, bot detection, duplicates, the split, contribution bounding), not
 * just after bounding. For generated datasets with adversarial users (a far-future event, users just under and
 * over the bot threshold, a user with many items, the only user of an item, duplicates and near-duplicates, ties
 * in time), it removes one user at a time — the removed user's rows also leave the file, so every later row's
 * position shifts, as in a real re-delivery — runs the real cleaning + split + bounding SQL in DuckDB, then the
 * exact SQL each release aggregates with, and checks L0/L1/L2/L∞ of the change against the calibrated
 * sensitivity. It also checks the property those bounds rest on: every other user's bounded rows are identical.
 */

const SECRET = 'neighbour-harness-fixed-sampling-key-0123456789abcdef';
const BOT_MAX_PER_DAY = 40;

interface Dataset {
  name: string;
  /** Raw rows (all text), in file order. */
  rows: string[][];
  itemsCsv: string | null;
  config: RecforgeConfig;
  startedAt: string;
  /** Users whose removal is tried. */
  remove: string[];
  /** Keys the popularity release counts over (public catalogue, or a fixed set standing in for the DP selection). */
  keys: string[];
  /** Candidate items of the co-occurrence release (a fixed public set). */
  candidates: string[];
  items: ItemSelection;
}

const COLUMNS = ['user_id', 'item_id', 'event_type', 'rating', 'timestamp'] as const;

/** A seeded generator (xorshift) for the adversarial rows and the neighbour sample: the harness is reproducible. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

const iso = (ms: number) => new Date(ms).toISOString();
const DAY = 86_400_000;

/** Adversarial users, placed at the start of the file so that removing one shifts every other row's position. */
function adversarialRows(end: number, itemIds: string[]): string[][] {
  const rows: string[][] = [];
  const at = (d: number, h = 12, s = 0) => iso(end - d * DAY + h * 3_600_000 + s * 1000);
  // One event four days after everyone else (still within the run's future limit of start + 1 day).
  rows.push(['adv-future', itemIds[0], 'view', '', iso(end + 4 * DAY - 3_600_000)]);
  rows.push(['adv-future', itemIds[1], 'click', '', at(10)]);
  // Just under and just over the public bot threshold (events per active day), on two days each.
  for (const [user, perDay] of [
    ['adv-bot-under', BOT_MAX_PER_DAY],
    ['adv-bot-over', BOT_MAX_PER_DAY + 1],
  ] as const) {
    for (const d of [3, 12])
      for (let k = 0; k < perDay; k++)
        rows.push([user, itemIds[k % itemIds.length], 'view', '', at(d, 9, k * 30)]);
  }
  // A cohort of heavy users spread densely (half steps: two active days of n and n + 1 events) over 14..38.5
  // events a day: whatever threshold a rule computes across users, someone sits next to it and flips when one
  // other user leaves. With privacy on the threshold is public, and they fall on either side for good.
  for (let n = 14; n <= 38; n++)
    for (const extra of [0, 1]) {
      const user = `adv-rate-${n}${extra ? '.5' : ''}`;
      for (const [d, count] of [
        [6, n],
        [13, n + extra],
      ])
        for (let k = 0; k < count; k++)
          rows.push([user, itemIds[(k * 7) % itemIds.length], 'view', '', at(d, 8, k * 20)]);
    }
  // Many items, many events (well over every cap), half of them in the holdout period.
  for (let k = 0; k < 120; k++)
    rows.push(['adv-many', itemIds[k % itemIds.length], k % 3 ? 'view' : 'purchase', '', at(k % 20, 8, k)]);
  // The only user of an item (in the catalogue, or only in the data).
  rows.push(['adv-only', 'i-only-one', 'purchase', '', at(9)]);
  rows.push(['adv-only', 'i-only-one', 'view', '', at(2)]);
  rows.push(['adv-only', itemIds[2], 'view', '', at(2)]);
  // Exact duplicates and near-duplicates (1 s apart) of the same events.
  for (let k = 0; k < 3; k++) {
    rows.push(['adv-dupes', itemIds[3], 'click', '', at(5)]);
    rows.push(['adv-dupes', itemIds[3], 'click', '', at(5, 12, 1)]);
    rows.push(['adv-dupes', itemIds[4], 'view', '', at(9, 12, k)]);
  }
  // Ties in time across items; and the same instant on both sides of nothing in particular.
  for (let k = 0; k < 12; k++) rows.push(['adv-ties', itemIds[k], 'view', '', at(8)]);
  for (let k = 0; k < 12; k++) rows.push(['adv-ties', itemIds[k], 'click', '', at(1)]);
  // A user whose only events fall exactly on the cut.
  rows.push(['adv-cut', itemIds[5], 'view', '', iso(end - 7 * DAY)]);
  rows.push(['adv-cut', itemIds[6], 'view', '', iso(end - 7 * DAY - 1000)]);
  return rows;
}

function readCsvRows(file: string): string[][] {
  const [header, ...lines] = fs.readFileSync(file, 'utf8').split('\n');
  const cols = header.split(',');
  const idx = COLUMNS.map((c) => cols.indexOf(c));
  // Generated logs have no quoted fields; lines that do not split cleanly are malformed rows (they would be
  // quarantined at ingest and never reach `raw_events`).
  return lines
    .filter((l) => l.length > 0)
    .map((l) => l.split(','))
    .filter((f) => f.length === cols.length)
    .map((f) => idx.map((i) => (i >= 0 ? f[i] : '')));
}

async function makeDataset(
  name: string,
  opts: { seed: number; split: 'time' | 'user-time'; catalogue: boolean; cutoff: boolean; sample: number },
): Promise<Dataset> {
  const dir = tempDir(`neighbours-${name}`);
  const { generateDataset } = await import('../../datasets/synthetic');
  await generateDataset({
    users: 120,
    items: 60,
    events: 3500,
    seed: opts.seed,
    out: dir,
    dirtyRate: 0.03,
    botUsers: 2,
    days: 28,
    start: '2026-09-01',
  });
  const end = Date.parse('2026-09-29T00:00:00Z');
  const base = readCsvRows(path.join(dir, 'interactions.csv'));
  const itemIds = [...new Set(base.map((r) => r[1]))].filter((i) => /^[\w-]+$/.test(i)).sort();
  const rows = [...adversarialRows(end, itemIds), ...base];
  let itemsCsv: string | null = null;
  if (opts.catalogue) {
    itemsCsv = path.join(dir, 'items-with-only.csv');
    const items = fs.readFileSync(path.join(dir, 'items.csv'), 'utf8').trimEnd();
    const cols = items.split('\n')[0].split(',').length;
    fs.writeFileSync(itemsCsv, `${items}\ni-only-one${',x'.repeat(cols - 2)},true\n`);
  }
  // The run starts three days after the data ends: the far-future event (end + 4 days) is within the future limit.
  const startedAt = iso(end + 3 * DAY);
  const config = loadConfig({
    root: ROOT,
    env: {},
    overrides: {
      dataDir: dir,
      privacy: {
        enabled: true,
        unit: 'neighbour-harness',
        caps: { maxEventsPerUser: 20, maxEventsPerUserItem: 3, maxItemsPerUser: 6 },
      },
      // botMinEventsPerDay (the adaptive rule's floor) only matters with privacy off: a low floor lets the
      // median/MAD across users decide there. With privacy on the public botMaxEventsPerDay decides alone.
      cleaning: {
        detectBots: true,
        botMaxEventsPerDay: BOT_MAX_PER_DAY,
        botMinEventsPerDay: 5,
        nearDuplicateSeconds: 2,
      },
      evaluation: {
        split: opts.split,
        holdoutDays: 7,
        holdoutFraction: 0.2,
        // Explicit, or the default: the run date minus holdoutDays (here: end - 4 days).
        ...(opts.cutoff ? { cutoff: iso(end - 7 * DAY) } : {}),
      },
      quality: { minRows: 1 },
    },
  }).config;
  const rand = prng(opts.seed);
  const users = [...new Set(rows.map((r) => r[0].trim()))].filter((u) => u.length > 0);
  const adversarial = users.filter((u) => u.startsWith('adv-'));
  const ordinary = users.filter((u) => !u.startsWith('adv-'));
  const heavy = [...ordinary].sort(
    (a, b) => rows.filter((r) => r[0] === b).length - rows.filter((r) => r[0] === a).length,
  );
  const sample = new Set<string>([...adversarial, ...heavy.slice(0, 6), ...heavy.slice(-3)]);
  while (sample.size < opts.sample && sample.size < users.length)
    sample.add(users[Math.floor(rand() * users.length)]);
  const popular = [...itemIds].sort(
    (a, b) => rows.filter((r) => r[1] === b).length - rows.filter((r) => r[1] === a).length,
  );
  return {
    name,
    rows,
    itemsCsv,
    config,
    startedAt,
    remove: [...sample],
    keys: [...new Set([...itemIds, 'i-only-one'])].sort(),
    candidates: [...new Set([...popular.slice(0, 14), 'i-only-one', itemIds[3], itemIds[4]])],
    items: opts.catalogue ? 'public-catalogue' : 'dp-partition-selection',
  };
}

interface Stats {
  /** Per user: their bounded rows (train and all), as sorted strings. */
  bounded: Map<string, string>;
  pop: { train: Map<string, number>; all: Map<string, number> };
  co: { train: Map<string, number>; all: Map<string, number> };
  /** Partition selection's input: distinct users per item that occurs in all bounded events. */
  observed: Map<string, number>;
}

const csvQuote = (v: string) => `"${v.replace(/"/g, '""')}"`;

/** Writes rows (with their file position) as a CSV the harness loads once per dataset. */
function writeRows(file: string, rows: string[][]): void {
  const lines = rows.map((r, i) => [String(i), ...r.map(csvQuote)].join(','));
  fs.writeFileSync(file, `pos,${COLUMNS.join(',')}\n${lines.join('\n')}\n`);
}

/**
 * Makes `raw_events` the base rows minus `without` (a user id, trimmed as cleaning trims it), with row ids and
 * lines from their position in the file as ingest assigns them, then runs cleaning, the split and bounding.
 */
async function statsOf(db: Db, ds: Dataset, without: string | null, runDir: string): Promise<Stats> {
  await db.run(`DROP TABLE IF EXISTS raw_events;
    CREATE TABLE raw_events AS
    SELECT row_number() OVER (ORDER BY pos) AS rid, 'interactions.csv' AS source_file,
           row_number() OVER (ORDER BY pos) + 1 AS source_line, user_id, item_id, event_type, rating, "timestamp"
    FROM base_raw ${without === null ? '' : `WHERE coalesce(trim(user_id), '') <> ${lit(without)}`}`);
  const plan = {
    config: ds.config,
    startedAt: ds.startedAt,
    // The run date is the start's date (not incremental), as the plan activity derives it.
    runDate: ds.startedAt.slice(0, 10),
    datasetId: ds.name,
    runId: 'neighbours',
    runDir,
    incremental: null,
  } satisfies CleanContext;
  await cleanRows(db, plan);
  await splitAndBound(db, plan, SECRET);

  const bounded = new Map<string, string>();
  for (const r of await db.all<{ user_id: string; rows: string }>(`
      SELECT user_id, string_agg(t || '|' || item_id || '|' || event_type || '|' || CAST(ts AS VARCHAR) || '|' ||
                                 coalesce(CAST(rating AS VARCHAR), ''), ';' ORDER BY t, item_id, event_type, ts, rating) AS rows
      FROM (SELECT 'T' AS t, * FROM train_bounded UNION ALL SELECT 'A', * FROM all_bounded) GROUP BY user_id`))
    bounded.set(r.user_id, r.rows);
  const counts = async (sql: string, key: (r: Record<string, unknown>) => string, v: string) =>
    new Map((await db.all<Record<string, unknown>>(sql)).map((r) => [key(r), Number(r[v])]));
  const byItem = (r: Record<string, unknown>) => String(r.item_id);
  const byPair = (r: Record<string, unknown>) => `${String(r.i)}|${String(r.j)}`;
  return {
    bounded,
    pop: {
      train: await counts(popularityCountsSql('train_bounded'), byItem, 'n'),
      all: await counts(popularityCountsSql('all_bounded'), byItem, 'n'),
    },
    co: {
      train: await counts(cooccurrenceCountsSql('train_bounded'), byPair, 'co'),
      all: await counts(cooccurrenceCountsSql('all_bounded'), byPair, 'co'),
    },
    observed: await counts(observedItemUsersSql('all_bounded'), byItem, 'users'),
  };
}

interface Norms {
  l0: number;
  l1: number;
  l2: number;
  linf: number;
}

function norms(a: Map<string, number>, b: Map<string, number>): Norms {
  const n: Norms = { l0: 0, l1: 0, l2: 0, linf: 0 };
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    const d = Math.abs((a.get(k) ?? 0) - (b.get(k) ?? 0));
    if (d === 0) continue;
    n.l0++;
    n.l1 += d;
    n.l2 += d * d;
    n.linf = Math.max(n.linf, d);
  }
  n.l2 = Math.sqrt(n.l2);
  return n;
}

const TOL = 1e-9;
function within(n: Norms, s: Sensitivity): boolean {
  return n.l0 <= s.l0 + TOL && n.l1 <= s.l1 + TOL && n.l2 <= s.l2 + TOL && n.linf <= s.linf + TOL;
}

interface Violation {
  dataset: string;
  removed: string;
  stat: string;
  moved: Norms;
  calibrated: { l0: number; l1: number; l2: number; linf: number };
}

async function checkDataset(
  ds: Dataset,
): Promise<{ neighbours: number; violations: Violation[]; others: string[] }> {
  const db = await Db.open(':memory:', { memoryLimit: '1GB', threads: 1 });
  const runDir = tempDir(`neighbours-run-${ds.name}`);
  const violations: Violation[] = [];
  const others: string[] = [];
  try {
    await db.run(`SET TimeZone = 'UTC'`);
    await db.run(
      `CREATE TABLE raw_rejects (source_file VARCHAR, source_line BIGINT, reason VARCHAR, detail VARCHAR, raw VARCHAR)`,
    );
    await db.run(
      ds.itemsCsv
        ? `CREATE TABLE raw_items AS SELECT * FROM read_csv(${lit(ds.itemsCsv)}, header = true, all_varchar = true)`
        : `CREATE TABLE raw_items (item_id VARCHAR, category VARCHAR, price VARCHAR, title VARCHAR, in_stock VARCHAR)`,
    );
    const file = (name: string) => path.join(runDir, name);
    writeRows(file('rows.csv'), ds.rows);
    fs.writeFileSync(file('keys.csv'), `item_id\n${ds.keys.map(csvQuote).join('\n')}\n`);
    fs.writeFileSync(
      file('cand.csv'),
      `item_id,pos\n${ds.candidates.map((c, i) => `${csvQuote(c)},${i}`).join('\n')}\n`,
    );
    await db.run(`CREATE TABLE base_raw AS SELECT * FROM read_csv(${lit(file('rows.csv'))}, header = true,
      columns = {'pos': 'BIGINT', 'user_id': 'VARCHAR', 'item_id': 'VARCHAR', 'event_type': 'VARCHAR', 'rating': 'VARCHAR', 'timestamp': 'VARCHAR'})`);
    await db.run(
      `CREATE TABLE dp_keys AS SELECT * FROM read_csv(${lit(file('keys.csv'))}, header = true, columns = {'item_id': 'VARCHAR'})`,
    );
    await db.run(
      `CREATE TABLE cand AS SELECT * FROM read_csv(${lit(file('cand.csv'))}, header = true, columns = {'item_id': 'VARCHAR', 'pos': 'INTEGER'})`,
    );
    const base = await statsOf(db, ds, null, runDir);
    // The adversarial premises hold in the base dataset, so each case is really exercised: the far-future event
    // is kept, the user over the bot threshold is quarantined and the one under it is not, the caps bite.
    const premise = await db.one<Record<string, number>>(`SELECT
      (SELECT count(*) FROM events WHERE user_id = 'adv-future' AND ts > TIMESTAMP '2026-09-29') AS future_kept,
      (SELECT count(*) FROM quarantine WHERE user_id = 'adv-bot-over' AND reason = 'bot_user') AS over_quarantined,
      (SELECT count(*) FROM events WHERE user_id = 'adv-bot-under') AS under_kept,
      (SELECT count(*) FROM quarantine WHERE user_id = 'adv-dupes' AND reason IN ('duplicate', 'near_duplicate')) AS dupes,
      (SELECT count(*) FROM events WHERE user_id = 'adv-many') - (SELECT count(*) FROM all_bounded WHERE user_id = 'adv-many') AS capped,
      (SELECT count(*) FROM all_bounded WHERE item_id = 'i-only-one') AS only_item`);
    expect(premise).toEqual({
      future_kept: 1,
      over_quarantined: 2 * (BOT_MAX_PER_DAY + 1),
      under_kept: 2 * BOT_MAX_PER_DAY,
      dupes: expect.any(Number),
      capped: expect.any(Number),
      only_item: expect.any(Number),
    });
    expect(premise.dupes).toBeGreaterThan(0);
    expect(premise.capped).toBeGreaterThan(50);
    expect(premise.only_item).toBeGreaterThan(0);
    const sens = plannedReleases(ds.config, ds.items);
    const ps = itemUserCountSensitivity(ds.config.privacy.caps);
    for (const u of ds.remove) {
      const st = await statsOf(db, ds, u, runDir);
      const check = (stat: string, a: Map<string, number>, b: Map<string, number>, s: Sensitivity) => {
        const moved = norms(a, b);
        if (!within(moved, s))
          violations.push({
            dataset: ds.name,
            removed: u,
            stat,
            moved,
            calibrated: { l0: s.l0, l1: s.l1, l2: s.l2, linf: s.linf },
          });
      };
      check('popularity (training split)', base.pop.train, st.pop.train, sens.popularity.sensitivity);
      check('popularity (all data)', base.pop.all, st.pop.all, sens.popularity.sensitivity);
      check('co-occurrence (training split)', base.co.train, st.co.train, sens.cooccurrence.sensitivity);
      check('co-occurrence (all data)', base.co.all, st.co.all, sens.cooccurrence.sensitivity);
      check('partition-selection counts', base.observed, st.observed, ps);
      // Keys only one dataset has (the partition selection's new keys) hold exactly that user: count 1.
      for (const [k, n] of base.observed)
        if (!st.observed.has(k) && n !== 1) others.push(`${ds.name}/${u}: key ${k} vanished with count ${n}`);
      for (const [v, rowsOfV] of base.bounded) {
        if (v === u) continue;
        if (st.bounded.get(v) !== rowsOfV)
          others.push(`${ds.name}: removing ${u} changed ${v}'s bounded rows`);
      }
    }
    return { neighbours: ds.remove.length, violations, others };
  } finally {
    db.close();
    fs.rmSync(runDir, { recursive: true, force: true });
  }
}

/** One line per removed user that broke something: the worst statistic moves, and how many others' rows changed. */
function report(v: Violation[], others: string[]): string {
  const byUser = new Map<string, string[]>();
  for (const x of v)
    (byUser.get(x.removed) ?? byUser.set(x.removed, []).get(x.removed)!).push(
      `${x.stat} L0 ${x.moved.l0}/${x.calibrated.l0} L1 ${x.moved.l1}/${x.calibrated.l1} L2 ${x.moved.l2.toFixed(2)}/${x.calibrated.l2.toFixed(2)} L∞ ${x.moved.linf}/${x.calibrated.linf}`,
    );
  const changed = new Map<string, number>();
  for (const o of others) {
    const m = /removing (\S+) changed/.exec(o);
    if (m) changed.set(m[1], (changed.get(m[1]) ?? 0) + 1);
  }
  const users = [...new Set([...byUser.keys(), ...changed.keys()])];
  const lines = users.map(
    (u) =>
      `removing ${u}: ${(byUser.get(u) ?? []).join('; ') || 'statistics within bounds'}` +
      (changed.has(u) ? `; ${changed.get(u)} other users' bounded rows changed` : ''),
  );
  const rest = others.filter((o) => !/removing \S+ changed/.test(o));
  return [
    ...lines.slice(0, 25),
    ...(lines.length > 25 ? [`… ${lines.length - 25} more`] : []),
    ...rest.slice(0, 5),
  ].join('\n');
}

describe('neighbouring datasets: every released statistic moves by at most the calibrated sensitivity', () => {
  const cases = [
    { name: 'time-cutoff-catalogue', seed: 11, split: 'time', catalogue: true, cutoff: true, sample: 70 },
    {
      name: 'time-rundate-nocatalogue',
      seed: 12,
      split: 'time',
      catalogue: false,
      cutoff: false,
      sample: 70,
    },
    { name: 'user-time-catalogue', seed: 13, split: 'user-time', catalogue: true, cutoff: false, sample: 70 },
  ] as const;
  let total = 0;
  for (const c of cases) {
    test(`${c.name}: adversarial and sampled users removed one at a time`, async () => {
      const ds = await makeDataset(c.name, c);
      const { neighbours, violations, others } = await checkDataset(ds);
      total += neighbours;
      expect(neighbours).toBeGreaterThanOrEqual(c.sample);
      // Moved statistics (moved/calibrated per norm) and other users' changed rows, per removed user.
      expect(report(violations, others)).toBe('');
    }, 300_000);
  }
  afterAll(() => {
    // Hundreds of neighbours per CI run.
    if (total > 0) expect(total).toBeGreaterThanOrEqual(210);
  });
});
