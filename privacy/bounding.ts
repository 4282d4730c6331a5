import type { SecureRng } from './rng';
import { issueSensitivity, type Sensitivity } from './sensitivity';

/**
 * Per-user contribution bounding, and the sensitivities it implies.
 *
 * Privacy unit: one user (user-level DP). Two datasets are neighbours when one has all of one user's events and the
 * other has none of them. Bounding caps what one user can contribute, which is what makes the sensitivities below
 * finite; the caps are enforced on the data (SQL or in memory) *and* used to derive the sensitivity, from the same
 * `ContributionCaps` object, so the two cannot drift apart.
 *
 * Caps are applied in three steps, each one only removing rows:
 *   1. per (user, item): keep at most `maxEventsPerUserItem` events, chosen uniformly at random;
 *   2. per user: keep at most `maxItemsPerUser` distinct items, chosen uniformly at random;
 *   3. per user: keep at most `maxEventsPerUser` of the remaining events, chosen uniformly at random.
 * Which rows of user u survive depends only on u's own rows and a secret key, never on other users' rows; that is
 * the property the sensitivity proofs need (adding or removing u changes no other user's surviving rows).
 * The randomness is for utility, not for privacy: a fixed rule (e.g. "earliest events") would be equally private
 * but would bias the statistics towards old behaviour.
 */

export interface ContributionCaps {
  /** k: max events kept per user. */
  readonly maxEventsPerUser: number;
  /** c: max events kept per (user, item). */
  readonly maxEventsPerUserItem: number;
  /** m: max distinct items kept per user. Defaults to k (a user with k events touches at most k items anyway). */
  readonly maxItemsPerUser?: number;
}

interface ResolvedCaps {
  k: number;
  c: number;
  m: number;
}

