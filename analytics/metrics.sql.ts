/**
 * Set-based ranking metrics in DuckDB. Inputs: `recs(model, user_id, rank, item_id)` and
 * `relevant(user_id, item_id)` (holdout items the user had not seen in training). Every user with at least one
 * relevant item counts, including users a model returned nothing for (their metrics are 0).
 *
 * precision@k = hits / k; recall@k = hits / |relevant|; hitrate@k = [hits > 0];
 * ndcg@k = Σ_hits 1/log2(rank + 1) / Σ_{i ≤ min(|relevant|, k)} 1/log2(i + 1);
 * coverage = distinct recommended items / catalogue size.
 */
export function metricsSql(k: number, catalogueSize: number): string {
  return `
WITH rel AS (SELECT user_id, count(*) AS nrel FROM relevant GROUP BY user_id),
models AS (SELECT DISTINCT model FROM recs),
hits AS (
  SELECT r.model, r.user_id, r.rank FROM recs r
  JOIN relevant v ON v.user_id = r.user_id AND v.item_id = r.item_id WHERE r.rank <= ${k}),
idcg AS (
  SELECT n, sum(1 / log2(i + 1)) OVER (ORDER BY i) AS idcg, n AS i0
  FROM (SELECT range AS n, range AS i FROM range(1, ${k} + 1))),
per_user AS (
  SELECT m.model, u.user_id, u.nrel, count(h.rank) AS nhits, coalesce(sum(1 / log2(h.rank + 1)), 0) AS dcg
  FROM models m CROSS JOIN rel u
  LEFT JOIN hits h ON h.model = m.model AND h.user_id = u.user_id
  GROUP BY ALL),
cov AS (SELECT model, count(DISTINCT item_id) AS items FROM recs WHERE rank <= ${k} GROUP BY model)
SELECT p.model,
       avg(nhits / ${k}) AS "precision@k",
       avg(nhits / nrel) AS "recall@k",
       avg(dcg / i.idcg) AS "ndcg@k",
       avg(CASE WHEN nhits > 0 THEN 1 ELSE 0 END) AS "hitrate@k",
       any_value(coalesce(c.items, 0)) / ${catalogueSize} AS coverage,
       count(*) AS users
FROM per_user p
JOIN idcg i ON i.n = least(p.nrel, ${k})
LEFT JOIN cov c ON c.model = p.model
GROUP BY p.model ORDER BY p.model`;
}
