import { lit } from '../lib/duckdb';
import {
  categoryCandidateCtes,
  coldStartParts,
  itemMetaCtes,
  newItemCtes,
  profileCtes,
  FUSION_RANK,
  LIGHT_BLEND,
  type ColdStartParams,
} from './cold-start.sql';

/**
 * Baseline recommenders trained in DuckDB SQL. Each writes one Parquet file the scoring SQL reads back, so a
 * model is a file in the registry, not state in a database.
 */

/** MostPop: number of distinct users per item, weighted by their strongest event type on it. */
export function mostPopSql(source: string, outFile: string): string {
  return `
COPY (
  SELECT item_id, sum(weight) AS score, count(*) AS users
  FROM (SELECT user_id, item_id, max(weight) AS weight FROM ${source} GROUP BY ALL)
  GROUP BY item_id ORDER BY score DESC, item_id
) TO ${lit(outFile)} (FORMAT parquet, COMPRESSION zstd);`;
}

/**
 * Item-item co-occurrence with cosine normalisation: sim(i, j) = co(i, j) / sqrt(n_i * n_j) over users'
 * most recent `maxHistory` distinct items (the bound keeps the self-join linear in users).
 */
export function itemItemSql(source: string, outFile: string, maxHistory: number, neighbours: number): string {
  return `
COPY (
  WITH ui AS (SELECT user_id, item_id, max(ts) AS last_ts FROM ${source} GROUP BY ALL),
  hist AS (
    SELECT user_id, item_id FROM (
      SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY last_ts DESC, item_id) AS rn FROM ui)
    WHERE rn <= ${maxHistory}),
  cnt AS (SELECT item_id, count(*) AS n FROM hist GROUP BY item_id),
  pairs AS (
    SELECT a.item_id AS i, b.item_id AS j, count(*) AS co
    FROM hist a JOIN hist b ON a.user_id = b.user_id AND a.item_id <> b.item_id
    GROUP BY ALL),
  sims AS (
    SELECT i, j, co / sqrt(ci.n * cj.n) AS sim
    FROM pairs JOIN cnt ci ON ci.item_id = i JOIN cnt cj ON cj.item_id = j)
  SELECT i AS item_id, j AS neighbour_id, sim FROM (
    SELECT *, row_number() OVER (PARTITION BY i ORDER BY sim DESC, j) AS rn FROM sims)
  WHERE rn <= ${neighbours}
  ORDER BY item_id, sim DESC
) TO ${lit(outFile)} (FORMAT parquet, COMPRESSION zstd);`;
}

/**
 * The item-item model of itemItemSql, built in parts so that its memory is bounded (the single statement ran out
 * of 2 GB at 20M events: up to items² co-occurrence groups, then a window over them). Users and items become
 * dense integers (items numbered in id order, so ties broken by number are broken by id as before), the recent
 * histories are materialised once, and the co-occurrence aggregate and neighbour ranking run per part of the
 * source items (item number mod parts): every pair of a source item lands in its part, so each part's top
 * neighbours are final. Same rows as itemItemSql, part count or not.
 */