function resolveCaps(caps: ContributionCaps): ResolvedCaps {
  const check = (name: string, v: number): number => {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be an integer >= 1, got ${v}`);
    return v;
  };
  const k = check('maxEventsPerUser', caps.maxEventsPerUser);
  const c = Math.min(check('maxEventsPerUserItem', caps.maxEventsPerUserItem), k);
  const m = Math.min(
    caps.maxItemsPerUser === undefined ? k : check('maxItemsPerUser', caps.maxItemsPerUser),
    k,
  );
  return { k, c, m };
}

function capsRecord(caps: ContributionCaps): Record<string, number> {
  const { k, c, m } = resolveCaps(caps);
  return { maxEventsPerUser: k, maxEventsPerUserItem: c, maxItemsPerUser: m };
}

// ---------------------------------------------------------------------------------------------------------------
// Sensitivities. Notation: after bounding, a user has n_i events on item i with n_i <= c, Σ n_i <= k, and at most m
// items with n_i > 0. All queries are histograms over items (or item pairs); the sensitivity is the largest norm of
// the vector that one user's rows add to the histogram.
// ---------------------------------------------------------------------------------------------------------------

/** Max total events S = min(k, m·c) a user can keep. */
function maxEvents({ k, c, m }: ResolvedCaps): number {
  return Math.min(k, m * c);
}

/**
 * Total number of events (a scalar count): one user adds at most S = min(k, m·c) events.
 * L0 = 1, L1 = L2 = L∞ = S.
 */
export function totalEventCountSensitivity(caps: ContributionCaps): Sensitivity {
  const s = maxEvents(resolveCaps(caps));
  return issueSensitivity('total-event-count', { l0: 1, l1: s, l2: s, linf: s }, true, capsRecord(caps));
}

/** Number of distinct users (a scalar count): L0 = L1 = L2 = L∞ = 1, whatever the caps. */
export function distinctUserCountSensitivity(caps: ContributionCaps): Sensitivity {
  return issueSensitivity('distinct-user-count', { l0: 1, l1: 1, l2: 1, linf: 1 }, true, capsRecord(caps));
}

/**
 * Item popularity as an event count per item: the user's vector is (n_i).
 *  - L0 = min(m, S): items touched (each needs >= 1 event).
 *  - L1 = Σ n_i <= S = min(k, m·c).
 *  - L∞ = max n_i <= c.
 *  - L2² = Σ n_i² is maximised by concentrating events: ⌊S/c⌋ items at c and one item with the remainder r
 *    (a convex function of (n_i) is maximised at a vertex of {0 <= n_i <= c, Σ n_i <= S, <= m items}).
 */
export function itemEventCountSensitivity(caps: ContributionCaps): Sensitivity {
  const rc = resolveCaps(caps);
  const s = maxEvents(rc);
  const full = Math.floor(s / rc.c);
  const rem = s - full * rc.c;
  const l2sq = full * rc.c * rc.c + rem * rem;
  return issueSensitivity(
    'item-event-count',
    { l0: Math.min(rc.m, s), l1: s, l2: Math.sqrt(l2sq), linf: Math.min(rc.c, s) },
    true,
    capsRecord(caps),
  );
}

/**
 * Item popularity as distinct users per item (each user counts once per item): the vector is 1 on each of the
 * user's p <= min(m, S) items. L0 = L1 = p, L∞ = 1, L2 = √p.
 */
export function itemUserCountSensitivity(caps: ContributionCaps): Sensitivity {
  const rc = resolveCaps(caps);
  const p = Math.min(rc.m, maxEvents(rc));
  return issueSensitivity(
    'item-user-count',
    { l0: p, l1: p, l2: Math.sqrt(p), linf: 1 },
    true,
    capsRecord(caps),
  );
}

/**
 * Co-occurrence counts over unordered item pairs, each user contributing 1 to every pair of distinct items they
 * touched (the usual "users who interacted with both i and j"). With p = min(m, S) items a user touches C(p, 2)
 * pairs: L0 = L1 = C(p, 2), L∞ = 1, L2 = √C(p, 2). With `symmetric: true` (both (i, j) and (j, i) stored) every
 * count appears twice: L0 = L1 = 2·C(p, 2), L2 = √(2·C(p, 2)).
 */
export function cooccurrenceSensitivity(
  caps: ContributionCaps,
  opts: { symmetric?: boolean } = {},
): Sensitivity {
  const rc = resolveCaps(caps);
  const p = Math.min(rc.m, maxEvents(rc));
  const pairs = ((p * (p - 1)) / 2) * (opts.symmetric ? 2 : 1);
  return issueSensitivity(
    opts.symmetric ? 'cooccurrence-user-count-symmetric' : 'cooccurrence-user-count',
    { l0: pairs, l1: pairs, l2: Math.sqrt(pairs), linf: pairs > 0 ? 1 : 0 },
    true,
    capsRecord(caps),
  );
}

/**
 * Event-weighted co-occurrence over unordered pairs: a user adds n_i·n_j to pair {i, j}.
 *  - L1 = Σ_{i<j} n_i n_j = (S'² - Σ n_i²) / 2 for S' = Σ n_i. It grows with S', so take S' = S, and for fixed S'
 *    it is maximised by spreading events as evenly as possible over p = min(m, S) items (q or q + 1 each; q + 1 <= c
 *    because S <= m·c).
 *  - L∞ = max n_i n_j with n_i + n_j <= S, n_i, n_j <= c: a = min(c, ⌈S/2⌉), b = min(c, S - a).
 *  - L0 = C(p, 2).
 *  - L2 <= √(L1 · L∞) (Hölder), used as the bound: the exact maximum has no closed form, and an upper bound on a
 *    sensitivity is always safe.
 */
export function cooccurrenceEventSensitivity(caps: ContributionCaps): Sensitivity {
  const rc = resolveCaps(caps);
  const s = maxEvents(rc);
  const p = Math.min(rc.m, s);
  if (p < 2) {
    return issueSensitivity(
      'cooccurrence-event-count',
      { l0: 0, l1: 0, l2: 0, linf: 0 },
      true,
      capsRecord(caps),
    );
  }
  const q = Math.floor(s / p);
  const r = s - q * p;
  const sumSq = r * (q + 1) * (q + 1) + (p - r) * q * q;
  const l1 = (s * s - sumSq) / 2;
  const a = Math.min(rc.c, Math.ceil(s / 2));
  const b = Math.min(rc.c, s - a);
  const linf = a * b;
  return issueSensitivity(
    'cooccurrence-event-count',
    { l0: (p * (p - 1)) / 2, l1, l2: Math.sqrt(l1 * linf), linf },
    true,
    capsRecord(caps),
  );
}

/**
 * Per-item sum of a real per-event value clamped to [lower, upper] (e.g. ratings, dwell time): like the event count
 * with every event weighted by at most M = max(|lower|, |upper|). L0 = min(m, S), L1 = S·M, L∞ = c·M,
 * L2 = M·√(⌊S/c⌋c² + r²). The caller must clamp each value to [lower, upper] before summing.
 */
export function itemValueSumSensitivity(
  caps: ContributionCaps,
  range: { lower: number; upper: number },
): Sensitivity {
  const { lower, upper } = range;
  if (!Number.isFinite(lower) || !Number.isFinite(upper) || lower > upper) {
    throw new RangeError(`invalid clamp range [${lower}, ${upper}]`);
  }
  const rc = resolveCaps(caps);
  const s = maxEvents(rc);
  const mag = Math.max(Math.abs(lower), Math.abs(upper));
  const full = Math.floor(s / rc.c);
  const rem = s - full * rc.c;
  return issueSensitivity(
    'item-value-sum',
    {
      l0: Math.min(rc.m, s),
      l1: s * mag,
      l2: mag * Math.sqrt(full * rc.c * rc.c + rem * rem),
      linf: Math.min(rc.c, s) * mag,
    },
    false,
    { ...capsRecord(caps), lower, upper },
  );
}

// ---------------------------------------------------------------------------------------------------------------
// In-memory bounding (tests, property checks, small data).
// ---------------------------------------------------------------------------------------------------------------

export interface BoundingStats {
  inputRows: number;
  outputRows: number;
  /** inputRows - outputRows. */
  removedRows: number;
  removedByUserItemCap: number;
  removedByItemsCap: number;
  removedByUserCap: number;
}

export interface RowKeys<T> {
  user(row: T): string;
  item(row: T): string;
}

const defaultKeys: RowKeys<{ userId: string; itemId: string }> = {
  user: (r) => r.userId,
  item: (r) => r.itemId,
};

function groupIndices(indices: number[], key: (i: number) => string): Map<string, number[]> {
  const groups = new Map<string, number[]>();
  for (const i of indices) {
    const k = key(i);
    let g = groups.get(k);
    if (!g) groups.set(k, (g = []));
    g.push(i);
  }
  return groups;
}

/**
 * Applies the caps in memory with the same three steps as the SQL plan, sampling with `rng`. Surviving rows keep
 * their input order.
 */
export function boundContributions<T extends { userId: string; itemId: string }>(
  rows: readonly T[],
  caps: ContributionCaps,
  rng: SecureRng,
): { rows: T[]; stats: BoundingStats };
export function boundContributions<T>(
  rows: readonly T[],
  caps: ContributionCaps,
  rng: SecureRng,
  keys: RowKeys<T>,
): { rows: T[]; stats: BoundingStats };
export function boundContributions<T>(
  rows: readonly T[],
  caps: ContributionCaps,
  rng: SecureRng,
  keys?: RowKeys<T>,
): { rows: T[]; stats: BoundingStats } {
  const { k, c, m } = resolveCaps(caps);
  const kk = keys ?? (defaultKeys as unknown as RowKeys<T>);
  const all = rows.map((_, i) => i);
  // JSON array keys cannot collide the way "user|item" concatenation could.
  const pairKey = (i: number): string => JSON.stringify([kk.user(rows[i]), kk.item(rows[i])]);

  // 1. per (user, item)
  const step1: number[] = [];
  for (const g of groupIndices(all, pairKey).values()) step1.push(...rng.shuffle(g).slice(0, c));

  // 2. per user, distinct items
  const step2: number[] = [];
  for (const g of groupIndices(step1, (i) => kk.user(rows[i])).values()) {
    const items = rng.shuffle([...new Set(g.map((i) => kk.item(rows[i])))]);
    const keep = new Set(items.slice(0, m));
    for (const i of g) if (keep.has(kk.item(rows[i]))) step2.push(i);
  }

  // 3. per user, events
  const step3: number[] = [];
  for (const g of groupIndices(step2, (i) => kk.user(rows[i])).values())
    step3.push(...rng.shuffle(g).slice(0, k));

  step3.sort((a, b) => a - b);
  const out = step3.map((i) => rows[i]);
  return {
    rows: out,
    stats: {
      inputRows: rows.length,
      outputRows: out.length,
      removedRows: rows.length - out.length,
      removedByUserItemCap: rows.length - step1.length,
      removedByItemsCap: step1.length - step2.length,
      removedByUserCap: step2.length - step3.length,
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// DuckDB SQL plan.
// ---------------------------------------------------------------------------------------------------------------

/** A quoted SQL identifier (double quotes doubled). */
export function sqlIdent(name: string): string {
  if (typeof name !== 'string' || name.length === 0)
    throw new TypeError('SQL identifier must be a non-empty string');
  if (name.includes('\0')) throw new RangeError('NUL byte in SQL identifier');
  return `"${name.replace(/"/g, '""')}"`;
}

