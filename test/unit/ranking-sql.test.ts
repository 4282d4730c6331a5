import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { withDb, lit } from '../../lib/duckdb';
import { recommendSql, type RecommendParams } from '../../analytics/baselines.sql';
import { rankInto } from '../../activities/support/scoring-batches';

/**
 * The ranking SQL (publish and evaluate) against a brute-force reference: personalised candidates first by
 * score, then the most popular items, never a seen or excluded item, ties by item id. Users' histories range
 * from nothing to most of the catalogue, so the per-user popular backfill (k + that user's seen count) is
 * exercised at both ends.
 */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-ranking-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function rng(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

interface World {
  items: string[];
  popScore: Map<string, number>;
  seen: Map<string, Set<string>>;
  personal: Map<string, Map<string, number>>;
  excluded: Set<string>;
  users: string[];
}

function makeWorld(seed: number): World {
  const r = rng(seed);
  const items = Array.from({ length: 60 }, (_, i) => `i${String(i).padStart(3, '0')}`);
  // Integer popularity with many ties, so the item-id tie-break matters.
  const popScore = new Map(items.map((i) => [i, Math.floor(r() * 8)]));
  const users = Array.from({ length: 40 }, (_, u) => `u${u}`);
  const seen = new Map<string, Set<string>>();
  const personal = new Map<string, Map<string, number>>();
  users.forEach((u, idx) => {
    const share = idx === 0 ? 0 : idx === 1 ? 0.9 : r() * 0.6;
    seen.set(u, new Set(items.filter(() => r() < share)));
    const p = new Map<string, number>();
    for (const i of items) if (r() < 0.08) p.set(i, Math.round(r() * 100) / 10);
    personal.set(u, p);
  });
  const excluded = new Set(items.filter(() => r() < 0.1));
  return { items, popScore, seen, personal, excluded, users };
}

function reference(w: World, k: number): Map<string, string[]> {
  const maxPop = Math.max(...w.popScore.values());
  const out = new Map<string, string[]>();
  for (const u of w.users) {
    const ok = (i: string) => !w.seen.get(u)!.has(i) && !w.excluded.has(i);
    const pers = [...w.personal.get(u)!.entries()]
      .filter(([i]) => ok(i))
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .map(([i]) => i);
    const pop = w.items
      .filter((i) => ok(i) && !pers.includes(i))
      .sort((a, b) => w.popScore.get(b)! / maxPop - w.popScore.get(a)! / maxPop || (a < b ? -1 : 1));
    out.set(u, [...pers, ...pop].slice(0, k));
  }
  return out;
}

const csv = (file: string, header: string, rows: (string | number)[][]) =>
  fs.writeFileSync(file, [header, ...rows.map((r) => r.join(','))].join('\n') + '\n');

/** The popularity file, history, target and excluded tables both worlds rank from (written as CSV in `d`). */
const worldTablesSql = (d: string, users: string[], excluded: Set<string>) => `
  COPY (SELECT * FROM read_csv(${lit(path.join(d, 'pop.csv'))})) TO ${lit(path.join(d, 'pop.parquet'))};
  CREATE TABLE history AS SELECT user_id, item_id, CAST(ts AS TIMESTAMP) AS ts FROM read_csv(${lit(path.join(d, 'history.csv'))}, all_varchar = true);
  CREATE TABLE targets AS SELECT unnest(${`[${users.map(lit).join(', ')}]`}) AS user_id;
  CREATE TABLE excluded AS SELECT unnest(${`[${[...excluded].map(lit).join(', ') || "''"}]`}) AS item_id;`;

test.each([1, 2, 3])('recommendSql equals the brute-force ranking (seed %i)', async (seed) => {
  const w = makeWorld(seed);
  const d = fs.mkdtempSync(path.join(dir, 'w-'));
  csv(
    path.join(d, 'pop.csv'),
    'item_id,score',
    w.items.map((i) => [i, w.popScore.get(i)!]),
  );
  csv(
    path.join(d, 'recs.csv'),
    'user_id,item_id,score',
    w.users.flatMap((u) => [...w.personal.get(u)!.entries()].map(([i, s]) => [u, i, s])),
  );
  csv(
    path.join(d, 'history.csv'),
    'user_id,item_id,ts',
    w.users.flatMap((u) => [...w.seen.get(u)!].map((i) => [u, i, '2026-01-01 00:00:00'])),
  );
  const k = 12;
  await withDb(':memory:', { memoryLimit: '512MB', threads: 1 }, async (db) => {
    await db.run(`
      COPY (SELECT * FROM read_csv(${lit(path.join(d, 'recs.csv'))})) TO ${lit(path.join(d, 'recs.parquet'))};
      ${worldTablesSql(d, w.users, w.excluded)}`);
    const p: RecommendParams = {
      kind: 'recs',
      modelFile: path.join(d, 'recs.parquet'),
      mostPopFile: path.join(d, 'pop.parquet'),
      targets: 'targets',
      history: 'history',
      k,
      maxHistory: 50,
      into: 'out',
      excludeItems: 'excluded',
    };
    await db.run(recommendSql(p));
    const rows = await db.all<{ user_id: string; rank: number; item_id: string }>(
      `SELECT user_id, rank, item_id FROM out ORDER BY user_id, rank`,
    );
    const got = new Map<string, string[]>();
    for (const r of rows) got.set(r.user_id, [...(got.get(r.user_id) ?? []), r.item_id]);
    const want = reference(w, k);
    for (const u of w.users) expect([u, got.get(u) ?? []]).toEqual([u, want.get(u)]);
    // Every rank 1..n, no gaps, per user.
    for (const [u, list] of got) expect([u, list.length]).toEqual([u, Math.min(k, want.get(u)!.length)]);
  });
});

/**
 * Item-item: a user's score for an item is the sum of its similarities to the user's `maxHistory` most recent
 * distinct items (latest event per item, ties by item id); seen and excluded items never appear; ties by item id.
 * Similarities are multiples of 1/8 for many exact ties, plus irrational ones whose sums depend on the order of
 * addition unless the sum is exact.
 */
function itemItemWorld(seed: number) {
  const r = rng(seed);
  const items = Array.from({ length: 50 }, (_, i) => `i${String(i).padStart(3, '0')}`);
  const sims: [string, string, number][] = [];
  for (const a of items)
    for (const b of items)
      if (a !== b && r() < 0.3) sims.push([a, b, r() < 0.5 ? Math.ceil(r() * 8) / 8 : Math.sqrt(r()) / 3]);
  const users = Array.from({ length: 60 }, (_, u) => `u${u}`);
  // (user, item, second): several events per item at times with ties across items.
  const events: [string, string, number][] = [];
  users.forEach((u, idx) => {
    const n = idx === 0 ? 0 : Math.floor(r() * 14);
    for (let e = 0; e < n; e++) events.push([u, items[Math.floor(r() * items.length)], Math.floor(r() * 20)]);
  });
  const excluded = new Set(items.filter(() => r() < 0.1));
  const popScore = new Map(items.map((i) => [i, Math.floor(r() * 8)]));
  return { items, sims, users, events, excluded, popScore };
}

function itemItemReference(w: ReturnType<typeof itemItemWorld>, k: number, maxHistory: number) {
  const maxPop = Math.max(...w.popScore.values());
  const out = new Map<string, string[]>();
  for (const u of w.users) {
    const last = new Map<string, number>();
    for (const [eu, i, t] of w.events) if (eu === u) last.set(i, Math.max(last.get(i) ?? -1, t));
    const hist = [...last.entries()]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, maxHistory)
      .map(([i]) => i);
    const ok = (i: string) => !last.has(i) && !w.excluded.has(i);
    // Exact sums (BigInt of the similarities scaled by 2^52), as the statement's order-free sum.
    const score = new Map<string, bigint>();
    for (const [a, b, s] of w.sims)
      if (hist.includes(a)) score.set(b, (score.get(b) ?? 0n) + BigInt(Math.round(s * 2 ** 52)));
    const pers = [...score.entries()]
      .filter(([i]) => ok(i))
      .sort((a, b) => (b[1] > a[1] ? 1 : b[1] < a[1] ? -1 : a[0] < b[0] ? -1 : 1))
      .map(([i]) => i);
    const pop = w.items
      .filter((i) => ok(i) && !pers.includes(i))
      .sort((a, b) => w.popScore.get(b)! / maxPop - w.popScore.get(a)! / maxPop || (a < b ? -1 : 1));
    out.set(u, [...pers, ...pop].slice(0, k));
  }
  return out;
}

