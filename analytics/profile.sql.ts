import { ident, lit } from '../lib/duckdb';
import { INTERACTION_COLUMNS } from '../lib/interactions';

/**
 * Profile of the raw (untyped) interaction table: what arrived, before any cleaning. A handful of vectorised
 * passes: column statistics in one scan, id frequencies from one column each, and one scan that parses
 * timestamps once for everything time-related. Everything after that works on small aggregate tables.
 */

/**
 * Timestamp parsing exactly as the cleaner does it (analytics/clean.sql.ts, classifySql): ISO-8601 text or
 * integer epoch seconds. Keep the two in step, or the profile describes different times than the cleaner keeps.
 * Needs `SET TimeZone = 'UTC'` (to_timestamp returns a zoned time).
 */
export function parsedTimestamp(col = '"timestamp"'): string {
  // Fast path for the common exact form 'YYYY-MM-DDTHH:MM:SSZ': a plain TIMESTAMP cast gives the same value as
  // the zoned route below (the offset is Z) at a fraction of the cost. A TIMESTAMP cast ignores other offsets,
  // so only that exact shape takes it; anything else (or a failed fast cast) goes the general way.
  // General: via TIMESTAMPTZ so an explicit offset (+02:00) is honoured; the session time zone must be UTC.
  // No trim(): DuckDB's casts skip surrounding whitespace themselves, and a trim() here would be hoisted out of
  // the lazy branches and computed for every row.
  return `coalesce(CASE WHEN ${col} LIKE '____-__-__T__:__:__Z' THEN TRY_CAST(${col} AS TIMESTAMP) END,
    TRY_CAST(${col} AS TIMESTAMPTZ)::TIMESTAMP,
    CASE WHEN regexp_full_match(${col}, '\\s*-?[0-9]{1,11}\\s*')
         THEN to_timestamp(CAST(${col} AS BIGINT))::TIMESTAMP END)`;
}

const ISO = `'%Y-%m-%dT%H:%M:%SZ'`;
// Only a value below '!' (empty, or starting with a space or a control byte) can trim to ''; the comparison is
// cheap and spares the trim() of every other value (a fifth of the column-statistics scan for timestamps).
const blank = (c: string) => `(${c} IS NULL OR (${c} < '!' AND trim(${c}) = ''))`;
const asNumber = (c: string) =>
  `CASE WHEN isfinite(TRY_CAST(trim(${c}) AS DOUBLE)) THEN TRY_CAST(trim(${c}) AS DOUBLE) END`;

/** Which columns hold numbers, judged on the first rows (cheap; decides where numeric statistics are worth it). */
export const NUMERIC_SAMPLE_SQL = `
SELECT ${INTERACTION_COLUMNS.map(
  (c) =>
    `count(*) FILTER (WHERE NOT ${blank(ident(c))}) AS ${ident(`${c}.present`)},
     count(TRY_CAST(trim(${ident(c)}) AS DOUBLE)) AS ${ident(`${c}.numeric`)}`,
).join(',\n       ')}
FROM (SELECT * FROM raw_events LIMIT 20000)`;

export const TOP_CANDIDATES = 50;
export const TOP_VALUES = 5;

/** Per-column count, nulls and approximate distinct values, plus numeric statistics, in one scan, into prof_columns. */
export function columnStatsSql(numeric: ReadonlySet<string>): string {
  const parts = INTERACTION_COLUMNS.map((c) => {
    const q = ident(c);
    const out = [
      // Non-empty count = rows - nulls: the blank test (a trim per value) is the costly part, so run it once.
      `count(*) FILTER (WHERE ${blank(q)}) AS ${ident(`${c}.nulls`)}`,
      `approx_count_distinct(nullif(${q}, '')) AS ${ident(`${c}.distinct`)}`,
    ];
    if (numeric.has(c)) {
      const d = ident(`${c}.num`);
      out.push(
        `count(${d}) AS ${ident(`${c}.ncount`)}`,
        `min(${d}) AS ${ident(`${c}.min`)}`,
        `max(${d}) AS ${ident(`${c}.max`)}`,
        `avg(${d}) AS ${ident(`${c}.mean`)}`,
        `stddev_samp(${d}) AS ${ident(`${c}.stddev`)}`,
        `approx_quantile(${d}, [0.01, 0.25, 0.5, 0.75, 0.99]) AS ${ident(`${c}.q`)}`,
      );
    }
    return out.join(', ');
  });
  const numbers = [...numeric].map((c) => `${asNumber(ident(c))} AS ${ident(`${c}.num`)}`);
  return `CREATE OR REPLACE TEMP TABLE prof_columns AS
SELECT count(*) AS rows, ${parts.join(',\n  ')}
FROM (SELECT *${numbers.map((n) => `, ${n}`).join('')} FROM raw_events)`;
}

