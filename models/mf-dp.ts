/**
 * BPR-MF trained with user-level DP-SGD (see dp-sgd.ts for the clipping and noise, docs/privacy.md for the
 * guarantee).
 *
 * Each step Poisson-samples users (not examples) at rate q and takes ALL of each sampled user's (bounded)
 * interactions, so one user's whole influence on the shared item table per step is one clipped vector.
 * - Shared parameters (item factors and item biases, one concatenated row per item, one norm): per-user clipped
 *   sum + dense Gaussian noise on the whole table, divided by q·N. This release is (ε, δ)-DP.
 * - User factors: each user's own, updated from that user's own examples without clipping or noise. They shape
 *   only that user's recommendations, which makes the model jointly DP (billboard lemma), not DP as a whole.
 * The objective is L = Σ_{sampled u} ℓ_u / (q·N), ℓ_u = Σ_{(u,i)} w_ui·mean_k softplus(s_uj − s_ui) + l2·(squares
 * of the rows the example uses): the per-example L2 on item rows is part of ℓ_u, hence clipped with it.
 * Negatives are drawn uniformly (the popularity sampler would leak other users' counts) from the loop's Rng;
 * the user sample and the noise come from the DpNoise source (the secure generator in production).
 * The loop (trainer.ts) runs steps, not example batches: one "example" per step, batch size 1, so checkpoints,
 * resume, progress and cancellation work unchanged and the total step count is fixed by the config.
 */
import type { Scalar, Tensor, Tensor2D } from '@tensorflow/tfjs-core';
import { Adam } from './adam';
import { ensureBackend, getTf, Tf } from './backend';
import { clipAndSumByUser, noisyDenseGradient, type DpNoise } from './dp-sgd';
import {
  buildUserItemsCSR,
  csrContains,
  DEFAULT_MF_CONFIG,
  startingModel,
  mfParamDefs,
  mfFromWeights,
  mfToWeights,
  type Interactions,
  type MFConfig,
  type MFModel,
  type UserItemsCSR,
} from './mf';
import { gatherRows, Grad, ParamStore, RowIndexer } from './params';
import { mixSeed, Rng } from './rng';
import {
  fingerprintArrays,
  runTraining,
  StepProvider,
  TrainHooks,
  TrainingState,
  TrainResult,
} from './trainer';

export interface DpSgdParams {
  /** L2 bound C on one user's contribution to the shared parameters per step. */
  clipNorm: number;
  /** σ: the noise std is σ·C. */
  noiseMultiplier: number;
  /** Poisson sampling rate q of users per step (use the quantised rate the accountant was given). */
  samplingRate: number;
  /** Passes over the users in expectation; the run takes epochs·⌈1/q⌉ steps. */
  epochs: number;
}

/** Steps the DP run takes (what the accountant must be told). */
export function dpSgdSteps(epochs: number, samplingRate: number): number {
  return epochs * Math.ceil(1 / samplingRate);
}

export interface DpBatchGradients {
  loss: number;
  grads: Map<string, Grad>;
  /** The examples and sampled negatives (global item ids, [examples x K]) the step used; for audits and tests. */
  examples: Int32Array;
  negatives: Int32Array;
  /** Per sampled user (in `users` order), the contribution norm before clipping. */
  userNorms: Float32Array;
}

export class DpBprStep implements StepProvider<MFModel> {
  readonly kind = 'mf-bpr-dpsgd';
  readonly numExamples: number;
  readonly dataFingerprint: string;
  readonly config: unknown;
  /** Examples grouped by user: examples of u are order[userPtr[u] .. userPtr[u+1]). */
  private readonly userPtr: Int32Array;
  private readonly order: Int32Array;
  private readonly positives: UserItemsCSR;
  private readonly users: RowIndexer;
  private readonly items: RowIndexer;
  private readonly tf: Tf;