test.each([1, 2, 3])(
  'item-item ranking equals the brute-force ranking, in the statement and in typed arrays (seed %i)',
  async (seed) => {
    const w = itemItemWorld(seed);
    const d = fs.mkdtempSync(path.join(dir, 'ii-'));
    csv(
      path.join(d, 'pop.csv'),
      'item_id,score',
      w.items.map((i) => [i, w.popScore.get(i)!]),
    );
    csv(path.join(d, 'sims.csv'), 'item_id,neighbour_id,sim', w.sims);
    csv(
      path.join(d, 'history.csv'),
      'user_id,item_id,ts',
      w.events.map(([u, i, t]) => [u, i, `2026-01-01 00:00:${String(t).padStart(2, '0')}`]),
    );
    const k = 8;
    const maxHistory = 4;
    await withDb(':memory:', { memoryLimit: '512MB', threads: 2 }, async (db) => {
      await db.run(`
      COPY (SELECT item_id, neighbour_id, sim::DOUBLE AS sim FROM read_csv(${lit(path.join(d, 'sims.csv'))}))
        TO ${lit(path.join(d, 'sims.parquet'))};
      ${worldTablesSql(d, w.users, w.excluded)}`);
      const p: RecommendParams = {
        kind: 'itemitem',
        modelFile: path.join(d, 'sims.parquet'),
        mostPopFile: path.join(d, 'pop.parquet'),
        targets: 'targets',
        history: 'history',
        k,
        maxHistory,
        into: 'out',
        excludeItems: 'excluded',
      };
      const want = itemItemReference(w, k, maxHistory);
      const results: unknown[] = [];
      for (const scoring of ['sql', 'arrays'] as const) {
        await rankInto(db, p, scoring);
        const rows = await db.all<{ user_id: string; item_id: string; score: number }>(
          `SELECT user_id, item_id, score FROM out ORDER BY user_id, rank`,
        );
        const got = new Map<string, string[]>();
        for (const r of rows) got.set(r.user_id, [...(got.get(r.user_id) ?? []), r.item_id]);
        for (const u of w.users) expect([scoring, u, got.get(u) ?? []]).toEqual([scoring, u, want.get(u)]);
        results.push(rows);
      }
      // The same scores to the last bit.
      expect(results[1]).toEqual(results[0]);
    });
  },
);
