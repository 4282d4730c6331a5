/**
 * Cold start in the ranking SQL (analytics/baselines.sql.ts recommendSql), shared by evaluation and publishing:
 *
 * - **Light users** (fewer than `lightUserEvents` events in the history): after the model's own candidates, their
 *   list is filled from popularity *within the categories of their events* — a mixture
 *   Σ_c P(c | u) · P(i | c), P(c | u) the share of the user's events in category c, P(i | c) the item's share of
 *   its category's popularity — before the global popular backfill. Without category metadata there is nothing to
 *   mix and the backfill stays global popularity.
 * - **New items** (in the item metadata, no event in the history at all): a metadata score per (user, item),
 *   `P̃(c | u) / |c| · price lift · (1 + token affinity)`, from the user's most recent `maxHistory` distinct items:
 *   P̃(c | u) their category share smoothed towards the catalogue's category shares, |c| the catalogue items of
 *   the category, the price lift the user's (Laplace-smoothed) share of events in the item's price quintile over
 *   1/5, the token affinity the idf-weighted share of the item's title tokens found in the user's titles. Only
 *   users with history in the item's category are candidates. The best `newItemSlots` enter the list at
 *   `newItemRank` (pushed up so all of them fit in k), moving the model's items below them down.
 *
 * Privacy (`privacy: true`): the category popularity is post-processing of the released (noisy) MostPop file and
 * the public item metadata, the category shares are the user's own data; nothing else about other users is read.
 * New items are off: "no event in the history" is an exact statistic over every user's data.
 *
 * Defaults (configs/default.yaml `publish.coldStart`, chosen from bench/cold-start.ts, README "Cold start").
 */

/** The configured behaviour (publish.coldStart, with the run's privacy switch). */
export interface ColdStartSettings {
  /** Users with fewer events than this get the category backfill (0: off). */
  lightUserEvents: number;
  /** New items (catalogue items without events) per list (0: off). */
  newItemSlots: number;
  /** The rank the first new item takes (1-based; moved up so every slot fits in the list). */
  newItemRank: number;
  /** privacy.enabled: category popularity from the released MostPop only; no new items. */
  privacy: boolean;
}

/** What the ranking SQL needs beside the settings: the item metadata table (item_id, category, price, title). */
export interface ColdStartParams extends ColdStartSettings {
  items: string;
  /** Scoring weights (ablations in the bench); defaults below. */
  priceWeight?: number;
  tokenWeight?: number;
  /** Light users: weight of the category list in the rank fusion with the model's (0: category as backfill). */
  lightBlend?: number;
}

/** Cold start off: the ranking is exactly the one before cold start existed. */
export const COLD_START_OFF: ColdStartSettings = {
  lightUserEvents: 0,
  newItemSlots: 0,
  newItemRank: 1,
  privacy: false,
};

export const PRICE_BUCKETS = 5;
/** Light users' rank fusion: Σ weight / (FUSION_RANK + rank) over the model's and the category list. */
export const FUSION_RANK = 10;
export const LIGHT_BLEND = 1;
/** Pseudo-events spread over the catalogue's categories when smoothing a user's category shares. */
export const CATEGORY_PRIOR_EVENTS = 1;
/** Title tokens per user profile (by share × idf) that new items are matched against. */
export const PROFILE_TOKENS = 30;

/** Which parts are on (privacy turns new items off whatever the settings say). */
export function coldStartParts(p: ColdStartSettings | undefined): { light: boolean; newItems: boolean } {
  if (!p) return { light: false, newItems: false };
  return {
    light: p.lightUserEvents > 0,
    newItems: p.newItemSlots > 0 && !p.privacy,
  };
}

const int = (n: number, what: string) => {
  if (!Number.isInteger(n) || n < 0) throw new Error(`${what} must be a non-negative integer, got ${n}`);
  return n;
};

/**
 * The item metadata as `item_meta(item_id, category, price, price_bucket, title)`: one row per trimmed item id,
 * empty strings as null, prices that do not parse as null; price quintiles within the item's category over the
 * catalogue (public metadata).
 */
