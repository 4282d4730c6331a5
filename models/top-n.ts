/**
 * Exact per-row top-N selection over a block of scores (no tfjs): used by scoreAll on the main thread
 * and by its selection worker (top-n-worker.ts), which overlaps it with the next block's matmul. The scan that
 * finds each row's candidates runs as a WebAssembly SIMD kernel (simd-filter.ts) where the runtime has one, in JS
 * otherwise; both keep exactly the eligible scores >= the row's threshold, so results do not depend on which ran.
 */
import { filterModule, ScoreFilter } from './simd-filter';

/** One block's exclusions, local to the block: row r excludes items[ptr[r] .. ptr[r + 1]) (global ids). */
export interface BlockExclusion {
  ptr: Int32Array;
  items: Int32Array;
}

/** What selection needs to know about the catalogue, fixed for a scoring run. */
export interface SelectionSetup {
  nItems: number;
  topN: number;
  allowSort: boolean;
  /** Local column -> global item id (restricted candidates), or undefined (column = item id). */
  cand?: Int32Array;
  /** Global item id -> local column (-1: not a candidate), with cand. */
  globalToLocal?: Int32Array;
}

/** A selector for one scoring run: its scratch buffers and exclusion stamps live as long as it does. */
export class BlockSelector {
  private readonly scratch: SelectScratch;
  private readonly stamp: Int32Array;
  private stampCounter = 0;

  /**
   * `filter`: the SIMD scan to use (e.g. one over a worker's shared score slots), false for the JS scan, or
   * undefined for a SIMD scan of its own where the runtime supports it.
   */
  constructor(
    private readonly setup: SelectionSetup,
    filter?: ScoreFilter | false,
  ) {
    this.scratch = makeScratch(setup.nItems, setup.topN, setup.allowSort);
    this.stamp = new Int32Array(setup.nItems).fill(-1);
    if (filter === undefined) {
      const module = filterModule();
      if (module) this.scratch.filter = new ScoreFilter(module, setup.nItems);
    } else if (filter) {
      this.scratch.filter = filter;
    }
  }

  /** Whether rows are scanned by the SIMD kernel. */
  get simd(): boolean {
    return this.scratch.filter !== undefined;
  }

  /** Top-N of rows 0..B of `data` (row-major, nItems per row) into outItems/outScores (B x topN). */
  select(
    data: Float32Array,
    B: number,
    excl: BlockExclusion | undefined,
    outItems: Int32Array,
    outScores: Float32Array,
  ): void {
    const { nItems, topN, cand, globalToLocal } = this.setup;
    for (let r = 0; r < B; r++) {
      const cur = this.stampCounter++;
      if (excl) {
        for (let k = excl.ptr[r]; k < excl.ptr[r + 1]; k++) {
          const g = excl.items[k];
          const l = globalToLocal ? globalToLocal[g] : g;
          if (l >= 0 && l < nItems) this.stamp[l] = cur;
        }
      }
      selectTopN(
        data,
        r * nItems,
        nItems,
        topN,
        this.stamp,
        cur,
        cand,
        this.scratch,
        outItems,
        outScores,
        r * topN,
      );
    }
  }
}

/** Scratch buffers for selection, sized once per scoring run. */
export interface SelectScratch {
  sample: Float64Array;
  /** The largest sampled scores, descending (the threshold's order statistic). */
  best: Float64Array;
  candS: Float32Array;
  /** Bit view of candS (for sort keys). */
  candBits: Int32Array;
  candI: Int32Array;
  heapS: Float32Array;
  heapI: Int32Array;
  /** Packed (score, index) keys of a row's candidates; undefined when the catalogue is too large to pack (> 2^21 items). */
  allKeys?: Float64Array;
  idxScale: number;
  /** The SIMD scan (simd-filter.ts); undefined: the JS scan. */
  filter?: ScoreFilter;
}

/** Largest catalogue whose (32-bit score rank, item index) pairs fit exactly in a double's 53-bit mantissa. */
export const MAX_PACKED_ITEMS = 1 << 21;

export function makeScratch(nItems: number, topN: number, allowSort = true): SelectScratch {
  const candS = new Float32Array(nItems);
  let idxScale = 1;
  while (idxScale < nItems) idxScale *= 2;
  return {
    sample: new Float64Array(Math.min(nItems, SAMPLE_FACTOR * topN)),
    best: new Float64Array(Math.min(nItems, SAMPLE_FACTOR * topN)),
    candS,
    candBits: new Int32Array(candS.buffer),
    candI: new Int32Array(nItems),
    heapS: new Float32Array(topN),
    heapI: new Int32Array(topN),
    allKeys: allowSort && nItems <= MAX_PACKED_ITEMS ? new Float64Array(nItems) : undefined,
    idxScale,
  };
}

/** Sample 4N scores per row to estimate the threshold (see selectTopN). */
const SAMPLE_FACTOR = 4;
/** The threshold is the sample's order statistic that about SURVIVORS x N scores of the row should beat. */
const SURVIVORS = 2.5;

const f32Scratch = new Float32Array(1);
const i32Scratch = new Int32Array(f32Scratch.buffer);

