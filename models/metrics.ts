/**
 * Offline ranking metrics built on score.ts, for early stopping (trainMF/trainTwoTower `evaluate`) and tests;
 * per-user values come from evaluation/ranking-metrics.ts, the definition the evaluation stage's SQL is tested
 * against.
 * recall@K per user = |topK ∩ heldOut| / |heldOut|, averaged over users that have held-out items; training items are
 * excluded from the candidates (they are never recommended).
 */
import { ExcludeCSR, scoreAll, ScoringFactors } from './score';
import { userMetrics } from '../evaluation/ranking-metrics';

export interface HeldOut {
  userIdx: Int32Array;
  itemIdx: Int32Array;
}

function groupByUser(h: HeldOut, numUsers: number): { users: Int32Array; sets: Map<number, Set<number>> } {
  const sets = new Map<number, Set<number>>();
  for (let k = 0; k < h.userIdx.length; k++) {
    const u = h.userIdx[k];
    if (u < 0 || u >= numUsers) continue;
    let s = sets.get(u);
    if (!s) {
      s = new Set();
      sets.set(u, s);
    }
    s.add(h.itemIdx[k]);
  }
  const users = Int32Array.from([...sets.keys()].sort((a, b) => a - b));
  return { users, sets };
}

/** Mean recall@K of the model's top-K (excluding `exclude`, usually the training interactions). */
export function recallAtK(
  f: ScoringFactors,
  heldOut: HeldOut,
  k: number,
  exclude?: ExcludeCSR,
): Promise<number> {
  return rankingMetricAtK('recall', f, heldOut, k, exclude);
}

/**
 * Mean NDCG@K (binary relevance, ideal DCG over min(|heldOut|, K) hits), as the evaluation stage computes it.
 */
export function ndcgAtK(
  f: ScoringFactors,
  heldOut: HeldOut,
  k: number,
  exclude?: ExcludeCSR,
): Promise<number> {
  return rankingMetricAtK('ndcg', f, heldOut, k, exclude);
}

export type RankingMetric = 'recall' | 'ndcg';

/** Mean recall@K or NDCG@K over the users with held-out items. */
export async function rankingMetricAtK(
  metric: RankingMetric,
  f: ScoringFactors,
  heldOut: HeldOut,
  k: number,
  exclude?: ExcludeCSR,
): Promise<number> {
  const { users, sets } = groupByUser(heldOut, f.numUsers);
  if (users.length === 0) return 0;
  let total = 0;
  await scoreAll(f, {
    topN: k,
    users,
    exclude,
    onBlock: (b) => {
      for (let r = 0; r < b.users.length; r++) {
        // -1 pads lists with fewer than k eligible items; the definition is the evaluation stage's.
        const list = Array.from(b.items.subarray(r * k, (r + 1) * k)).filter((i) => i >= 0);
        const m = userMetrics(list, sets.get(b.users[r]) as Set<number>, k, f.numItems);
        total += metric === 'recall' ? m.recall : m.ndcg;
      }
    },
  });
  return total / users.length;
}

/** Items ordered by interaction count (descending, ties by id). */
export function popularityRanking(itemIdx: Int32Array, numItems: number): Int32Array {
  const counts = new Float64Array(numItems);
  for (let k = 0; k < itemIdx.length; k++) counts[itemIdx[k]]++;
  return Int32Array.from({ length: numItems }, (_, i) => i).sort((a, b) => counts[b] - counts[a] || a - b);
}

/** recall@K of recommending the most popular items the user has not interacted with (the fallback baseline). */
export function popularityRecallAtK(
  trainItemIdx: Int32Array,
  numItems: number,
  heldOut: HeldOut,
  k: number,
  exclude?: ExcludeCSR,
): number {
  const ranking = popularityRanking(trainItemIdx, numItems);
  const { users, sets } = groupByUser(heldOut, Number.MAX_SAFE_INTEGER);
  if (users.length === 0) return 0;
  let total = 0;
  for (const u of users) {
    const seen = new Set<number>();
    if (exclude && u + 1 < exclude.userPtr.length) {
      for (let q = exclude.userPtr[u]; q < exclude.userPtr[u + 1]; q++) seen.add(exclude.itemIdx[q]);
    }
    const truth = sets.get(u) as Set<number>;
    let hits = 0;
    let taken = 0;
    for (let r = 0; r < ranking.length && taken < k; r++) {
      if (seen.has(ranking[r])) continue;
      taken++;
      if (truth.has(ranking[r])) hits++;
    }
    total += hits / truth.size;
  }
  return total / users.length;
}