export function itemMetaCtes(items: string): string {
  return `
  item_meta0 AS (
    SELECT trim(CAST(item_id AS VARCHAR)) AS item_id,
           any_value(nullif(trim(CAST(category AS VARCHAR)), '')) AS category,
           any_value(TRY_CAST(nullif(trim(CAST(price AS VARCHAR)), '') AS DOUBLE)) AS price,
           any_value(CAST(title AS VARCHAR)) AS title
    FROM ${items} WHERE nullif(trim(CAST(item_id AS VARCHAR)), '') IS NOT NULL GROUP BY 1),
  item_meta AS (
    SELECT m.*, CASE WHEN price IS NOT NULL THEN ntile(${PRICE_BUCKETS}) OVER (
             PARTITION BY category, price IS NULL ORDER BY price, item_id) END AS price_bucket
    FROM item_meta0 m),`;
}

/**
 * Each target user's profile: their most recent `maxHistory` distinct items with the number of events on each,
 * joined to the metadata (`prof`), and the events per category (`user_cat`) and in total (`prof_total`).
 */
export function profileCtes(history: string, maxHistory: number): string {
  return `
  prof AS (
    SELECT p.user_id, p.item_id, p.n, m.category, m.price_bucket, m.title FROM (
      SELECT user_id, item_id, count(*) AS n,
             row_number() OVER (PARTITION BY user_id ORDER BY max(ts) DESC, item_id) AS rn
      FROM ${history} WHERE user_id IN (SELECT user_id FROM target_users) GROUP BY user_id, item_id) p
    LEFT JOIN item_meta m ON m.item_id = p.item_id
    WHERE p.rn <= ${int(maxHistory, 'maxHistory')}),
  prof_total AS (SELECT user_id, sum(n) AS n FROM prof GROUP BY user_id),
  user_cat AS (SELECT user_id, category, sum(n) AS n FROM prof WHERE category IS NOT NULL GROUP BY ALL),`;
}

/**
 * Light users' category candidates (tier 1): for each of their categories, the k + n_u most popular items of it
 * (n_u their seen items, so k remain unseen), scored P(c | u) · P(i | c) from `pop` (the MostPop file, noisy
 * with privacy on) and the metadata. Needs `seen_count`, `pop`, `item_meta`, `user_cat`.
 */
export function categoryCandidateCtes(history: string, lightUserEvents: number, k: number): string {
  return `
  light_users AS (
    SELECT t.user_id FROM target_users t
    LEFT JOIN (SELECT user_id, count(*) AS n FROM ${history}
               WHERE user_id IN (SELECT user_id FROM target_users) GROUP BY user_id) e ON e.user_id = t.user_id
    WHERE coalesce(e.n, 0) < ${int(lightUserEvents, 'lightUserEvents')}),
  light_weights AS (
    SELECT uc.user_id, uc.category, uc.n / sum(uc.n) OVER (PARTITION BY uc.user_id) AS w
    FROM user_cat uc WHERE uc.user_id IN (SELECT user_id FROM light_users)),
  cat_pop AS (
    SELECT pop.item_id, m.category,
           coalesce(pop.score / nullif(sum(pop.score) OVER (PARTITION BY m.category), 0), 0) AS p_in_cat,
           row_number() OVER (PARTITION BY m.category ORDER BY pop.score DESC, pop.item_id) AS cat_rank
    FROM pop JOIN item_meta m ON m.item_id = pop.item_id WHERE m.category IS NOT NULL),
  category AS (
    SELECT lw.user_id, cp.item_id, lw.w * cp.p_in_cat AS score, 1 AS tier
    FROM light_weights lw JOIN seen_count sc ON sc.user_id = lw.user_id
    JOIN cat_pop cp ON cp.category = lw.category AND cp.cat_rank <= ${k} + sc.n),`;
}

/**
 * New items' metadata scores (`new_scored(user_id, item_id, score)`): catalogue items with no event in
 * `history`, not excluded, in a category the user has history in. Needs `prof`, `prof_total`, `user_cat`,
 * `item_meta`.
 */
