/**
 * Per-user ranking metrics in plain code: the one definition the SQL of the evaluation stage
 * (evaluation/metrics.sql.ts) is tested against, and what early stopping uses during training.
 *
 * For a user with relevant set R (holdout items not seen in training) and a ranked list L (best first):
 *   precision@k = hits / k;  recall@k = hits / |R|;  hitrate@k = [hits > 0];
 *   ndcg@k = Σ_{hits at rank r} 1/log2(r + 1) / Σ_{i ≤ min(|R|, k)} 1/log2(i + 1);
 *   map@k = Σ_{hits at rank r} (hits so far / r) / min(|R|, k);  mrr@k = 1 / rank of the first hit;
 *   auc = share of (relevant, non-relevant) pairs ranked correctly over a catalogue of C items, items outside
 *         the list tied below it (a tie counts 1/2).
 */

export interface UserMetrics {
  ndcg: number;
  recall: number;
  precision: number;
  hitrate: number;
  map: number;
  mrr: number;
  auc: number;
  hits: number;
}

const discounts: number[] = [];
function discount(rank: number): number {
  while (discounts.length < rank) discounts.push(1 / Math.log2(discounts.length + 2));
  return discounts[rank - 1];
}

/** Σ_{i ≤ n} 1/log2(i + 1): the ideal DCG of n hits. */
export function idealDcg(n: number): number {
  let s = 0;
  for (let i = 1; i <= n; i++) s += discount(i);
  return s;
}

/**
 * Metrics of one user's list. `ranked` may be longer than k (only the first k count) and may contain
 * duplicates only if the caller's model does (they count at each position, as in SQL over a recs table).
 */
export function userMetrics<T>(
  ranked: readonly T[],
  relevant: ReadonlySet<T>,
  k: number,
  catalogueSize: number,
): UserMetrics {
  const nrel = relevant.size;
  if (nrel === 0) throw new Error('userMetrics: a user without relevant items has no metrics');
  const top = ranked.slice(0, k);
  let hits = 0;
  let dcg = 0;
  let ap = 0;
  let first = 0;
  let aucCredit = 0;
  const nonRelevant = Math.max(1, catalogueSize - nrel);
  top.forEach((item, q) => {
    const rank = q + 1;
    if (!relevant.has(item)) return;
    hits++;
    dcg += discount(rank);
    ap += hits / rank;
    if (!first) first = rank;
    // Non-relevant items ranked below this hit: all non-relevant ones less those above it (rank − hits).
    aucCredit += catalogueSize - nrel - (rank - hits);
  });
  // Unranked relevant items tie with the unranked non-relevant ones.
  const unrankedNonRelevant = Math.max(0, catalogueSize - nrel - (top.length - hits));
  aucCredit += (nrel - hits) * 0.5 * unrankedNonRelevant;
  return {
    ndcg: dcg / idealDcg(Math.min(nrel, k)),
    recall: hits / nrel,
    precision: hits / k,
    hitrate: hits > 0 ? 1 : 0,
    map: ap / Math.min(nrel, k),
    mrr: first ? 1 / first : 0,
    auc: aucCredit / (nrel * nonRelevant),
    hits,
  };
}
