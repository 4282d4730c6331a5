/**
 * EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): a closed-form item-item model.
 *   G = X^T X + lambda I,  P = G^-1,  B = I - P diag(1 / diag(P))   (so diag(B) = 0),  score(u) = x_u B.
 * X is the weighted implicit user x item matrix (buildCSR: duplicates summed, then transformed).
 *
 * Where the catalogue fits: the model is dense k x k over the `maxItems` items with the most distinct users (the
 * inverse needs ~3 k^2 floats at its peak: 10k items ~1.2 GB). Items beyond them get no EASE score; scoring
 * returns lists over the kept items only, and the ranking's popular backfill (or another model) has to cover the
 * rest. Users with no kept item in their history get an empty list (see scoreLinear).
 *
 * Gram matrix: accumulated sparsely per user (sum over users of n_u^2 / 2 multiply-adds in JS), or for dense data
 * as X_b^T X_b matmuls per user block in the backend (2 U k^2 flops); `gram: 'auto'` picks by that cost estimate,
 * with the per-operation costs measured on this project's 2-core machine (bench/training.ts reports both paths).
 */
import type { Tensor2D } from '@tensorflow/tfjs-core';
import { currentBackend, ensureBackend, getTf } from './backend';
import { spdInverse } from './linalg';
import { buildCSR, columnCounts, type CSR, type ValueTransform } from './sparse';
import { nextTurn } from './turns';

export interface EASEConfig {
  /** L2 weight added to the Gram diagonal; larger for larger / denser data (hundreds on MovieLens-sized data). */
  lambda: number;
  /** The most popular items (by distinct users) that enter the model; the rest get no EASE scores. */
  maxItems: number;
  /** Items with fewer distinct users are left out. */
  minItemUsers: number;
  /** How repeated (user, item) rows and their weights become x_ui (sparse.ts). */
  transform: ValueTransform;
  gram: 'auto' | 'sparse' | 'dense';
}

export const DEFAULT_EASE_CONFIG: EASEConfig = {
  lambda: 300,
  maxItems: 10_000,
  minItemUsers: 1,
  transform: 'binary',
  gram: 'auto',
};

export interface EASEModel {
  kind: 'ease';
  /** Catalogue size (global item ids). */
  numItems: number;
  /** The kept items (global ids, ascending): column c of `weights` is item items[c]. */
  items: Int32Array;
  /** k x k row-major, weights[a * k + b]: how much history item a adds to item b's score; zero diagonal. */
  weights: Float32Array;
  lambda: number;
  transform: ValueTransform;
}

export interface EASEInteractions {
  userIdx: Int32Array;
  itemIdx: Int32Array;
  weight?: Float32Array;
  numUsers: number;
  numItems: number;
}

export interface FitEASEHooks {
  /** Heartbeat between the inverse's matmuls; phase 'gram' | 'inverse'. */
  onProgress?: (p: { phase: 'gram' | 'inverse'; fraction: number }) => void | Promise<void>;
  signal?: AbortSignal;
}

export interface EASEFitStats {
  items: number;
  gram: 'sparse' | 'dense';
  gramMs: number;
  inverseMs: number;
  ms: number;
}

/** The kept items: at least minItemUsers distinct users, the maxItems most popular (ties: lower id), ascending. */
export function selectItems(counts: Int32Array, maxItems: number, minItemUsers: number): Int32Array {
  const eligible: number[] = [];
  for (let i = 0; i < counts.length; i++) if (counts[i] >= Math.max(1, minItemUsers)) eligible.push(i);
  if (eligible.length > maxItems) {
    eligible.sort((a, b) => counts[b] - counts[a] || a - b);
    eligible.length = Math.max(0, maxItems);
  }
  return Int32Array.from(eligible).sort();
}

/**
 * Cost model for the Gram matrix, from measurements on the project's 2-core machine (bench/training.ts and a
 * MovieLens / synthetic comparison): the sparse path costs ~5 ns per (user, item, item) pair in JS (random writes
 * into a k x k matrix), the dense path 2 U k^2 flops at the backend's matmul rate: ~80 GFLOP/s on tfjs-node,
 * ~15 on wasm. MovieLens (671 x 6170, 52k positives): sparse 0.2 s, dense 0.9 s (tfjs-node) / 2.4 s (wasm); a
 * 23%-dense 1000 x 1000: sparse 0.09 / 0.12 s, dense 0.03 / 0.07 s. The model picks right in all of these.
 */
const SPARSE_NS_PER_PAIR = 5;
const DENSE_FLOPS_PER_NS: Record<string, number> = { tensorflow: 80, wasm: 15, cpu: 0.5 };