export const itemItemParts = {
  /** Dense numbers, recent histories, item counts, and the estimate of co-occurrence groups. */
  prepare(source: string, maxHistory: number): string {
    return `
CREATE OR REPLACE TEMP TABLE ii_items AS
  SELECT item_id, CAST(row_number() OVER (ORDER BY item_id) - 1 AS INTEGER) AS iid
  FROM (SELECT DISTINCT item_id FROM ${source});
CREATE OR REPLACE TEMP TABLE ii_users AS
  SELECT user_id, CAST(row_number() OVER () AS INTEGER) AS uid FROM (SELECT DISTINCT user_id FROM ${source});
CREATE OR REPLACE TEMP TABLE ii_hist AS
  SELECT u.uid, i.iid FROM (
    SELECT user_id, item_id, row_number() OVER (PARTITION BY user_id ORDER BY max(ts) DESC, item_id) AS rn
    FROM ${source} GROUP BY user_id, item_id) h
  JOIN ii_users u ON u.user_id = h.user_id JOIN ii_items i ON i.item_id = h.item_id
  WHERE h.rn <= ${Math.trunc(maxHistory)};
CREATE OR REPLACE TEMP TABLE ii_cnt AS SELECT iid, count(*) AS n FROM ii_hist GROUP BY iid;
CREATE OR REPLACE TEMP TABLE ii_out (i INTEGER, j INTEGER, sim DOUBLE);`;
  },
  /** Upper bound of co-occurrence groups: pair rows, at most items × (items - 1). */
  groupsEstimate: `
SELECT least(
  (SELECT coalesce(sum(c * (c - 1)), 0) FROM (SELECT count(*) AS c FROM ii_hist GROUP BY uid)),
  (SELECT count(*) * (count(*) - 1) FROM ii_items))::DOUBLE AS groups`,
  /** One part's neighbours, appended to ii_out. */
  part(part: number, parts: number, neighbours: number): string {
    return `
INSERT INTO ii_out
SELECT i, j, sim FROM (
  SELECT p.i, p.j, p.co / sqrt(ci.n * cj.n) AS sim
  FROM (SELECT a.iid AS i, b.iid AS j, count(*) AS co
        FROM ii_hist a JOIN ii_hist b ON a.uid = b.uid AND a.iid <> b.iid
        WHERE a.iid % ${Math.trunc(parts)} = ${Math.trunc(part)}
        GROUP BY ALL) p
  JOIN ii_cnt ci ON ci.iid = p.i JOIN ii_cnt cj ON cj.iid = p.j)
QUALIFY row_number() OVER (PARTITION BY i ORDER BY sim DESC, j) <= ${Math.trunc(neighbours)};`;
  },
  /** The model file, ids restored. */
  write(outFile: string): string {
    return `
COPY (
  SELECT a.item_id, b.item_id AS neighbour_id, o.sim
  FROM ii_out o JOIN ii_items a ON a.iid = o.i JOIN ii_items b ON b.iid = o.j
  ORDER BY a.item_id, o.sim DESC, b.item_id
) TO ${lit(outFile)} (FORMAT parquet, COMPRESSION zstd);
DROP TABLE ii_out; DROP TABLE ii_hist; DROP TABLE ii_cnt; DROP TABLE ii_users; DROP TABLE ii_items;`;
  },
};

export interface RecommendParams {
  kind: 'mostpop' | 'itemitem' | 'recs';
  /**
   * The model file: for itemitem its neighbour table; for `recs` (learned models scored in tfjs) a table of
   * (user_id, item_id, score) candidates per user, already excluding what the model saw as history.
   */
  modelFile: string;
  /** MostPop file used as backfill when a personalised model has fewer than k candidates. */
  mostPopFile: string;
  /** Table with the users to recommend for (column user_id). */
  targets: string;
  /** Table of events whose items count as seen (columns user_id, item_id, ts). */
  history: string;
  k: number;
  /** Most recent distinct items per user that drive item-item scoring. */
  maxHistory: number;
  /**
   * Result table: (user_id, rank, item_id, score, personal, source) — personal: from the model, not a fallback;
   * source: 'model', 'category' (light users' category popularity), 'popular' (global popularity) or 'new_item'.
   */
  into: string;
  /** Optional table of item ids that must never be recommended (e.g. out of stock). */
  excludeItems?: string;
  /** Only users in this shard of `shards` (a stable hash of the user id), for scoring fanned out by shard. */
  shard?: { index: number; of: number };
  /** Cold start from the item metadata (analytics/cold-start.sql.ts); absent or all zero: off. */
  coldStart?: ColdStartParams;
  /**
   * A table of (user_id, item_id, score) personal candidates computed outside the statement (item-item in typed
   * arrays, activities/support/item-item-personal.ts), read instead of the model file.
   */
  personalTable?: string;
}

