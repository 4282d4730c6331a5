/**
 * Exact per-row top-N selection over a block of scores (pure JS, no tfjs): used by scoreAll on the main thread
 * and by its selection worker (top-n-worker.ts), which overlaps it with the next block's matmul.
 */

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

  constructor(private readonly setup: SelectionSetup) {
    this.scratch = makeScratch(setup.nItems, setup.topN, setup.allowSort);
    this.stamp = new Int32Array(setup.nItems).fill(-1);
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
  candS: Float32Array;
  /** Bit view of candS (for sort keys). */
  candBits: Int32Array;
  candI: Int32Array;
  heapS: Float32Array;
  heapI: Int32Array;
  /** Heap of packed (score, index) keys; undefined when the catalogue is too large to pack (> 2^21 items). */
  keys?: Float64Array;
  idxScale: number;
}

/** Largest catalogue whose (32-bit score rank, item index) pairs fit exactly in a double's 53-bit mantissa. */
export const MAX_PACKED_ITEMS = 1 << 21;

export function makeScratch(nItems: number, topN: number, allowSort = true): SelectScratch {
  const candS = new Float32Array(nItems);
  let idxScale = 1;
  while (idxScale < nItems) idxScale *= 2;
  return {
    sample: new Float64Array(Math.min(nItems, SAMPLE_FACTOR * topN)),
    candS,
    candBits: new Int32Array(candS.buffer),
    candI: new Int32Array(nItems),
    heapS: new Float32Array(topN),
    heapI: new Int32Array(topN),
    keys: allowSort && nItems <= MAX_PACKED_ITEMS ? new Float64Array(topN) : undefined,
    idxScale,
  };
}

/** Sample 4N scores per row to estimate the threshold (see selectTopN). */
const SAMPLE_FACTOR = 4;

const f32Scratch = new Float32Array(1);
const i32Scratch = new Int32Array(f32Scratch.buffer);

/**
 * Top-N of the candidates by (score desc, index asc) using packed keys: each candidate becomes the exact double
 * (2^32 - 1 - orderedBits(score)) * idxScale + index (orderedBits maps float32 bit patterns to uint32 monotonically),
 * so "better" is simply "smaller key" and the bounded heap compares one number instead of (score, index) pairs.
 * Measured ~1.7x faster than the pair heap; a native Float64Array sort of all candidates was no faster than either.
 */
function keyHeapSelect(
  sc: SelectScratch,
  cnt: number,
  topN: number,
  itemMap: Int32Array | undefined,
  outItems: Int32Array,
  outScores: Float32Array,
  off: number,
): void {
  const heap = sc.keys as Float64Array; // max-heap of kept keys: root = worst kept
  const scale = sc.idxScale;
  let size = 0;
  for (let q = 0; q < cnt; q++) {
    let b = sc.candBits[q];
    if (b === -2147483648) b = 0; // -0 ranks with +0
    const u = b < 0 ? ~b : b + 2147483648;
    const key = (4294967295 - u) * scale + sc.candI[q];
    if (size < topN) {
      let c = size++;
      while (c > 0) {
        const p = (c - 1) >> 1;
        if (heap[p] >= key) break;
        heap[c] = heap[p];
        c = p;
      }
      heap[c] = key;
      continue;
    }
    if (key >= heap[0]) continue;
    let c = 0;
    for (;;) {
      const l = 2 * c + 1;
      if (l >= size) break;
      const r = l + 1;
      const m = r < size && heap[r] > heap[l] ? r : l;
      if (heap[m] <= key) break;
      heap[c] = heap[m];
      c = m;
    }
    heap[c] = key;
  }
  // Pop the worst into the back until empty: ascending keys = best first.
  for (let k = size - 1; k >= 0; k--) {
    const key = heap[0];
    const last = heap[k];
    let c = 0;
    for (;;) {
      const l = 2 * c + 1;
      if (l >= k) break;
      const r = l + 1;
      const m = r < k && heap[r] > heap[l] ? r : l;
      if (heap[m] <= last) break;
      heap[c] = heap[m];
      c = m;
    }
    heap[c] = last;
    const j = key % scale;
    const u = 4294967295 - (key - j) / scale;
    i32Scratch[0] = u >= 2147483648 ? u - 2147483648 : ~u;
    outScores[off + k] = f32Scratch[0];
    outItems[off + k] = itemMap ? itemMap[j] : j;
  }
  for (let k = size; k < topN; k++) {
    outScores[off + k] = -Infinity;
    outItems[off + k] = -1;
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
 * (2) exact bounded-heap selection over those few candidates (keyHeapSelect; heapSelect above 2^21 items). If fewer than N eligible items pass, phase 1 is redone with no
 * threshold, so the result is always exact: every true top-N item scores >= the N-th best >= thr.
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
  const m = sc.sample.length;
  if (n > 2 * m) {
    const stride = n / m;
    let ms = 0;
    for (let t = 0; t < m; t++) {
      const v = row[rowOff + Math.floor(t * stride)];
      if (v === v) sc.sample[ms++] = v;
    }
    if (ms > 0) thr = kthLargest(sc.sample, ms, Math.min(ms - 1, Math.ceil((2 * topN * ms) / n)));
  }
  let cnt = filterRow(row, rowOff, n, thr, stamp, curStamp, sc.candS, sc.candI);
  if (cnt < topN && thr !== -Infinity)
    cnt = filterRow(row, rowOff, n, -Infinity, stamp, curStamp, sc.candS, sc.candI);
  if (sc.keys) keyHeapSelect(sc, cnt, topN, itemMap, outItems, outScores, off);
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