/**
 * Top-N of the candidates by (score desc, index asc) using packed keys: each candidate becomes the exact double
 * (2^32 - 1 - orderedBits(score)) * idxScale + index (orderedBits maps float32 bit patterns to uint32 monotonically),
 * so "better" is simply "smaller key". Every candidate's key is written once, a quickselect moves the N smallest
 * keys to the front and the native typed-array sort orders those N: linear in the candidates plus one N log N sort
 * in C++ (the bounded JS heap over packed keys this replaces was the largest part of selection in a profile).
 */
function keySortSelect(
  sc: SelectScratch,
  cnt: number,
  topN: number,
  itemMap: Int32Array | undefined,
  outItems: Int32Array,
  outScores: Float32Array,
  off: number,
): void {
  const keys = sc.allKeys as Float64Array;
  const scale = sc.idxScale;
  const bits = sc.candBits;
  const idx = sc.candI;
  for (let q = 0; q < cnt; q++) {
    let b = bits[q];
    if (b === -2147483648) b = 0; // -0 ranks with +0
    const u = b < 0 ? ~b : b + 2147483648;
    keys[q] = (4294967295 - u) * scale + idx[q];
  }
  const k = cnt < topN ? cnt : topN;
  if (cnt > k) smallestFirst(keys, cnt, k);
  keys.subarray(0, k).sort();
  for (let q = 0; q < k; q++) {
    const key = keys[q];
    const j = key % scale;
    const u = 4294967295 - (key - j) / scale;
    i32Scratch[0] = u >= 2147483648 ? u - 2147483648 : ~u;
    outScores[off + q] = f32Scratch[0];
    outItems[off + q] = itemMap ? itemMap[j] : j;
  }
  for (let q = k; q < topN; q++) {
    outScores[off + q] = -Infinity;
    outItems[off + q] = -1;
  }
}

/** Reorders a[0..n) (distinct values) so that a[0..k) holds its k smallest, in any order (quickselect). */
function smallestFirst(a: Float64Array, n: number, k: number): void {
  let lo = 0;
  let hi = n - 1;
  const t = k - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    // Median of three as the pivot.
    let x = a[lo];
    let y = a[mid];
    const z = a[hi];
    if (x > y) {
      const w = x;
      x = y;
      y = w;
    }
    const pivot = z < x ? x : z > y ? y : z;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const w = a[i];
        a[i] = a[j];
        a[j] = w;
        i++;
        j--;
      }
    }
    if (t <= j) hi = j;
    else if (t >= i) lo = i;
    else return;
  }
}

/** k-th largest (0-based) of a[0..m) by quickselect; reorders a. */
function kthLargest(a: Float64Array, m: number, k: number): number {
  let lo = 0;
  let hi = m - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}

/** filterRow through the SIMD scan: the kernel finds scores >= thr, this drops excluded ones and copies the rest. */
function filterRowSimd(
  filter: ScoreFilter,
  row: Float32Array,
  rowOff: number,
  n: number,
  thr: number,
  stamp: Int32Array,
  curStamp: number,
  candS: Float32Array,
  candI: Int32Array,
): number {
  const found = filter.filter(row, rowOff, n, thr);
  const idx = filter.cand;
  let cnt = 0;
  for (let q = 0; q < found; q++) {
    const j = idx[q];
    if (stamp[j] === curStamp) continue;
    candS[cnt] = row[rowOff + j];
    candI[cnt++] = j;
  }
  return cnt;
}

/** Copies eligible items with score >= thr (in index order) into the candidate buffers; returns the count. */
function filterRow(
  row: Float32Array,
  rowOff: number,
  n: number,
  thr: number,
  stamp: Int32Array,
  curStamp: number,
  candS: Float32Array,
  candI: Int32Array,
): number {
  let cnt = 0;
  const end = rowOff + n;
  for (let q = rowOff; q < end; q++) {
    const s = row[q];
    if (!(s >= thr)) continue; // also drops NaN
    const j = q - rowOff;
    if (stamp[j] === curStamp) continue;
    candS[cnt] = s;
    candI[cnt++] = j;
  }
  return cnt;
}

/**
 * Exact top-N of one score row, honouring exclusion stamps; writes into outItems/outScores at `off`.
 * Two phases, because a plain bounded heap over the row measured ~2.5x slower than a bare scan: (1) estimate a
 * threshold from a strided sample (its order statistic that ~2N items should beat) and keep only items >= it;
 * (2) exact selection over those few candidates (keySortSelect; heapSelect above 2^21 items or with ordering
 * 'heap'). If fewer than N eligible items pass, phase 1 is redone with a lower threshold (the sample's statistic
 * 4x further down), then with none, so the result is always exact: every true top-N item scores >= the N-th best
 * >= thr.
 */
