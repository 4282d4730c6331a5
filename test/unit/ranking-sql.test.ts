import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { withDb, lit } from '../../lib/duckdb';
import { recommendSql, type RecommendParams } from '../../analytics/baselines.sql';

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
      COPY (SELECT * FROM read_csv(${lit(path.join(d, 'pop.csv'))})) TO ${lit(path.join(d, 'pop.parquet'))};
      COPY (SELECT * FROM read_csv(${lit(path.join(d, 'recs.csv'))})) TO ${lit(path.join(d, 'recs.parquet'))};
      CREATE TABLE history AS SELECT user_id, item_id, CAST(ts AS TIMESTAMP) AS ts FROM read_csv(${lit(path.join(d, 'history.csv'))}, all_varchar = true);
      CREATE TABLE targets AS SELECT unnest(${`[${w.users.map(lit).join(', ')}]`}) AS user_id;
      CREATE TABLE excluded AS SELECT unnest(${`[${[...w.excluded].map(lit).join(', ') || "''"}]`}) AS item_id;`);
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
