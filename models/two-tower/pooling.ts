/**
 * The embedding side of the fused training step, on the host: the towers' input rows (id embeddings, pooled
 * history, metadata embeddings) gathered straight from the master tables, and, on the way back, their gradients
 * scattered into per-row sums for exactly the rows the batch touched.
 *
 * Why on the host: the master tables already live here (params.ts), so pooling them in JS costs one pass over the
 * B x (H + T + 3) rows a batch reads; done in tfjs it was a sub-table upload, six Gathers, their gradients (six
 * UnsortedSegmentSums, SplitV for the concatenations) and ~150 bookkeeping kernels of autograd per step. The
 * gradient of a gather is a segment sum, so nothing is lost by writing it as one.
 *
 * Math (per example b, E-wide rows; the towers in towers.ts compute the same):
 *   xu[b] = [ U[user_b] * userKeep_b ; sum_q histWeight[b,q] I[hist_bq] (; sum_q recentWeight[b,q] I[hist_bq]) ]
 *   xi[b] = [ I[item_b] * idKeep_b ; C[cat_b] ; P[price_b] ; sum_t Tk[tok_bt] / tokDenom_b ]
 * and the backward is each term's coefficient times the row gradient, summed per table row.
 */
import type { Grad, Weights } from '../params';
import type { TrainingBatch } from './batch';

/** The global table rows behind a batch's local indices (SubTables.takeRows, in local order). */
export interface BatchRows {
  user: Int32Array;
  item: Int32Array;
  cat: Int32Array;
  price: Int32Array;
  tok: Int32Array;
}

export interface PooledInputs {
  /** B x Du user-tower input, Du = 2E (3E with the recent pool). */
  xu: Float32Array;
  Du: number;
  /** B x 4E item-tower input. */
  xi: Float32Array;
}

/** dst[dstOff + d] += scale * src[srcOff + d] for d < E (float32 rows; kept monomorphic for V8). */
function axpyRow(
  dst: Float32Array,
  dstOff: number,
  src: Float32Array,
  srcOff: number,
  scale: number,
  E: number,
): void {
  for (let d = 0; d < E; d++) dst[dstOff + d] += scale * src[srcOff + d];
}

/** The same into a float64 accumulator (the pooled sums round to float32 once). */
function axpyRow64(
  acc: Float64Array,
  accOff: number,
  src: Float32Array,
  srcOff: number,
  scale: number,
  E: number,
): void {
  for (let d = 0; d < E; d++) acc[accOff + d] += scale * src[srcOff + d];
}

/** The towers' inputs for a batch, read from the master tables `w` (no tfjs). */
export function poolTowerInputs(
  w: Weights,
  rows: BatchRows,
  bt: TrainingBatch,
  E: number,
  H: number,
  T: number,
): PooledInputs {
  const B = bt.B;
  const U = w['userEmb'].data;
  const I = w['itemEmb'].data;
  const C = w['catEmb'].data;
  const P = w['priceEmb'].data;
  const Tk = w['tokenEmb'].data;
  const Du = (bt.recentWeight ? 3 : 2) * E;
  const xu = new Float32Array(B * Du);
  const xi = new Float32Array(B * 4 * E);
  const acc = new Float64Array(2 * E);
  const itemPad = rows.item.length;
  const tokPad = rows.tok.length;
  for (let b = 0; b < B; b++) {
    const ou = b * Du;
    const keepU = bt.userKeep[b];
    const uo = rows.user[bt.user[b]] * E;
    for (let d = 0; d < E; d++) xu[ou + d] = U[uo + d] * keepU;
    // Pooled history (and recent pool) accumulate in float64 and round once.
    acc.fill(0);
    for (let q = 0; q < H; q++) {
      const local = bt.hist[b * H + q];
      if (local === itemPad) continue;
      const io = rows.item[local] * E;
      axpyRow64(acc, 0, I, io, bt.histWeight[b * H + q], E);
      if (bt.recentWeight) axpyRow64(acc, E, I, io, bt.recentWeight[b * H + q], E);
    }
    for (let d = 0; d < E; d++) xu[ou + E + d] = acc[d];
    if (bt.recentWeight) for (let d = 0; d < E; d++) xu[ou + 2 * E + d] = acc[E + d];

    const oi = b * 4 * E;
    const keepI = bt.idKeep[b];
    const io = rows.item[bt.side.item[b]] * E;
    const co = rows.cat[bt.side.cat[b]] * E;
    const po = rows.price[bt.side.price[b]] * E;
    for (let d = 0; d < E; d++) {
      xi[oi + d] = I[io + d] * keepI;
      xi[oi + E + d] = C[co + d];
      xi[oi + 2 * E + d] = P[po + d];
    }
    acc.fill(0, 0, E);
    for (let t = 0; t < T; t++) {
      const local = bt.side.tok[b * T + t];
      if (local !== tokPad) axpyRow64(acc, 0, Tk, rows.tok[local] * E, 1, E);
    }
    const den = bt.side.tokDenom[b];
    for (let d = 0; d < E; d++) xi[oi + 3 * E + d] = acc[d] / den;
  }
  return { xu, Du, xi };
}

