import { turnEvery } from './turns';

/**
 * Item-item top-k in typed arrays: each user's score for an item is the sum of the item's similarities to the
 * user's recent history items, and the user's list is the best k unseen, available items by (score descending,
 * item number ascending). This is exactly what the ranking statement (analytics/baselines.sql.ts, `scored` and
 * `personal_top`) computes, including the last bit of every score, at a fraction of its cost: the statement spent
 * its time hashing 25M (user, item) candidate rows into 8.7M groups for 5,000 users; here a user's candidates are
 * summed into a dense accumulator indexed by item and only the touched entries are visited.
 *
 * Exactness: the statement sums each similarity as the integer round(sim · 2^52) (round half to even, as DuckDB
 * casts) in 128-bit arithmetic and converts the total T to a double the way DuckDB does (`duckdbHugeintToDouble`).
 * Here each integer is split into a high and a low part (v = hi · 2^26 + lo, 0 ≤ lo < 2^26) summed in separate
 * doubles, both exact while max |sim| × history length < 2^10 (|T| < 2^62); hi · 2^26 + lo then rebuilds T's
 * conversion with the same roundings. Models outside that bound are refused (`fitsExactSum`) and the statement
 * ranks them.
 */

const SCALE = 2 ** 52;
const SPLIT = 2 ** 26;
/** max |similarity| × history length must stay below this for the split sums to be exact (see above). */
export const MAX_EXACT_SIM_TERMS = 1024;

/**
 * DuckDB's CAST(HUGEINT AS DOUBLE) of T = a + b (a = hi sum · 2^26 and b = lo sum, both exact doubles): for T ≥ 0
 * the correctly rounded T; for negative T (upper word -1) it computes -double(|T| - 1) - 1, two roundings, which
 * can land one unit away from the correctly rounded value (measured: T = -9,830,190,525,594,990, exactly
 * representable, converts to ...988).
 */
export function duckdbHugeintToDouble(a: number, b: number): number {
  const t = a + b;
  if (t >= 0) return t;
  // |T| - 1 = (-a) + (-b - 1): one correctly rounded addition of exact terms, then DuckDB's "- 1".
  return -(-a + (-b - 1)) - 1;
}

/** round(x) with ties to even, as DuckDB's CAST(DOUBLE AS HUGEINT). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  // Math.round rounds .5 up; an exact half that went to an odd number goes down instead.
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Neighbour lists by source item number: `neighbours[offsets[i]..offsets[i+1])`, with each similarity's split
 * fixed-point parts interleaved in `terms` (hi at 2e, lo at 2e + 1: one cache line serves both).
 */
export interface NeighbourCsr {
  items: number;
  offsets: Int32Array;
  neighbours: Int32Array;
  terms: Float64Array;
}

/** Whether similarities up to `maxAbsSim` summed over `terms` history items stay inside the exact-sum bound. */
export function fitsExactSum(maxAbsSim: number, terms: number): boolean {
  return Number.isFinite(maxAbsSim) && maxAbsSim * Math.max(1, terms) < MAX_EXACT_SIM_TERMS;
}

/** The largest |similarity| (NaN when one is not a number). */
export function maxAbs(sims: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < sims.length; i++) {
    const a = Math.abs(sims[i]);
    if (!(a <= m)) m = a; // NaN propagates
  }
  return m;
}

/** Builds the CSR from (source, neighbour, similarity) triples over `items` item numbers. */
export function neighbourCsr(
  source: ArrayLike<number>,
  neighbour: ArrayLike<number>,
  sim: ArrayLike<number>,
  items: number,
): NeighbourCsr {
  const n = source.length;
  const offsets = new Int32Array(items + 1);
  for (let e = 0; e < n; e++) offsets[source[e] + 1]++;
  for (let i = 0; i < items; i++) offsets[i + 1] += offsets[i];
  const fill = offsets.slice(0, items);
  const neighbours = new Int32Array(n);
  const terms = new Float64Array(2 * n);
  for (let e = 0; e < n; e++) {
    const at = fill[source[e]]++;
    const v = roundHalfEven(sim[e] * SCALE);
    const h = Math.floor(v / SPLIT);
    neighbours[at] = neighbour[e];
    terms[2 * at] = h;
    terms[2 * at + 1] = v - h * SPLIT;
  }
  return { items, offsets, neighbours, terms };
}

/** Users' inputs, in user-number order: recent history items (those that score), seen items, and who keeps all. */
export interface UserHistories {
  users: number;
  /** `history[historyOffsets[u]..historyOffsets[u+1])`: the user's recent distinct items. */
  historyOffsets: Int32Array;
  history: Int32Array;
  /** `seen[seenOffsets[u]..seenOffsets[u+1])`: every item the user has seen (never recommended). */
  seenOffsets: Int32Array;
  seen: Int32Array;
  /** 1 where the user keeps every candidate, not just the best k (cold start's light users). */
  keepAll?: Uint8Array;
}

export interface TopKResult {
  count: number;
  user: Int32Array;
  item: Int32Array;
  score: Float64Array;
}

/** Groups (user, item) pairs by user into offsets and items (counting sort; the order within a user is kept). */
export function groupByUser(
  user: ArrayLike<number>,
  item: ArrayLike<number>,
  users: number,
): { offsets: Int32Array; items: Int32Array } {
  const offsets = new Int32Array(users + 1);
  for (let e = 0; e < user.length; e++) offsets[user[e] + 1]++;
  for (let u = 0; u < users; u++) offsets[u + 1] += offsets[u];
  const fill = offsets.slice(0, users);
  const items = new Int32Array(user.length);
  for (let e = 0; e < user.length; e++) items[fill[user[e]]++] = item[e];
  return { offsets, items };
}