/**
 * Up to this many distinct values, a column's top values are counted exactly with a plain GROUP BY (a hash
 * table of this many groups is cheap); above it, approx_top_k candidates are counted exactly instead.
 */
export const EXACT_TOP_MAX_DISTINCT = 1_000_000;

/**
 * Top-value candidates of the high-cardinality columns (a second scan of just those columns, into prof_top):
 * approx_top_k misses moderately frequent values among millions of distinct ones when asked for just a few,
 * so ask for TOP_CANDIDATES and let topValueCountsSql count them exactly. Its sketch is costly on columns of
 * moderate cardinality, which the exact GROUP BY serves better, so it runs only where that cannot.
 */
export function topCandidatesSql(columns: readonly string[]): string {
  const parts = columns.map(
    (c) => `approx_top_k(nullif(${ident(c)}, ''), ${TOP_CANDIDATES}) AS ${ident(`${c}.top`)}`,
  );
  return `CREATE OR REPLACE TEMP TABLE prof_top AS SELECT ${parts.join(', ')} FROM raw_events`;
}

/**
 * Exact top values per column: a GROUP BY where the column has few distinct values, otherwise exact counts of
 * the candidates columnStatsSql stored in prof_columns. The candidates stay in SQL, so no data value is ever
 * spliced into the query text. For the GROUP BY columns the number of groups is the exact distinct count, free
 * (`distinct_values`; NULL for candidate-only columns, whose distinct count stays the HyperLogLog estimate):
 * the estimate was off by up to 10% on small columns (user_id ≈10,990 for 10,003), contradicting the report's
 * own cards and charts.
 */
export function topValueCountsSql(exact: ReadonlySet<string>): string {
  const parts = INTERACTION_COLUMNS.map((c) => {
    const q = ident(c);
    const where = exact.has(c)
      ? `${q} IS NOT NULL AND ${q} <> ''`
      : `${q} IN (SELECT unnest(${ident(`${c}.top`)}) FROM prof_top)`;
    return `SELECT ${lit(c)} AS col, ${q} AS value, count(*) AS n, ${exact.has(c)} AS exact FROM raw_events WHERE ${where} GROUP BY ALL`;
  });
  return `SELECT col, value, n, CASE WHEN exact THEN count(*) OVER (PARTITION BY col) END AS distinct_values
FROM (${parts.join('\n  UNION ALL\n  ')})
QUALIFY row_number() OVER (PARTITION BY col ORDER BY n DESC, value) <= ${TOP_VALUES}`;
}

/** Events per user and per item (trimmed ids, as the cleaner keys them). */
export const ID_FREQUENCIES_SQL = `
CREATE OR REPLACE TEMP TABLE prof_users AS
  SELECT trim(user_id) AS id, count(*) AS n FROM raw_events WHERE NOT ${blank('user_id')} GROUP BY 1;
CREATE OR REPLACE TEMP TABLE prof_items AS
  SELECT trim(item_id) AS id, count(*) AS n FROM raw_events WHERE NOT ${blank('item_id')} GROUP BY 1;`;

/**
 * One scan that parses each timestamp once: event-type mix, events per day and per hour (plausible times only),
 * and the plausibility classes with their time ranges. Event types are normalised as the cleaner does.
 */
export function timeGroupsSql(floor: string, futureLimit: string): string {
  const f = `TIMESTAMP ${lit(floor.replace('Z', ''))}`;
  const u = `TIMESTAMP ${lit(futureLimit.replace('Z', ''))}`;
  return `
CREATE OR REPLACE TEMP TABLE prof_time AS
WITH p AS (
  SELECT coalesce(nullif(lower(trim(event_type)), ''),
                  CASE WHEN nullif(trim(rating), '') IS NOT NULL THEN 'rating' END, '(null)') AS et,
         ${parsedTimestamp()} AS ts
  FROM raw_events),
c AS (
  SELECT et, ts, CASE WHEN ts IS NULL THEN 'unparseable' WHEN ts < ${f} THEN 'before_floor'
                      WHEN ts > ${u} THEN 'future' ELSE 'plausible' END AS cls
  FROM p),
d AS (
  -- A DATE groups as cheaply as an integer; formatting a string per row cost a fifth of this scan.
  SELECT *, CASE WHEN cls = 'plausible' THEN CAST(ts AS DATE) END AS day,
            CASE WHEN cls = 'plausible' THEN hour(ts) END AS hr
  FROM c)
SELECT CASE WHEN grouping(et) = 0 THEN 'type' WHEN grouping(day) = 0 THEN 'day'
            WHEN grouping(hr) = 0 THEN 'hour' ELSE 'class' END AS kind,
       coalesce(et, strftime(day, '%Y-%m-%d'), CAST(hr AS VARCHAR), cls) AS key,
       count(*) AS n,
       strftime(min(ts) FILTER (WHERE isfinite(ts)), ${ISO}) AS tmin,
       strftime(max(ts) FILTER (WHERE isfinite(ts)), ${ISO}) AS tmax
FROM d GROUP BY GROUPING SETS ((et), (day), (hr), (cls))`;
}

