import { lit, litList } from '../lib/duckdb';
import { eventsViewSql } from './clean.sql';

/**
 * SQL that turns a run's clean events into the training set when incremental runs or the k-core filter are
 * on. Both need each clean row's source file and line (for the quarantine), so they work on `ev_src`:
 * the clean rows with their source and the date of the run that first read them. `events` keeps its schema,
 * so everything downstream (id maps, split, bounding, training) is unchanged.
 */

const EVENT_COLUMNS = 'user_id, item_id, event_type, rating, ts, weight';
/** A store partition's columns: the clean event, where it came from, and the run date that read it. */
const SOURCE_COLUMNS = `${EVENT_COLUMNS}, source_file, source_line, run_date`;

/** This run's clean rows (`events` with its raw row id) with their source file and line. */
export function newSourcesSql(runDate: string): string {
  return `
CREATE OR REPLACE TEMP TABLE ev_new AS
SELECT e.user_id, e.item_id, e.event_type, e.rating, e.ts, e.weight, r.source_file, r.source_line,
       ${lit(runDate)} AS run_date
FROM events e JOIN raw_events r ON r.rid = e.rid;`;
}

/**
 * History ∪ new rows, exact duplicates removed: the copy read first (earliest run date, then file and line)
 * stays, so a re-delivered or appended file adds only its new events. `ev_hist_dups` holds the new rows
 * dropped as repeats of history (quarantined as `already_ingested` by the caller: a re-delivered or appended
 * file is expected, not a defect, so the quality gate leaves them out).
 */
export function unionHistorySql(partitions: string[]): string {
  const history = partitions.length
    ? `SELECT ${SOURCE_COLUMNS} FROM read_parquet(${litList(partitions)}) UNION ALL `
    : '';
  return `
CREATE OR REPLACE TEMP TABLE ev_ranked AS
SELECT *, row_number() OVER w AS rn, first_value(run_date) OVER w AS first_date
FROM (${history}SELECT ${SOURCE_COLUMNS} FROM ev_new)
WINDOW w AS (PARTITION BY user_id, item_id, event_type, rating, ts ORDER BY run_date, source_file, source_line);
CREATE OR REPLACE TEMP TABLE ev_hist_dups AS
SELECT * FROM ev_ranked WHERE rn > 1 AND run_date = (SELECT max(run_date) FROM ev_new);
CREATE OR REPLACE TEMP TABLE ev_all AS SELECT ${SOURCE_COLUMNS} FROM ev_ranked WHERE rn = 1;
DROP TABLE ev_ranked;`;
}

/** Writes this run's surviving new rows to `file` (a temporary name; the caller renames it into place). */
export function writePartitionSql(file: string, runDate: string): string {
  return `COPY (SELECT ${SOURCE_COLUMNS} FROM ev_all WHERE run_date = ${lit(runDate)}
               ORDER BY source_file, source_line) TO ${lit(file)} (FORMAT parquet, COMPRESSION zstd)`;
}

/**
 * The training window: events from `start` on when given (privacy on: the run date minus historyDays, a public
 * instant), otherwise within `historyDays` of the newest event (which depends on every user's data).
 */
export function windowSql(historyDays: number, start?: string): string {
  const ms = Math.round(historyDays * 86_400_000);
  const from =
    start !== undefined
      ? `CAST(${lit(new Date(start).toISOString().replace('Z', ''))} AS TIMESTAMP)`
      : `(SELECT max(ts) FROM ev_all) - to_milliseconds(CAST(${ms} AS BIGINT))`;
  return `
CREATE OR REPLACE TEMP TABLE ev_src AS
SELECT * FROM ev_all WHERE ts >= ${from};`;
}

/** The quarantine row of a clean event removed later (typed values rendered back as text). */
function quarantineRows(from: string, reason: string, detail: string): string {
  return `
INSERT INTO quarantine
SELECT source_file, source_line, ${lit(reason)}, ${detail}, user_id, item_id, event_type,
       CAST(rating AS VARCHAR), strftime(ts, '%Y-%m-%dT%H:%M:%SZ'), NULL
FROM ${from};`;
}

export const QUARANTINE_HISTORY_DUPS_SQL = quarantineRows(
  'ev_hist_dups',
  'already_ingested',
  `'the same event was already read on ' || first_date`,
);

/** Quarantines the rows the k-core filter removed (`kc_removed` holds ev_src row ids) and drops them. */
export function quarantineKCoreSql(p: { users: number; items: number }): string {
  const detail = lit(`outside the k-core (users >= ${p.users} items, items >= ${p.items} users)`);
  return `${quarantineRows(
    `(SELECT s.*, k.pass FROM ev_src s JOIN kc_removed k ON k.kid = s.rowid)`,
    'k_core',
    `${detail} || ', removed in pass ' || pass`,
  )}
CREATE OR REPLACE TEMP TABLE ev_kept AS SELECT * FROM ev_src WHERE rowid NOT IN (SELECT kid FROM kc_removed);
CREATE OR REPLACE TEMP TABLE ev_src AS SELECT * FROM ev_kept;
DROP TABLE ev_kept;`;
}

/** The training set back in `events`' own schema (dropping the raw row id cleaning kept for this step). */
export function replaceEventsSql(eventsFile: string): string {
  return `
COPY (SELECT ${EVENT_COLUMNS} FROM ev_src) TO ${lit(eventsFile)} (FORMAT parquet, COMPRESSION zstd);
${eventsViewSql(eventsFile)}
DROP TABLE IF EXISTS ev_src; DROP TABLE IF EXISTS ev_all; DROP TABLE IF EXISTS ev_new; DROP TABLE IF EXISTS ev_hist_dups;`;
}

/** Without incremental history the sources are this run's rows only. */
export const SOURCES_ARE_NEW_SQL = `CREATE OR REPLACE TEMP TABLE ev_src AS SELECT * FROM ev_new;`;

/**
 * Row counts of this run's *new* lines — everything, and the quarantine by reason — for the quality gate. Lines
 * up to `previousLines` of an appended file were delivered (and judged) before, so they are left out.
 */
export function newLineCountsSql(appended: { path: string; previousLines: number }[]): string {
  // Nothing was delivered before: every line is new, and the counts need no scan of the raw rows.
  if (appended.length === 0) {
    return `
SELECT '*' AS reason, (SELECT count(*) FROM raw_events) + (SELECT count(*) FROM raw_rejects) AS n
UNION ALL
SELECT reason, count(*) FROM quarantine GROUP BY reason`;
  }
  const old = `SELECT * FROM (VALUES ${appended
    .map((a) => `(${lit(a.path)}, CAST(${Math.trunc(a.previousLines)} AS BIGINT))`)
    .join(', ')}) t(source_file, last_line)`;
  const fresh = (alias: string) =>
    `NOT EXISTS (SELECT 1 FROM old o WHERE o.source_file = ${alias}.source_file AND ${alias}.source_line <= o.last_line)`;
  return `
WITH old AS (${old})
SELECT '*' AS reason, count(*) AS n FROM (
  SELECT source_file, source_line FROM raw_events UNION ALL SELECT source_file, source_line FROM raw_rejects) r
WHERE ${fresh('r')}
UNION ALL
SELECT reason, count(*) FROM quarantine q WHERE ${fresh('q')} GROUP BY reason`;
}