export interface TowerInputGrads {
  /** dLoss/dxu, B x Du. */
  dxu: Float32Array;
  /** dLoss/dxi, B x 4E. */
  dxi: Float32Array;
  /** dLoss/d(logit offset) per column (the item-bias gradient), when the model has one. */
  dOffset?: Float32Array;
}

/**
 * Scatters the tower-input gradients back to the embedding rows the batch used: one sparse gradient per table,
 * over the same rows (and in the same order) as the sub-tables, plus the L2 term 2 l2 / B * row per use of a
 * user / positive-item row (what the loss adds as l2 / B * (sum |U[user_b]|^2 + |I[item_b]|^2)).
 */
export function scatterTowerGrads(
  w: Weights,
  rows: BatchRows,
  bt: TrainingBatch,
  g: TowerInputGrads,
  E: number,
  H: number,
  T: number,
  l2: number,
): Map<string, Grad> {
  const B = bt.B;
  const Du = (bt.recentWeight ? 3 : 2) * E;
  const dU = new Float32Array(rows.user.length * E);
  const dI = new Float32Array(rows.item.length * E);
  const dC = new Float32Array(rows.cat.length * E);
  const dP = new Float32Array(rows.price.length * E);
  const dTk = new Float32Array(rows.tok.length * E);
  const itemPad = rows.item.length;
  const tokPad = rows.tok.length;
  const reg = (2 * l2) / B;
  const U = w['userEmb'].data;
  const I = w['itemEmb'].data;
  for (let b = 0; b < B; b++) {
    const ou = b * Du;
    const lu = bt.user[b];
    axpyRow(dU, lu * E, g.dxu, ou, bt.userKeep[b], E);
    if (l2 > 0) axpyRow(dU, lu * E, U, rows.user[lu] * E, reg, E);
    for (let q = 0; q < H; q++) {
      const local = bt.hist[b * H + q];
      if (local === itemPad) continue;
      axpyRow(dI, local * E, g.dxu, ou + E, bt.histWeight[b * H + q], E);
      if (bt.recentWeight) axpyRow(dI, local * E, g.dxu, ou + 2 * E, bt.recentWeight[b * H + q], E);
    }
    const oi = b * 4 * E;
    const li = bt.side.item[b];
    axpyRow(dI, li * E, g.dxi, oi, bt.idKeep[b], E);
    if (l2 > 0) axpyRow(dI, li * E, I, rows.item[li] * E, reg, E);
    axpyRow(dC, bt.side.cat[b] * E, g.dxi, oi + E, 1, E);
    axpyRow(dP, bt.side.price[b] * E, g.dxi, oi + 2 * E, 1, E);
    const tokScale = 1 / bt.side.tokDenom[b];
    for (let t = 0; t < T; t++) {
      const local = bt.side.tok[b * T + t];
      if (local !== tokPad) axpyRow(dTk, local * E, g.dxi, oi + 3 * E, tokScale, E);
    }
  }
  const out = new Map<string, Grad>([
    ['userEmb', { kind: 'sparse', rows: rows.user, values: dU }],
    ['itemEmb', { kind: 'sparse', rows: rows.item, values: dI }],
    ['catEmb', { kind: 'sparse', rows: rows.cat, values: dC }],
    ['priceEmb', { kind: 'sparse', rows: rows.price, values: dP }],
    ['tokenEmb', { kind: 'sparse', rows: rows.tok, values: dTk }],
  ]);
  if (g.dOffset) {
    const dB = new Float32Array(rows.item.length);
    for (let b = 0; b < B; b++) dB[bt.side.item[b]] += g.dOffset[b];
    out.set('itemBias', { kind: 'sparse', rows: rows.item, values: dB });
  }
  return out;
}