export const TIME_GROUPS_SQL = `SELECT kind, key, n, tmin, tmax FROM prof_time WHERE key IS NOT NULL ORDER BY kind, key`;

/** Distribution of events per id (prof_users or prof_items). */
export function countDistributionSql(table: 'prof_users' | 'prof_items'): string {
  return `SELECT count(*) AS ids, coalesce(sum(n), 0) AS events, min(n) AS min,
                 quantile_cont(n, [0.5, 0.9, 0.99]) AS q, max(n) AS max, avg(n) AS mean FROM ${table}`;
}

/** Users per events-per-user bucket: bucket b holds 2^b .. 2^(b+1)-1 events, the last one everything above. */
export const USER_BUCKETS_SQL = `
SELECT least(floor(log2(n)), 9)::INTEGER AS b, count(*) AS users FROM prof_users GROUP BY 1 ORDER BY 1`;

/**
 * Item popularity concentration from items ranked least popular first: Gini (from the rank-weighted sum),
 * long-tail share, the Lorenz curve (≤ 100 points) and events per popularity decile.
 */
export const ITEM_CONCENTRATION_SQL = `
CREATE OR REPLACE TEMP TABLE prof_item_rank AS
  SELECT n, rk, c, t, sum(n) OVER (ORDER BY rk ROWS UNBOUNDED PRECEDING) AS cn
  FROM (SELECT n, row_number() OVER (ORDER BY n, id) AS rk, count(*) OVER () AS c, sum(n) OVER () AS t
        FROM prof_items)`;

export const ITEM_GINI_SQL = `
SELECT coalesce(2.0 * sum(rk * n) / (max(c) * max(t)) - (max(c) + 1.0) / max(c), 0) AS gini,
       coalesce(sum(n) FILTER (WHERE rk <= floor(0.8 * c)) / max(t), 0) AS long_tail
FROM prof_item_rank`;

export const LORENZ_SQL = `
SELECT max(rk) / max(c) AS x, max(cn) / max(t) AS y
FROM prof_item_rank GROUP BY ceil(100.0 * rk / c) ORDER BY 1`;

export const DECILES_SQL = `
SELECT floor(10.0 * (rk - 1) / c)::INTEGER AS d, sum(n) / max(t) AS share FROM prof_item_rank GROUP BY 1 ORDER BY 1`;

/** Distinct ids of this run, kept so the next run can measure new and vanished users and items. */
export function exportIdsSql(table: 'prof_users' | 'prof_items', file: string): string {
  return `COPY (SELECT id FROM ${table} ORDER BY id) TO ${lit(file)} (FORMAT parquet, COMPRESSION zstd)`;
}

/** New ids (here, not in the previous list) and vanished ids (there, not here). */
export function idOverlapSql(table: 'prof_users' | 'prof_items', previousIds: string): string {
  const prev = `read_parquet(${lit(previousIds)})`;
  return `SELECT (SELECT count(*) FROM ${table}) AS current,
                 (SELECT count(*) FROM ${prev}) AS previous,
                 (SELECT count(*) FROM ${table} WHERE id NOT IN (SELECT id FROM ${prev})) AS new_ids,
                 (SELECT count(*) FROM ${prev} WHERE id NOT IN (SELECT id FROM ${table})) AS vanished`;
}

export const DROP_PROFILE_TABLES = `
DROP TABLE IF EXISTS prof_columns; DROP TABLE IF EXISTS prof_users; DROP TABLE IF EXISTS prof_items; DROP TABLE IF EXISTS prof_time;
DROP TABLE IF EXISTS prof_item_rank; DROP TABLE IF EXISTS prof_top;`;
