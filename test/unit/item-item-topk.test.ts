import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { withDb, lit, type Db } from '../../lib/duckdb';
import type { RecommendParams } from '../../analytics/baselines.sql';
import { rankInto } from '../../activities/support/scoring-batches';
import { itemItemPersonalInto } from '../../activities/support/item-item-personal';
import {
  duckdbHugeintToDouble,
  itemItemTopK,
  neighbourCsr,
  roundHalfEven,
  groupByUser,
} from '../../models/item-item-topk';

/**
 * Item-item scoring in typed arrays (models/item-item-topk.ts) against DuckDB itself: the rounding of each
 * similarity to fixed point, and whole rankings (lists and every score's bits) against the statement, including the
 * noisy similarities of the private model (negative, above 1), and the fallback where the arrays cannot be exact.
 */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-iitopk-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function rng(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

const withDuck = <T>(fn: (db: Db) => Promise<T>) =>
  withDb(':memory:', { memoryLimit: '512MB', threads: 2 }, fn);

test('roundHalfEven rounds as DuckDB casts a double to an integer (ties to even)', async () => {
  const r = rng(7);
  const xs = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.4999, 2 ** 51 + 0.5, 2 ** 52 - 0.5, 1e-300, 0];
  for (let i = 0; i < 200; i++) xs.push((r() - 0.3) * 2 ** 52, Math.floor(r() * 1e6) + 0.5);
  await withDuck(async (db) => {
    const rows = await db.all<{ v: string }>(
      `SELECT CAST(CAST(x AS HUGEINT) AS VARCHAR) AS v FROM (SELECT unnest([${xs.map((x) => x.toPrecision(17)).join(', ')}]::DOUBLE[]) AS x)`,
    );
    expect(rows.map((row) => row.v)).toEqual(xs.map((x) => BigInt(roundHalfEven(x)).toString()));
  });
});

test("the conversion of an exact total to a double is DuckDB's, negative totals included", async () => {
  const r = rng(3);
  const totals: bigint[] = [
    0n,
    1n,
    -1n,
    -9830190525594990n,
    9830190525594990n,
    -(2n ** 53n) - 1n,
    2n ** 61n + 3n,
  ];
  for (let i = 0; i < 300; i++)
    totals.push(BigInt(Math.floor((r() - 0.5) * 2 ** 53)) * BigInt(1 + Math.floor(r() * 200)));
  await withDuck(async (db) => {
    const rows = await db.all<{ d: number }>(
      `SELECT CAST(CAST(t AS HUGEINT) AS DOUBLE) AS d FROM (SELECT unnest([${totals.map((t) => `'${t}'`).join(', ')}]) AS t)`,
    );
    const split = (t: bigint) => {
      const hi = t >= 0n ? t / 2n ** 26n : -((-t + 2n ** 26n - 1n) / 2n ** 26n); // floor
      return [Number(hi) * 2 ** 26, Number(t - hi * 2n ** 26n)] as const;
    };
    expect(totals.map((t) => duckdbHugeintToDouble(...split(t)))).toEqual(rows.map((row) => row.d));
  });
});

test('top-k in arrays: unseen, unblocked, best score first, ties by item number; keepAll keeps everything', async () => {
  // Items 0..4; item 0's neighbours 1 (0.5), 2 (0.5), 3 (0.25); item 4's neighbour 3 (0.25).
  const csr = neighbourCsr([0, 0, 0, 4], [1, 2, 3, 3], [0.5, 0.5, 0.25, 0.25], 5);
  const hist = groupByUser([0, 0, 1, 2], [0, 4, 0, 0], 3);
  const seen = groupByUser([0, 0, 1, 1, 2], [0, 4, 0, 2, 0], 3);
  const top = await itemItemTopK(
    csr,
    {
      users: 3,
      historyOffsets: hist.offsets,
      history: hist.items,
      seenOffsets: seen.offsets,
      seen: seen.items,
      keepAll: Uint8Array.from([0, 0, 1]),
    },
    2,
    Uint8Array.from([0, 0, 0, 0, 0]),
  );
  const rows = Array.from({ length: top.count }, (_, r) => [top.user[r], top.item[r], top.score[r]]);
  expect(rows).toEqual([
    // user 0: 3 scores 0.5 (two terms), tied with 1 and 2: the lower numbers win the tie, 3 is cut at k = 2.
    [0, 1, 0.5],
    [0, 2, 0.5],
    // user 1 has seen 2.
    [1, 1, 0.5],
    [1, 3, 0.25],
    // user 2 keeps all.
    [2, 1, 0.5],
    [2, 2, 0.5],
    [2, 3, 0.25],
  ]);
});

