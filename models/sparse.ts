/**
 * Compressed sparse rows of aggregated (user, item) values, the input format of EASE, iALS and the fast BPR
 * trainer. Pure typed arrays (no tfjs), so worker threads can share them through SharedArrayBuffers.
 */

/** Row r holds columns idx[ptr[r] .. ptr[r + 1]) (ascending, distinct) with values val[...]. */
export interface CSR {
  numRows: number;
  numCols: number;
  ptr: Int32Array;
  idx: Int32Array;
  val: Float32Array;
}

/** How repeated (user, item) rows and their weights become one matrix value. */
export type ValueTransform = 'binary' | 'linear' | 'log';

export interface BuildCSROptions {
  /** binary: 1 per pair; linear: sum of the pair's weights; log: log1p(sum). Default linear. */
  transform?: ValueTransform;
  /** Column of each item (-1: dropped), e.g. EASE's kept items; default identity. */
  colOf?: Int32Array;
  numCols?: number;
  /** Allocate the arrays on SharedArrayBuffers (for worker threads). */
  shared?: boolean;
  /**
   * Per-interaction multiplier in (0, 1] (e.g. recency decay): linear/log sum weight x decay; binary takes the
   * largest decay of the pair's rows (1 without decay), so a pair is as fresh as its latest interaction.
   */
  decay?: ArrayLike<number>;
}

function alloc<T extends Int32Array | Float32Array>(
  ctor: new (b: ArrayBufferLike | number) => T,
  n: number,
  shared: boolean,
): T {
  return shared ? (new ctor(new SharedArrayBuffer(Math.max(1, n) * 4)).subarray(0, n) as T) : new ctor(n);
}

/**
 * Builds the user x item CSR of interactions: duplicates of a pair are summed (weights default 1), then
 * transformed. Rows outside [0, numRows) or items outside the catalogue throw.
 */
export function buildCSR(
  rows: Int32Array,
  items: Int32Array,
  weight: Float32Array | undefined,
  numRows: number,
  numItems: number,
  opts: BuildCSROptions = {},
): CSR {
  const n = rows.length;
  if (items.length !== n || (weight && weight.length !== n))
    throw new Error('buildCSR: rows, items and weight must have the same length');
  const colOf = opts.colOf;
  const numCols = opts.numCols ?? numItems;
  const shared = opts.shared ?? false;
  const decay = opts.decay;
  if (decay && decay.length !== n) throw new Error('buildCSR: decay must have one entry per interaction');
  // Two stable counting sorts, by column then by row, leave each row's entries in column order: O(n + rows +
  // cols), no comparison sort (a per-row sort took most of the setup of a 1M-interaction training run).
  const colCount = new Int32Array(numCols + 1);
  let kept = 0;
  for (let k = 0; k < n; k++) {
    const r = rows[k];
    const i = items[k];
    if (r < 0 || r >= numRows || i < 0 || i >= numItems)
      throw new RangeError(`interaction ${k}: row ${r} / item ${i} outside [0,${numRows}) x [0,${numItems})`);
    const c = colOf ? colOf[i] : i;
    if (c >= 0) {
      colCount[c + 1]++;
      kept++;
    }
  }
  for (let c = 0; c < numCols; c++) colCount[c + 1] += colCount[c];
  const byCol = new Int32Array(kept);
  for (let k = 0; k < n; k++) {
    const c = colOf ? colOf[items[k]] : items[k];
    if (c >= 0) byCol[colCount[c]++] = k;
  }
  // colCount[c] is now the end of column c's run: the column of byCol[q] is known without a random read.
  const count = new Int32Array(numRows + 1);
  for (let q = 0; q < kept; q++) count[rows[byCol[q]] + 1]++;
  for (let r = 0; r < numRows; r++) count[r + 1] += count[r];
  const fill = count.slice(0, numRows);
  const order = new Int32Array(kept);
  const orderCol = new Int32Array(kept);
  for (let c = 0, q = 0; c < numCols; c++) {
    for (; q < colCount[c]; q++) {
      const at = fill[rows[byCol[q]]]++;
      order[at] = byCol[q];
      orderCol[at] = c;
    }
  }
  // Merge duplicates (consecutive now) and transform.
  const transform = opts.transform ?? 'linear';
  const ptr = alloc(Int32Array, numRows + 1, shared);
  const outCol = new Int32Array(kept);
  const outVal = new Float32Array(kept);
  let w = 0;
  for (let r = 0; r < numRows; r++) {
    let sum = 0;
    let fresh = 0;
    const end = count[r + 1];
    for (let q = count[r]; q < end; q++) {
      const k = order[q];
      const dk = decay ? decay[k] : 1;
      sum += (weight ? weight[k] : 1) * dk;
      fresh = Math.max(fresh, dk);
      if (q + 1 === end || orderCol[q + 1] !== orderCol[q]) {
        outCol[w] = orderCol[q];
        outVal[w] = transform === 'binary' ? fresh : transform === 'log' ? Math.log1p(sum) : sum;
        w++;
        sum = 0;
        fresh = 0;
      }
    }
    ptr[r + 1] = w;
  }
  const idx = alloc(Int32Array, w, shared);
  const val = alloc(Float32Array, w, shared);
  idx.set(outCol.subarray(0, w));
  val.set(outVal.subarray(0, w));
  return { numRows, numCols, ptr, idx, val };
}

/** The transpose (item x user when given user x item), columns ascending within each row. */
export function transposeCSR(m: CSR, shared = false): CSR {
  const ptr = alloc(Int32Array, m.numCols + 1, shared);
  for (let q = 0; q < m.idx.length; q++) ptr[m.idx[q] + 1]++;
  for (let c = 0; c < m.numCols; c++) ptr[c + 1] += ptr[c];
  const fill = ptr.slice(0, m.numCols);
  const idx = alloc(Int32Array, m.idx.length, shared);
  const val = alloc(Float32Array, m.idx.length, shared);
  // Rows are visited in order, so each output row comes out sorted.
  for (let r = 0; r < m.numRows; r++) {
    for (let q = m.ptr[r]; q < m.ptr[r + 1]; q++) {
      const at = fill[m.idx[q]]++;
      idx[at] = r;
      val[at] = m.val[q];
    }
  }
  return { numRows: m.numCols, numCols: m.numRows, ptr, idx, val };
}

/** Number of distinct rows each column appears in (item popularity by users when given user x item). */
export function columnCounts(m: CSR): Int32Array {
  const out = new Int32Array(m.numCols);
  for (let q = 0; q < m.idx.length; q++) out[m.idx[q]]++;
  return out;
}

/**
 * Splits rows [0, numRows) into at most `parts` contiguous ranges of about equal cost, cost(row) = entries + rowCost
 * (the per-row work of a kernel, in units of one entry's work). Returns part boundaries (length parts + 1).
 */
export function balancedRanges(ptr: Int32Array, parts: number, rowCost = 1): Int32Array {
  const numRows = ptr.length - 1;
  const total = ptr[numRows] - ptr[0] + rowCost * numRows;
  const out = new Int32Array(parts + 1);
  let r = 0;
  for (let p = 1; p < parts; p++) {
    const target = (total * p) / parts;
    while (r < numRows && ptr[r] - ptr[0] + rowCost * r < target) r++;
    out[p] = r;
  }
  out[parts] = numRows;
  return out;
}
