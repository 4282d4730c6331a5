/** Profile of the raw (untyped) interaction table: what arrived, before any cleaning. */
export const PROFILE_SQL = `
WITH typed AS (
  SELECT *, TRY_CAST("timestamp" AS TIMESTAMP) AS ts FROM raw_events)
SELECT
  count(*) AS rows,
  count(DISTINCT user_id) AS users,
  count(DISTINCT item_id) AS items,
  count(*) FILTER (WHERE user_id IS NULL OR trim(user_id) = '') AS null_user_id,
  count(*) FILTER (WHERE item_id IS NULL OR trim(item_id) = '') AS null_item_id,
  count(*) FILTER (WHERE event_type IS NULL OR trim(event_type) = '') AS null_event_type,
  count(*) FILTER (WHERE rating IS NULL OR trim(rating) = '') AS null_rating,
  count(*) FILTER (WHERE "timestamp" IS NULL OR trim("timestamp") = '') AS null_timestamp,
  strftime(min(ts), '%Y-%m-%dT%H:%M:%SZ') AS min_timestamp,
  strftime(max(ts), '%Y-%m-%dT%H:%M:%SZ') AS max_timestamp
FROM typed`;

export const EVENT_TYPE_MIX_SQL = `
SELECT coalesce(event_type, '(null)') AS event_type, count(*) AS n FROM raw_events GROUP BY 1 ORDER BY n DESC LIMIT 50`;

export const EVENTS_PER_DAY_SQL = `
SELECT strftime(date_trunc('day', TRY_CAST("timestamp" AS TIMESTAMP)), '%Y-%m-%d') AS day, count(*) AS n
FROM raw_events WHERE TRY_CAST("timestamp" AS TIMESTAMP) IS NOT NULL GROUP BY 1 ORDER BY 1`;

export const PER_USER_DISTRIBUTION_SQL = `
WITH u AS (SELECT user_id, count(*) AS n FROM raw_events WHERE user_id IS NOT NULL GROUP BY 1)
SELECT min(n) AS min, quantile_cont(n, 0.5) AS p50, quantile_cont(n, 0.9) AS p90, quantile_cont(n, 0.99) AS p99,
       max(n) AS max, avg(n) AS mean FROM u`;
