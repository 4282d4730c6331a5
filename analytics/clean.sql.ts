import { ident, lit } from '../lib/duckdb';
import { parsedTimestamp } from './profile.sql';

/**
 * Cleaning, fully in DuckDB: every raw row gets the first reason it fails (or none); rows with a reason are
 * quarantined with their source file and line, never dropped silently.
 */
export interface CleanParams {
  eventTypes: Record<string, number>;
  ratingMin: number;
  ratingMax: number;
  timestampFloor: string;
  /** Rows later than this are from the future (run start + 1 day of clock skew). */
  futureLimit: string;
  detectBots: boolean;
  /**
   * Which events count toward a user's events per active day: `all`, or `implicit` (views, clicks, …; explicit
   * ratings are deliberate and heavy raters legitimate, so a user with only ratings is never a bot). Default all.
   */
  botEvents?: 'all' | 'implicit';
  botMadK: number;
  botMinEventsPerDay: number;
  /**
   * A public per-user bot threshold (events per active day). When set it replaces the adaptive rule: with privacy
   * on, a user's bot status must depend on that user's rows only, never on a median/MAD over all users.
   */
  botMaxEventsPerDay?: number;
  /** Quarantine events of items absent from the item metadata file (only when one was loaded). */
  requireKnownItems: boolean;
  /** Same user, item and event type again within this many seconds of the previous kept one (0: off). */
  nearDuplicateSeconds: number;
  /** Full-match patterns for user and item ids (bad_id_format); passed as SQL literals, never as SQL. */
  idFormat?: { user?: string; item?: string };
  /** Keep each clean row's raw row id as `events.rid` (for steps that need its source file and line). */
  keepRid?: boolean;
  /** Where the clean events are written (Parquet; `events` is a view over it). */
  eventsFile: string;
}

/**
 * `events` over its Parquet file (snappy: cheaper to write than zstd). The clean events are only ever read after
 * cleaning; a Parquet file costs about half of a compressed DuckDB table to write. The caller drops a table of that name first (dropRelation).
 */
export function eventsViewSql(file: string): string {
  return `CREATE OR REPLACE VIEW events AS SELECT * FROM read_parquet(${lit(file)});`;
}

export const REASONS = [
  'malformed_line',
  // Ingest-level (analytics/input-contract.ts, lib/line-scan.ts): an id that is not printable bounded text,
  // a line longer than the line limit.
  'bad_id',
  'line_too_long',
  'null_user_id',
  'null_item_id',
  'bad_timestamp',
  'timestamp_before_floor',
  'future_timestamp',
  'unknown_event_type',
  'bad_rating',
  'unknown_item',
  'duplicate',
  'near_duplicate',
  'bot_user',
  'bad_id_format',
  'retyped_column',
  'k_core',
  'already_ingested',
] as const;
export type QuarantineReason = (typeof REASONS)[number];

