/**
 * Where scoreAll's score blocks come from: a resident item matrix in the backend and, per block of users, the
 * users' input rows. Two kinds:
 * - factorSource: dense user factors (MF, two-tower), rows [P_u | 1] against [Q | b]^T;
 * - linearSource: sparse user rows built lazily per block by a provider (EASE: a user's history, possibly
 *   recency-weighted), against a dim x items matrix (EASE's B). Only the block's rows are densified, never
 *   users x items. Per block, the cheapest of three products by a cost estimate:
 *   - sparse: out[r, :] += v * M[col, :] for each of the block's entries, in JS: nnz x items multiply-adds,
 *     which for histories of tens of items is hundreds of times less work than any dense product;
 *   - compact: the block times just the rows of M it touches (gathered in the backend), X_c [B x |used|] . M[used, :];
 *   - dense: X [B x dim] . M.
 */
import type { Tensor2D } from '@tensorflow/tfjs-core';
import { getTf } from './backend';

export interface ScoringFactors {
  numUsers: number;
  numItems: number;
  dim: number;
  /** numUsers x dim */
  userFactors: Float32Array;
  /** numItems x dim */
  itemFactors: Float32Array;
  itemBias?: Float32Array;
}

/** One block's sparse input rows: row r has entries cols[ptr[r] .. ptr[r + 1]) (in [0, dim)) with vals. */
export interface SparseRows {
  ptr: Int32Array;
  cols: Int32Array;
  vals: Float32Array;
}

/** Builds the input rows of a block of users (global ids) on demand. */
export type UserRowProvider = (users: Int32Array) => SparseRows;

/**
 * score(u, columns[c]) = sum_d rows(u)[d] * itemMatrix[d * columns.length + c]. E.g. EASE: dim = columns = the
 * kept items, itemMatrix = B (row = the history item, column = the scored item).
 */
export interface LinearScorer {
  numUsers: number;
  /** Catalogue size: exclusions and candidates are global item ids in [0, numItems). */
  numItems: number;
  dim: number;
  /** dim x columns.length, row-major. */
  itemMatrix: Float32Array;
  /** Global item id of each column; items not listed get no score. */
  columns: Int32Array;
  userRows: UserRowProvider;
  /**
   * The last `denseTail` input dimensions are dense: every non-empty row sets them (a blend's factor-model user
   * vector and bias). A block scored by the sparse product takes that part as one small backend matmul instead of
   * denseTail multiply-adds per score in JS. Default 0.
   */
  denseTail?: number;
}

export interface BlockSource {
  /** Score columns per block. */
  nCols: number;
  /** Global item of each column; undefined when column c is item c. */
  colToGlobal?: Int32Array;
  /** Width of one user's input row (for sizing blocks). */
  inputWidth: number;
  /** Blocks scored by each kind of product (linear scorers: sparse / compact / dense). */
  paths?: Record<'sparse' | 'compact' | 'dense', number>;
  /**
   * One block's scores [users.length, nCols] — a tensor (the caller disposes it) or, when they were computed
   * outside the backend, a plain array — and, optionally, the rows that have no input at all: they get no
   * recommendations (-1 padded) instead of arbitrary ties at score 0.
   */
  blockScores(users: Int32Array): BlockScores;
  dispose(): void;
}

export type BlockScores = (
  { scores: Tensor2D; data?: undefined } | { data: Float32Array; scores?: undefined }
) & {
  empty?: Uint8Array;
};

