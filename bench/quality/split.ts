/**
 * The quality benchmark's split protocol, pure (no I/O), so it is unit-tested with a handful of rows.
 *
 * Per-user time-ordered holdout of positives:
 * - A row is a *positive* when its rating is ≥ `minRating` (explicit data) or, for implicit data, when its
 *   event type is one of `eventTypes` (every interaction counts on the bundled data).
 * - A user's positive items are ordered by the time of their first positive row (ties by item id). Users with at
 *   least `minPositives` distinct positive items are evaluated: the latest `fraction` of them (at least one,
 *   rounded down) are held out. The cutoff is the first-positive time of the earliest held-out item; every
 *   positive item whose first positive is at or after the cutoff is held out too (ties at the cutoff second go to
 *   the holdout, so no held-out item has a training row at the same instant).
 * - The user's training rows are all their rows (any event type or rating) strictly before the cutoff: nothing
 *   of the user's own future leaks in. Other users' rows are not cut (each user has their own cutoff).
 * - Relevant items = held-out items the user has no training row for (lists exclude seen items, so a seen item
 *   could never be hit). A user with no relevant item left is not evaluated (their rows before the cutoff still
 *   train); a user with no row before the cutoff (all positives at one instant) is not evaluated and all their rows
 *   train.
 * - Users with fewer positives are not evaluated; all their rows train.
 * Deterministic: no sampling; input order does not matter (sorting is by time, then item id).
 */

export interface Row {
  user: string;
  item: string;
  /** Event type as in the input contract (`rating` for explicit data). */
  eventType: string;
  /** Parsed rating, or null for implicit events. */
  rating: number | null;
  /** Epoch seconds. */
  ts: number;
  /** The timestamp as written in the source (re-emitted unchanged into train.csv). */
  tsText: string;
}

export type PositiveRule =
  { kind: 'explicit'; minRating: number } | { kind: 'implicit'; eventTypes: readonly string[] };

export interface SplitOptions {
  fraction: number;
  minPositives: number;
}

export const DEFAULT_SPLIT: SplitOptions = { fraction: 0.2, minPositives: 5 };

export interface Split {
  /** Indices into the input rows that form the training data, in input order. */
  trainIdx: number[];
  /** Evaluated users → relevant (held-out, unseen) items, sorted. */
  holdout: Map<string, string[]>;
  /** Evaluated users → cutoff (epoch seconds). */
  cutoff: Map<string, number>;
  stats: {
    users: number;
    evaluatedUsers: number;
    rows: number;
    trainRows: number;
    heldOutRows: number;
    relevantItems: number;
    /** Users with enough positives but no training row before the cutoff (all positives at one instant). */
    skippedNoHistory: number;
    /** Users with enough positives whose held-out items were all seen before the cutoff. */
    skippedNoRelevant: number;
  };
}

export function isPositive(r: Row, rule: PositiveRule): boolean {
  return rule.kind === 'explicit'
    ? r.rating !== null && r.rating >= rule.minRating
    : rule.eventTypes.includes(r.eventType);
}

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** How many of n positive items are held out: the latest `fraction`, rounded down, at least one. */
export function holdoutCount(n: number, fraction: number): number {
  return Math.max(1, Math.floor(n * fraction + 1e-9));
}

export function splitByUser(
  rows: readonly Row[],
  rule: PositiveRule,
  opts: SplitOptions = DEFAULT_SPLIT,
): Split {
  if (!(opts.fraction > 0 && opts.fraction < 1))
    throw new Error(`fraction must be in (0, 1), got ${opts.fraction}`);
  if (!(opts.minPositives >= 2)) throw new Error(`minPositives must be at least 2, got ${opts.minPositives}`);
  const byUser = new Map<string, number[]>();
  for (let i = 0; i < rows.length; i++) {
    const u = rows[i].user;
    let list = byUser.get(u);
    if (!list) byUser.set(u, (list = []));
    list.push(i);
  }
  const keep = new Uint8Array(rows.length).fill(1);
  const holdout = new Map<string, string[]>();
  const cutoff = new Map<string, number>();
  let skippedNoHistory = 0;
  let skippedNoRelevant = 0;
  let relevantItems = 0;
  for (const [user, idx] of byUser) {
    const firstPositive = new Map<string, number>();
    for (const i of idx) {
      const r = rows[i];
      if (!isPositive(r, rule)) continue;
      const t = firstPositive.get(r.item);
      if (t === undefined || r.ts < t) firstPositive.set(r.item, r.ts);
    }
    const n = firstPositive.size;
    if (n < opts.minPositives) continue;
    const ordered = [...firstPositive.entries()].sort((a, b) => a[1] - b[1] || cmpStr(a[0], b[0]));
    const cut = ordered[n - holdoutCount(n, opts.fraction)][1];
    const seen = new Set<string>();
    let history = 0;
    for (const i of idx) {
      if (rows[i].ts < cut) {
        seen.add(rows[i].item);
        history++;
      }
    }
    if (history === 0) {
      skippedNoHistory++;
      continue;
    }
    const relevant = ordered
      .filter(([item, t]) => t >= cut && !seen.has(item))
      .map(([item]) => item)
      .sort(cmpStr);
    // The user's rows from the cutoff on leave the training data whether or not the user is evaluated, so that
    // the training data do not depend on which held-out items happened to be seen before.
    for (const i of idx) if (rows[i].ts >= cut) keep[i] = 0;
    if (relevant.length === 0) {
      skippedNoRelevant++;
      continue;
    }
    holdout.set(user, relevant);
    cutoff.set(user, cut);
    relevantItems += relevant.length;
  }
  const trainIdx: number[] = [];
  for (let i = 0; i < rows.length; i++) if (keep[i]) trainIdx.push(i);
  return {
    trainIdx,
    holdout,
    cutoff,
    stats: {
      users: byUser.size,
      evaluatedUsers: holdout.size,
      rows: rows.length,
      trainRows: trainIdx.length,
      heldOutRows: rows.length - trainIdx.length,
      relevantItems,
      skippedNoHistory,
      skippedNoRelevant,
    },
  };
}

/** Each user's distinct items in the given rows: what their lists must not repeat. */
export function seenItems(rows: readonly Row[], idx?: readonly number[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const add = (r: Row) => {
    let s = out.get(r.user);
    if (!s) out.set(r.user, (s = new Set()));
    s.add(r.item);
  };
  if (idx) for (const i of idx) add(rows[i]);
  else for (const r of rows) add(r);
  return out;
}