/** A SQL string literal. DuckDB string literals have no backslash escapes, so doubling quotes is complete. */
export function sqlString(value: string): string {
  if (typeof value !== 'string') throw new TypeError('SQL literal must be a string');
  if (value.includes('\0')) throw new RangeError('NUL byte in SQL literal');
  return `'${value.replace(/'/g, "''")}'`;
}

export interface BoundingSqlOptions {
  /** Source table or view: a name, or [schema, name] / [catalog, schema, name]. Quoted, never spliced raw. */
  readonly source: string | readonly string[];
  readonly userColumn: string;
  readonly itemColumn: string;
  /**
   * A column unique per row whose value does not depend on other users' rows (e.g. an event id assigned by the
   * source system), giving every row its own random sort key.
   */
  readonly rowIdColumn?: string;
  /**
   * Or: the columns whose content identifies a row (user, item, event type, timestamp, rating), hashed into the
   * row's sort key. One of the two is required. A row position (row_number() over the table) is deliberately not
   * offered: removing one user shifts every later row's position, so every other user would draw a different
   * sample and the caps would no longer bound what one user changes. Rows with identical content tie, and any
   * choice among them keeps the same multiset of rows.
   */
  readonly rowIdentity?: readonly string[];
  readonly caps: ContributionCaps;
  /** Secret sampling key; generate it with `rng.secretHex()` and do not log it. */
  readonly secret: string;
}

