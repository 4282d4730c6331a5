/**
 * Set-based ranking metrics in DuckDB. Inputs: `recs(model, user_id, rank, item_id)` and
 * `relevant(user_id, item_id)` (holdout items the user had not seen in training). Every user with at least one
 * relevant item counts, including users a model returned nothing for (their metrics are 0).
 *
 * precision@k = hits / k; recall@k = hits / |relevant|; hitrate@k = [hits > 0];
 * ndcg@k = Σ_hits 1/log2(rank + 1) / Σ_{i ≤ min(|relevant|, k)} 1/log2(i + 1);
 * map@k = Σ_hits precision@rank / min(|relevant|, k); mrr@k = 1 / rank of the first hit (0 if none);
 * auc = share of (relevant, non-relevant) item pairs ranked correctly, items outside the list tied below it;
 * coverage = distinct recommended items / catalogue size.
 */

/** One row per (model, user): the per-user values that the averages and the bootstrap work from. */
export function perUserMetricsSql(k: number, catalogueSize: number): string {
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
       coalesce(1 / min(h.rank), 0) AS mrr,
       -- Non-relevant items: the catalogue less the relevant ones. A hit at rank r with hit_no relevant items
       -- at or above it beats the non-relevant items below it; unranked relevant items tie with unranked
       -- non-relevant ones (credit 1/2); a user with an empty list has every item unranked (AUC 1/2, not 0).
       (coalesce(sum((${catalogueSize} - u.nrel) - (h.rank - h.hit_no)), 0)
        + (u.nrel - count(h.rank)) * 0.5 * greatest(0, (${catalogueSize} - u.nrel) - (coalesce(any_value(len.n), 0) - count(h.rank))))
       / (u.nrel * greatest(1, ${catalogueSize} - u.nrel)) AS auc
FROM models m CROSS JOIN rel u
LEFT JOIN (SELECT model, user_id, count(*) AS n FROM recs WHERE rank <= ${k} GROUP BY ALL) len
  ON len.model = m.model AND len.user_id = u.user_id
JOIN idcg i ON i.n = least(u.nrel, ${k})
LEFT JOIN hits h ON h.model = m.model AND h.user_id = u.user_id
GROUP BY m.model, u.user_id, u.nrel`;
}

export function aggregateMetricsSql(k: number, catalogueSize: number): string {
  return `
WITH cov AS (SELECT model, count(DISTINCT item_id) AS items FROM recs WHERE rank <= ${k} GROUP BY model)
SELECT p.model,
       avg(precision) AS "precision@k", avg(recall) AS "recall@k", avg(ndcg) AS "ndcg@k",
       avg(hitrate) AS "hitrate@k", avg(map) AS "map@k", avg(mrr) AS "mrr@k", avg(auc) AS auc,
       any_value(coalesce(c.items, 0)) / ${catalogueSize} AS coverage,
       count(*) AS users
FROM per_user_metrics p LEFT JOIN cov c ON c.model = p.model
GROUP BY p.model ORDER BY p.model`;
}

/** Per-user NDCG of every model, aligned by user, for the paired bootstrap. */
export const PER_USER_NDCG_SQL = `SELECT model, user_id, ndcg FROM per_user_metrics ORDER BY user_id, model`;

/**
 * Segments and popularity bias, from `recs`, `relevant`, `per_user_metrics` and `train_events`:
 *   - ndcg for new users (fewer than `newUserEvents` training events) vs returning users;
 *   - recall on head items (the most popular 20% in training, by distinct users) vs tail items;
 *   - novelty: mean self-information −log2(users(i) / users) of recommended items (higher = less obvious);
 *   - arp: average recommendation popularity, the mean share of users who had the recommended item.
 */
export function segmentMetricsSql(k: number, newUserEvents: number): string {
  return `
WITH hist AS (SELECT user_id, count(*) AS n FROM train_events GROUP BY user_id),
pop AS (SELECT item_id, count(DISTINCT user_id) AS users FROM train_events GROUP BY item_id),
total AS (SELECT count(DISTINCT user_id) AS users FROM train_events),
head AS (SELECT item_id FROM pop QUALIFY row_number() OVER (ORDER BY users DESC, item_id) <= ceil(0.2 * count(*) OVER ())),
rel AS (SELECT v.*, v.item_id IN (SELECT item_id FROM head) AS is_head FROM relevant v),
hits AS (SELECT r.model, rel.user_id, rel.is_head FROM recs r JOIN rel ON rel.user_id = r.user_id AND rel.item_id = r.item_id WHERE r.rank <= ${k}),
seg_recall AS (
  SELECT m.model, rel.is_head, avg(coalesce(h.hits, 0) / rel.n) AS recall
  FROM (SELECT DISTINCT model FROM recs) m
  CROSS JOIN (SELECT user_id, is_head, count(*) AS n FROM rel GROUP BY ALL) rel
  LEFT JOIN (SELECT model, user_id, is_head, count(*) AS hits FROM hits GROUP BY ALL) h
    ON h.model = m.model AND h.user_id = rel.user_id AND h.is_head = rel.is_head
  GROUP BY ALL),
seg_users AS (
  SELECT p.model, coalesce(hist.n, 0) < ${newUserEvents} AS is_new, avg(p.ndcg) AS ndcg, count(*) AS users
  FROM per_user_metrics p LEFT JOIN hist ON hist.user_id = p.user_id GROUP BY ALL),
bias AS (
  SELECT r.model, avg(-log2(coalesce(pop.users, 1) / (SELECT users FROM total))) AS novelty,
         avg(coalesce(pop.users, 0) / (SELECT users FROM total)) AS arp
  FROM recs r LEFT JOIN pop ON pop.item_id = r.item_id WHERE r.rank <= ${k} GROUP BY r.model)
SELECT m.model,
  (SELECT ndcg FROM seg_users s WHERE s.model = m.model AND s.is_new) AS "ndcg@k_new_users",
  (SELECT ndcg FROM seg_users s WHERE s.model = m.model AND NOT s.is_new) AS "ndcg@k_returning_users",
  (SELECT recall FROM seg_recall s WHERE s.model = m.model AND s.is_head) AS "recall@k_head_items",
  (SELECT recall FROM seg_recall s WHERE s.model = m.model AND NOT s.is_head) AS "recall@k_tail_items",
  b.novelty, b.arp
FROM (SELECT DISTINCT model FROM recs) m LEFT JOIN bias b ON b.model = m.model ORDER BY m.model`;
}

/**
 * Mean top-k overlap per user between two recommendation tables (user_id, item_id) of the same users, e.g. the
 * evaluated and the published variant of a model: |A_u ∩ B_u| / |A_u|, averaged over the users of `a`.
 */
export function listAgreementSql(a: string, b: string): string {
  return `
SELECT count(*)::INTEGER AS users, coalesce(avg(overlap), 0)::DOUBLE AS agreement FROM (
  SELECT x.user_id, count(y.item_id) / count(*) AS overlap
  FROM ${a} x LEFT JOIN ${b} y ON y.user_id = x.user_id AND y.item_id = x.item_id
  GROUP BY x.user_id)`;
}
