/**
 * User-level DP-SGD for embedding tables (pure tfjs; the randomness comes in through `DpNoise`).
 *
 * The unit of privacy is a user: a step's gradient on a shared table (item embeddings, item biases) is, per
 * sampled user, the sum over all of that user's examples, clipped to L2 norm C, then summed over users, plus
 * N(0, σ²C²) on EVERY row of the table, divided by the expected batch size q·N (a public constant, so it is
 * post-processing; the actual batch size is data-dependent and must not be used).
 *
 * Why per (user, row) pairs: one user's examples can touch the same row several times (a positive that is
 * another example's sampled negative, the same negative twice). The user's contribution to row r is the sum of
 * those per-slot gradients, and its norm is √Σ_r ‖Σ_slots g‖² — summing squared per-slot norms instead would
 * under-estimate it. Pairs are segment-summed, squared norms are segment-summed by user, and the per-user
 * scale min(1, C/‖g_u‖) is gathered back onto the pairs: all tensor ops, no per-example loops.
 *
 * Why dense noise: noising only the rows the batch touched would reveal which items the sampled users had.
 */
import type { Tensor1D, Tensor2D } from '@tensorflow/tfjs-core';
import type { Tf } from './backend';

export interface DpNoise {
  /** Poisson sample of [0, n), each index independently at the sampling rate. */
  sampleUsers(n: number): Int32Array;
  /** Adds N(0, std²) to each entry of `out`. */
  addNoise(out: Float32Array, std: number): void;
}

/** Each slot is one per-example gradient row: which local user produced it, on which local table row. */
export interface SlotIndex {
  /** Local user (0..numUsers-1) of each slot. */
  slotUser: Int32Array;
  /** Local table row (0..numRows-1) of each slot. */
  slotRow: Int32Array;
  numUsers: number;
  numRows: number;
}

export interface PairIndex {
  /** Pair id of each slot. */
  slotPair: Int32Array;
  /** Local user and local row of each pair. */
  pairUser: Int32Array;
  pairRow: Int32Array;
}

/** Groups slots into distinct (user, row) pairs (index building only; the arithmetic is in tensors). */
export function pairIndex(s: SlotIndex): PairIndex {
  const ids = new Map<number, number>();
  const slotPair = new Int32Array(s.slotUser.length);
  const pu: number[] = [];
  const pr: number[] = [];
  for (let k = 0; k < slotPair.length; k++) {
    const key = s.slotUser[k] * s.numRows + s.slotRow[k];
    let id = ids.get(key);
    if (id === undefined) {
      id = pu.length;
      ids.set(key, id);
      pu.push(s.slotUser[k]);
      pr.push(s.slotRow[k]);
    }
    slotPair[k] = id;
  }
  return { slotPair, pairUser: Int32Array.from(pu), pairRow: Int32Array.from(pr) };
}

export interface ClippedSum {
  /** numRows x rowSize: Σ over users of their clipped contributions, per local row. */
  rowSum: Float32Array;
  /** Each local user's contribution norm before clipping. */
  userNorms: Float32Array;
}

/**
 * Clips each user's summed contribution to L2 norm `clipNorm` and sums over users.
 * `slotGrads` is [S, rowSize] (per-slot gradients on the shared table; concatenate several tables' rows, e.g.
 * item factors and item bias, so one norm covers all shared parameters). Does not dispose `slotGrads`.
 */
export function clipAndSumByUser(
  tf: Tf,
  slotGrads: Tensor2D,
  index: SlotIndex,
  clipNorm: number,
): ClippedSum {
  if (!(clipNorm > 0)) throw new RangeError(`clipNorm must be > 0, got ${clipNorm}`);
  const S = slotGrads.shape[0];
  const R = slotGrads.shape[1];
  if (index.slotUser.length !== S || index.slotRow.length !== S) {
    throw new Error(`clipAndSumByUser: ${S} gradient rows but ${index.slotUser.length} slot indices`);
  }
  if (S === 0) {
    return { rowSum: new Float32Array(index.numRows * R), userNorms: new Float32Array(index.numUsers) };
  }
  const pairs = pairIndex(index);
  const P = pairs.pairUser.length;
  const slotPair = tf.tensor1d(pairs.slotPair, 'int32');
  const pairUser = tf.tensor1d(pairs.pairUser, 'int32');
  const pairRow = tf.tensor1d(pairs.pairRow, 'int32');
  try {
    const [rowSum, norms] = tf.tidy(() => {
      const pairG = tf.unsortedSegmentSum(slotGrads, slotPair, P) as Tensor2D; // [P, R]
      const pairSq = tf.sum(tf.square(pairG), 1) as Tensor1D; // [P]
      const userSq = tf.unsortedSegmentSum(pairSq, pairUser, index.numUsers) as Tensor1D; // [U]
      const userNorm = tf.sqrt(userSq);
      // min(1, C/‖g‖); a zero contribution keeps scale 1 (C / tiny is huge, clipped to 1).
      const scale = tf.minimum(1, tf.div(clipNorm, tf.maximum(userNorm, 1e-30)));
      const clipped = tf.mul(pairG, tf.expandDims(tf.gather(scale, pairUser), 1));
      return [tf.unsortedSegmentSum(clipped, pairRow, index.numRows), userNorm];
    });
    const out = {
      rowSum: rowSum.dataSync() as Float32Array,
      userNorms: norms.dataSync() as Float32Array,
    };
    tf.dispose([rowSum, norms]);
    return out;
  } finally {
    tf.dispose([slotPair, pairUser, pairRow]);
  }
}

/**
 * The privatised gradient of a whole table: noise N(0, (σC)²) on every entry, plus the clipped sum at the
 * touched rows (`rows[k]` is the global row of local row k), divided by the expected batch size.
 */
export function noisyDenseGradient(
  numRows: number,
  rowSize: number,
  rows: Int32Array,
  rowSum: Float32Array,
  noise: DpNoise,
  noiseStd: number,
  expectedBatch: number,
): Float32Array {
  if (!(expectedBatch > 0)) throw new RangeError(`expected batch size must be > 0, got ${expectedBatch}`);
  const out = new Float32Array(numRows * rowSize);
  noise.addNoise(out, noiseStd);
  for (let k = 0; k < rows.length; k++) {
    const dst = rows[k] * rowSize;
    const src = k * rowSize;
    for (let c = 0; c < rowSize; c++) out[dst + c] += rowSum[src + c];
  }
  const inv = 1 / expectedBatch;
  for (let i = 0; i < out.length; i++) out[i] *= inv;
  return out;
}
