/**
 * Set-based ranking metrics in DuckDB. Inputs: `recs(model, user_id, rank, item_id)` and
 * `relevant(user_id, item_id)` (holdout items the user had not seen in training). Every user with at least one
 * relevant item counts, including users a model returned nothing for (their metrics are 0).
 *
 * precision@k = hits / k; recall@k = hits / |relevant|; hitrate@k = [hits > 0];
 * ndcg@k = Σ_hits 1/log2(rank + 1) / Σ_{i ≤ min(|relevant|, k)} 1/log2(i + 1);
 * map@k = Σ_hits precision@rank / min(|relevant|, k); mrr@k = 1 / rank of the first hit (0 if none);
 * coverage = distinct recommended items / catalogue size.
 */

/** One row per (model, user): the per-user values that the averages and the bootstrap work from. */
export function perUserMetricsSql(k: number): string {
  return `
CREATE OR REPLACE TEMP TABLE per_user_metrics AS
WITH rel AS (SELECT user_id, count(*) AS nrel FROM relevant GROUP BY user_id),
models AS (SELECT DISTINCT model FROM recs),
hits AS (
  SELECT r.model, r.user_id, r.rank,
         row_number() OVER (PARTITION BY r.model, r.user_id ORDER BY r.rank) AS hit_no
  FROM recs r JOIN relevant v ON v.user_id = r.user_id AND v.item_id = r.item_id
  WHERE r.rank <= ${k}),
idcg AS (SELECT range AS n, sum(1 / log2(range + 1)) OVER (ORDER BY range) AS idcg FROM range(1, ${k} + 1))
SELECT m.model, u.user_id, u.nrel,
       count(h.rank) AS nhits,
       coalesce(sum(1 / log2(h.rank + 1)), 0) / any_value(i.idcg) AS ndcg,
       count(h.rank) / ${k} AS precision,
       count(h.rank) / u.nrel AS recall,
       CASE WHEN count(h.rank) > 0 THEN 1.0 ELSE 0.0 END AS hitrate,
       coalesce(sum(h.hit_no / h.rank), 0) / least(u.nrel, ${k}) AS map,
       coalesce(1 / min(h.rank), 0) AS mrr
FROM models m CROSS JOIN rel u
JOIN idcg i ON i.n = least(u.nrel, ${k})
LEFT JOIN hits h ON h.model = m.model AND h.user_id = u.user_id
GROUP BY m.model, u.user_id, u.nrel`;
}

export function aggregateMetricsSql(k: number, catalogueSize: number): string {
  return `
WITH cov AS (SELECT model, count(DISTINCT item_id) AS items FROM recs WHERE rank <= ${k} GROUP BY model)
SELECT p.model,
       avg(precision) AS "precision@k", avg(recall) AS "recall@k", avg(ndcg) AS "ndcg@k",
       avg(hitrate) AS "hitrate@k", avg(map) AS "map@k", avg(mrr) AS "mrr@k",
       any_value(coalesce(c.items, 0)) / ${catalogueSize} AS coverage,
       count(*) AS users
FROM per_user_metrics p LEFT JOIN cov c ON c.model = p.model
GROUP BY p.model ORDER BY p.model`;
}

/** Per-user NDCG of every model, aligned by user, for the paired bootstrap. */
export const PER_USER_NDCG_SQL = `SELECT model, user_id, ndcg FROM per_user_metrics ORDER BY user_id, model`;
