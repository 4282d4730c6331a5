import type { DataChoices } from '../contracts/stages';
import { positiveSql, type PositiveRule } from './positive.sql';

/**
 * Settings that adapt to the data they meet (`auto` in config): which evaluation split, and the item-item limits.
 * The rules are pure functions of a few statistics the cleaning stage measures (SQL below), so they are tested
 * without a database and say in words why they chose what they chose.
 *
 * With privacy on nothing here may depend on data across users: the split is the public time cut and the limits
 * come from public values only (publicItemItemLimits); see docs/privacy.md, "Stability by construction".
 */

/**
 * The time cut's evaluable users — users with training history and at least one positive item in the holdout that
 * is new to them (evaluate's targets) — and the users with training history, over the views `train_events` and
 * `holdout_events`.
 */
export function timeCutUsersSql(rule: PositiveRule): string {
  return `
WITH train_users AS (SELECT DISTINCT user_id FROM train_events)
SELECT (SELECT count(*) FROM train_users) AS train_users,
       (SELECT count(DISTINCT h.user_id) FROM holdout_events h
        WHERE h.user_id IN (SELECT user_id FROM train_users) AND ${positiveSql(rule, 'h')}
          AND NOT EXISTS (SELECT 1 FROM train_events t WHERE t.user_id = h.user_id AND t.item_id = h.item_id)) AS evaluable`;
}

export interface SplitDecision {
  chosen: 'time' | 'user-time';
  reason: string;
}

type Measured = { evaluableUsers: number; trainUsers: number };

/** Whether the time cut leaves at least `users` evaluable users and `share` of the users with training history. */
export function timeCutIsEnough(timeCut: Measured, needed: { users: number; share: number }): boolean {
  const share = timeCut.trainUsers > 0 ? timeCut.evaluableUsers / timeCut.trainUsers : 0;
  return timeCut.evaluableUsers >= needed.users && share >= needed.share;
}

/**
 * `auto` with privacy off: the time cut when it leaves enough evaluable users (timeCutIsEnough); otherwise each
 * user's latest share (user-time) — unless that evaluates no more users than the cut (`perUser`, measured only
 * then: tiny or single-burst data), where the cut stays: auto is never worse than the time cut.
 */
export function chooseSplit(
  timeCut: Measured,
  needed: { users: number; share: number },
  perUser?: Measured,
): SplitDecision {
  const { evaluableUsers: n, trainUsers: t } = timeCut;
  const share = t > 0 ? n / t : 0;
  const counts =
    `the time cut leaves ${n} evaluable user${n === 1 ? '' : 's'} of ${t} with training history ` +
    `(${(100 * share).toFixed(1)}%; needed ${needed.users} and ${(100 * needed.share).toFixed(1)}%)`;
  if (timeCutIsEnough(timeCut, needed)) return { chosen: 'time', reason: counts };
  if (perUser && perUser.evaluableUsers <= n)
    return {
      chosen: 'time',
      reason: `${counts}, but each user's latest share would evaluate only ${perUser.evaluableUsers}: the time cut stays`,
    };
  return {
    chosen: 'user-time',
    reason:
      `${counts}: each user's latest share is held out instead` +
      (perUser ? ` (${perUser.evaluableUsers} evaluable users)` : ''),
  };
}

/** Bounds of the `auto` item-item limits. */
export const ITEM_ITEM_AUTO = {
  /** The history limit covers this quantile of users' distinct items in full. */
  historyQuantile: 0.9,
  history: { min: 50, max: 500 },
  neighbours: { min: 50, max: 500 },
  /**
   * Largest self-join the history limit may cause: Σ_u min(h_u, H)² (user-item pairs joined per user). The cost of
   * co-occurrence is that sum, dominated by the heaviest users, so the limit is lowered until it fits.
   */
  pairBudget: 20_000_000,
} as const;

/** Users per count of distinct items (`n` items: `users` users), over `source`'s (user, item) pairs. */
export function historyHistogramSql(source: string): string {
  return `
SELECT n, count(*) AS users FROM (SELECT user_id, count(DISTINCT item_id) AS n FROM ${source} GROUP BY user_id)
GROUP BY n ORDER BY n`;
}

export interface HistoryStats {
  /** Distinct items of a user → how many users have that many (ascending by n). */
  histogram: { n: number; users: number }[];
  /** Distinct items in the data (the catalogue the neighbours are chosen from). */
  items: number;
}

/** The q-quantile (lower) of users' distinct items. */
export function historyQuantile(h: HistoryStats['histogram'], q: number): number {
  const total = h.reduce((a, b) => a + b.users, 0);
  if (total === 0) return 0;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (const b of h) {
    seen += b.users;
    if (seen >= rank) return b.n;
  }
  return h[h.length - 1].n;
}

/** Σ_u min(h_u, cap)²: the self-join's pairs with a history limit `cap`. */
export function joinPairs(h: HistoryStats['histogram'], cap: number): number {
  return h.reduce((a, b) => a + b.users * Math.min(b.n, cap) ** 2, 0);
}

const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

export interface ItemItemDecision {
  maxHistoryPerUser: number;
  neighbours: number;
  source: { maxHistoryPerUser: 'config' | 'data' | 'public'; neighbours: 'config' | 'data' | 'public' };
  reason: string;
}

type Configured = { maxHistoryPerUser: number | 'auto'; neighbours: number | 'auto' };

/**
 * Privacy off: the limits from the training data's own distribution.
 * - History: the 90th percentile of distinct items per user (most users' whole history feeds co-occurrence; only the
 *   heaviest are cut to their latest items), clamped to [50, 500], then lowered until the self-join
 *   Σ_u min(h_u, H)² fits the pair budget (the heaviest users dominate the cost).
 * - Neighbours: catalogue size / median distinct items per user — about what a typical user's history needs for
 *   its neighbours to reach across the catalogue (a sparse, large catalogue needs long lists; a dense small one
 *   short ones) — clamped to [50, 500].
 * Measured on MovieLens-small and the bundled data (README "Defaults that fit the data").
 */