/** Dense factors: the item matrix pre-transposed to [D(+1), nItems] (tfjs-wasm's transposeB matmul is ~5x slower). */
export function factorSource(f: ScoringFactors, cand: Int32Array | undefined): BlockSource {
  const tf = getTf();
  const D = f.dim;
  if (f.userFactors.length !== f.numUsers * D || f.itemFactors.length !== f.numItems * D) {
    throw new Error('scoreAll: factor array sizes do not match numUsers/numItems/dim');
  }
  const hasBias = f.itemBias !== undefined;
  const Dp = D + (hasBias ? 1 : 0);
  const nItems = cand ? cand.length : f.numItems;
  const qT = new Float32Array(Dp * nItems);
  for (let c = 0; c < nItems; c++) {
    const item = cand ? cand[c] : c;
    if (item < 0 || item >= f.numItems) throw new RangeError(`candidate item ${item} out of range`);
    const src = item * D;
    for (let d = 0; d < D; d++) qT[d * nItems + c] = f.itemFactors[src + d];
    if (hasBias) qT[D * nItems + c] = (f.itemBias as Float32Array)[item];
  }
  const itemT = tf.tensor2d(qT, [Dp, nItems]);
  return {
    nCols: nItems,
    colToGlobal: cand,
    inputWidth: Dp,
    blockScores(users) {
      const B = users.length;
      const pu = new Float32Array(B * Dp);
      for (let r = 0; r < B; r++) {
        const u = users[r];
        if (u < 0 || u >= f.numUsers) throw new RangeError(`user ${u} out of range`);
        pu.set(f.userFactors.subarray(u * D, u * D + D), r * Dp);
        if (hasBias) pu[r * Dp + D] = 1;
      }
      return { scores: tf.tidy(() => tf.matMul(tf.tensor2d(pu, [B, Dp]), itemT)) as Tensor2D };
    },
    dispose: () => itemT.dispose(),
  };
}

/** A block whose rows use at most this share of the input dimensions is multiplied by those rows only. */
const COMPACT_SHARE = 0.5;
/**
 * Relative cost of one sparse multiply-add in JS against one multiply-add inside a backend matmul: measured ~1 ns
 * against ~30 GFLOP/s (wasm) on the project machine, i.e. ~15 matmul multiply-adds.
 */
const SPARSE_COST = 15;

/**
 * out[r, :] = sum over row r's entries of v * M[col, :] (B x nCols). A plain function with every array in a local:
 * V8 keeps the inner loop tight (inside the scorer's closure it ran ~4x slower).
 */
function sparseProduct(
  rows: SparseRows,
  B: number,
  m: Float32Array,
  nCols: number,
  out: Float32Array = new Float32Array(B * nCols),
  below = Infinity,
): Float32Array {
  const { ptr, cols, vals } = rows;
  for (let r = 0; r < B; r++) {
    const o = r * nCols;
    for (let q = ptr[r]; q < ptr[r + 1]; q++) {
      if (cols[q] >= below) continue; // the dense tail, already in `out`
      const v = vals[q];
      const mo = cols[q] * nCols;
      let c = 0;
      for (; c + 4 <= nCols; c += 4) {
        out[o + c] += v * m[mo + c];
        out[o + c + 1] += v * m[mo + c + 1];
        out[o + c + 2] += v * m[mo + c + 2];
        out[o + c + 3] += v * m[mo + c + 3];
      }
      for (; c < nCols; c++) out[o + c] += v * m[mo + c];
    }
  }
  return out;
}