/** True when candidate a ranks before b: higher score, then lower item number. */
const before = (sa: number, ia: number, sb: number, ib: number) => sa > sb || (sa === sb && ia < ib);

/**
 * Each user's best `k` unseen candidates not in `blocked` (all of them for keepAll users), in rank order.
 * O(Σ history × neighbours + candidates · log k) time; memory O(items + output).
 */
export async function itemItemTopK(
  csr: NeighbourCsr,
  h: UserHistories,
  k: number,
  blocked?: Uint8Array,
): Promise<TopKResult> {
  // Per item: the user's running hi and lo sums, interleaved like `terms`.
  const acc = new Float64Array(csr.items * 2);
  const touched = new Int32Array(csr.items);
  const mark = new Int32Array(csr.items); // user + 1 when touched by that user
  const seenMark = new Int32Array(csr.items);
  let cap = Math.max(16, h.users * Math.min(k, 16));
  let user = new Int32Array(cap);
  let item = new Int32Array(cap);
  let score = new Float64Array(cap);
  let count = 0;
  const grow = (need: number) => {
    if (count + need <= cap) return;
    cap = Math.max(cap * 2, count + need);
    const u2 = new Int32Array(cap);
    u2.set(user.subarray(0, count));
    const i2 = new Int32Array(cap);
    i2.set(item.subarray(0, count));
    const s2 = new Float64Array(cap);
    s2.set(score.subarray(0, count));
    user = u2;
    item = i2;
    score = s2;
  };
  // The candidates of one user and a bounded heap (worst of the best k at the root) over them.
  let candItem = new Int32Array(1024);
  let candScore = new Float64Array(1024);
  const heap = new Int32Array(Math.max(1, k));
  // The hot loop reads locals only (property loads inside it cost ~3x here).
  const { offsets, neighbours, terms } = csr;
  const { historyOffsets, history } = h;
  const turn = turnEvery(200);
  for (let u = 0; u < h.users; u++) {
    // A turn of the event loop every 200 ms (heartbeats): 200,000 users take tens of seconds.
    if ((u & 255) === 0) await turn();
    const tag = u + 1;
    let nt = 0;
    const hEnd = historyOffsets[u + 1];
    for (let p = historyOffsets[u]; p < hEnd; p++) {
      const src = history[p];
      const eEnd = offsets[src + 1];
      for (let e = offsets[src]; e < eEnd; e++) {
        const j = neighbours[e];
        const j2 = j << 1;
        const e2 = e << 1;
        if (mark[j] !== tag) {
          mark[j] = tag;
          acc[j2] = terms[e2];
          acc[j2 + 1] = terms[e2 + 1];
          touched[nt++] = j;
        } else {
          acc[j2] += terms[e2];
          acc[j2 + 1] += terms[e2 + 1];
        }
      }
    }
    if (nt === 0) continue;
    for (let p = h.seenOffsets[u]; p < h.seenOffsets[u + 1]; p++) seenMark[h.seen[p]] = tag;
    if (candItem.length < nt) {
      candItem = new Int32Array(nt * 2);
      candScore = new Float64Array(nt * 2);
    }
    let nc = 0;
    for (let t = 0; t < nt; t++) {
      const j = touched[t];
      if (seenMark[j] === tag || (blocked && blocked[j])) continue;
      candItem[nc] = j;
      candScore[nc] = duckdbHugeintToDouble(acc[2 * j] * SPLIT, acc[2 * j + 1]) / SCALE;
      nc++;
    }
    const keep = h.keepAll?.[u] ? nc : Math.min(k, nc);
    if (keep === 0) continue;
    grow(keep);
    // The kept candidates (indices into cand*) in rank order, appended to the output.
    const emit = (kept: number[]) => {
      kept.sort((a, b) => (before(candScore[a], candItem[a], candScore[b], candItem[b]) ? -1 : 1));
      for (const x of kept) {
        user[count] = u;
        item[count] = candItem[x];
        score[count] = candScore[x];
        count++;
      }
    };
    if (keep === nc) {
      emit(Array.from({ length: nc }, (_, x) => x)); // every candidate stays
      continue;
    }
    // Bounded heap of the best `keep`: the root is the worst kept candidate.
    let size = 0;
    const worse = (a: number, b: number) => before(candScore[b], candItem[b], candScore[a], candItem[a]);
    for (let x = 0; x < nc; x++) {
      if (size < keep) {
        let i = size++;
        heap[i] = x;
        while (i > 0) {
          const parent = (i - 1) >> 1;
          if (!worse(heap[i], heap[parent])) break;
          const t = heap[i];
          heap[i] = heap[parent];
          heap[parent] = t;
          i = parent;
        }
      } else if (worse(heap[0], x)) {
        heap[0] = x;
        let i = 0;
        for (;;) {
          const l = 2 * i + 1;
          const r = l + 1;
          let w = i;
          if (l < size && worse(heap[l], heap[w])) w = l;
          if (r < size && worse(heap[r], heap[w])) w = r;
          if (w === i) break;
          const t = heap[i];
          heap[i] = heap[w];
          heap[w] = t;
          i = w;
        }
      }
    }
    emit(Array.from(heap.subarray(0, size)));
  }
  return {
    count,
    user: user.subarray(0, count),
    item: item.subarray(0, count),
    score: score.subarray(0, count),
  };
}