/** The shard a user belongs to: a stable hash of the id (DuckDB's hash is fixed across runs and versions). */
export function shardPredicate(column: string, shard: { index: number; of: number } | undefined): string {
  if (!shard || shard.of <= 1) return 'true';
  return `hash(${column}) % ${Math.trunc(shard.of)} = ${Math.trunc(shard.index)}`;
}

/**
 * The sum of a user's item-item similarities, independent of the order the terms arrive in. DuckDB adds doubles in
 * whatever order its threads and hash partitions deliver them, so the same user scored in a different batch of users
 * (another shard) could get a score a unit in the last place apart (measured: 600 of 6000 published rows), and a
 * near-tie could even swap ranks. Terms are added as fixed-point integers (2^-52 resolution, HUGEINT), which is exact
 * and so order-free; the one rounding back to a double is the same everywhere. Costs ~1.3x a double sum here.
 */
const SUM_SCALE = '4503599627370496'; // 2^52
export const orderFreeSum = (x: string) =>
  `CAST(sum(CAST(${x} * ${SUM_SCALE} AS HUGEINT)) AS DOUBLE) / ${SUM_SCALE}`;

/**
 * Each user's best k unseen item-item candidates (all of them for light users), ranked on integer keys: user and
 * item ids are replaced by dense integers numbered in id order (user_dict, item_dict), so the aggregate, the seen
 * check and the top-k window work on two 32-bit integers instead of two strings, and ordering by `nid` is ordering
 * by item id. Same lists and scores as the string-keyed statement; 1.6x faster on 5,000 users at 5M events.
 */
function itemItemPersonal(k: number, light: boolean): string {
  return `personal_top AS (
    SELECT uid, nid, score FROM scored c
    WHERE NOT EXISTS (SELECT 1 FROM seen_ids s WHERE s.uid = c.uid AND s.nid = c.nid)
    QUALIFY row_number() OVER (PARTITION BY uid ORDER BY score DESC, nid) <= ${k}${
      light
        ? ' OR uid IN (SELECT u.uid FROM user_dict u WHERE u.user_id IN (SELECT user_id FROM light_users))'
        : ''
    }),
  personal AS (
    SELECT u.user_id, d.item_id, t.score, 0 AS tier
    FROM personal_top t JOIN user_dict u ON u.uid = t.uid JOIN item_dict d ON d.nid = t.nid),`;
}

/** Each user's best k unseen candidates of a precomputed model (`personal_all`; all of them for light users). */
function otherPersonal(k: number, light: boolean, exclude: string): string {
  return `personal AS (
    SELECT user_id, item_id, score, 0 AS tier FROM personal_all c
    WHERE NOT EXISTS (SELECT 1 FROM seen s WHERE s.user_id = c.user_id AND s.item_id = c.item_id) ${exclude}
    QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY score DESC, item_id) <= ${k}${
      light ? ' OR user_id IN (SELECT user_id FROM light_users)' : ''
    }),`;
}

/**
 * Top-k per target user, seen items excluded, backfilled with popular unseen items. Each user's popular
 * candidates are the k + n_u most popular items, n_u being the number of items that user has seen: at most n_u
 * of them are seen, so at least k remain, and the candidate rows grow with the data (Σ_u k + n_u), not with
 * users × the heaviest user's history (which made this statement 8× slower at 5M events).
 *
 * Personal candidates are cut to each user's best k (unseen, available) before the popular backfill joins them:
 * personalised items always rank before popular ones, so nothing past a user's k-th personal candidate can reach
 * the list, and the dedup and final ranking then handle at most 2k + n_u rows per user instead of every
 * candidate (history × neighbours): 3.2× faster at 100k users, and the statement's memory is bounded by the
 * candidate aggregate alone. Light users (cold start) keep all their candidates: their lists fuse model and
 * category ranks, where a model candidate past k can still place.
 */
