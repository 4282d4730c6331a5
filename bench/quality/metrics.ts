import { Rng } from '../../lib/datagen/prng';

/**
 * The one implementation of the quality benchmark's metrics: every model's lists (the Python references' CSVs and
 * recforge's published Parquet alike) are scored here, so a difference between models cannot come from two
 * metric implementations. Pure; unit-tested.
 *
 * For each evaluated user: take their list (or the fallback list when they have none, as recforge documents for
 * users without a row), drop excluded items (the user's training history, unavailable items), dedupe, cut at K.
 * - NDCG@K: binary relevance, DCG = Σ rel_i / log2(i + 2), ideal DCG over min(|relevant|, K) hits.
 * - Recall@K: hits / min(|relevant|, K), so a user with more than K relevant items can still reach 1.
 * - HitRate@K: share of users with at least one hit.
 * - Coverage: distinct items in the evaluated users' top-K lists / catalogue size.
 * Users without any list count as zeros: a model that leaves users out pays for it.
 */

export interface Exclusions {
  /** Each user's training items. */
  seen: ReadonlyMap<string, ReadonlySet<string>>;
  /** Items no list may contain (e.g. marked out of stock in the items file). */
  unavailable: ReadonlySet<string>;
}

export interface ScoreOptions {
  k: number;
  /** Denominator of coverage: the number of items that could be recommended. */
  catalogueSize: number;
  /** The list for users without one of their own (recforge's published popular fallback). */
  fallback?: readonly string[];
}

export interface Scores {
  ndcg: number;
  recall: number;
  hitrate: number;
  coverage: number;
  users: number;
  /** Evaluated users scored from the fallback list. */
  usersFallback: number;
  /** Evaluated users with neither a list nor a fallback. */
  usersWithoutList: number;
  /** Evaluated users whose list had fewer than K items left after exclusions. */
  usersShortList: number;
  /** Excluded items (seen or unavailable) that a raw list carried within its first K entries. */
  excludedInTopK: number;
  /** Per-user NDCG@K in the order of `userOrder` (for paired comparisons between models). */
  perUserNdcg: Float64Array;
}

export function userOrder(holdout: ReadonlyMap<string, readonly string[]>): string[] {
  return [...holdout.keys()].sort();
}

export function idcg(relevant: number, k: number): number {
  let s = 0;
  for (let i = 0; i < Math.min(relevant, k); i++) s += 1 / Math.log2(i + 2);
  return s;
}

/** Top K of a raw list after exclusions; also reports how many excluded items sat in the raw list's first K. */
export function topK(
  raw: readonly string[],
  seen: ReadonlySet<string> | undefined,
  unavailable: ReadonlySet<string>,
  k: number,
): { items: string[]; excludedInTopK: number } {
  const items: string[] = [];
  const taken = new Set<string>();
  let excludedInTopK = 0;
  for (let i = 0; i < raw.length && items.length < k; i++) {
    const it = raw[i];
    if (seen?.has(it) || unavailable.has(it)) {
      if (i < k) excludedInTopK++;
      continue;
    }
    if (taken.has(it)) continue;
    taken.add(it);
    items.push(it);
  }
  return { items, excludedInTopK };
}

export function scoreLists(
  lists: ReadonlyMap<string, readonly string[]>,
  holdout: ReadonlyMap<string, readonly string[]>,
  ex: Exclusions,
  o: ScoreOptions,
): Scores {
  if (!(o.k >= 1)) throw new Error(`k must be >= 1, got ${o.k}`);
  if (!(o.catalogueSize >= 1)) throw new Error(`catalogueSize must be >= 1, got ${o.catalogueSize}`);
  const users = userOrder(holdout);
  const perUserNdcg = new Float64Array(users.length);
  const recommended = new Set<string>();
  let ndcg = 0;
  let recall = 0;
  let hits = 0;
  let usersFallback = 0;
  let usersWithoutList = 0;
  let usersShortList = 0;
  let excludedInTopK = 0;
  users.forEach((u, j) => {
    const relevant = new Set(holdout.get(u));
    let raw = lists.get(u);
    if (raw === undefined && o.fallback) {
      raw = o.fallback;
      usersFallback++;
    }
    if (raw === undefined) {
      usersWithoutList++;
      return;
    }
    const top = topK(raw, ex.seen.get(u), ex.unavailable, o.k);
    excludedInTopK += top.excludedInTopK;
    if (top.items.length < o.k) usersShortList++;
    let dcg = 0;
    let h = 0;
    top.items.forEach((it, i) => {
      recommended.add(it);
      if (relevant.has(it)) {
        dcg += 1 / Math.log2(i + 2);
        h++;
      }
    });
    const n = dcg / idcg(relevant.size, o.k);
    perUserNdcg[j] = n;
    ndcg += n;
    recall += h / Math.min(relevant.size, o.k);
    if (h > 0) hits++;
  });
  const n = Math.max(1, users.length);
  return {
    ndcg: ndcg / n,
    recall: recall / n,
    hitrate: hits / n,
    coverage: recommended.size / o.catalogueSize,
    users: users.length,
    usersFallback,
    usersWithoutList,
    usersShortList,
    excludedInTopK,
    perUserNdcg,
  };
}

/**
 * Paired bootstrap of the mean per-user difference a − b (same users, same order): the mean and a 95% percentile
 * interval. Seeded, so a re-run of the bench gives the same interval for the same lists.
 */
export function pairedBootstrap(
  a: Float64Array,
  b: Float64Array,
  samples = 1000,
  seed = 42,
): { mean: number; lo: number; hi: number } {
  if (a.length !== b.length) throw new Error(`paired arrays differ in length: ${a.length} vs ${b.length}`);
  const n = a.length;
  if (n === 0) return { mean: NaN, lo: NaN, hi: NaN };
  const d = new Float64Array(n);
  let mean = 0;
  for (let i = 0; i < n; i++) mean += d[i] = a[i] - b[i];
  mean /= n;
  const rng = new Rng(seed);
  const means = new Float64Array(samples);
  for (let s = 0; s < samples; s++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += d[rng.int(n)];
    means[s] = sum / n;
  }
  means.sort();
  const at = (q: number) => means[Math.min(samples - 1, Math.max(0, Math.floor(q * samples)))];
  return { mean, lo: at(0.025), hi: at(0.975) };
}