export interface BoundingSqlPlan {
  /** SELECT of the surviving rows, with exactly the source's columns. */
  readonly boundedRowsSql: string;
  /**
   * SELECT returning one row: input_rows, output_rows, removed_rows, removed_by_user_item_cap, removed_by_items_cap,
   * removed_by_user_cap (BIGINT).
   */
  readonly statsSql: string;
  /** CREATE OR REPLACE TABLE target AS the bounded rows. */
  createTableSql(target: string | readonly string[]): string;
}

function qualified(name: string | readonly string[]): string {
  const parts = typeof name === 'string' ? [name] : [...name];
  if (parts.length < 1 || parts.length > 3) throw new RangeError('table name must have 1 to 3 parts');
  return parts.map(sqlIdent).join('.');
}

const UI_RANK = '__rf_ui_rank';
const ITEM_RANK = '__rf_item_rank';
const U_RANK = '__rf_u_rank';

/**
 * Builds the DuckDB SQL that enforces the caps (the same three steps as `boundContributions`).
 *
 * Random choice inside a window: rows are ordered by a 64-bit keyed hash, `hash(hash(secret, domain tag, row id
 * fields…))` (DuckDB's `hash`, UBIGINT), and the first c / m / k kept, where the row id is the row's own content
 * or a source id, never its position in the table. The fields are separate arguments of `hash`, each hashed on
 * its own and combined, so no concatenation can make ('ab', 'c') and ('a', 'bc') alike, and NULL hashes to its own
 * constant, unlike ''. The outer `hash` of the combined UBIGINT is a full-avalanche finaliser, so every bit of the
 * key depends on every field. Ties (a 64-bit collision) are broken by the row id fields themselves. Each step uses
 * its own domain tag so the three orders are independent, and the item order hashes the (user, item) pair, so
 * different users keep independent random item subsets.
 *
 * Why a non-cryptographic keyed hash is enough (it replaced sha256(secret ‖ tag ‖ row id) strings, which cost more
 * than ingest and profile together): the privacy argument needs only that which rows of user u survive depends
 * on u's rows alone (and the key), so adding or removing another user changes nothing for u — any deterministic
 * per-row key gives that, and the sensitivities follow from the caps. It does not rest on the order being secret
 * or unpredictable: the guarantee holds for any fixed bounding rule, public or not, because the bounded data of
 * two neighbouring inputs differ only in one user's rows, within the caps, whichever rows the rule keeps. What the
 * hash must give is utility: an order close to uniform over each window, so "first k" is not biased towards, say,
 * old events (the chi-square test checks this), which a well-mixed 64-bit hash with a fresh per-run secret does.
 * DuckDB's `hash` may change between versions; the key lives for one run (clean draws a fresh secret), so only
 * determinism within one DuckDB matters.
 */
