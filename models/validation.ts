/**
 * Validation split for early stopping, shaped like the evaluation's holdout so that the epoch picked on it is
 * the one that does best on the test period:
 * - `time`: the interactions in the last `days` before the newest timestamp (the time-based holdout's shape);
 * - `user-time`: each user's latest `fraction` of interactions (the leave-last-out holdout's shape).
 * Only a `userShare` of the users (chosen by a seeded hash of the user index) give their validation-period
 * interactions up; everyone else trains on all of theirs, so the model still sees the most recent period. A
 * sampled user keeps at least one training interaction (the history the validation scores it from).
 *
 * Input rows are (user, item) pairs with the time of the user's *first* interaction with the item: a pair is in
 * the validation period when it is new there, so held-out items are never ones the user had before, as the
 * evaluation's relevant items (a pair first seen earlier and repeated later stays in training).
 */
import type { HeldOut } from './metrics';
import { mixSeed } from './rng';

export interface ValidationSplitConfig {
  mode: 'time' | 'user-time';
  /** mode `time`: length of the validation period before the newest timestamp, in days. */
  days: number;
  /** mode `user-time`: share of each sampled user's latest interactions held out. */
  fraction: number;
  /** Share of users that give up their validation-period interactions, in (0, 1]. */
  userShare: number;
  seed: number;
}

export interface ValidationSplit {
  /** Indices of the input interactions that stay in training, ascending. */
  trainRows: Int32Array;
  heldOut: HeldOut;
}

/** Deterministic per-user draw in [0, 1). */
export function userDraw(user: number, seed: number): number {
  return (mixSeed(seed, user, 0x5a17) >>> 0) / 4294967296;
}

/**
 * Splits (user, item) interactions (first-interaction times in seconds) into training rows and held-out (user, item) pairs. Pure and
 * deterministic: the same inputs give the same split.
 */
export function splitValidation(
  data: { userIdx: Int32Array; itemIdx: Int32Array; timestamps: ArrayLike<number> },
  cfg: ValidationSplitConfig,
): ValidationSplit {
  const n = data.userIdx.length;
  if (data.itemIdx.length !== n || data.timestamps.length !== n)
    throw new Error('splitValidation: userIdx, itemIdx and timestamps must have the same length');
  if (!(cfg.userShare > 0 && cfg.userShare <= 1))
    throw new Error('splitValidation: userShare must be in (0, 1]');
  // Rows grouped by user, each user's rows in time order (ties by input position): a counting sort by user (stable,
  // so positions ascend within a user), then each user's few rows sorted by time. One comparator sort of all rows
  // took ~15 s at 16M pairs, with the event loop blocked.
  let users = 0;
  for (let k = 0; k < n; k++) users = Math.max(users, data.userIdx[k] + 1);
  const start0 = new Int32Array(users + 1);
  for (let k = 0; k < n; k++) start0[data.userIdx[k] + 1]++;
  for (let u = 0; u < users; u++) start0[u + 1] += start0[u];
  const fill = start0.slice(0, users);
  const order = new Int32Array(n);
  for (let k = 0; k < n; k++) order[fill[data.userIdx[k]]++] = k;
  const byTime = (a: number, b: number) => data.timestamps[a] - data.timestamps[b] || a - b;
  for (let u = 0; u < users; u++) {
    const from = start0[u];
    const to = start0[u + 1];
    let sorted = true;
    for (let p = from + 1; p < to && sorted; p++) sorted = byTime(order[p - 1], order[p]) <= 0;
    if (!sorted) order.subarray(from, to).sort(byTime);
  }
  let newest = -Infinity;
  for (let k = 0; k < n; k++) newest = Math.max(newest, data.timestamps[k]);
  const cut = newest - cfg.days * 86400;
  const held = new Uint8Array(n);
  const vu: number[] = [];
  const vi: number[] = [];
  for (let start = 0; start < n;) {
    const u = data.userIdx[order[start]];
    let end = start;
    while (end < n && data.userIdx[order[end]] === u) end++;
    if (userDraw(u, cfg.seed) < cfg.userShare) {
      const count = end - start;
      let first: number; // first held-out position in [start, end)
      if (cfg.mode === 'time') {
        first = start;
        while (first < end && data.timestamps[order[first]] <= cut) first++;
      } else {
        first = end - Math.floor(count * cfg.fraction);
      }
      if (first > start && first < end) {
        const seen = new Set<number>();
        for (let p = start; p < first; p++) seen.add(data.itemIdx[order[p]]);
        const targets = new Set<number>();
        for (let p = first; p < end; p++) {
          held[order[p]] = 1;
          const i = data.itemIdx[order[p]];
          if (!seen.has(i)) targets.add(i);
        }
        for (const i of [...targets].sort((a, b) => a - b)) {
          vu.push(u);
          vi.push(i);
        }
      }
    }
    start = end;
  }
  const trainRows: number[] = [];
  for (let k = 0; k < n; k++) if (!held[k]) trainRows.push(k);
  return {
    trainRows: Int32Array.from(trainRows),
    heldOut: { userIdx: Int32Array.from(vu), itemIdx: Int32Array.from(vi) },
  };
}

/** The rows of typed arrays at `rows` (for applying a split to parallel arrays). */
export function takeRows<T extends Int32Array | Float32Array | Float64Array>(a: T, rows: Int32Array): T {
  const out = new (a.constructor as new (n: number) => T)(rows.length);
  for (let k = 0; k < rows.length; k++) out[k] = a[rows[k]];
  return out;
}