export function chooseItemItemLimits(stats: HistoryStats, configured: Configured): ItemItemDecision {
  const a = ITEM_ITEM_AUTO;
  const why: string[] = [];
  let history: number;
  if (configured.maxHistoryPerUser === 'auto') {
    const q = historyQuantile(stats.histogram, a.historyQuantile);
    history = clamp(q, a.history.min, a.history.max);
    while (history > a.history.min && joinPairs(stats.histogram, history) > a.pairBudget)
      history = Math.max(a.history.min, Math.floor(history * 0.9));
    why.push(
      `history ${history}: p${Math.round(a.historyQuantile * 100)} of distinct items per user ${q}, ` +
        `clamped to [${a.history.min}, ${a.history.max}]` +
        (history < clamp(q, a.history.min, a.history.max)
          ? `, lowered to fit ${a.pairBudget.toExponential(0)} self-join pairs`
          : '') +
        ` (${Math.round(joinPairs(stats.histogram, history)).toLocaleString('en')} pairs)`,
    );
  } else {
    history = configured.maxHistoryPerUser;
    why.push(`history ${history}: configured`);
  }
  let neighbours: number;
  if (configured.neighbours === 'auto') {
    const median = Math.max(1, historyQuantile(stats.histogram, 0.5));
    const reach = Math.ceil(stats.items / median);
    neighbours = clamp(reach, a.neighbours.min, a.neighbours.max);
    why.push(
      `neighbours ${neighbours}: ${stats.items} items / median ${median} distinct items per user = ${reach}, ` +
        `clamped to [${a.neighbours.min}, ${a.neighbours.max}]`,
    );
  } else {
    neighbours = configured.neighbours;
    why.push(`neighbours ${neighbours}: configured`);
  }
  return {
    maxHistoryPerUser: history,
    neighbours,
    source: {
      maxHistoryPerUser: configured.maxHistoryPerUser === 'auto' ? 'data' : 'config',
      neighbours: configured.neighbours === 'auto' ? 'data' : 'config',
    },
    reason: why.join('; '),
  };
}

/**
 * Privacy on: the same rules over public values only, never statistics of the data (one user's presence must not
 * move another user's list through a limit).
 * - History: the public per-user contribution cap privacy.caps.maxEventsPerUser (the most rows of one user the
 *   models learn from), clamped to [50, 500]. A user's list is scored from that user's own history only.
 * - Neighbours: the released pair set's size — the public catalogue (items file) or, without one, the
 *   co-occurrence candidates, at most privacy.cooccurrenceItems — over privacy.caps.maxItemsPerUser (the public
 *   bound on a user's distinct items after bounding), clamped to [50, 500] and to the candidates − 1 (an item
 *   has no released pair beyond them).
 */
export function publicItemItemLimits(
  config: {
    privacy: {
      caps: { maxEventsPerUser: number; maxItemsPerUser: number };
      cooccurrenceItems: number;
    };
  },
  publicCatalogue: number | null,
  configured: Configured,
): ItemItemDecision {
  const a = ITEM_ITEM_AUTO;
  const p = config.privacy;
  const why: string[] = [];
  let history: number;
  if (configured.maxHistoryPerUser === 'auto') {
    history = clamp(p.caps.maxEventsPerUser, a.history.min, a.history.max);
    why.push(
      `history ${history}: public privacy.caps.maxEventsPerUser ${p.caps.maxEventsPerUser}, clamped to [${a.history.min}, ${a.history.max}]`,
    );
  } else {
    history = configured.maxHistoryPerUser;
    why.push(`history ${history}: configured`);
  }
  let neighbours: number;
  if (configured.neighbours === 'auto') {
    const released =
      publicCatalogue !== null && publicCatalogue > 0
        ? Math.min(publicCatalogue, p.cooccurrenceItems)
        : p.cooccurrenceItems;
    const reach = Math.ceil(released / p.caps.maxItemsPerUser);
    neighbours = Math.max(1, Math.min(released - 1, clamp(reach, a.neighbours.min, a.neighbours.max)));
    why.push(
      `neighbours ${neighbours}: public ${released} co-occurrence candidates / privacy.caps.maxItemsPerUser ` +
        `${p.caps.maxItemsPerUser} = ${reach}, clamped to [${a.neighbours.min}, ${a.neighbours.max}] and below the candidates`,
    );
  } else {
    neighbours = configured.neighbours;
    why.push(`neighbours ${neighbours}: configured`);
  }
  return {
    maxHistoryPerUser: history,
    neighbours,
    source: {
      maxHistoryPerUser: configured.maxHistoryPerUser === 'auto' ? 'public' : 'config',
      neighbours: configured.neighbours === 'auto' ? 'public' : 'config',
    },
    reason: why.join('; '),
  };
}

/** Bot detection's outcome in words (the run summary, the run report). Pure. */
export function botsLine(b: DataChoices['bots']): string {
  if (b.counted === 'off') return 'detection off';
  const what = b.counted === 'implicit-events' ? 'implicit events (ratings do not count)' : 'all events';
  if (b.threshold === null) return `none flagged: no user has ${what}`;
  const rule =
    b.rule === 'public'
      ? 'public cleaning.botMaxEventsPerDay'
      : 'max(botMinEventsPerDay, median + botMadK·MAD)';
  return `${b.users} user${b.users === 1 ? '' : 's'} flagged (${b.rows} rows): ${what} per active day above ${Number(b.threshold.toFixed(2))} (${rule})`;
}
