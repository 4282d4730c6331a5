import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { lit, withDb } from '../../lib/duckdb';
import { itemItemSql } from '../../analytics/baselines.sql';
import { itemItemPartsFor, trainItemItem } from '../../activities/train/item-item';

/**
 * The item-item model built in parts (memory-bounded) against the single statement it replaces: the same
 * (item, neighbour, similarity) rows whatever the number of parts, ties at the neighbour cut included.
 */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-iitrain-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test('parts for the co-occurrence groups under the memory limit, at least one', () => {
  expect(itemItemPartsFor(0, '2GB')).toBe(1);
  expect(itemItemPartsFor(19_000_000, '2GB')).toBe(1);
  expect(itemItemPartsFor(100_000_000, '2GB')).toBe(5);
});

test.each([1, 2, 3])(
  'a model built in parts equals the single statement (seed %i)',
  async (seed) => {
    await withDb(':memory:', { memoryLimit: '512MB', threads: 2 }, async (db) => {
      // 400 users, 0..40 events over 70 items with skewed popularity, timestamps with ties.
      await db.run(`
      CREATE TABLE events AS
      SELECT 'u' || u AS user_id,
             'item-' || CAST(floor(pow(((hash(u, e, ${seed}) % 1000) / 1000.0), 2) * 70) AS INTEGER) AS item_id,
             TIMESTAMP '2026-01-01' + INTERVAL ((hash(e, u, ${seed}) % 50)) MINUTE AS ts
      FROM range(400) a(u), range(40) b(e) WHERE e < hash(u, ${seed}) % 41`);
      const rows = (file: string) =>
        db.all(
          `SELECT item_id, neighbour_id, sim FROM read_parquet(${lit(file)}) ORDER BY item_id, neighbour_id`,
        );
      const single = path.join(dir, `single-${seed}.parquet`);
      await db.run(itemItemSql('events', single, 12, 6));
      const want = await rows(single);
      expect(want.length).toBeGreaterThan(300);
      for (const parts of [1, 3, 7]) {
        const file = path.join(dir, `parts-${seed}-${parts}.parquet`);
        const used = await trainItemItem(db, {
          source: 'events',
          outFile: file,
          maxHistory: 12,
          neighbours: 6,
          memoryLimit: '512MB',
          parts,
        });
        expect(used).toBe(parts);
        expect([parts, await rows(file)]).toEqual([parts, want]);
      }
    });
  },
  60_000,
);
