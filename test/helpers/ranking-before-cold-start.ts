import { lit } from '../../lib/duckdb';
import { orderFreeSum, shardPredicate, type RecommendParams } from '../../analytics/baselines.sql';

/**
 * recommendSql as it was before cold start (commit 073d1ee), frozen: with cold start off the ranking must stay
 * exactly this one (test/unit/cold-start.test.ts). The one later change it carries is the order-free sum of
 * item-item similarities (orderFreeSum), which fixed the scores' last bits across shards.
 */
export function recommendSqlBeforeColdStart(p: RecommendParams): string {
  const exclude = p.excludeItems
    ? `AND NOT EXISTS (SELECT 1 FROM ${p.excludeItems} x WHERE x.item_id = c.item_id)`
    : '';
  // Excluded items leave the popular list before it is cut, so every user still gets k candidates.
  const popExclude = p.excludeItems
    ? `WHERE NOT EXISTS (SELECT 1 FROM ${p.excludeItems} x WHERE x.item_id = mp.item_id)`
    : '';
  const personal =
    p.kind === 'itemitem'
      ? `
  hist AS (
    SELECT user_id, item_id FROM (
      SELECT user_id, item_id, row_number() OVER (PARTITION BY user_id ORDER BY max(ts) DESC, item_id) AS rn
      FROM ${p.history} WHERE user_id IN (SELECT user_id FROM target_users) GROUP BY user_id, item_id)
    WHERE rn <= ${p.maxHistory}),
  personal AS (
    SELECT h.user_id, n.neighbour_id AS item_id, ${orderFreeSum('n.sim')} AS score, 0 AS tier
    FROM hist h JOIN read_parquet(${lit(p.modelFile)}) n ON n.item_id = h.item_id
    GROUP BY ALL),`
      : p.kind === 'recs'
        ? `
  personal AS (
    SELECT r.user_id, r.item_id, r.score, 0 AS tier FROM read_parquet(${lit(p.modelFile)}) r
    WHERE r.user_id IN (SELECT user_id FROM target_users)),`
        : `personal AS (SELECT NULL::VARCHAR AS user_id, NULL::VARCHAR AS item_id, NULL::DOUBLE AS score, 0 AS tier WHERE false),`;
  return `
CREATE OR REPLACE TEMP TABLE ${p.into} AS
WITH target_users AS (SELECT DISTINCT user_id FROM ${p.targets} WHERE ${shardPredicate('user_id', p.shard)}),
  seen AS (SELECT DISTINCT user_id, item_id FROM ${p.history} WHERE user_id IN (SELECT user_id FROM target_users)),
  seen_count AS (
    SELECT t.user_id, count(s.item_id) AS n FROM target_users t
    LEFT JOIN seen s ON s.user_id = t.user_id GROUP BY t.user_id),
  ${personal}
  pop AS (
    SELECT item_id, score, row_number() OVER (ORDER BY score DESC, item_id) AS pop_rank FROM (
      SELECT item_id, coalesce(score / nullif((SELECT max(score) FROM read_parquet(${lit(p.mostPopFile)})), 0), 0) AS score
      FROM read_parquet(${lit(p.mostPopFile)}) mp ${popExclude})),
  popular AS (
    SELECT sc.user_id, pop.item_id, pop.score, 1 AS tier
    FROM seen_count sc JOIN pop ON pop.pop_rank <= ${p.k} + sc.n),
  candidates AS (SELECT * FROM personal UNION ALL SELECT * FROM popular),
  unseen AS (
    SELECT c.* FROM candidates c
    WHERE NOT EXISTS (SELECT 1 FROM seen s WHERE s.user_id = c.user_id AND s.item_id = c.item_id) ${exclude}),
  best AS (
    SELECT user_id, item_id, arg_min(score, tier) AS score, min(tier) AS tier FROM unseen GROUP BY ALL),
  ranked AS (
    SELECT user_id, item_id, score, tier,
           row_number() OVER (PARTITION BY user_id ORDER BY tier, score DESC, item_id) AS rank
    FROM best)
SELECT user_id, CAST(rank AS INTEGER) AS rank, item_id, CAST(score AS DOUBLE) AS score, tier = 0 AS personal
FROM ranked WHERE rank <= ${p.k};`;
}