export function classifySql(p: CleanParams): string {
  const types = Object.keys(p.eventTypes).map(lit).join(', ');
  // Performance notes (20M rows on 2 threads / 2 GB): every full-width pass over the data costs seconds, and
  // temp tables that hold the raw text (long paths, timestamps) spill to disk. So the rows are typed and
  // classified once into a narrow table that points back to its raw row by its rid; duplicates and bots are
  // decided on small side tables; the raw text is fetched back only for the (few) quarantined rows.
  return `
-- Every raw row, typed, with the first per-row reason it fails (NULL: valid so far); rid points back to raw_events.
CREATE OR REPLACE TEMP TABLE cls AS
SELECT rid, user_id, item_id, event_type, rating, ts,
  -- Two independent 64-bit hashes of (user, item, event type): the duplicate pass partitions on these integers
  -- (sorting three strings cost twice as much); a group mix-up would need both to collide (~2^-128 per pair).
  hash(user_id, item_id, event_type) AS k1, hash(event_type, item_id, user_id) AS k2,
  CASE
    WHEN user_id IS NULL OR user_id = '' THEN 'null_user_id'
    WHEN item_id IS NULL OR item_id = '' THEN 'null_item_id'${idFormatCases(p.idFormat)}
    WHEN ts IS NULL THEN 'bad_timestamp'
    WHEN ts < TIMESTAMP ${lit(p.timestampFloor.replace('Z', ''))} THEN 'timestamp_before_floor'
    WHEN ts > TIMESTAMP ${lit(p.futureLimit.replace('Z', ''))} THEN 'future_timestamp'
    WHEN event_type IS NULL OR event_type NOT IN (${types}) THEN 'unknown_event_type'
    WHEN ${p.requireKnownItems} AND (SELECT count(*) FROM raw_items) > 0
         AND item_id NOT IN (SELECT trim(item_id) FROM raw_items WHERE item_id IS NOT NULL) THEN 'unknown_item'
    WHEN event_type = 'rating' AND (rating IS NULL OR NOT isfinite(rating)
         OR rating < ${p.ratingMin} OR rating > ${p.ratingMax}) THEN 'bad_rating'
    WHEN event_type <> 'rating' AND raw_rating IS NOT NULL AND trim(raw_rating) <> ''
         AND (rating IS NULL OR NOT isfinite(rating)) THEN 'bad_rating'
  END AS reason
FROM (
  SELECT rid, rating AS raw_rating,
         trim(user_id) AS user_id, trim(item_id) AS item_id,
         -- An explicit rating without an event type is a rating event.
         coalesce(nullif(lower(trim(event_type)), ''), CASE WHEN nullif(trim(rating), '') IS NOT NULL THEN 'rating' END) AS event_type,
         TRY_CAST(nullif(trim(rating), '') AS DOUBLE) AS rating,
         ${parsedTimestamp()} AS ts
  FROM raw_events);

-- Exact and near-duplicates in one sorted pass over each (user, item, event type): ordered by time, rating and
-- rid (the file's position in the run, then its line), an exact duplicate sits right after the row it repeats,
-- which stays (the first occurrence); a near-duplicate is a repeat within the window of the previous row
-- (double clicks, client retries); the first of a burst stays.
CREATE OR REPLACE TEMP TABLE repeats AS
SELECT rid, CASE WHEN ts = prev_ts AND rating IS NOT DISTINCT FROM prev_rating THEN 'duplicate' ELSE 'near_duplicate' END AS reason
FROM (
  SELECT rid, ts, rating, lag(ts) OVER w AS prev_ts, lag(rating) OVER w AS prev_rating
  FROM cls WHERE reason IS NULL
  WINDOW w AS (PARTITION BY k1, k2 ORDER BY ts, rating, rid))
WHERE (ts = prev_ts AND rating IS NOT DISTINCT FROM prev_rating)
   ${p.nearDuplicateSeconds > 0 ? `OR ts - prev_ts <= to_seconds(${p.nearDuplicateSeconds})` : ''};

-- Bots: events per active day far above the robust (median + k * MAD) level across users, or (privacy on) above a
-- fixed public threshold, which keeps the rule per-user. With botEvents 'implicit' only implicit events count
-- (and only the days with one): users with ratings alone have no rate and are never bots.
CREATE OR REPLACE TEMP TABLE user_rate AS
SELECT user_id, count(*) / count(DISTINCT date_trunc('day', ts)) AS per_day
FROM cls ANTI JOIN repeats USING (rid) WHERE reason IS NULL${p.botEvents === 'implicit' ? ` AND event_type <> 'rating'` : ''} GROUP BY user_id;
CREATE OR REPLACE TEMP TABLE bot_threshold AS
${
  p.botMaxEventsPerDay !== undefined
    ? `SELECT CAST(${Number(p.botMaxEventsPerDay)} AS DOUBLE) AS threshold;`
    : `SELECT greatest(${p.botMinEventsPerDay}, median(per_day) + ${p.botMadK} * coalesce(mad(per_day), 0)) AS threshold
FROM user_rate;`
}
CREATE OR REPLACE TEMP TABLE bots AS
SELECT user_id FROM user_rate WHERE ${p.detectBots} AND per_day > (SELECT threshold FROM bot_threshold);

-- Valid rows that are dropped after all: duplicates, then the remaining rows of bot users.
CREATE OR REPLACE TEMP TABLE dropped AS
SELECT rid, reason FROM repeats
UNION ALL
SELECT rid, 'bot_user' FROM cls ANTI JOIN repeats USING (rid)
WHERE reason IS NULL AND user_id IN (SELECT user_id FROM bots);

CREATE OR REPLACE TABLE quarantine AS
SELECT r.source_file, r.source_line, q.reason, NULL::VARCHAR AS detail,
       r.user_id, r.item_id, r.event_type, r.rating, r."timestamp", NULL::VARCHAR AS raw
FROM (SELECT rid, reason FROM cls WHERE reason IS NOT NULL UNION ALL SELECT rid, reason FROM dropped) q
JOIN raw_events r ON r.rid = q.rid
UNION ALL
SELECT source_file, source_line, reason, detail, NULL, NULL, NULL, NULL, NULL, raw FROM raw_rejects;

COPY (
SELECT user_id, item_id, event_type, rating, ts,
       CASE event_type ${Object.entries(p.eventTypes)
         .map(([t, w]) => `WHEN ${lit(t)} THEN ${w}`)
         .join(' ')} END
       * CASE WHEN event_type = 'rating' THEN rating / ${p.ratingMax} ELSE 1 END AS weight${p.keepRid ? ', rid' : ''}
FROM cls ANTI JOIN dropped USING (rid) WHERE reason IS NULL) TO ${lit(p.eventsFile)} (FORMAT parquet, COMPRESSION snappy);
${eventsViewSql(p.eventsFile)}

DROP TABLE cls; DROP TABLE repeats; DROP TABLE dropped;`;
}

/** CASE branches for the id-format contract: the patterns go in as string literals (lit), not as SQL. */
function idFormatCases(f: CleanParams['idFormat']): string {
  const when = (col: string, pattern: string | undefined) =>
    pattern ? `\n    WHEN NOT regexp_full_match(${col}, ${lit(pattern)}) THEN 'bad_id_format'` : '';
  return when('user_id', f?.user) + when('item_id', f?.item);
}

