/**
 * How concentrated a set of recommendation lists is on popular items: the check for a model that has collapsed to
 * popularity (issue #14: 99.8% of BPR's recommendations were among the 5% most-interacted items).
 */

export interface Concentration {
  /** Share of recommended slots that hold one of the `headShare` most popular items. */
  headShare: number;
  /** Distinct recommended items / catalogue size. */
  coverage: number;
  /** Recommended slots counted (-1 padding excluded). */
  slots: number;
}

/** Item ids of the ceil(share * numItems) most popular items (by `counts`, ties: lower id). */
export function headItems(counts: ArrayLike<number>, share: number): Set<number> {
  const n = counts.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => counts[b] - counts[a] || a - b);
  return new Set(order.slice(0, Math.ceil(share * n)));
}

/** Concentration of flattened top-N lists (`items`, -1 = empty slot) against interaction counts per item. */
export function concentration(
  items: ArrayLike<number>,
  counts: ArrayLike<number>,
  share = 0.05,
): Concentration {
  const head = headItems(counts, share);
  const distinct = new Set<number>();
  let slots = 0;
  let inHead = 0;
  for (let k = 0; k < items.length; k++) {
    const i = items[k];
    if (i < 0) continue;
    slots++;
    distinct.add(i);
    if (head.has(i)) inHead++;
  }
  return { headShare: slots > 0 ? inHead / slots : 0, coverage: distinct.size / counts.length, slots };
}

/** Interactions per item. */
export function itemCounts(itemIdx: Int32Array, numItems: number): Int32Array {
  const c = new Int32Array(numItems);
  for (let k = 0; k < itemIdx.length; k++) c[itemIdx[k]]++;
  return c;
}