  constructor(
    private readonly data: Interactions,
    private readonly cfg: MFConfig,
    private readonly dp: DpSgdParams,
    private readonly noise: DpNoise,
    readonly params: ParamStore,
  ) {
    this.tf = getTf();
    this.numExamples = Math.ceil(1 / dp.samplingRate);
    this.dataFingerprint =
      fingerprintArrays(data.userIdx, data.itemIdx, data.weight) + `:${data.numUsers}x${data.numItems}`;
    const { progressIntervalMs: _p, checkpointEvery: _c, ...identity } = cfg;
    this.config = { ...identity, dpSgd: { ...dp } };
    const ptr = new Int32Array(data.numUsers + 1);
    for (let k = 0; k < data.userIdx.length; k++) ptr[data.userIdx[k] + 1]++;
    for (let u = 0; u < data.numUsers; u++) ptr[u + 1] += ptr[u];
    const fill = ptr.slice(0, data.numUsers);
    this.order = new Int32Array(data.userIdx.length);
    for (let k = 0; k < data.userIdx.length; k++) this.order[fill[data.userIdx[k]]++] = k;
    this.userPtr = ptr;
    this.positives = buildUserItemsCSR(data.userIdx, data.itemIdx, data.numUsers);
    this.users = new RowIndexer(data.numUsers);
    this.items = new RowIndexer(data.numItems);
  }

  private drawNegative(user: number, rng: Rng): number {
    let j = 0;
    for (let attempt = 0; attempt < 8; attempt++) {
      j = rng.nextInt(this.data.numItems);
      if (!this.cfg.rejectPositives || !csrContains(this.positives, user, j)) return j;
    }
    return j;
  }

  /** The loop's batch (one step index) is ignored: the step draws its own Poisson sample of users. */
  computeGradients(_batch: Int32Array, rng: Rng): { loss: number; grads: Map<string, Grad> } {
    const { loss, grads } = this.gradientsFor(this.noise.sampleUsers(this.data.numUsers), rng);
    return { loss, grads };
  }

