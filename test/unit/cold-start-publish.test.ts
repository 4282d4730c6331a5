import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { withDb, lit } from '../../lib/duckdb';
import { RunIO } from '../../activities/support/run-io';
import { scoreShardInto, sumListSources } from '../../activities/support/publishing';
import type { ScoringInputs } from '../../contracts/stages';
import { summaryLines } from '../../cli/render/summary';
import { reportFixture } from '../helpers/run-report-fixture';

/**
 * Publishing's scoring with cold start, end to end over Parquet files in a run folder: every user of the events
 * gets exactly topN rows, and the shard's counts say who got a personalised list, the category fallback or the
 * popular fallback; summed over shards they are what the run summary prints.
 */
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-cold-publish-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const io = new RunIO(
  {
    runId: 'r1',
    workflowId: 'w1',
    datasetId: 'ds',
    storage: root,
    runKey: 'runs/ds/r1',
    startedAt: '2026-01-02T00:00:00Z',
    modelVersion: 'v1',
    duckdb: { memoryLimit: '512MB', threads: 1 },
  },
  root,
);
const key = (f: string) => `runs/ds/r1/${f}`;

beforeAll(async () => {
  fs.mkdirSync(io.local(key('models')), { recursive: true });
  fs.mkdirSync(io.local(key('raw')), { recursive: true });
  // 30 items in three categories (A, B, C; C the most popular), 5 uncategorised (z*), 2 new in A (nA*).
  const items: string[] = [];
  for (const c of ['A', 'B', 'C'])
    for (let i = 0; i < 10; i++)
      items.push(`('${c.toLowerCase()}${i}', '${c}', '${10 + i}', '${c} thing ${i}', 'true')`);
  for (let i = 0; i < 5; i++) items.push(`('z${i}', NULL, NULL, 'other ${i}', 'true')`);
  items.push(`('nA0', 'A', '12', 'A thing new', 'true')`, `('nA1', 'A', '13', 'A thing newer', 'true')`);
  // Out of stock: never recommended.
  items.push(`('c9x', 'C', '1', 'gone', 'false')`);
  const events: string[] = [];
  let t = 0;
  const ev = (u: string, i: string) =>
    events.push(`('${u}', '${i}', TIMESTAMP '2026-01-01' + to_seconds(${t++}))`);
  // itemUser: events on a0 (which has neighbours in the model); lightA: 2 events in A (light, no neighbours);
  // plain: 2 events on uncategorised items (light, no category); heavyB: 8 events in B, no neighbours.
  ev('itemUser', 'a0');
  ev('lightA', 'a1');
  ev('lightA', 'a2');
  ev('plain', 'z0');
  ev('plain', 'z1');
  for (let i = 1; i < 9; i++) ev('heavyB', `b${i}`);
  // Everyone else: popularity, C most popular.
  for (let u = 0; u < 6; u++) for (let i = 0; i < 10; i++) if (i <= u + 4) ev(`crowd${u}`, `c${i}`);
  for (const c of ['a', 'b']) for (let i = 0; i < 10; i++) ev('crowd0', `${c}${i}`);
  for (let i = 2; i < 5; i++) ev('crowd1', `z${i}`);
  await withDb(':memory:', { memoryLimit: '512MB', threads: 1 }, async (db) => {
    await db.run(`
      COPY (SELECT * FROM (VALUES ${items.join(', ')}) t(item_id, category, price, title, in_stock))
        TO ${lit(io.local(key('raw/items.parquet')))} (FORMAT parquet);
      COPY (SELECT * FROM (VALUES ${events.join(', ')}) t(user_id, item_id, ts))
        TO ${lit(io.local(key('events.parquet')))} (FORMAT parquet);
      COPY (SELECT item_id, count(DISTINCT user_id)::DOUBLE AS score, count(DISTINCT user_id) AS users
            FROM read_parquet(${lit(io.local(key('events.parquet')))}) GROUP BY item_id)
        TO ${lit(io.local(key('models/mostpop-full.parquet')))} (FORMAT parquet);
      COPY (SELECT * FROM (VALUES ('a0', 'b5', 0.9), ('a0', 'c5', 0.5)) t(item_id, neighbour_id, sim))
        TO ${lit(io.local(key('models/itemitem-full.parquet')))} (FORMAT parquet);`);
  });
});

