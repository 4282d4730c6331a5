/**
 * In-batch sampled softmax, composed from small parts (TensorFlow Recommenders' Retrieval task is the model:
 * SamplingProbabilityCorrection and RemoveAccidentalHits adjust the logits, a softmax cross-entropy scores them).
 *
 * For a batch of B positives (u_b, i_b): logits[a, b] = <u_a, i_b> / T + off_b (+ mask[a, b]), where
 * off_b = -s * log q(i_b) (+ the learned item bias b_{i_b}); per-row loss = logsumexp_b logits[a, b] - logits[a, a],
 * weighted by the interaction weight and averaged over the batch.
 *
 * Why in-batch: negatives are free (the other B-1 items) and no item-side sampler has to be maintained. Because
 * items enter batches in proportion to their popularity, the softmax would over-penalise popular items; the
 * log q(i) term (q = training frequency of the item, "logQ correction", Yi et al. 2019) removes that bias. Batch
 * columns holding the same item as the row's positive are masked: they are not negatives.
 */
import type { GradSaveFunc, Tensor } from '@tensorflow/tfjs-core';
import type { Tf } from '../backend';

/** A mask value that makes exp underflow to exactly 0 (and keeps the logits finite). */
export const MASKED = -1e9;

/** Training-set frequency of every item (the sampling probability of in-batch negatives, up to 1/n). */
export function itemCounts(itemIdx: Int32Array, numItems: number): Float64Array {
  const counts = new Float64Array(numItems);
  for (let k = 0; k < itemIdx.length; k++) counts[itemIdx[k]]++;
  return counts;
}

/** log q(i) = log(count_i / n); 0 for items never trained on (they never appear as a column). */
export function logSamplingProbability(counts: Float64Array, n: number): Float32Array {
  const logQ = new Float32Array(counts.length);
  for (let i = 0; i < counts.length; i++) logQ[i] = counts[i] > 0 ? Math.log(counts[i] / n) : 0;
  return logQ;
}

/**
 * SamplingProbabilityCorrection: the column offset -scale * log q(i_b) of each batch column (zeros when off).
 * scale 1 is the unbiased correction; above 1 keeps part of the popularity prior.
 */
export function samplingProbabilityCorrection(
  targets: Int32Array,
  logQ: Float32Array,
  scale: number,
  enabled: boolean,
): Float32Array {
  const off = new Float32Array(targets.length);
  if (enabled) for (let b = 0; b < targets.length; b++) off[b] = -scale * logQ[targets[b]];
  return off;
}

/**
 * RemoveAccidentalHits, as a list: the (row, column) pairs, flattened [a0, b0, a1, b1, ...], where column b holds
 * the same item as row a's positive (a != b; the diagonal is the label and stays); undefined when the batch
 * repeats no item. In-batch duplicates are few, so the list is short where the dense mask is B x B.
 */
export function accidentalHitPairs(targets: Int32Array): Int32Array | undefined {
  const at = new Map<number, number[]>();
  targets.forEach((item, b) => {
    const rows = at.get(item);
    if (rows) rows.push(b);
    else at.set(item, [b]);
  });
  const pairs: number[] = [];
  for (const rows of at.values()) {
    if (rows.length < 2) continue;
    for (const a of rows) for (const b of rows) if (a !== b) pairs.push(a, b);
  }
  return pairs.length > 0 ? Int32Array.from(pairs) : undefined;
}

/** RemoveAccidentalHits as a dense additive B x B mask: MASKED at the pairs, 0 elsewhere. */
export function denseHitMask(pairs: Int32Array, B: number): Float32Array {
  const mask = new Float32Array(B * B);
  for (let k = 0; k < pairs.length; k += 2) mask[pairs[k] * B + pairs[k + 1]] = MASKED;
  return mask;
}

/**
 * Row-wise log-sum-exp with an analytic gradient (dy * softmax(x)). tf.logSumExp differentiates through max/exp/log
 * piecewise (a B x B max-mask and extra exps per step); the closed form needs one Softmax kernel.
 */
export function rowLogSumExp(tf: Tf, x: Tensor): Tensor {
  // customGrad's callback type takes (...Array<Tensor | GradSaveFunc>); the first arg is the tensor, the last `save`.
  const op = tf.customGrad((...args: Array<Tensor | GradSaveFunc>) => {
    const logits = args[0] as Tensor;
    (args[1] as GradSaveFunc)([logits]);
    return {
      value: tf.logSumExp(logits, 1),
      gradFunc: (dy: Tensor, saved: Tensor[]) => tf.mul(tf.expandDims(dy, 1), tf.softmax(saved[0])),
    };
  });
  return op(x);
}

export interface LogitAdjustments {
  /** [1, B] constant column offsets (samplingProbabilityCorrection). */
  colOffset: Tensor;
  /** [B] learned bias of each column's item (itemBias), differentiable. */
  bias?: Tensor;
  /** [B, B] accidentalHitMask. */
  mask?: Tensor;
}

/**
 * Weighted in-batch softmax cross-entropy of L2-normalised tower outputs uv, iv ([B, O]); differentiable in uv,
 * iv and adj.bias. Returns sum_a w_a (logsumexp_b logits[a, b] - logits[a, a]) / B.
 */
export function inBatchSoftmaxLoss(
  tf: Tf,
  uv: Tensor,
  iv: Tensor,
  adj: LogitAdjustments,
  weight: Tensor,
  invT: number,
): Tensor {
  const B = uv.shape[0];
  const off = adj.bias ? tf.add(adj.colOffset, tf.reshape(adj.bias, [1, B])) : adj.colOffset;
  // Explicit transpose: tfjs-wasm's matmul with transposeB measured ~5x slower.
  let logits = tf.add(tf.mul(tf.matMul(uv, tf.transpose(iv)), invT), off);
  if (adj.mask) logits = tf.add(logits, adj.mask);
  const diag = tf.add(tf.mul(tf.sum(tf.mul(uv, iv), 1), invT), tf.reshape(off, [B]));
  const perRow = tf.sub(rowLogSumExp(tf, logits), diag);
  return tf.div(tf.sum(tf.mul(perRow, weight)), B);
}