  /** One DP step's gradients for a given set of sampled users (global ids). */
  gradientsFor(sampled: Int32Array, rng: Rng): DpBatchGradients {
    const tf = this.tf;
    const { userIdx, itemIdx, weight, numItems, numUsers } = this.data;
    const K = this.cfg.negatives;
    const D = this.cfg.dim;
    const useBias = this.cfg.itemBias;
    const R = useBias ? D + 1 : D;
    let B = 0;
    for (const u of sampled) B += this.userPtr[u + 1] - this.userPtr[u];
    const examples = new Int32Array(B);
    const negatives = new Int32Array(B * K);
    const lu = new Int32Array(B);
    const li = new Int32Array(B);
    const lj = new Int32Array(B * K);
    const w = new Float32Array(B);
    this.users.reset();
    this.items.reset();
    // One draw per step from the loop's Rng (data-independent), then a stream per (step, user): a user's
    // negatives must not depend on how many draws the other sampled users made, or removing one user would
    // change everyone else's contribution and break the per-user sensitivity argument.
    const stepSeed = rng.nextInt(0x7fffffff);
    let b = 0;
    for (const u of sampled) {
      const localU = this.users.add(u);
      const userRng = new Rng(mixSeed(stepSeed, u));
      for (let p = this.userPtr[u]; p < this.userPtr[u + 1]; p++, b++) {
        const e = this.order[p];
        examples[b] = e;
        lu[b] = localU;
        li[b] = this.items.add(itemIdx[e]);
        w[b] = weight ? weight[e] : 1;
        for (let k = 0; k < K; k++) {
          const j = this.drawNegative(userIdx[e], userRng);
          negatives[b * K + k] = j;
          lj[b * K + k] = this.items.add(j);
        }
      }
    }
    const uRows = this.users.takeRows();
    const iRows = this.items.takeRows();
    const expectedBatch = this.dp.samplingRate * numUsers;
    const noiseStd = this.dp.noiseMultiplier * this.dp.clipNorm;
    const grads = new Map<string, Grad>();
    let loss = 0;
    let rowSum: Float32Array = new Float32Array(iRows.length * R);
    let userNorms: Float32Array = new Float32Array(uRows.length);
    if (B > 0) {
      const userW = this.params.get('user').data;
      const itemW = this.params.get('item').data;
      const biasW = useBias ? this.params.get('itemBias').data : undefined;
      const posRows = new Int32Array(B);
      for (let k = 0; k < B; k++) posRows[k] = itemIdx[examples[k]];
      const subU = tf.tensor2d(gatherRows(userW, D, uRows), [uRows.length, D]);
      const qi = tf.tensor2d(gatherRows(itemW, D, posRows), [B, D]);
      const qj = tf.tensor2d(gatherRows(itemW, D, negatives), [B * K, D]);
      const bi = biasW ? tf.tensor1d(gatherRows(biasW, 1, posRows)) : undefined;
      const bj = biasW ? tf.tensor1d(gatherRows(biasW, 1, negatives)) : undefined;
      const tLu = tf.tensor1d(lu, 'int32');
      const tW = tf.tensor2d(w, [B, 1]);
      const l2 = this.cfg.l2;
      // Per-slot inputs (one row per example's positive and per negative), so the gradient w.r.t. them is the
      // per-example gradient on the shared table that clipping needs.
      const inputs = bi && bj ? [subU, qi, qj, bi, bj] : [subU, qi, qj];
      try {
        const { value, grads: g } = tf.tidy(() =>
          tf.valueAndGrads((...xs: Tensor[]) => {
            const [U, QI, QJ, BI, BJ] = xs;
            const pu = tf.gather(U, tLu); // [B, D]
            let sPos = tf.sum(tf.mul(pu, QI), 1, true); // [B, 1]
            let sNeg = tf.sum(tf.mul(tf.expandDims(pu, 1), tf.reshape(QJ, [B, K, D])), 2); // [B, K]
            let reg = tf.add(
              tf.add(tf.sum(tf.square(pu)), tf.sum(tf.square(QI))),
              tf.div(tf.sum(tf.square(QJ)), K),
            );
            if (BI && BJ) {
              sPos = tf.add(sPos, tf.reshape(BI, [B, 1]));
              sNeg = tf.add(sNeg, tf.reshape(BJ, [B, K]));
              reg = tf.add(reg, tf.add(tf.sum(tf.square(BI)), tf.div(tf.sum(tf.square(BJ)), K)));
            }
            const perPair = tf.softplus(tf.neg(tf.sub(sPos, sNeg))); // [B, K]
            return tf.add(tf.div(tf.sum(tf.mul(perPair, tW)), K), tf.mul(reg, l2)) as Scalar;
          })(inputs),
        );
        loss = value.dataSync()[0] / B;
        const slotGrads = tf.tidy(() => {
          const pos = g[3] ? tf.concat([g[1], tf.reshape(g[3], [B, 1])], 1) : g[1];
          const neg = g[4] ? tf.concat([g[2], tf.reshape(g[4], [B * K, 1])], 1) : g[2];
          return tf.concat([pos, neg], 0) as Tensor2D; // [B(1+K), R]
        });
        const slotUser = new Int32Array(B * (1 + K));
        slotUser.set(lu);
        for (let k = 0; k < B * K; k++) slotUser[B + k] = lu[Math.floor(k / K)];
        const slotRow = new Int32Array(B * (1 + K));
        slotRow.set(li);
        slotRow.set(lj, B);
        try {
          ({ rowSum, userNorms } = clipAndSumByUser(
            tf,
            slotGrads,
            { slotUser, slotRow, numUsers: uRows.length, numRows: iRows.length },
            this.dp.clipNorm,
          ));
        } finally {
          slotGrads.dispose();
        }
        const gu = g[0].dataSync() as Float32Array;
        for (let k = 0; k < gu.length; k++) gu[k] /= expectedBatch;
        grads.set('user', { kind: 'sparse', rows: uRows, values: gu });
        value.dispose();
        g.forEach((t) => t.dispose());
      } finally {
        tf.dispose([subU, qi, qj, tLu, tW]);
        if (bi) bi.dispose();
        if (bj) bj.dispose();
      }
    }
    // Noise on the whole shared table every step, also when no user was sampled: the step is accounted for.
    const dense = noisyDenseGradient(numItems, R, iRows, rowSum, this.noise, noiseStd, expectedBatch);
    if (useBias) {
      const item = new Float32Array(numItems * D);
      const bias = new Float32Array(numItems);
      for (let i = 0; i < numItems; i++) {
        item.set(dense.subarray(i * R, i * R + D), i * D);
        bias[i] = dense[i * R + D];
      }
      grads.set('item', { kind: 'dense', values: item });
      grads.set('itemBias', { kind: 'dense', values: bias });
    } else {
      grads.set('item', { kind: 'dense', values: dense });
    }
    return { loss, grads, examples, negatives, userNorms };
  }