const inputs = (coldStart: ScoringInputs['coldStart'], shards = 1): ScoringInputs => ({
  datasetId: 'ds',
  version: 'v1',
  generatedAt: '2026-01-02T00:00:00Z',
  kind: 'itemitem',
  model: 'itemitem',
  modelKey: key('models/itemitem-full.parquet'),
  mostPopKey: key('models/mostpop-full.parquet'),
  eventsKey: key('events.parquet'),
  itemsKey: key('raw/items.parquet'),
  topN: 6,
  maxHistory: 50,
  shards,
  coldStart,
});

async function score(s: ScoringInputs) {
  const parts = [];
  const rows: { user_id: string; item_id: string; rank: number }[] = [];
  for (let shard = 0; shard < s.shards; shard++) {
    const file = path.join(root, `part-${shard}-${Math.random()}.parquet`);
    const r = await withDb(':memory:', { memoryLimit: '512MB', threads: 1 }, async (db) => {
      const out = await scoreShardInto(db, io, s, shard, file);
      rows.push(
        ...(await db.all<(typeof rows)[number]>(
          `SELECT user_id, item_id, rank FROM read_parquet(${lit(file)})`,
        )),
      );
      return out;
    });
    parts.push({ fallbackUsers: r.fallback, lists: r.lists, users: r.users });
  }
  return { parts, rows };
}

test('published lists: exact length, and users counted by where their list came from', async () => {
  const on = { lightUserEvents: 5, newItemSlots: 1, newItemRank: 6, privacy: false };
  for (const shards of [1, 3]) {
    const { parts, rows } = await score(inputs(on, shards));
    const lists = sumListSources(parts)!;
    // itemUser: personalised (a0's neighbours); lightA: category fallback (A's items); plain and heavyB: popular.
    // crowd users have model candidates only if they saw a0 (crowd0 did).
    const users = parts.reduce((a, p) => a + p.users, 0);
    expect(users).toBe(10);
    expect(lists.personal).toBe(2);
    expect(lists.category).toBe(1);
    expect(lists.popular).toBe(7);
    expect(parts.reduce((a, p) => a + p.fallbackUsers, 0)).toBe(lists.category + lists.popular);
    // Users with history in A (itemUser, lightA, crowd0) got one of A's new items.
    expect(lists.newItems).toBe(3);
    const byUser = new Map<string, string[]>();
    for (const r of rows) byUser.set(r.user_id, [...(byUser.get(r.user_id) ?? []), r.item_id]);
    for (const [u, l] of byUser) {
      expect([u, l.length]).toEqual([u, 6]);
      expect([u, new Set(l).size]).toEqual([u, 6]);
      expect(l).not.toContain('c9x');
    }
    expect(byUser.get('lightA')!.slice(0, 3)).toEqual(['a0', 'a3', 'a4']);
    expect(byUser.get('heavyB')!.some((i) => i.startsWith('nA'))).toBe(false);
  }
});

test('cold start off: only the popular fallback, as before', async () => {
  const { parts } = await score(inputs(undefined));
  expect(sumListSources(parts)).toEqual({ personal: 2, category: 0, popular: 8, newItems: 0 });
});

test('the run summary prints the counts', () => {
  const summary = reportFixture({ rejected: false }).summary!;
  summary.published = {
    ...summary.published!,
    fallbackUsers: 8,
    lists: { personal: 2, category: 1, popular: 7, newItems: 3 },
  };
  expect(summaryLines(summary)).toContain(
    '  lists: 2 personalised, 1 category fallback, 7 popular fallback; 3 with a new item',
  );
  expect(sumListSources([{ lists: undefined }])).toBeNull();
});
