import { lit } from '../lib/duckdb';
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
  botMadK: number;
  botMinEventsPerDay: number;
}

export const REASONS = [
  'malformed_line',
  'null_user_id',
  'null_item_id',
  'bad_timestamp',
  'timestamp_before_floor',
  'future_timestamp',
  'unknown_event_type',
  'bad_rating',
  'duplicate',
  'bot_user',
] as const;
export type QuarantineReason = (typeof REASONS)[number];

export function classifySql(p: CleanParams): string {
  const types = Object.keys(p.eventTypes).map(lit).join(', ');
  return `
CREATE OR REPLACE TEMP TABLE typed AS
SELECT source_file, source_line, user_id AS raw_user_id, item_id AS raw_item_id, event_type AS raw_event_type,
       rating AS raw_rating, "timestamp" AS raw_timestamp,
       trim(user_id) AS user_id, trim(item_id) AS item_id,
       -- An explicit rating without an event type is a rating event.
       coalesce(nullif(lower(trim(event_type)), ''), CASE WHEN nullif(trim(rating), '') IS NOT NULL THEN 'rating' END) AS event_type,
       TRY_CAST(nullif(trim(rating), '') AS DOUBLE) AS rating,
       ${parsedTimestamp()} AS ts
FROM raw_events;

CREATE OR REPLACE TEMP TABLE classified AS
SELECT *,
  CASE
    WHEN user_id IS NULL OR user_id = '' THEN 'null_user_id'
    WHEN item_id IS NULL OR item_id = '' THEN 'null_item_id'
    WHEN ts IS NULL THEN 'bad_timestamp'
    WHEN ts < TIMESTAMP ${lit(p.timestampFloor.replace('Z', ''))} THEN 'timestamp_before_floor'
    WHEN ts > TIMESTAMP ${lit(p.futureLimit.replace('Z', ''))} THEN 'future_timestamp'
    WHEN event_type IS NULL OR event_type NOT IN (${types}) THEN 'unknown_event_type'
    WHEN event_type = 'rating' AND (rating IS NULL OR NOT isfinite(rating)
         OR rating < ${p.ratingMin} OR rating > ${p.ratingMax}) THEN 'bad_rating'
    WHEN event_type <> 'rating' AND raw_rating IS NOT NULL AND trim(raw_rating) <> ''
         AND (rating IS NULL OR NOT isfinite(rating)) THEN 'bad_rating'
  END AS reason
FROM typed;

-- Exact duplicates among otherwise valid rows: the first occurrence (file, line) stays.
CREATE OR REPLACE TEMP TABLE dedup AS
SELECT *, CASE WHEN reason IS NULL AND row_number() OVER (
    PARTITION BY user_id, item_id, event_type, rating, ts ORDER BY source_file, source_line) > 1
  THEN 'duplicate' ELSE reason END AS reason2
FROM classified;

-- Bots: events per active day far above the robust (median + k * MAD) level across users.
CREATE OR REPLACE TEMP TABLE user_rate AS
SELECT user_id, count(*) / count(DISTINCT date_trunc('day', ts)) AS per_day
FROM dedup WHERE reason2 IS NULL GROUP BY user_id;
CREATE OR REPLACE TEMP TABLE bot_threshold AS
SELECT greatest(${p.botMinEventsPerDay}, median(per_day) + ${p.botMadK} * coalesce(mad(per_day), 0)) AS threshold
FROM user_rate;
CREATE OR REPLACE TEMP TABLE bots AS
SELECT user_id FROM user_rate WHERE ${p.detectBots} AND per_day > (SELECT threshold FROM bot_threshold);

CREATE OR REPLACE TEMP TABLE final AS
SELECT *, CASE WHEN reason2 IS NULL AND user_id IN (SELECT user_id FROM bots) THEN 'bot_user' ELSE reason2 END AS final_reason
FROM dedup;

CREATE OR REPLACE TABLE quarantine AS
SELECT source_file, source_line, final_reason AS reason, NULL::VARCHAR AS detail,
       raw_user_id AS user_id, raw_item_id AS item_id, raw_event_type AS event_type, raw_rating AS rating,
       raw_timestamp AS "timestamp", NULL::VARCHAR AS raw
FROM final WHERE final_reason IS NOT NULL
UNION ALL
SELECT source_file, source_line, reason, detail, NULL, NULL, NULL, NULL, NULL, raw FROM raw_rejects;

CREATE OR REPLACE TABLE events AS
SELECT user_id, item_id, event_type, rating, ts,
       CASE event_type ${Object.entries(p.eventTypes)
         .map(([t, w]) => `WHEN ${lit(t)} THEN ${w}`)
         .join(' ')} END
       * CASE WHEN event_type = 'rating' THEN rating / ${p.ratingMax} ELSE 1 END AS weight
FROM final WHERE final_reason IS NULL;`;
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

/**
 * The holdout. `time`: the last `holdoutDays` of clean events form the test period (a global cut: nothing
 * after it is seen in training). `user-time`: each user's latest `holdoutFraction` of events (users with at
 * least 3 events), which leaks other users' later events into training — the usual leave-last-out trade-off.
 */
export function splitSql(split: 'time' | 'user-time', holdoutDays: number, holdoutFraction: number): string {
  if (split === 'user-time') {
    return `
CREATE OR REPLACE TEMP TABLE ranked_events AS
SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY ts, item_id) AS rn, count(*) OVER (PARTITION BY user_id) AS n
FROM events;
CREATE OR REPLACE TABLE train_events AS
SELECT * EXCLUDE (rn, n) FROM ranked_events WHERE n < 3 OR rn <= n - ceil(n * ${holdoutFraction});
CREATE OR REPLACE TABLE holdout_events AS
SELECT * EXCLUDE (rn, n) FROM ranked_events WHERE n >= 3 AND rn > n - ceil(n * ${holdoutFraction});
CREATE OR REPLACE TABLE split_info AS
SELECT (SELECT min(ts) FROM holdout_events) AS holdout_start, max(ts) AS max_ts FROM events;
DROP TABLE ranked_events;`;
  }
  return `
CREATE OR REPLACE TABLE split_info AS
SELECT max(ts) - to_milliseconds(CAST(${Math.round(holdoutDays * 86_400_000)} AS BIGINT)) AS holdout_start, max(ts) AS max_ts FROM events;
CREATE OR REPLACE TABLE train_events AS SELECT * FROM events WHERE ts < (SELECT holdout_start FROM split_info);
CREATE OR REPLACE TABLE holdout_events AS SELECT * FROM events WHERE ts >= (SELECT holdout_start FROM split_info);`;
}

export const REASON_COUNTS_SQL = `SELECT reason, count(*) AS n FROM quarantine GROUP BY reason ORDER BY n DESC`;