export function chooseGram(x: CSR, backend = currentBackend()?.backend ?? 'wasm'): 'sparse' | 'dense' {
  let pairs = 0;
  for (let r = 0; r < x.numRows; r++) {
    const n = x.ptr[r + 1] - x.ptr[r];
    pairs += (n * (n + 1)) / 2;
  }
  const denseFlops = 2 * x.numRows * x.numCols * x.numCols;
  const rate = DENSE_FLOPS_PER_NS[backend] ?? DENSE_FLOPS_PER_NS.wasm;
  return pairs * SPARSE_NS_PER_PAIR <= denseFlops / rate ? 'sparse' : 'dense';
}

/** Rows r0..r1 of X's pairs into the lower triangle of g (columns ascend within a row: q <= p). */
function accumulatePairs(x: CSR, g: Float32Array, r0: number, r1: number): void {
  const k = x.numCols;
  const { ptr, idx, val } = x;
  for (let r = r0; r < r1; r++) {
    const end = ptr[r + 1];
    for (let p = ptr[r]; p < end; p++) {
      const rowOff = idx[p] * k;
      const v = val[p];
      for (let q = ptr[r]; q <= p; q++) g[rowOff + idx[q]] += v * val[q];
    }
  }
}

/** Mirrors the lower triangle in 64 x 64 tiles: a plain column walk misses the cache on every write at k ~ 10k. */
function mirrorLower(g: Float32Array, k: number): void {
  const T = 64;
  for (let a0 = 0; a0 < k; a0 += T) {
    for (let b0 = 0; b0 <= a0; b0 += T) {
      const a1 = Math.min(k, a0 + T);
      const b1 = Math.min(k, b0 + T);
      for (let a = a0; a < a1; a++) for (let b = b0; b < Math.min(b1, a); b++) g[b * k + a] = g[a * k + b];
    }
  }
}

/** X^T X (k x k, full symmetric) from the user x column CSR, pair by pair. */
export function gramSparse(x: CSR): Float32Array {
  const g = new Float32Array(x.numCols * x.numCols);
  accumulatePairs(x, g, 0, x.numRows);
  mirrorLower(g, x.numCols);
  return g;
}

/** Longest slice of work between two turns of the event loop. */
const SLICE_MS = 200;

/**
 * gramSparse (the same sums in the same order, so the same bits) in slices of rows, giving the event loop a turn
 * every SLICE_MS: at 20M events (200,000 users, 10,000 items) one Gram took ~110 s, during which the activity
 * could not heartbeat. `onProgress` gets the fraction of rows done.
 */
export async function gramSparseAsync(
  x: CSR,
  onProgress?: (fraction: number) => void | Promise<void>,
  signal?: AbortSignal,
): Promise<Float32Array> {
  const g = new Float32Array(x.numCols * x.numCols);
  let r0 = 0;
  let rows = 64;
  while (r0 < x.numRows) {
    const t0 = performance.now();
    const r1 = Math.min(x.numRows, r0 + rows);
    accumulatePairs(x, g, r0, r1);
    const ms = performance.now() - t0;
    // Aim each slice at SLICE_MS (rows vary a lot in length: heavy users first or last).
    rows = Math.max(1, Math.round(rows * Math.min(4, Math.max(0.25, SLICE_MS / Math.max(1, ms)))));
    r0 = r1;
    signal?.throwIfAborted();
    await onProgress?.(r0 / Math.max(1, x.numRows));
    await nextTurn();
  }
  mirrorLower(g, x.numCols);
  return g;
}

/** X^T X through backend matmuls of dense user blocks (for dense data: few items, long histories). */
export function gramDense(x: CSR, blockRows = 0): Float32Array {
  const tf = getTf();
  const k = x.numCols;
  const rows = blockRows > 0 ? blockRows : Math.max(64, Math.floor((16 * 1024 * 1024) / Math.max(1, k)));
  let acc = tf.zeros([k, k]) as Tensor2D;
  for (let r0 = 0; r0 < x.numRows; r0 += rows)
    acc = addDenseBlock(x, acc, r0, Math.min(x.numRows, r0 + rows));
  const out = acc.dataSync() as Float32Array;
  acc.dispose();
  return out;
}

/** gramDense with a turn of the event loop after each block (see gramSparseAsync). */
export async function gramDenseAsync(
  x: CSR,
  onProgress?: (fraction: number) => void | Promise<void>,
  signal?: AbortSignal,
): Promise<Float32Array> {
  const tf = getTf();
  const k = x.numCols;
  const rows = Math.max(64, Math.floor((16 * 1024 * 1024) / Math.max(1, k)));
  let acc = tf.zeros([k, k]) as Tensor2D;
  for (let r0 = 0; r0 < x.numRows; r0 += rows) {
    acc = addDenseBlock(x, acc, r0, Math.min(x.numRows, r0 + rows));
    signal?.throwIfAborted();
    await onProgress?.(Math.min(1, (r0 + rows) / Math.max(1, x.numRows)));
    await nextTurn();
  }
  const out = acc.dataSync() as Float32Array;
  acc.dispose();
  return out;
}