export function buildBoundingSql(opts: BoundingSqlOptions): BoundingSqlPlan {
  const { k, c, m } = resolveCaps(opts.caps);
  if (typeof opts.secret !== 'string' || opts.secret.length < 16) {
    throw new RangeError('secret must be a string of at least 16 characters (use rng.secretHex())');
  }
  const src = qualified(opts.source);
  const u = sqlIdent(opts.userColumn);
  const it = sqlIdent(opts.itemColumn);
  const secret = sqlString(opts.secret);
  let rid: string[];
  if (opts.rowIdColumn) rid = [sqlIdent(opts.rowIdColumn)];
  else if (opts.rowIdentity && opts.rowIdentity.length > 0) rid = opts.rowIdentity.map(sqlIdent);
  else
    throw new RangeError(
      'bounding needs a stable row identity: rowIdColumn or rowIdentity (never the row position)',
    );
  const ridList = rid.join(', ');
  const keyed = (tag: string, fields: string): string =>
    `hash(hash(${secret}, ${sqlString(tag)}, ${fields}))`;
  const rowKey = (tag: string): string => keyed(tag, ridList);
  const pairKey = keyed('/item/', `${u}, ${it}`);

  const ctes = `WITH __rf_s1 AS (
  SELECT * FROM (
    SELECT *, row_number() OVER (PARTITION BY ${u}, ${it} ORDER BY ${rowKey('/event-in-item/')}, ${ridList}) AS ${UI_RANK}
    FROM ${src}
  ) WHERE ${UI_RANK} <= ${c}
),
__rf_s2 AS (
  SELECT * FROM (
    SELECT *, dense_rank() OVER (PARTITION BY ${u} ORDER BY ${pairKey}, ${it}) AS ${ITEM_RANK}
    FROM __rf_s1
  ) WHERE ${ITEM_RANK} <= ${m}
),
__rf_s3 AS (
  SELECT * FROM (
    SELECT *, row_number() OVER (PARTITION BY ${u} ORDER BY ${rowKey('/event-in-user/')}, ${ridList}) AS ${U_RANK}
    FROM __rf_s2
  ) WHERE ${U_RANK} <= ${k}
)`;
  const boundedRowsSql = `${ctes}
SELECT * EXCLUDE (${UI_RANK}, ${ITEM_RANK}, ${U_RANK}) FROM __rf_s3`;
  const statsSql = `${ctes},
__rf_n AS (
  SELECT
    (SELECT count(*) FROM ${src}) AS n0,
    (SELECT count(*) FROM __rf_s1) AS n1,
    (SELECT count(*) FROM __rf_s2) AS n2,
    (SELECT count(*) FROM __rf_s3) AS n3
)
SELECT n0 AS input_rows, n3 AS output_rows, n0 - n3 AS removed_rows, n0 - n1 AS removed_by_user_item_cap,
       n1 - n2 AS removed_by_items_cap, n2 - n3 AS removed_by_user_cap
FROM __rf_n`;
  return {
    boundedRowsSql,
    statsSql,
    createTableSql: (target) => `CREATE OR REPLACE TABLE ${qualified(target)} AS\n${boundedRowsSql}`,
  };
}
