/**
 * Item-side features of the two-tower model: hashed title tokens, log-price buckets and the per-item feature table
 * the item tower reads (category, price bucket, title tokens). Pure host code, no tfjs.
 */

export interface ItemFeatures {
  /** Category per item, in [0, numCategories). */
  category: Int32Array;
  numCategories: number;
  /** Price bucket per item, in [0, numPriceBuckets) (see priceBuckets: 0 = unknown price). */
  priceBucket: Int32Array;
  numPriceBuckets: number;
  /** numItems x maxTitleTokens hashed token ids in [0, numTokenBuckets), -1 = padding. */
  titleTokens: Int32Array;
  maxTitleTokens: number;
  numTokenBuckets: number;
}

/** FNV-1a (32-bit) of a string's UTF-16 code units, modulo numBuckets. */
export function hashToken(token: string, numBuckets: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < token.length; i++) h = Math.imul(h ^ token.charCodeAt(i), 0x01000193);
  return (h >>> 0) % numBuckets;
}

/** Lower-cased word tokens (letters/digits, any script), first maxTokens distinct ones, hashed; -1 padded. */
export function hashTitleTokens(
  titles: readonly (string | null | undefined)[],
  numBuckets: number,
  maxTokens: number,
): Int32Array {
  const out = new Int32Array(titles.length * maxTokens).fill(-1);
  titles.forEach((title, i) => {
    if (!title) return;
    const seen = new Set<number>();
    for (const tok of title.toLowerCase().split(/[^\p{L}\p{N}]+/u)) {
      if (!tok) continue;
      const h = hashToken(tok, numBuckets);
      if (seen.has(h)) continue;
      seen.add(h);
      out[i * maxTokens + seen.size - 1] = h;
      if (seen.size === maxTokens) break;
    }
  });
  return out;
}

/**
 * Log-price quantile buckets: bucket 0 is reserved for missing/invalid prices, 1..numBuckets-1 split the valid log
 * prices at quantiles. Returns the boundaries so new items can be bucketed identically (applyPriceBuckets).
 */
export function priceBuckets(
  prices: ArrayLike<number>,
  numBuckets: number,
): { bucket: Int32Array; boundaries: number[] } {
  const logs: number[] = [];
  for (let i = 0; i < prices.length; i++)
    if (prices[i] > 0 && Number.isFinite(prices[i])) logs.push(Math.log(prices[i]));
  logs.sort((a, b) => a - b);
  const boundaries: number[] = [];
  const k = numBuckets - 1;
  for (let b = 1; b < k && logs.length > 0; b++) boundaries.push(logs[Math.floor((b * logs.length) / k)]);
  return { bucket: applyPriceBuckets(prices, boundaries), boundaries };
}

export function applyPriceBuckets(prices: ArrayLike<number>, boundaries: readonly number[]): Int32Array {
  const out = new Int32Array(prices.length);
  for (let i = 0; i < prices.length; i++) {
    const p = prices[i];
    if (!(p > 0) || !Number.isFinite(p)) continue;
    const lp = Math.log(p);
    let lo = 0;
    let hi = boundaries.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (boundaries[mid] <= lp) lo = mid + 1;
      else hi = mid;
    }
    out[i] = 1 + lo;
  }
  return out;
}

/** Throws unless every feature array has one entry per item and every id is inside its table. */
export function validateFeatures(f: ItemFeatures, numItems: number): void {
  if (f.category.length !== numItems || f.priceBucket.length !== numItems) {
    throw new Error('item features must have one entry per item');
  }
  if (f.titleTokens.length !== numItems * f.maxTitleTokens)
    throw new Error('titleTokens must be numItems x maxTitleTokens');
  for (let i = 0; i < numItems; i++) {
    if (f.category[i] < 0 || f.category[i] >= f.numCategories)
      throw new RangeError(`item ${i}: category out of range`);
    if (f.priceBucket[i] < 0 || f.priceBucket[i] >= f.numPriceBuckets)
      throw new RangeError(`item ${i}: price bucket out of range`);
  }
  for (let k = 0; k < f.titleTokens.length; k++) {
    const t = f.titleTokens[k];
    if (t !== -1 && (t < 0 || t >= f.numTokenBuckets)) throw new RangeError(`title token ${t} out of range`);
  }
}