/**
 * Dense integer ids, stable across runs: ids already in the previous map keep their index, new ids are
 * appended in sorted order. `prevUsers`/`prevItems` are Parquet files of (id, idx) or undefined.
 */
export function idMapSql(prevUsers: string | undefined, prevItems: string | undefined): string {
  const one = (table: string, col: string, prev: string | undefined) => `
CREATE OR REPLACE TABLE ${table} AS
WITH prev AS (${prev ? `SELECT id, idx FROM read_parquet(${lit(prev)})` : 'SELECT NULL::VARCHAR AS id, NULL::INTEGER AS idx WHERE false'}),
     fresh AS (SELECT DISTINCT ${col} AS id FROM events WHERE ${col} NOT IN (SELECT id FROM prev))
SELECT id, idx FROM prev
UNION ALL
SELECT id, CAST((SELECT coalesce(max(idx), -1) FROM prev) + row_number() OVER (ORDER BY id) AS INTEGER) FROM fresh;`;
  return one('user_ids', 'user_id', prevUsers) + one('item_ids', 'item_id', prevItems);
}

/** What train_events / holdout_events are now: tables (user-time split) or views (time split), or absent. */
export const SPLIT_OBJECTS_SQL = `
SELECT table_name AS name, 'TABLE' AS kind FROM duckdb_tables()
WHERE NOT temporary AND table_name IN ('train_events', 'holdout_events')
UNION ALL
SELECT view_name, 'VIEW' FROM duckdb_views() WHERE NOT temporary AND view_name IN ('train_events', 'holdout_events')`;

/** Drops the split objects SPLIT_OBJECTS_SQL found (DuckDB's DROP refuses the wrong kind, IF EXISTS or not). */
export function dropSplitSql(found: { name: string; kind: string }[]): string {
  return found
    .filter((f) => ['train_events', 'holdout_events'].includes(f.name))
    .map((f) => `DROP ${f.kind === 'VIEW' ? 'VIEW' : 'TABLE'} ${ident(f.name)};`)
    .join('\n');
}

/**
 * The holdout. `time`: one global cut, everything from `cutoff` on is the test period (nothing after it is seen in
 * training). The cut is a public instant when `cutoff` is given (privacy on: evaluation.cutoff or the run date
 * minus holdoutDays); otherwise the newest clean event minus `holdoutDays`, which depends on every user's data.
 * `user-time`: each user's latest `holdoutFraction` of events (users with at least 3 events), per user and so
 * stable under adding or removing another user; it leaks other users' later events into training — the usual
 * leave-last-out trade-off. Ties in time are broken by the row's own content, never its position.
 */
export function splitSql(
  split: 'time' | 'user-time',
  holdoutDays: number,
  holdoutFraction: number,
  cutoff?: string,
): string {
  if (split === 'user-time') {
    return `
CREATE OR REPLACE TEMP TABLE ranked_events AS
SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY ts, item_id, event_type, rating) AS rn, count(*) OVER (PARTITION BY user_id) AS n
FROM events;
CREATE TABLE train_events AS
SELECT * EXCLUDE (rn, n) FROM ranked_events WHERE n < 3 OR rn <= n - ceil(n * ${holdoutFraction});
CREATE TABLE holdout_events AS
SELECT * EXCLUDE (rn, n) FROM ranked_events WHERE n >= 3 AND rn > n - ceil(n * ${holdoutFraction});
CREATE OR REPLACE TABLE split_info AS
SELECT (SELECT min(ts) FROM holdout_events) AS holdout_start, max(ts) AS max_ts FROM events;
DROP TABLE ranked_events;`;
  }
  const start =
    cutoff !== undefined
      ? `CAST(${lit(new Date(cutoff).toISOString().replace('Z', ''))} AS TIMESTAMP)`
      : `max(ts) - to_milliseconds(CAST(${Math.round(holdoutDays * 86_400_000)} AS BIGINT))`;
  // Views, not copies: a global time cut is one filter on events, and copying all clean events twice more
  // (a full compressed write each) was the largest cost of the cleaning stage. The caller drops what a
  // retry or another split left under these names first (dropSplitSql).
  return `
CREATE OR REPLACE TABLE split_info AS
SELECT ${start} AS holdout_start, max(ts) AS max_ts FROM events;
CREATE VIEW train_events AS SELECT * FROM events WHERE ts < (SELECT holdout_start FROM split_info);
CREATE VIEW holdout_events AS SELECT * FROM events WHERE ts >= (SELECT holdout_start FROM split_info);`;
}

/** After classifySql: the bot threshold used (events per active day; NULL: no user had a counted event) and the bots. */
export const BOT_OUTCOME_SQL = `
SELECT (SELECT threshold FROM bot_threshold) AS threshold, (SELECT count(*) FROM bots) AS users,
       (SELECT count(*) FROM user_rate) AS rated_users`;

export const REASON_COUNTS_SQL = `SELECT reason, count(*) AS n FROM quarantine GROUP BY reason ORDER BY n DESC`;
