import { ident } from '../lib/duckdb';

/**
 * The k-core filter as set-at-a-time SQL: one peeling pass removes every user with fewer than `users`
 * distinct items and every item with fewer than `items` distinct users; removing them lowers other degrees,
 * so the caller repeats passes until one removes nothing (the unique (users, items)-core) or the bound.
 * Degrees count distinct partners, not events: ten views of one item are one edge of the user-item graph.
 */

export interface KCoreParams {
  users: number;
  items: number;
}

export const kCoreEnabled = (p: KCoreParams) => p.users > 1 || p.items > 1;

/** A narrow working copy (row id, user, item) of `source`, and an empty table of removed row ids. */
export function kCoreSetupSql(source: string): string {
  return `
CREATE OR REPLACE TEMP TABLE kc AS SELECT rowid AS kid, user_id, item_id FROM ${ident(source)};
CREATE OR REPLACE TEMP TABLE kc_removed (kid BIGINT, pass INTEGER);`;
}

/** One pass; `SELECT count(*) FROM kc_weak` afterwards says how many rows it removed. */
export function kCorePassSql(p: KCoreParams, pass: number): string {
  const weakUsers =
    p.users > 1
      ? `user_id IN (SELECT user_id FROM kc GROUP BY user_id HAVING count(DISTINCT item_id) < ${p.users})`
      : 'false';
  const weakItems =
    p.items > 1
      ? `item_id IN (SELECT item_id FROM kc GROUP BY item_id HAVING count(DISTINCT user_id) < ${p.items})`
      : 'false';
  return `
CREATE OR REPLACE TEMP TABLE kc_weak AS SELECT kid FROM kc WHERE ${weakUsers} OR ${weakItems};
INSERT INTO kc_removed SELECT kid, ${pass} FROM kc_weak;
DELETE FROM kc WHERE kid IN (SELECT kid FROM kc_weak);`;
}

export const KCORE_DROP_SQL = `DROP TABLE IF EXISTS kc; DROP TABLE IF EXISTS kc_weak; DROP TABLE IF EXISTS kc_removed;`;