export function recommendSql(p: RecommendParams): string {
  const exclude = p.excludeItems
    ? `AND NOT EXISTS (SELECT 1 FROM ${p.excludeItems} x WHERE x.item_id = c.item_id)`
    : '';
  // Excluded items leave the popular list before it is cut, so every user still gets k candidates.
  const popExclude = p.excludeItems
    ? `WHERE NOT EXISTS (SELECT 1 FROM ${p.excludeItems} x WHERE x.item_id = mp.item_id)`
    : '';
  const fromTable = p.personalTable !== undefined;
  const personal = fromTable
    ? `
  personal_all AS (
    SELECT user_id, item_id, score FROM ${p.personalTable}
    WHERE user_id IN (SELECT user_id FROM target_users)),`
    : p.kind === 'itemitem'
      ? `
  item_dict AS (
    SELECT item_id, CAST(row_number() OVER (ORDER BY item_id) AS INTEGER) AS nid
    FROM (SELECT DISTINCT neighbour_id AS item_id FROM read_parquet(${lit(p.modelFile)}))),
  user_dict AS (SELECT user_id, CAST(row_number() OVER (ORDER BY user_id) AS INTEGER) AS uid FROM target_users),
  neighbours AS (
    SELECT n.item_id, d.nid, n.sim FROM read_parquet(${lit(p.modelFile)}) n JOIN item_dict d ON d.item_id = n.neighbour_id
    ${p.excludeItems ? `WHERE NOT EXISTS (SELECT 1 FROM ${p.excludeItems} x WHERE x.item_id = n.neighbour_id)` : ''}),
  hist AS (
    SELECT uid, item_id FROM (
      SELECT u.uid, h.item_id, row_number() OVER (PARTITION BY u.uid ORDER BY max(h.ts) DESC, h.item_id) AS rn
      FROM ${p.history} h JOIN user_dict u ON u.user_id = h.user_id GROUP BY u.uid, h.item_id)
    WHERE rn <= ${p.maxHistory}),
  seen_ids AS (
    SELECT DISTINCT u.uid, d.nid FROM seen s
    JOIN user_dict u ON u.user_id = s.user_id JOIN item_dict d ON d.item_id = s.item_id),
  scored AS (
    SELECT h.uid, n.nid, ${orderFreeSum('n.sim')} AS score
    FROM hist h JOIN neighbours n ON n.item_id = h.item_id
    GROUP BY ALL),`
      : p.kind === 'recs'
        ? `
  personal_all AS (
    SELECT r.user_id, r.item_id, r.score FROM read_parquet(${lit(p.modelFile)}) r
    WHERE r.user_id IN (SELECT user_id FROM target_users)),`
        : `personal_all AS (SELECT NULL::VARCHAR AS user_id, NULL::VARCHAR AS item_id, NULL::DOUBLE AS score WHERE false),`;
  const cs = coldStartParts(p.coldStart);
  const c = p.coldStart;
  const meta = cs.light || cs.newItems ? itemMetaCtes(c!.items) + profileCtes(p.history, p.maxHistory) : '';
  const category = cs.light ? categoryCandidateCtes(p.history, c!.lightUserEvents, p.k) : '';
  const fresh = cs.newItems ? newItemCtes(c!, p.history, p.excludeItems) : '';
  // Light users: the model's and their categories' candidates fused by rank (reciprocal rank fusion), so a
  // history of a few events is read both ways; lightBlend 0 keeps the categories as backfill after the model.
  const blend = cs.light ? (c!.lightBlend ?? LIGHT_BLEND) : 0;
  const ranked =
    blend > 0
      ? `
  fused AS (
    SELECT *, CASE WHEN src <= 1 AND user_id IN (SELECT user_id FROM light_users)
                   THEN row_number() OVER (PARTITION BY user_id, src ORDER BY score DESC, item_id) END AS r
    FROM unseen),
  best AS (
    SELECT user_id, item_id,
           CASE WHEN bool_or(r IS NOT NULL)
                THEN sum(CASE WHEN r IS NULL THEN 0 WHEN src = 0 THEN 1.0 ELSE ${blend} END / (${FUSION_RANK} + coalesce(r, 0)))
                ELSE arg_min(score, tier) END AS score,
           CASE WHEN bool_or(r IS NOT NULL) THEN 0 ELSE min(tier) END AS tier, min(src) AS src
    FROM fused GROUP BY ALL),`
      : `
  best AS (
    SELECT user_id, item_id, arg_min(score, tier) AS score, min(tier) AS tier, min(src) AS src
    FROM unseen GROUP BY ALL),`;
  // Without new items the ranked list is the result; with them, the best new items per user (not already in
  // the list) take `slots` positions from newItemRank on, and the list is cut at k again.
  const slots = cs.newItems ? c!.newItemSlots : 0;
  const at = cs.newItems ? Math.max(1, Math.trunc(c!.newItemRank)) : 1;
  const final = cs.newItems
    ? `
  base AS (SELECT * FROM ranked WHERE rank <= ${p.k}),
  fresh AS (
    SELECT * FROM (
      SELECT n.user_id, n.item_id, n.score,
             row_number() OVER (PARTITION BY n.user_id ORDER BY n.score DESC, n.item_id) AS j
      FROM new_scored n
      WHERE n.user_id IN (SELECT user_id FROM target_users)
        AND NOT EXISTS (SELECT 1 FROM base b WHERE b.user_id = n.user_id AND b.item_id = n.item_id)
        AND NOT EXISTS (SELECT 1 FROM seen s WHERE s.user_id = n.user_id AND s.item_id = n.item_id))
    WHERE j <= ${slots}),
  fresh_n AS (SELECT user_id, count(*) AS m FROM fresh GROUP BY user_id),
  merged AS (
    SELECT user_id, item_id, score, src, CAST(rank AS DOUBLE) AS pos FROM base
    UNION ALL
    SELECT f.user_id, f.item_id, f.score, 3 AS src,
           least(${at}, ${p.k} - fn.m + 1) - 1 + f.j / ${slots + 1}.0 AS pos
    FROM fresh f JOIN fresh_n fn ON fn.user_id = f.user_id),
  result AS (
    SELECT user_id, item_id, score, src, row_number() OVER (PARTITION BY user_id ORDER BY pos, item_id) AS rank
    FROM merged)`
    : `
  result AS (SELECT * FROM ranked)`;
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
    SELECT sc.user_id, pop.item_id, pop.score, 2 AS tier, 2 AS src
    FROM seen_count sc JOIN pop ON pop.pop_rank <= ${p.k} + sc.n),${meta}${category}${fresh}
  ${p.kind === 'itemitem' && !fromTable ? itemItemPersonal(p.k, cs.light) : otherPersonal(p.k, cs.light, exclude)}
  candidates AS (
    SELECT user_id, item_id, score, tier, 0 AS src FROM personal
    UNION ALL ${cs.light ? 'SELECT user_id, item_id, score, 1 AS tier, 1 AS src FROM category UNION ALL ' : ''}SELECT * FROM popular),
  unseen AS (
    SELECT c.* FROM candidates c
    WHERE NOT EXISTS (SELECT 1 FROM seen s WHERE s.user_id = c.user_id AND s.item_id = c.item_id) ${exclude}),${ranked}
  ranked AS (
    SELECT user_id, item_id, score, src,
           row_number() OVER (PARTITION BY user_id ORDER BY tier, score DESC, item_id) AS rank
    FROM best),${final}
SELECT user_id, CAST(rank AS INTEGER) AS rank, item_id, CAST(score AS DOUBLE) AS score, src = 0 AS personal,
       CASE src WHEN 0 THEN 'model' WHEN 1 THEN 'category' WHEN 2 THEN 'popular' ELSE 'new_item' END AS source
FROM result WHERE rank <= ${p.k};`;
}