export function newItemCtes(p: ColdStartParams, history: string, excludeItems?: string): string {
  const wp = p.priceWeight ?? 1;
  const wt = p.tokenWeight ?? 1;
  const exclude = excludeItems
    ? `AND NOT EXISTS (SELECT 1 FROM ${excludeItems} x WHERE x.item_id = m.item_id)`
    : '';
  const tokens = (col: string) =>
    `list_distinct(list_filter(regexp_split_to_array(lower(${col}), '[^\\p{L}\\p{N}]+'), t -> length(t) >= 2))`;
  return `
  catalogue_cat AS (
    SELECT category, count(*) AS items, count(*) / sum(count(*)) OVER () AS p_c
    FROM item_meta WHERE category IS NOT NULL GROUP BY category),
  history_items AS (SELECT DISTINCT item_id FROM ${history}),
  new_items AS (
    SELECT m.* FROM item_meta m
    WHERE m.category IS NOT NULL AND NOT EXISTS (SELECT 1 FROM history_items h WHERE h.item_id = m.item_id) ${exclude}),
  item_tok AS (SELECT item_id, unnest(${tokens('title')}) AS token FROM item_meta WHERE title IS NOT NULL),
  tok_idf AS (
    SELECT token, ln((SELECT count(*) FROM item_meta) / count(*)) AS idf FROM item_tok GROUP BY token),
  new_tok AS (
    SELECT t.item_id, t.token, i.idf, sum(i.idf) OVER (PARTITION BY t.item_id) AS idf_sum
    FROM item_tok t JOIN tok_idf i ON i.token = t.token WHERE t.item_id IN (SELECT item_id FROM new_items)),
  user_tok AS (
    SELECT user_id, token, share FROM (
      SELECT u.user_id, u.token, u.n / pt.n AS share,
             row_number() OVER (PARTITION BY u.user_id ORDER BY u.n / pt.n * i.idf DESC, u.token) AS rn
      FROM (SELECT p.user_id, t.token, sum(p.n) AS n FROM prof p JOIN item_tok t ON t.item_id = p.item_id GROUP BY ALL) u
      JOIN prof_total pt ON pt.user_id = u.user_id JOIN tok_idf i ON i.token = u.token)
    WHERE rn <= ${PROFILE_TOKENS}),
  tok_aff AS (
    SELECT ut.user_id, nt.item_id, sum(nt.idf * ut.share) / any_value(nullif(nt.idf_sum, 0)) AS aff
    FROM user_tok ut JOIN new_tok nt ON nt.token = ut.token GROUP BY ALL),
  user_price AS (SELECT user_id, price_bucket, sum(n) AS n FROM prof WHERE price_bucket IS NOT NULL GROUP BY ALL),
  user_priced AS (SELECT user_id, sum(n) AS n FROM user_price GROUP BY user_id),
  new_scored AS (
    SELECT uc.user_id, ni.item_id,
           (uc.n + ${CATEGORY_PRIOR_EVENTS} * cc.p_c) / (pt.n + ${CATEGORY_PRIOR_EVENTS}) / cc.items
           * CASE WHEN ni.price_bucket IS NULL OR upd.n IS NULL THEN 1
                  ELSE pow((coalesce(up.n, 0) + 1) / (upd.n + ${PRICE_BUCKETS}) * ${PRICE_BUCKETS}, ${wp}) END
           * (1 + ${wt} * coalesce(ta.aff, 0)) AS score
    FROM user_cat uc
    JOIN prof_total pt ON pt.user_id = uc.user_id
    JOIN catalogue_cat cc ON cc.category = uc.category
    JOIN new_items ni ON ni.category = uc.category
    LEFT JOIN user_priced upd ON upd.user_id = uc.user_id
    LEFT JOIN user_price up ON up.user_id = uc.user_id AND up.price_bucket = ni.price_bucket
    LEFT JOIN tok_aff ta ON ta.user_id = uc.user_id AND ta.item_id = ni.item_id),`;
}

/**
 * Per user of a ranking result (`into` of recommendSql): where the list came from. `personal` users have at least
 * one model candidate; the rest fell back, to their categories' popular items (`category`) or to global
 * popularity (`popular`); `new_items`: users whose list holds a new item.
 */
export function listSourcesSql(table: string): string {
  return `
    SELECT count(*) AS users,
           count(*) FILTER (WHERE personal) AS personal,
           count(*) FILTER (WHERE NOT personal AND has_category) AS category,
           count(*) FILTER (WHERE NOT personal AND NOT has_category) AS popular,
           count(*) FILTER (WHERE has_new) AS new_items
    FROM (SELECT user_id, bool_or(personal) AS personal, bool_or(source = 'category') AS has_category,
                 bool_or(source = 'new_item') AS has_new
          FROM ${table} GROUP BY user_id)`;
}
