/**
 * The reference gradients of a training step: both towers (towers.ts) and the in-batch softmax loss (loss.ts)
 * differentiated by tfjs autograd over the batch's uploaded sub-tables. The fused step (pooling.ts + fused.ts)
 * computes the same gradients by hand; this path is what it is tested against, and what reproduces runs recorded
 * before it existed bit for bit (test/unit/models-two-tower-golden.test.ts).
 */
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import type { Tf } from '../backend';
import type { Grad, ParamStore } from '../params';
import { StepShape, SubTables, TrainingBatch, uploadParams } from './batch';
import { inBatchSoftmaxLoss } from './loss';
import { ItemTowerInputs, itemTower, UserTowerInputs, userTower } from './towers';

export function autogradGradients(
  tf: Tf,
  params: ParamStore,
  st: SubTables,
  bt: TrainingBatch,
  colOffset: Float32Array,
  dupMask: Float32Array | undefined,
  s: StepShape,
): { loss: number; grads: Map<string, Grad> } {
  const { E, H, T, invT, l2 } = s;
  const B = bt.B;
  const names = [
    'userEmb',
    'itemEmb',
    'catEmb',
    'priceEmb',
    'tokenEmb',
    'userW',
    'userB',
    'itemW',
    'itemB',
    ...(s.itemBias ? ['itemBias'] : []),
  ];
  const sparse = new Set(params.defs.filter((d) => d.sparse).map((d) => d.name));
  const up = uploadParams(tf, params, st, E, new Set(names));
  const consts: Tensor[] = [];
  const c = <X extends Tensor>(t: X): X => {
    consts.push(t);
    return t;
  };
  const uIn: UserTowerInputs = {
    user: c(tf.tensor1d(bt.user, 'int32')),
    userKeep: c(tf.tensor2d(bt.userKeep, [B, 1])),
    hist: c(tf.tensor1d(bt.hist, 'int32')),
    histWeight: c(tf.tensor2d(bt.histWeight, [B, H])),
    ...(bt.recentWeight ? { recentWeight: c(tf.tensor2d(bt.recentWeight, [B, H])) } : {}),
  };
  const side = bt.side;
  const iIn: ItemTowerInputs = {
    item: c(tf.tensor1d(side.item, 'int32')),
    idKeep: c(tf.tensor2d(bt.idKeep, [B, 1])),
    cat: c(tf.tensor1d(side.cat, 'int32')),
    price: c(tf.tensor1d(side.price, 'int32')),
    tok: c(tf.tensor1d(side.tok, 'int32')),
    tokDenom: c(tf.tensor2d(side.tokDenom, [B, 1])),
  };
  const colOff = c(tf.tensor2d(colOffset, [1, B]));
  const mask = dupMask ? c(tf.tensor2d(dupMask, [B, B])) : undefined;
  const wT = c(tf.tensor1d(bt.weight));
  const inputs = names.map((n) => up.subs[n].tensor);
  try {
    const { value, grads } = tf.tidy(() =>
      tf.valueAndGrads((...xs: Tensor[]) => {
        const [U, I, C, P, Tk, uW, uB, iW, iB, Ib] = xs;
        const uv = userTower(tf, U, I, uW, uB, uIn, B, H, E);
        const iv = itemTower(tf, I, C, P, Tk, iW, iB, iIn, B, T, E);
        const bias = Ib ? tf.gather(Ib, iIn.item) : undefined;
        let loss = inBatchSoftmaxLoss(tf, uv, iv, { colOffset: colOff, bias, mask }, wT, invT);
        if (l2 > 0) {
          const reg = tf.add(
            tf.sum(tf.square(tf.gather(U, uIn.user))),
            tf.sum(tf.square(tf.gather(I, iIn.item))),
          );
          loss = tf.add(loss, tf.mul(reg, l2 / B));
        }
        return loss as Scalar;
      })(inputs),
    );
    const loss = value.dataSync()[0];
    const out = new Map<string, Grad>();
    names.forEach((n, k) => {
      const g = grads[k].dataSync() as Float32Array;
      const sub = up.subs[n];
      if (sparse.has(n)) {
        // Drop the pad row's gradient (it is not a real parameter row).
        const width = n === 'itemBias' ? 1 : E;
        out.set(n, { kind: 'sparse', rows: sub.rows, values: g.subarray(0, sub.rows.length * width) });
      } else {
        out.set(n, { kind: 'dense', values: g });
      }
    });
    value.dispose();
    grads.forEach((g) => g.dispose());
    return { loss, grads: out };
  } finally {
    tf.dispose(up.tensors);
    tf.dispose(consts);
  }
}
