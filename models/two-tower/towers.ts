/**
 * The two towers, shared by training and inference.
 *
 * user tower: [ userEmb[u] * keepU ; sum_h w_h itemEmb[h] (; recent mean) ] -> dense -> L2-normalise
 * item tower: [ itemEmb[i] * keep ; catEmb[c] ; priceEmb[p] ; mean(tokenEmb[t]) ] -> dense -> L2-normalise
 *
 * All index tensors are *local* to the uploaded sub-tables (batch.ts); padding indices point at an extra all-zero
 * row appended to the sub-table, so masked means need no mask multiply.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import type { Tf } from '../backend';

export interface UserTowerInputs {
  user: Tensor; // int32 [B]
  userKeep: Tensor; // float [B, 1]: 0 drops the user-id embedding
  hist: Tensor; // int32 [B*H]
  histWeight: Tensor; // float [B, H]: pooling weights (0 on padding), summing to 1 where there is history
  recentWeight?: Tensor; // float [B, H]: 1/r on the last r = min(recentLength, count) slots (recentLength > 0)
}

export interface ItemTowerInputs {
  item: Tensor; // int32 [B]
  idKeep: Tensor; // float [B, 1]
  cat: Tensor; // int32 [B]
  price: Tensor; // int32 [B]
  tok: Tensor; // int32 [B*T]
  tokDenom: Tensor; // float [B, 1]
}

export function l2normalize(tf: Tf, x: Tensor): Tensor {
  return tf.div(x, tf.sqrt(tf.add(tf.sum(tf.square(x), 1, true), 1e-12)));
}

export function userTower(
  tf: Tf,
  userEmb: Tensor,
  itemEmb: Tensor,
  W: Tensor,
  b: Tensor,
  x: UserTowerInputs,
  B: number,
  H: number,
  E: number,
): Tensor {
  const ue = tf.mul(tf.gather(userEmb, x.user), x.userKeep);
  const g = tf.reshape(tf.gather(itemEmb, x.hist), [B, H, E]);
  const he = tf.sum(tf.mul(g, tf.expandDims(x.histWeight, 2)), 1);
  const parts = [ue, he];
  if (x.recentWeight) parts.push(tf.sum(tf.mul(g, tf.expandDims(x.recentWeight, 2)), 1));
  return l2normalize(tf, tf.add(tf.matMul(tf.concat(parts, 1), W), b));
}

export function itemTower(
  tf: Tf,
  itemEmb: Tensor,
  catEmb: Tensor,
  priceEmb: Tensor,
  tokenEmb: Tensor,
  W: Tensor,
  b: Tensor,
  x: ItemTowerInputs,
  B: number,
  T: number,
  E: number,
): Tensor {
  const ie = tf.mul(tf.gather(itemEmb, x.item), x.idKeep);
  const ce = tf.gather(catEmb, x.cat);
  const pe = tf.gather(priceEmb, x.price);
  const te = tf.div(tf.sum(tf.reshape(tf.gather(tokenEmb, x.tok), [B, T, E]), 1), x.tokDenom);
  return l2normalize(tf, tf.add(tf.matMul(tf.concat([ie, ce, pe, te], 1), W), b));
}
