import type { Db } from '../../lib/duckdb';
import { parseByteSize } from '../../contracts/config';
import { itemItemParts } from '../../analytics/baselines.sql';
import { progress } from '../support/context';

/**
 * Co-occurrence groups (i, j, count) one part of the item-item build may aggregate and rank per GB of DuckDB's
 * memory. Measured on 2 threads: the 20M-event data (200,000 users, 10,000 items, ~100M groups) did not fit in 2 GB
 * as one statement; a group costs the aggregate's hash entry plus the window's row, ~60-100 bytes.
 */
export const GROUPS_PER_GB = 10_000_000;

/** Parts for `groups` co-occurrence groups under `memoryLimit`: at least 1. */
export function itemItemPartsFor(groups: number, memoryLimit: string): number {
  return Math.max(1, Math.ceil(groups / ((parseByteSize(memoryLimit) / 1e9) * GROUPS_PER_GB)));
}

/**
 * Writes the item-item model (analytics/baselines.sql.ts, itemItemParts) of `source` to `outFile` in as many parts
 * as the memory limit needs; `parts` forces a count (tests). Returns the count used.
 */
export async function trainItemItem(
  db: Db,
  p: {
    source: string;
    outFile: string;
    maxHistory: number;
    neighbours: number;
    memoryLimit: string;
    parts?: number;
    step?: string;
  },
): Promise<number> {
  await db.run(itemItemParts.prepare(p.source, p.maxHistory));
  const groups = Number(await db.scalar(itemItemParts.groupsEstimate));
  const parts = p.parts ?? itemItemPartsFor(groups, p.memoryLimit);
  for (let part = 0; part < parts; part++) {
    if (p.step) progress({ stage: 'train', step: p.step, done: part, total: parts, unit: 'parts' });
    await db.run(itemItemParts.part(part, parts, p.neighbours));
  }
  await db.run(itemItemParts.write(p.outFile));
  return parts;
}