  view(): MFModel {
    return mfFromWeights(this.params.weights);
  }
}

export interface TrainMFDpOptions {
  resumeFrom?: TrainingState;
  /** Warm start; must itself be a DP release (or data-independent), or the guarantee does not hold. */
  initialWeights?: MFModel;
}

export function validateDpSgd(dp: DpSgdParams): void {
  if (!(dp.clipNorm > 0 && Number.isFinite(dp.clipNorm))) throw new RangeError('clipNorm must be > 0');
  if (!(dp.noiseMultiplier >= 0 && Number.isFinite(dp.noiseMultiplier)))
    throw new RangeError('noiseMultiplier must be >= 0');
  if (!(dp.samplingRate > 0 && dp.samplingRate <= 1)) throw new RangeError('samplingRate must be in (0, 1]');
  if (!(Number.isInteger(dp.epochs) && dp.epochs >= 1))
    throw new RangeError('epochs must be an integer >= 1');
}

/** Builds the step provider and optimizer (exported for tests that drive single steps). */
export async function createDpBprStep(
  data: Interactions,
  config: Partial<MFConfig>,
  dp: DpSgdParams,
  noise: DpNoise,
  initialWeights?: MFModel,
): Promise<{ step: DpBprStep; adam: Adam; cfg: MFConfig }> {
  const cfg: MFConfig = {
    ...DEFAULT_MF_CONFIG,
    ...config,
    adam: { ...DEFAULT_MF_CONFIG.adam, ...config.adam },
  };
  validateDpSgd(dp);
  if (cfg.negativeSampling !== 'uniform') {
    throw new Error("DP-SGD needs negativeSampling 'uniform': popularity negatives use other users' counts");
  }
  if (!(Number.isInteger(cfg.negatives) && cfg.negatives >= 1)) throw new Error('negatives must be >= 1');
  for (let k = 0; k < data.userIdx.length; k++) {
    const u = data.userIdx[k];
    const i = data.itemIdx[k];
    if (u < 0 || u >= data.numUsers || i < 0 || i >= data.numItems) {
      throw new RangeError(`interaction ${k}: user ${u} / item ${i} outside the tables`);
    }
  }
  await ensureBackend();
  const model = startingModel(data, cfg, initialWeights);
  const params = new ParamStore(mfParamDefs(data.numUsers, data.numItems, cfg), mfToWeights(model));
  const step = new DpBprStep(data, cfg, dp, noise, params);
  return { step, adam: new Adam({ lr: cfg.lr, ...cfg.adam }, params), cfg };
}

/**
 * Trains BPR-MF with user-level DP-SGD for exactly dpSgdSteps(dp.epochs, dp.samplingRate) steps (no early
 * stopping: choosing a stopping point from validation data would be an unaccounted release). A resumed run
 * continues the same step count, so checkpoints never change the accounting.
 */
export async function trainMFDp(
  data: Interactions,
  config: Partial<MFConfig>,
  dp: DpSgdParams,
  noise: DpNoise,
  hooks: Omit<TrainHooks<MFModel>, 'evaluate'> = {},
  opts: TrainMFDpOptions = {},
): Promise<TrainResult<MFModel>> {
  const { step, adam, cfg } = await createDpBprStep(data, config, dp, noise, opts.initialWeights);
  return runTraining(
    step,
    adam,
    {
      epochs: dp.epochs,
      batchSize: 1,
      seed: cfg.seed,
      checkpointEvery: cfg.checkpointEvery,
      progressIntervalMs: cfg.progressIntervalMs,
    },
    { onProgress: hooks.onProgress, onCheckpoint: hooks.onCheckpoint, signal: hooks.signal },
    opts.resumeFrom,
  );
}
