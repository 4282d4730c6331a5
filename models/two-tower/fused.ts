/**
 * The dense part of the fused training step: both towers' dense layers and L2 normalisation, the in-batch softmax
 * loss (loss.ts) and its hand-derived gradients, as a few tfjs ops without autograd.
 *
 * Why: with tf.valueAndGrads a step was ~260 kernels (the backward of every gather, concat, broadcast and reshape
 * the tape recorded), which on tfjs-node is per-op dispatch and on wasm included a scalar Exp over the B x B
 * logits (tf.logSumExp). Here the forward is ~25 ops, the backward ~30, and the B x B work is one matmul, one
 * Softmax, two row maxima and two matmuls against the softmax.
 *
 * Derivation. logits[a, b] = <uv_a, iv_b> / T + off_b (+ mask), P = softmax over b, r_a = w_a / B:
 *   loss = sum_a r_a (lse_a - logits[a, a]),   lse_a = max_b logits[a, b] - log(max_b P[a, b])
 *     (max_b P[a, b] = 1 / sum_b exp(logits[a, b] - max), which is >= 1/B, so its log never underflows)
 *   dloss/dlogits[a, b] = r_a (P[a, b] - [a = b])
 *   d uv_a = (r_a / T) ((P iv)_a - iv_a)
 *   d iv_b = (1 / T) ((P^T (r * uv))_b - r_b uv_b)
 *   d off_b = (P^T r)_b - r_b                                     (the item-bias gradient)
 *   y = z / |z| (|z| = sqrt(|z|^2 + 1e-12)):   dz = (dy - y <dy, y>) / |z|
 *   z = x W + b:   dW = x^T dz,  db = sum_rows dz,  dx = dz W^T
 * Masked entries have P = 0 exactly, so they neither contribute nor receive gradient, as with autograd.
 */
import type { Tensor, Tensor2D } from '@tensorflow/tfjs-core';
import type { Tf } from '../backend';
import { MASKED } from './loss';

export interface FusedInputs {
  /** [B, Du] user-tower input and [B, 4E] item-tower input (pooling.ts). */
  xu: Tensor2D;
  xi: Tensor2D;
  userW: Tensor2D;
  userB: Tensor;
  itemW: Tensor2D;
  itemB: Tensor;
  /** [1, B] column offsets: sampling-probability correction plus the column item's learned bias. */
  offset: Tensor2D;
  /** [k, 2] int32 (row, column) pairs to mask (loss.ts accidentalHitPairs), if the batch repeats an item. */
  maskPairs?: Tensor2D;
  /** [B, 1] row weights w_a / B. */
  rowWeight: Tensor2D;
  invT: number;
  /** Return the offset gradient (models with an item bias). */
  offsetGrad: boolean;
}

export interface FusedOutputs {
  /** [B] max_b logits[a, b], max_b P[a, b] and <uv_a, iv_a> (for the loss, computed on the host). */
  rowMax: Tensor;
  rowMaxP: Tensor;
  dot: Tensor;
  dUserW: Tensor;
  dUserB: Tensor;
  dxu: Tensor;
  dItemW: Tensor;
  dItemB: Tensor;
  dxi: Tensor;
  /** [1, B] dloss/d offset_b + r_b; the host subtracts r_b (see derivation). */
  colSum?: Tensor;
}

interface Dense {
  y: Tensor;
  norm: Tensor;
}

/** z = x W + b, y = z / |z| (as towers.ts), keeping |z| for the backward. */
function denseNormalised(tf: Tf, x: Tensor, W: Tensor, b: Tensor): Dense {
  const z = tf.add(tf.matMul(x, W), b);
  const norm = tf.sqrt(tf.add(tf.sum(tf.square(z), 1, true), 1e-12));
  return { y: tf.div(z, norm), norm };
}

/** Backward of denseNormalised for an upstream gradient dy: [dW, db, dx]. */
function denseNormalisedGrad(tf: Tf, d: Dense, dy: Tensor, x: Tensor, W: Tensor): [Tensor, Tensor, Tensor] {
  const dz = tf.div(tf.sub(dy, tf.mul(d.y, tf.sum(tf.mul(dy, d.y), 1, true))), d.norm);
  // Explicit transposes: tfjs-wasm's matmul with a transpose flag measured 10-50x slower (gradients.ts).
  return [tf.matMul(tf.transpose(x), dz), tf.sum(dz, 0), tf.matMul(dz, tf.transpose(W))];
}

/** Forward and hand-derived backward of the in-batch softmax loss through both dense tower heads. */
export function fusedInBatchSoftmax(tf: Tf, x: FusedInputs): FusedOutputs {
  return tf.tidy(() => {
    const u = denseNormalised(tf, x.xu, x.userW, x.userB);
    const i = denseNormalised(tf, x.xi, x.itemW, x.itemB);
    const B = x.xu.shape[0];
    // The column offsets ride in the matmul as an extra inner dimension ([uv / T, 1] . [iv, off]) instead of a
    // broadcasting B x B add (~2 ms per step on wasm); masked entries are overwritten, not added to (no B x B
    // mask to build, upload and add).
    const left = tf.concat([tf.mul(u.y, x.invT), tf.ones([B, 1])], 1);
    const right = tf.concat([tf.transpose(i.y), x.offset], 0);
    let logits = tf.matMul(left, right);
    if (x.maskPairs) {
      const k = x.maskPairs.shape[0];
      logits = tf.tensorScatterUpdate(logits, x.maskPairs, tf.fill([k], MASKED));
    }
    const P = tf.softmax(logits);
    const rowMax = tf.max(logits, 1);
    const rowMaxP = tf.max(P, 1);
    const dot = tf.sum(tf.mul(u.y, i.y), 1);

    const r = x.rowWeight;
    const du = tf.mul(tf.sub(tf.matMul(P, i.y), i.y), tf.mul(r, x.invT));
    // P^T (r * uv) as ((r * uv)^T P)^T: a [O, B] x [B, B] product needs no transpose of the B x B matrix.
    const ru = tf.mul(u.y, r);
    const di = tf.mul(tf.sub(tf.transpose(tf.matMul(tf.transpose(ru), P)), ru), x.invT);
    const colSum = x.offsetGrad ? tf.matMul(tf.reshape(r, [1, B]), P) : undefined;

    const [dUserW, dUserB, dxu] = denseNormalisedGrad(tf, u, du, x.xu, x.userW);
    const [dItemW, dItemB, dxi] = denseNormalisedGrad(tf, i, di, x.xi, x.itemW);
    return { rowMax, rowMaxP, dot, dUserW, dUserB, dxu, dItemW, dItemB, dxi, ...(colSum ? { colSum } : {}) };
  });
}
