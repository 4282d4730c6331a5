/**
 * One step's gradients without autograd: pool the towers' inputs on the host (pooling.ts), run the dense heads,
 * the loss and its hand-derived backward on the backend (fused.ts), scatter the input gradients back to the
 * embedding rows. Same gradients as autograd.ts up to float rounding (models-two-tower-grad.test.ts).
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import type { Tf } from '../backend';
import type { Grad, ParamStore } from '../params';
import type { StepShape, SubTables, TrainingBatch } from './batch';
import { fusedInBatchSoftmax } from './fused';
import { BatchRows, poolTowerInputs, scatterTowerGrads } from './pooling';

const f32 = (t: Tensor): Float32Array => t.dataSync() as Float32Array;

export function fusedGradients(
  tf: Tf,
  params: ParamStore,
  st: SubTables,
  bt: TrainingBatch,
  colOffset: Float32Array,
  maskPairs: Int32Array | undefined,
  s: StepShape,
): { loss: number; grads: Map<string, Grad> } {
  const { E, H, T, invT, l2 } = s;
  const B = bt.B;
  const w = params.weights;
  const rows: BatchRows = {
    user: st.user.takeRows(),
    item: st.item.takeRows(),
    cat: st.cat.takeRows(),
    price: st.price.takeRows(),
    tok: st.tok.takeRows(),
  };
  const pooled = poolTowerInputs(w, rows, bt, E, H, T);
  // The learned bias joins the constant correction as one column offset (a float32 add, as on the backend).
  const offset = Float32Array.from(colOffset);
  const bias = s.itemBias ? w['itemBias'].data : undefined;
  if (bias) for (let b = 0; b < B; b++) offset[b] += bias[bt.targets[b]];
  const r = Float32Array.from(bt.weight, (x) => x / B);
  const uW = params.get('userW');
  const iW = params.get('itemW');
  const inputs = [
    tf.tensor2d(pooled.xu, [B, pooled.Du]),
    tf.tensor2d(pooled.xi, [B, 4 * E]),
    tf.tensor2d(uW.data, uW.shape as [number, number]),
    tf.tensor1d(params.get('userB').data),
    tf.tensor2d(iW.data, iW.shape as [number, number]),
    tf.tensor1d(params.get('itemB').data),
    tf.tensor2d(offset, [1, B]),
    tf.tensor2d(r, [B, 1]),
    ...(maskPairs ? [tf.tensor2d(maskPairs, [maskPairs.length / 2, 2], 'int32')] : []),
  ] as const;
  let out: ReturnType<typeof fusedInBatchSoftmax> | undefined;
  try {
    const [xu, xi, userW, userB, itemW, itemB, off, rowWeight, pairs] = inputs;
    out = fusedInBatchSoftmax(tf, {
      xu,
      xi,
      userW,
      userB,
      itemW,
      itemB,
      offset: off,
      rowWeight,
      invT,
      offsetGrad: bias !== undefined,
      ...(pairs ? { maskPairs: pairs } : {}),
    });
    const rowMax = f32(out.rowMax);
    const rowMaxP = f32(out.rowMaxP);
    const dot = f32(out.dot);
    let loss = 0;
    for (let a = 0; a < B; a++)
      loss += r[a] * (rowMax[a] - Math.log(rowMaxP[a]) - (dot[a] * invT + offset[a]));
    let dOffset: Float32Array | undefined;
    if (out.colSum) {
      dOffset = f32(out.colSum).slice();
      for (let b = 0; b < B; b++) dOffset[b] -= r[b];
    }
    const grads = scatterTowerGrads(
      w,
      rows,
      bt,
      { dxu: f32(out.dxu), dxi: f32(out.dxi), dOffset },
      E,
      H,
      T,
      l2,
    );
    if (l2 > 0) loss += (l2 / B) * idSquares(w, rows, bt, E);
    grads.set('userW', { kind: 'dense', values: f32(out.dUserW) });
    grads.set('userB', { kind: 'dense', values: f32(out.dUserB) });
    grads.set('itemW', { kind: 'dense', values: f32(out.dItemW) });
    grads.set('itemB', { kind: 'dense', values: f32(out.dItemB) });
    return { loss, grads };
  } finally {
    tf.dispose([...inputs]);
    if (out) tf.dispose(Object.values(out) as Tensor[]);
  }
}

/** sum_b |U[user_b]|^2 + |I[item_b]|^2: the L2 penalty's sum over the batch's uses of id rows. */
function idSquares(
  w: Record<string, { data: Float32Array }>,
  rows: BatchRows,
  bt: TrainingBatch,
  E: number,
): number {
  const U = w['userEmb'].data;
  const I = w['itemEmb'].data;
  let s = 0;
  for (let b = 0; b < bt.B; b++) {
    const uo = rows.user[bt.user[b]] * E;
    const io = rows.item[bt.side.item[b]] * E;
    for (let d = 0; d < E; d++) s += U[uo + d] * U[uo + d] + I[io + d] * I[io + d];
  }
  return s;
}