function selectTopN(
  row: Float32Array,
  rowOff: number,
  n: number,
  topN: number,
  stamp: Int32Array,
  curStamp: number,
  itemMap: Int32Array | undefined,
  sc: SelectScratch,
  outItems: Int32Array,
  outScores: Float32Array,
  off: number,
): void {
  let thr = -Infinity;
  let ms = 0;
  let rank = 0;
  const m = sc.sample.length;
  if (n > 2 * m) {
    // The sample's rank-th largest (0-based) through a small sorted buffer of its rank + 1 largest: most samples
    // cost one comparison. The sample itself is kept for the rare retry with a lower threshold.
    const stride = Math.floor(n / m);
    rank = Math.min(m - 1, Math.ceil((SURVIVORS * topN * m) / n));
    const sample = sc.sample;
    const best = sc.best;
    let nb = 0;
    for (let t = rowOff, e = rowOff + m * stride; t < e; t += stride) {
      const v = row[t];
      if (v !== v) continue;
      sample[ms++] = v;
      if (nb <= rank) {
        let c = nb++;
        while (c > 0 && best[c - 1] < v) {
          best[c] = best[c - 1];
          c--;
        }
        best[c] = v;
      } else if (v > best[rank]) {
        let c = rank;
        while (c > 0 && best[c - 1] < v) {
          best[c] = best[c - 1];
          c--;
        }
        best[c] = v;
      }
    }
    if (ms > 0) thr = best[Math.min(rank, nb - 1)];
  }
  const f = sc.filter;
  let cnt = f
    ? filterRowSimd(f, row, rowOff, n, thr, stamp, curStamp, sc.candS, sc.candI)
    : filterRow(row, rowOff, n, thr, stamp, curStamp, sc.candS, sc.candI);
  // Too few eligible survivors (a low sample, many exclusions): a threshold 4x lower in rank, then none at all.
  if (cnt < topN && thr !== -Infinity && 4 * rank < ms - 1 && ms === m) {
    thr = kthLargest(sc.sample, ms, 4 * rank);
    cnt = f
      ? filterRowSimd(f, row, rowOff, n, thr, stamp, curStamp, sc.candS, sc.candI)
      : filterRow(row, rowOff, n, thr, stamp, curStamp, sc.candS, sc.candI);
  }
  if (cnt < topN && thr !== -Infinity)
    cnt = filterRow(row, rowOff, n, -Infinity, stamp, curStamp, sc.candS, sc.candI);
  if (sc.allKeys) keySortSelect(sc, cnt, topN, itemMap, outItems, outScores, off);
  else heapSelect(sc.candS, sc.candI, cnt, topN, sc.heapS, sc.heapI, itemMap, outItems, outScores, off);
}

/** Bounded min-heap selection over candidates given in increasing index order. */
function heapSelect(
  candS: Float32Array,
  candI: Int32Array,
  cnt: number,
  topN: number,
  heapS: Float32Array,
  heapI: Int32Array,
  itemMap: Int32Array | undefined,
  outItems: Int32Array,
  outScores: Float32Array,
  off: number,
): void {
  // Min-heap on (score, -index): the root is the worst kept candidate.
  let size = 0;
  let q = 0;
  for (; q < cnt && size < topN; q++) {
    const s = candS[q];
    const j = candI[q];
    let c = size++;
    while (c > 0) {
      const p = (c - 1) >> 1;
      if (worse(heapS[p], heapI[p], s, j)) break;
      heapS[c] = heapS[p];
      heapI[c] = heapI[p];
      c = p;
    }
    heapS[c] = s;
    heapI[c] = j;
  }
  for (; q < cnt; q++) {
    const s = candS[q];
    // Strict '>' keeps the lower index on ties (candidates arrive in increasing index order).
    if (!(s > heapS[0])) continue;
    const j = candI[q];
    let c = 0;
    for (;;) {
      const l = 2 * c + 1;
      if (l >= size) break;
      const r = l + 1;
      const mm = r < size && worse(heapS[r], heapI[r], heapS[l], heapI[l]) ? r : l;
      if (!worse(heapS[mm], heapI[mm], s, j)) break;
      heapS[c] = heapS[mm];
      heapI[c] = heapI[mm];
      c = mm;
    }
    heapS[c] = s;
    heapI[c] = j;
  }
  // Extract in descending order: repeatedly move the worst (root) to the back.
  for (let k = size - 1; k >= 0; k--) {
    const s0 = heapS[0];
    const i0 = heapI[0];
    const lastS = heapS[k];
    const lastI = heapI[k];
    let c = 0;
    for (;;) {
      const l = 2 * c + 1;
      if (l >= k) break;
      const r = l + 1;
      const mm = r < k && worse(heapS[r], heapI[r], heapS[l], heapI[l]) ? r : l;
      if (!worse(heapS[mm], heapI[mm], lastS, lastI)) break;
      heapS[c] = heapS[mm];
      heapI[c] = heapI[mm];
      c = mm;
    }
    heapS[c] = lastS;
    heapI[c] = lastI;
    outScores[off + k] = s0;
    outItems[off + k] = itemMap ? itemMap[i0] : i0;
  }
  for (let k = size; k < topN; k++) {
    outScores[off + k] = -Infinity;
    outItems[off + k] = -1;
  }
}

/** True if (sa, ia) ranks strictly below (sb, ib): lower score, or equal score and higher index. */
function worse(sa: number, ia: number, sb: number, ib: number): boolean {
  return sa < sb || (sa === sb && ia > ib);
}