/** acc + X_b^T X_b for rows r0..r1 (acc is disposed). */
function addDenseBlock(x: CSR, acc: Tensor2D, r0: number, r1: number): Tensor2D {
  const tf = getTf();
  const k = x.numCols;
  // X_b and its transpose built directly: tfjs-wasm's matmul with a transposed operand is ~20x slower.
  const n = r1 - r0;
  const dense = new Float32Array(n * k);
  const denseT = new Float32Array(k * n);
  for (let r = r0; r < r1; r++) {
    for (let q = x.ptr[r]; q < x.ptr[r + 1]; q++) {
      dense[(r - r0) * k + x.idx[q]] = x.val[q];
      denseT[x.idx[q] * n + (r - r0)] = x.val[q];
    }
  }
  const next = tf.tidy(() =>
    tf.add(acc, tf.matMul(tf.tensor2d(denseT, [k, n]), tf.tensor2d(dense, [n, k]))),
  ) as Tensor2D;
  acc.dispose();
  return next;
}

/** The user x kept-item CSR the model is fitted on and scores from. */
export function easeMatrix(data: EASEInteractions, items: Int32Array, transform: ValueTransform): CSR {
  const colOf = new Int32Array(data.numItems).fill(-1);
  items.forEach((g, c) => (colOf[g] = c));
  return buildCSR(data.userIdx, data.itemIdx, data.weight, data.numUsers, data.numItems, {
    transform,
    colOf,
    numCols: items.length,
  });
}

/** B = I - P diag(1 / diag(P)), in place on P: B[a][b] = -P[a][b] / P[b][b], zero diagonal. */
export function easeWeightsFromInverse(p: Float32Array, k: number): Float32Array {
  const inv = new Float64Array(k);
  for (let b = 0; b < k; b++) inv[b] = 1 / p[b * k + b];
  for (let a = 0; a < k; a++) {
    const row = a * k;
    for (let b = 0; b < k; b++) p[row + b] = a === b ? 0 : -p[row + b] * inv[b];
  }
  return p;
}

/** Fits EASE on the interactions (selects the 'auto' backend if none was selected). */
export async function fitEASE(
  data: EASEInteractions,
  config: Partial<EASEConfig> = {},
  hooks: FitEASEHooks = {},
): Promise<{ model: EASEModel; stats: EASEFitStats }> {
  const cfg: EASEConfig = { ...DEFAULT_EASE_CONFIG, ...config };
  if (!(cfg.lambda > 0)) throw new Error('EASE lambda must be > 0');
  if (!(cfg.maxItems >= 1)) throw new Error('EASE maxItems must be >= 1');
  await ensureBackend();
  const t0 = performance.now();
  // Popularity by distinct users, over all items, decides which items enter the model.
  const all = buildCSR(data.userIdx, data.itemIdx, undefined, data.numUsers, data.numItems, {
    transform: 'binary',
  });
  const items = selectItems(columnCounts(all), cfg.maxItems, cfg.minItemUsers);
  const k = items.length;
  if (k === 0) throw new Error('EASE: no item has enough users');
  const x = easeMatrix(data, items, cfg.transform);
  const mode = cfg.gram === 'auto' ? chooseGram(x) : cfg.gram;
  await hooks.onProgress?.({ phase: 'gram', fraction: 0 });
  const gramProgress = (fraction: number) => hooks.onProgress?.({ phase: 'gram', fraction });
  const g =
    mode === 'sparse'
      ? await gramSparseAsync(x, gramProgress, hooks.signal)
      : await gramDenseAsync(x, gramProgress, hooks.signal);
  for (let a = 0; a < k; a++) g[a * k + a] += cfg.lambda;
  const t1 = performance.now();
  const p = await spdInverse(g, k, {
    signal: hooks.signal,
    onProgress: (done, total) =>
      hooks.onProgress?.({ phase: 'inverse', fraction: total > 0 ? done / total : 1 }),
  });
  const t2 = performance.now();
  const weights = easeWeightsFromInverse(p, k);
  return {
    model: {
      kind: 'ease',
      numItems: data.numItems,
      items,
      weights,
      lambda: cfg.lambda,
      transform: cfg.transform,
    },
    stats: { items: k, gram: mode, gramMs: t1 - t0, inverseMs: t2 - t1, ms: performance.now() - t0 },
  };
}
