/**
 * User history features: the last H items per user for serving (buildUserHistory), the causal history of a
 * training example (causalHistory: only items before it, optionally at least a gap earlier), and the pooling
 * weights the user tower averages them with (historyWeights, recentWeights). Pure host code, no tfjs.
 */

export interface UserHistory {
  /** H: slots per user. */
  length: number;
  /** numUsers x H item ids, oldest first, -1 padded at the end. */
  items: Int32Array;
  /** Valid entries per user. */
  count: Int32Array;
}

/** Stable order of interactions by (user, timestamp or input position). */
function chronologicalOrder(userIdx: Int32Array, timestamps?: ArrayLike<number>): Int32Array {
  const order = Int32Array.from({ length: userIdx.length }, (_, i) => i);
  order.sort((a, b) => userIdx[a] - userIdx[b] || (timestamps ? timestamps[a] - timestamps[b] : 0) || a - b);
  return order;
}

/** Last H items per user (for inference). Input order within a user is chronological unless timestamps are given. */
export function buildUserHistory(
  userIdx: Int32Array,
  itemIdx: Int32Array,
  numUsers: number,
  H: number,
  timestamps?: ArrayLike<number>,
): UserHistory {
  const items = new Int32Array(numUsers * H).fill(-1);
  const count = new Int32Array(numUsers);
  const order = chronologicalOrder(userIdx, timestamps);
  // Walk backwards so the first H seen per user are its most recent; then place them oldest-first.
  const tmp = new Int32Array(H);
  let k = order.length - 1;
  while (k >= 0) {
    const u = userIdx[order[k]];
    let c = 0;
    while (k >= 0 && userIdx[order[k]] === u) {
      if (c < H) tmp[c++] = itemIdx[order[k]];
      k--;
    }
    if (u >= 0 && u < numUsers) {
      for (let q = 0; q < c; q++) items[u * H + q] = tmp[c - 1 - q];
      count[u] = c;
    }
  }
  return { length: H, items, count };
}

/**
 * Causal training history of the interaction at position `p` of the (user, time)-sorted arrays, whose user's first
 * position is `userStart`: the up to H items at positions [userStart, p) with time <= time[p] - gap, written oldest
 * first into out[offset, offset + count); returns count. Without times (or gap <= 0) it is the H items right before
 * p. Example (H 2, gap 10): times [0, 5, 20, 25], p = 3 -> positions 0..1 (times <= 15) -> items [s0, s1].
 */
export function causalHistory(
  sortedItems: ArrayLike<number>,
  sortedTimes: ArrayLike<number> | undefined,
  userStart: number,
  p: number,
  H: number,
  gap: number,
  out: Int32Array,
  offset = 0,
): number {
  let end = p;
  if (sortedTimes && gap > 0) {
    const limit = sortedTimes[p] - gap;
    let lo = userStart;
    let hi = p;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sortedTimes[mid] <= limit) lo = mid + 1;
      else hi = mid;
    }
    end = lo;
  }
  const from = Math.max(userStart, end - H);
  for (let q = from; q < end; q++) out[offset + q - from] = sortedItems[q];
  return end - from;
}

/**
 * Every interaction's place in (user, time) order, so a training example's causal history is a slice just before
 * it: sortedItems/sortedTimes in that order, pos[e] = position of interaction e, userStart[u] = first position
 * of user u (-1 without interactions).
 */
export interface CausalIndex {
  sortedItems: Int32Array;
  sortedTimes: Float64Array | undefined;
  pos: Int32Array;
  userStart: Int32Array;
}

export function buildCausalIndex(
  userIdx: Int32Array,
  itemIdx: Int32Array,
  numUsers: number,
  timestamps?: Float64Array,
): CausalIndex {
  const n = userIdx.length;
  const order = chronologicalOrder(userIdx, timestamps);
  const sortedItems = new Int32Array(n);
  const sortedTimes = timestamps ? new Float64Array(n) : undefined;
  const pos = new Int32Array(n);
  const userStart = new Int32Array(numUsers).fill(-1);
  for (let p = 0; p < n; p++) {
    const e = order[p];
    sortedItems[p] = itemIdx[e];
    if (sortedTimes && timestamps) sortedTimes[p] = timestamps[e];
    pos[e] = p;
    const u = userIdx[e];
    if (userStart[u] < 0) userStart[u] = p;
  }
  return { sortedItems, sortedTimes, pos, userStart };
}

export function hasHistory(h: UserHistory, user: number): boolean {
  return user >= 0 && user < h.count.length && h.count[user] > 0;
}

/** Recent-pool weights of a `count`-item history in an H-slot row: 1/r on the last r = min(R, count) valid slots. */
export function recentWeights(count: number, H: number, R: number, out: Float32Array, offset: number): void {
  const r = Math.min(R, count);
  for (let q = 0; q < H; q++) out[offset + q] = q < count && q >= count - r ? 1 / r : 0;
}

/**
 * Pooling weights of a history of `count` items in slots [0, count) (oldest first) of an H-slot row:
 * decay^age normalised to sum 1, age 0 for the latest; padding slots get 0. Written into out[offset..offset+H).
 */
export function historyWeights(
  count: number,
  H: number,
  decay: number,
  out: Float32Array,
  offset: number,
): void {
  let sum = 0;
  for (let q = 0; q < H; q++) {
    const w = q < count ? Math.pow(decay, count - 1 - q) : 0;
    out[offset + q] = w;
    sum += w;
  }
  if (sum > 0) for (let q = 0; q < count; q++) out[offset + q] /= sum;
}
