/**
 * One optimizer step's gradients for the two-tower model (the StepProvider the generic loop in trainer.ts runs):
 * assemble the batch on the host, apply the loss's logit adjustments, and compute row-sparse gradients for the
 * embedding tables and dense ones for the layers, by hand (fused-step.ts) or by autograd (autograd.ts).
 */
import { getTf, Tf } from '../backend';
import type { Grad, ParamStore } from '../params';
import type { Rng } from '../rng';
import { fingerprintArrays, StepProvider } from '../trainer';
import { autogradGradients } from './autograd';
import { assembleTrainingBatch, StepShape, SubTables } from './batch';
import type { TwoTowerArch, TwoTowerConfig, TwoTowerData, TwoTowerModel } from './config';
import { buildCausalIndex, CausalIndex } from './history';
import { fusedGradients } from './fused-step';
import {
  accidentalHitPairs,
  denseHitMask,
  itemCounts,
  logSamplingProbability,
  samplingProbabilityCorrection,
} from './loss';

export type StepGradients = 'fused' | 'autograd';

export class InBatchSoftmaxStep implements StepProvider<TwoTowerModel> {
  readonly kind = 'two-tower-inbatch';
  readonly numExamples: number;
  readonly dataFingerprint: string;
  private readonly st: SubTables;
  private readonly causal: CausalIndex;
  private readonly logQ: Float32Array;
  private readonly tf: Tf;
  private readonly itemSeen: Uint8Array;

  constructor(
    private readonly data: TwoTowerData,
    private readonly cfg: TwoTowerConfig,
    private readonly arch: TwoTowerArch,
    readonly params: ParamStore,
    readonly config: unknown,
    initialSeen?: Uint8Array,
    /** How gradients are computed: by hand (fused.ts), or by tfjs autograd (the reference; bit-exact with runs
     * recorded before the fused step existed). */
    readonly gradients: StepGradients = 'fused',
  ) {
    this.tf = getTf();
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
    const cfg = this.cfg;
    const H = this.arch.historyLength;
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
    const colOffset = samplingProbabilityCorrection(bt.targets, this.logQ, cfg.logQScale, cfg.logQCorrection);
    // The autograd reference adds a dense mask (as the step always did); the fused step overwrites listed entries.
    const hits = accidentalHitPairs(bt.targets);
    const shape: StepShape = {
      E,
      H,
      T: this.data.items.maxTitleTokens,
      invT: 1 / cfg.temperature,
      l2: cfg.l2,
      itemBias: this.arch.itemBias === true,
    };
    if (this.gradients === 'fused')
      return fusedGradients(this.tf, this.params, st, bt, colOffset, hits, shape);
    const mask = hits && denseHitMask(hits, bt.B);
    return autogradGradients(this.tf, this.params, st, bt, colOffset, mask, shape);
  }

  view(): TwoTowerModel {
    return { kind: 'two-tower', arch: this.arch, weights: this.params.weights, itemSeen: this.itemSeen };
  }
}