export function linearSource(m: LinearScorer, cand: Int32Array | undefined): BlockSource {
  const tf = getTf();
  const { dim, columns } = m;
  if (m.itemMatrix.length !== dim * columns.length)
    throw new Error(
      `scoreLinear: itemMatrix has ${m.itemMatrix.length} entries, expected ${dim} x ${columns.length}`,
    );
  for (const g of columns)
    if (g < 0 || g >= m.numItems) throw new RangeError(`column item ${g} out of range`);
  // Restricting to candidates keeps the columns that are candidates, in column order.
  let keep: Int32Array | undefined;
  if (cand) {
    const isCand = new Uint8Array(m.numItems);
    for (const g of cand) {
      if (g < 0 || g >= m.numItems) throw new RangeError(`candidate item ${g} out of range`);
      isCand[g] = 1;
    }
    const cols: number[] = [];
    columns.forEach((g, c) => isCand[g] && cols.push(c));
    keep = Int32Array.from(cols);
  }
  const nCols = keep ? keep.length : columns.length;
  let matrix = m.itemMatrix;
  if (keep) {
    matrix = new Float32Array(dim * nCols);
    const w = columns.length;
    for (let d = 0; d < dim; d++)
      for (let c = 0; c < nCols; c++) matrix[d * nCols + c] = m.itemMatrix[d * w + keep[c]];
  }
  const colToGlobal = keep ? Int32Array.from(keep, (c) => columns[c]) : columns;
  const identity = colToGlobal.length === m.numItems && colToGlobal.every((g, c) => g === c);
  const itemT = tf.tensor2d(matrix, [dim, nCols]);
  const mat = matrix;
  const stamp = new Int32Array(dim).fill(-1);
  const local = new Int32Array(dim);
  let blockNo = 0;
  const paths = { sparse: 0, compact: 0, dense: 0 };
  const tail = Math.max(0, Math.min(dim, Math.floor(m.denseTail ?? 0)));
  const head = dim - tail;
  let tailT: Tensor2D | undefined; // rows [head, dim) of the matrix, made on first use
  return {
    nCols,
    colToGlobal: identity ? undefined : colToGlobal,
    inputWidth: dim,
    paths,
    blockScores(users) {
      for (const u of users) if (u < 0 || u >= m.numUsers) throw new RangeError(`user ${u} out of range`);
      const B = users.length;
      const rows = m.userRows(users);
      if (rows.ptr.length !== B + 1) throw new Error('userRows must return ptr of length users + 1');
      let empty: Uint8Array | undefined;
      for (let r = 0; r < B; r++) {
        if (rows.ptr[r + 1] === rows.ptr[r]) (empty ??= new Uint8Array(B))[r] = 1;
      }
      const nnz = rows.ptr[B];
      // Input dimensions this block uses, in first-seen order.
      const cur = blockNo++;
      const used: number[] = [];
      for (let q = 0; q < rows.ptr[B]; q++) {
        const c = rows.cols[q];
        if (c < 0 || c >= dim) throw new RangeError(`user row column ${c} outside [0, ${dim})`);
        if (stamp[c] !== cur) {
          stamp[c] = cur;
          local[c] = used.length;
          used.push(c);
        }
      }
      // The sparse product's cost: its head entries in JS, the dense tail (if any) as a backend matmul.
      let nnzHead = nnz;
      if (tail > 0) for (let q = 0; q < nnz; q++) if (rows.cols[q] >= head) nnzHead--;
      if (nnzHead * SPARSE_COST + B * tail < B * Math.min(used.length, dim)) {
        paths.sparse++;
        if (tail === 0 || nnzHead === nnz) return { data: sparseProduct(rows, B, mat, nCols), empty };
        const xt = new Float32Array(B * tail);
        for (let r = 0; r < B; r++)
          for (let q = rows.ptr[r]; q < rows.ptr[r + 1]; q++)
            if (rows.cols[q] >= head) xt[r * tail + rows.cols[q] - head] += rows.vals[q];
        tailT ??= tf.slice(itemT, [head, 0], [tail, nCols]) as Tensor2D;
        const t = tailT;
        const dense = tf.tidy(() => tf.matMul(tf.tensor2d(xt, [B, tail]), t)) as Tensor2D;
        // dataSync hands back a copy of the product's values: the head's sparse product is added in place.
        const data = dense.dataSync() as Float32Array;
        dense.dispose();
        return { data: sparseProduct(rows, B, mat, nCols, data, head), empty };
      }
      if (used.length <= COMPACT_SHARE * dim) {
        paths.compact++;
        const w = Math.max(1, used.length);
        const x = new Float32Array(B * w);
        for (let r = 0; r < B; r++)
          for (let q = rows.ptr[r]; q < rows.ptr[r + 1]; q++) x[r * w + local[rows.cols[q]]] += rows.vals[q];
        if (used.length === 0) return { scores: tf.zeros([B, nCols]) as Tensor2D, empty };
        const scores = tf.tidy(() => {
          const rowsOfM = tf.gather(itemT, tf.tensor1d(Int32Array.from(used), 'int32')) as Tensor2D;
          return tf.matMul(tf.tensor2d(x, [B, w]), rowsOfM);
        }) as Tensor2D;
        return { scores, empty };
      }
      paths.dense++;
      const x = new Float32Array(B * dim);
      for (let r = 0; r < B; r++)
        for (let q = rows.ptr[r]; q < rows.ptr[r + 1]; q++) x[r * dim + rows.cols[q]] += rows.vals[q];
      return { scores: tf.tidy(() => tf.matMul(tf.tensor2d(x, [B, dim]), itemT)) as Tensor2D, empty };
    },
    dispose: () => {
      itemT.dispose();
      tailT?.dispose();
    },
  };
}