/** A random world: users' events with times, and a neighbour table drawn by `sim`. */
async function world(db: Db, seed: number, sim: (r: () => number) => number): Promise<RecommendParams> {
  const r = rng(seed);
  const d = fs.mkdtempSync(path.join(dir, 'w-'));
  const items = Array.from({ length: 120 }, (_, i) => `it-${i}`);
  const sims: string[] = [];
  for (const a of items) for (const b of items) if (a !== b && r() < 0.2) sims.push(`${a},${b},${sim(r)}`);
  fs.writeFileSync(path.join(d, 'sims.csv'), `item_id,neighbour_id,sim\n${sims.join('\n')}\n`);
  const events: string[] = [];
  for (let u = 0; u < 300; u++) {
    const n = Math.floor(r() * r() * 80);
    for (let e = 0; e < n; e++)
      events.push(`user ${u},${items[Math.floor(r() * r() * items.length)]},${Math.floor(r() * 1e6)}`);
  }
  fs.writeFileSync(path.join(d, 'events.csv'), `user_id,item_id,t\n${events.join('\n')}\n`);
  const model = path.join(d, 'sims.parquet');
  const pop = path.join(d, 'pop.parquet');
  await db.run(`
    COPY (SELECT item_id, neighbour_id, CAST(sim AS DOUBLE) AS sim FROM read_csv(${lit(path.join(d, 'sims.csv'))}))
      TO ${lit(model)} (FORMAT parquet);
    CREATE OR REPLACE TABLE history AS
      SELECT user_id, item_id, make_timestamp(CAST(t AS BIGINT) * 1000000) AS ts
      FROM read_csv(${lit(path.join(d, 'events.csv'))}, all_varchar = true);
    COPY (SELECT item_id, count(*)::DOUBLE AS score FROM history GROUP BY item_id) TO ${lit(pop)} (FORMAT parquet);
    CREATE OR REPLACE TABLE targets AS SELECT DISTINCT user_id FROM history;
    CREATE OR REPLACE TABLE excluded AS SELECT item_id FROM (SELECT unnest(['it-3', 'it-17', 'it-40']) AS item_id);`);
  return {
    kind: 'itemitem',
    modelFile: model,
    mostPopFile: pop,
    targets: 'targets',
    history: 'history',
    k: 15,
    maxHistory: 30,
    into: 'out',
    excludeItems: 'excluded',
  };
}

async function bothWays(db: Db, p: RecommendParams) {
  const out: unknown[][] = [];
  for (const scoring of ['sql', 'arrays'] as const) {
    await rankInto(db, p, scoring);
    out.push(await db.all(`SELECT user_id, rank, item_id, score, source FROM out ORDER BY user_id, rank`));
  }
  return out;
}

test.each([
  ['cosine similarities in (0, 1]', (r: () => number) => Math.sqrt(r())],
  [
    'noisy similarities of the private model: negative, above 1, many ties',
    (r: () => number) => (r() < 0.3 ? Math.round((r() - 0.4) * 8) / 4 : (r() - 0.3) * 37.3),
  ],
])(
  'arrays and statement agree on every list and every score bit: %s',
  async (_, sim) => {
    await withDuck(async (db) => {
      const p = await world(db, 11, sim);
      const [viaSql, viaArrays] = await bothWays(db, p);
      expect(viaSql.length).toBeGreaterThan(1000);
      expect(viaArrays).toEqual(viaSql);
    });
  },
  60_000,
);

test('similarities beyond the exact bounds are left to the statement, with the same result', async () => {
  await withDuck(async (db) => {
    const p = await world(db, 5, (r) => (r() < 0.01 ? 5000 : r()));
    expect(await itemItemPersonalInto(db, { ...p, lightUserEvents: 0, into: 'probe' })).toBe(false);
    const [viaSql, viaArrays] = await bothWays(db, p);
    expect(viaArrays).toEqual(viaSql);
  });
}, 60_000);
