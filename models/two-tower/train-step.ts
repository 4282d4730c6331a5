/**
 * One optimizer step's gradients for the two-tower model (the StepProvider the generic loop in trainer.ts runs):
 * assemble the batch on the host, upload its sub-tables, run both towers and the in-batch softmax loss, and hand
 * back row-sparse gradients for the embedding tables and dense ones for the layers.
 */
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { getTf, Tf } from '../backend';
import type { Grad, ParamStore } from '../params';
import type { Rng } from '../rng';
import { fingerprintArrays, StepProvider } from '../trainer';
import { assembleTrainingBatch, SubTables, uploadParams } from './batch';
import type { TwoTowerArch, TwoTowerConfig, TwoTowerData, TwoTowerModel } from './config';
import { buildCausalIndex, CausalIndex } from './history';
import {
  accidentalHitMask,
  inBatchSoftmaxLoss,
  itemCounts,
  logSamplingProbability,
  samplingProbabilityCorrection,
} from './loss';
import { ItemTowerInputs, itemTower, UserTowerInputs, userTower } from './towers';

export class InBatchSoftmaxStep implements StepProvider<TwoTowerModel> {
  readonly kind = 'two-tower-inbatch';
  readonly numExamples: number;
  readonly dataFingerprint: string;
  private readonly st: SubTables;
  private readonly causal: CausalIndex;
  private readonly logQ: Float32Array;
  private readonly tf: Tf;
  private readonly itemSeen: Uint8Array;
  private readonly sparse: Set<string>;

  constructor(
    private readonly data: TwoTowerData,
    private readonly cfg: TwoTowerConfig,
    private readonly arch: TwoTowerArch,
    readonly params: ParamStore,
    readonly config: unknown,
    initialSeen?: Uint8Array,
  ) {
    this.tf = getTf();
    this.sparse = new Set(params.defs.filter((d) => d.sparse).map((d) => d.name));
    const n = data.userIdx.length;
    this.numExamples = n;
    const f = data.items;
    this.dataFingerprint =
      fingerprintArrays(data.userIdx, data.itemIdx, data.weight, f.category, f.priceBucket, f.titleTokens) +
      (data.timestamps ? fingerprintArrays(new Float32Array(data.timestamps)) : '') +
      `:${data.numUsers}x${data.numItems}`;
    this.st = new SubTables(arch);
    this.causal = buildCausalIndex(data.userIdx, data.itemIdx, data.numUsers, data.timestamps);
    const counts = itemCounts(data.itemIdx, data.numItems);
    this.logQ = logSamplingProbability(counts, n);
    // Warm start: items trained by the previous model keep their (trained) id embedding at inference.
    this.itemSeen = Uint8Array.from(counts, (c, i) => (c > 0 || initialSeen?.[i] === 1 ? 1 : 0));
  }

  computeGradients(batch: Int32Array, rng: Rng): { loss: number; grads: Map<string, Grad> } {
    const tf = this.tf;
    const cfg = this.cfg;
    const H = this.arch.historyLength;
    const T = this.data.items.maxTitleTokens;
    const E = this.arch.embDim;
    const st = this.st;
    const bt = assembleTrainingBatch(
      st,
      this.data,
      this.causal,
      { ...cfg, historyLength: H, recentLength: this.arch.recentLength ?? 0 },
      batch,
      rng,
    );
    const B = bt.B;
    const colOffset = samplingProbabilityCorrection(bt.targets, this.logQ, cfg.logQScale, cfg.logQCorrection);
    const dupMask = accidentalHitMask(bt.targets);

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
      ...(this.arch.itemBias ? ['itemBias'] : []),
    ];
    const up = uploadParams(tf, this.params, st, E, new Set(names));
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
    const invT = 1 / cfg.temperature;
    const l2 = cfg.l2;
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
        if (this.sparse.has(n)) {
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

  view(): TwoTowerModel {
    return { kind: 'two-tower', arch: this.arch, weights: this.params.weights, itemSeen: this.itemSeen };
  }
}
