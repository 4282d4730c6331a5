/**
 * Implicit-feedback matrix factorisation trained with BPR.
 *
 * score(u, i) = p_u . q_i (+ b_i). Per positive (u, i) we draw K negatives j and minimise
 *   w_ui * mean_k softplus(-(s(u,i) - s(u,j_k)))  +  l2 * (|p_u|^2 + |q_i|^2 + mean_k |q_jk|^2 (+ b_i^2 + mean_k b_jk^2))
 * averaged over the batch. softplus(-x) == -log(sigmoid(x)): one kernel, numerically stable, on every backend.
 * (The reported "logSigmoid throws in backprop on wasm" was tfjs-core's Node bundle registering no gradients at all;
 * with gradients.ts loaded logSigmoid works too, see test/unit/models-kernels.test.ts.)
 * Weights stay on the host and only the rows a batch touches are uploaded and updated (params.ts, adam.ts).
 * - User bias is not offered: it cancels in s(u,i) - s(u,j), so BPR gives it zero gradient. Item bias is optional.
 * - L2 is the classic BPR per-example penalty on the rows a batch uses (frequent rows are regularised more).
 * - w_ui is the per-interaction weight (e.g. event-type weight via eventTypeWeights()), multiplying its loss terms.
 * - Negatives: uniform over items, or popularity-smoothed (count^alpha, alpha=0.75 as in word2vec); by default a
 *   sampled negative that is a known positive of the user is re-drawn (up to 8 tries).
 */
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { Adam, AdamConfig } from './adam';
import { ensureBackend, getTf, Tf } from './backend';
import { randomNormalArray } from './init';
import { gatherRows, Grad, ParamDef, ParamStore, RowIndexer, Weights } from './params';
import { AliasSampler, mixSeed, Rng } from './rng';
import {
  fingerprintArrays,
  runTraining,
  StepProvider,
  TrainHooks,
  TrainingState,
  TrainLoopConfig,
  TrainResult,
} from './trainer';

export interface Interactions {
  userIdx: Int32Array;
  itemIdx: Int32Array;
  /** Per-interaction loss weight; default 1. */
  weight?: Float32Array;
  numUsers: number;
  numItems: number;
}

export interface MFConfig {
  dim: number;
  epochs: number;
  batchSize: number;
  lr: number;
  /** L2 penalty coefficient (see header). */
  l2: number;
  negatives: number;
  negativeSampling: 'uniform' | 'popularity';
  /** Exponent for popularity-smoothed sampling, p(j) ~ count_j^alpha. */
  popularityAlpha: number;
  /** Re-draw negatives that are positives of the user. */
  rejectPositives: boolean;
  itemBias: boolean;
  /** Std of N(0, std) initialisation of factors. */
  initStd: number;
  seed: number;
  adam: Omit<AdamConfig, 'lr'>;
  patience: number;
  minDelta: number;
  checkpointEvery: number;
  progressIntervalMs: number;
}

export const DEFAULT_MF_CONFIG: MFConfig = {
  dim: 64,
  epochs: 20,
  batchSize: 8192,
  lr: 0.01,
  l2: 1e-5,
  negatives: 1,
  negativeSampling: 'uniform',
  popularityAlpha: 0.75,
  rejectPositives: true,
  itemBias: true,
  initStd: 0.1,
  seed: 42,
  adam: { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, lazy: true },
  patience: 3,
  minDelta: 0,
  checkpointEvery: 0,
  progressIntervalMs: 1000,
};

export interface MFModel {
  kind: 'mf';
  numUsers: number;
  numItems: number;
  dim: number;
  /** numUsers x dim, row-major. */
  userFactors: Float32Array;
  /** numItems x dim, row-major. */
  itemFactors: Float32Array;
  itemBias?: Float32Array;
}

export interface TrainMFOptions {
  /** Continue a checkpointed run (same data and config). */
  resumeFrom?: TrainingState;
  /** Warm start: initial weights (e.g. growEmbeddings of the champion); the optimizer starts fresh. */
  initialWeights?: MFModel;
}

/** Per-interaction weights from event-type codes and a config map, e.g. {view: 1, click: 2, cart: 4, purchase: 8}. */
export function eventTypeWeights(
  eventCodes: ArrayLike<number>,
  codeNames: readonly string[],
  weights: Readonly<Record<string, number>>,
  base?: Float32Array,
): Float32Array {
  const table = codeNames.map((name) => {
    const w = weights[name];
    if (w === undefined) throw new Error(`eventTypeWeights: no weight configured for event type '${name}'`);
    return w;
  });
  const out = new Float32Array(eventCodes.length);
  for (let i = 0; i < out.length; i++) {
    const w = table[eventCodes[i]];
    if (w === undefined) throw new Error(`eventTypeWeights: unknown event code ${eventCodes[i]}`);
    out[i] = base ? base[i] * w : w;
  }
  return out;
}

export function mfToWeights(m: MFModel): Weights {
  const w: Weights = {
    user: { shape: [m.numUsers, m.dim], data: m.userFactors },
    item: { shape: [m.numItems, m.dim], data: m.itemFactors },
  };
  if (m.itemBias) w['itemBias'] = { shape: [m.numItems], data: m.itemBias };
  return w;
}

export function mfFromWeights(w: Weights): MFModel {
  const user = w['user'];
  const item = w['item'];
  if (
    !user ||
    !item ||
    user.shape.length !== 2 ||
    item.shape.length !== 2 ||
    user.shape[1] !== item.shape[1]
  ) {
    throw new Error('mfFromWeights: expected user [U, D] and item [I, D] weights');
  }
  const bias = w['itemBias'];
  if (bias && bias.data.length !== item.shape[0]) throw new Error('mfFromWeights: itemBias length mismatch');
  return {
    kind: 'mf',
    numUsers: user.shape[0],
    numItems: item.shape[0],
    dim: user.shape[1],
    userFactors: user.data,
    itemFactors: item.data,
    itemBias: bias?.data,
  };
}

/** Fresh N(0, initStd) factors from tf.randomNormal with fixed seeds (tfjs draws these in JS: backend-independent). */
export function initMF(
  numUsers: number,
  numItems: number,
  cfg: Pick<MFConfig, 'dim' | 'initStd' | 'seed' | 'itemBias'>,
): MFModel {
  return {
    kind: 'mf',
    numUsers,
    numItems,
    dim: cfg.dim,
    userFactors: randomNormalArray(numUsers * cfg.dim, cfg.initStd, mixSeed(cfg.seed, 1)),
    itemFactors: randomNormalArray(numItems * cfg.dim, cfg.initStd, mixSeed(cfg.seed, 2)),
    itemBias: cfg.itemBias ? new Float32Array(numItems) : undefined,
  };
}

/** Sorted per-user item lists (CSR), used to reject sampled negatives that are positives. */
export interface UserItemsCSR {
  userPtr: Int32Array;
  itemIdx: Int32Array;
}

export function buildUserItemsCSR(userIdx: Int32Array, itemIdx: Int32Array, numUsers: number): UserItemsCSR {
  const counts = new Int32Array(numUsers + 1);
  for (let k = 0; k < userIdx.length; k++) counts[userIdx[k] + 1]++;
  for (let u = 0; u < numUsers; u++) counts[u + 1] += counts[u];
  const ptr = counts.slice();
  const fill = counts.slice(0, numUsers);
  const items = new Int32Array(userIdx.length);
  for (let k = 0; k < userIdx.length; k++) items[fill[userIdx[k]]++] = itemIdx[k];
  // Sort and dedupe each user's list in place, then compact.
  let w = 0;
  const outPtr = new Int32Array(numUsers + 1);
  for (let u = 0; u < numUsers; u++) {
    const seg = items.subarray(ptr[u], ptr[u + 1]).sort();
    outPtr[u] = w;
    for (let k = 0; k < seg.length; k++) if (k === 0 || seg[k] !== seg[k - 1]) items[w++] = seg[k];
  }
  outPtr[numUsers] = w;
  return { userPtr: outPtr, itemIdx: items.slice(0, w) };
}

export function csrContains(csr: UserItemsCSR, user: number, item: number): boolean {
  let lo = csr.userPtr[user];
  let hi = csr.userPtr[user + 1] - 1;
  const a = csr.itemIdx;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = a[mid];
    if (v === item) return true;
    if (v < item) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

function validate(data: Interactions, cfg: MFConfig): void {
  const n = data.userIdx.length;
  if (data.itemIdx.length !== n || (data.weight && data.weight.length !== n)) {
    throw new Error('userIdx, itemIdx and weight must have the same length');
  }
  for (let k = 0; k < n; k++) {
    const u = data.userIdx[k];
    const i = data.itemIdx[k];
    if (u < 0 || u >= data.numUsers || i < 0 || i >= data.numItems) {
      throw new RangeError(
        `interaction ${k}: user ${u} / item ${i} outside [0,${data.numUsers}) x [0,${data.numItems})`,
      );
    }
  }
  if (!(cfg.negatives >= 1) || !Number.isInteger(cfg.negatives))
    throw new Error('negatives must be an integer >= 1');
  if (!(cfg.dim >= 1)) throw new Error('dim must be >= 1');
}

class BprStep implements StepProvider<MFModel> {
  readonly kind = 'mf-bpr';
  readonly numExamples: number;
  readonly dataFingerprint: string;
  private readonly users: RowIndexer;
  private readonly items: RowIndexer;
  private readonly sampler?: AliasSampler;
  private readonly positives?: UserItemsCSR;
  private readonly tf: Tf;

  constructor(
    private readonly data: Interactions,
    private readonly cfg: MFConfig,
    readonly params: ParamStore,
    readonly config: unknown,
  ) {
    this.tf = getTf();
    this.numExamples = data.userIdx.length;
    this.dataFingerprint =
      fingerprintArrays(data.userIdx, data.itemIdx, data.weight) + `:${data.numUsers}x${data.numItems}`;
    this.users = new RowIndexer(data.numUsers);
    this.items = new RowIndexer(data.numItems);
    if (cfg.negativeSampling === 'popularity') {
      const counts = new Float64Array(data.numItems);
      for (let k = 0; k < data.itemIdx.length; k++) counts[data.itemIdx[k]]++;
      // +1 smoothing so never-seen items can still be drawn as negatives.
      for (let i = 0; i < counts.length; i++) counts[i] = Math.pow(counts[i] + 1, cfg.popularityAlpha);
      this.sampler = new AliasSampler(counts);
    }
    if (cfg.rejectPositives) this.positives = buildUserItemsCSR(data.userIdx, data.itemIdx, data.numUsers);
  }

  private drawNegative(user: number, rng: Rng): number {
    const numItems = this.data.numItems;
    let j = 0;
    for (let attempt = 0; attempt < 8; attempt++) {
      j = this.sampler ? this.sampler.sample(rng) : rng.nextInt(numItems);
      if (!this.positives || !csrContains(this.positives, user, j)) return j;
    }
    return j;
  }

  computeGradients(batch: Int32Array, rng: Rng): { loss: number; grads: Map<string, Grad> } {
    const tf = this.tf;
    const { userIdx, itemIdx, weight } = this.data;
    const B = batch.length;
    const K = this.cfg.negatives;
    const D = this.cfg.dim;
    const lu = new Int32Array(B);
    const li = new Int32Array(B);
    const lj = new Int32Array(B * K);
    const w = new Float32Array(B);
    this.users.reset();
    this.items.reset();
    for (let b = 0; b < B; b++) {
      const e = batch[b];
      const u = userIdx[e];
      lu[b] = this.users.add(u);
      li[b] = this.items.add(itemIdx[e]);
      w[b] = weight ? weight[e] : 1;
      for (let k = 0; k < K; k++) lj[b * K + k] = this.items.add(this.drawNegative(u, rng));
    }
    const uRows = this.users.takeRows();
    const iRows = this.items.takeRows();
    const userW = this.params.get('user').data;
    const itemW = this.params.get('item').data;
    const useBias = this.cfg.itemBias;
    const l2 = this.cfg.l2;

    const subU = tf.tensor2d(gatherRows(userW, D, uRows), [uRows.length, D]);
    const subI = tf.tensor2d(gatherRows(itemW, D, iRows), [iRows.length, D]);
    const subB = useBias ? tf.tensor1d(gatherRows(this.params.get('itemBias').data, 1, iRows)) : undefined;
    const tLu = tf.tensor1d(lu, 'int32');
    const tLi = tf.tensor1d(li, 'int32');
    const tLj = tf.tensor1d(lj, 'int32');
    const tW = tf.tensor2d(w, [B, 1]);
    const inputs = subB ? [subU, subI, subB] : [subU, subI];
    const invBK = 1 / (B * K);
    const invB = 1 / B;
    try {
      const { value, grads } = tf.tidy(() =>
        tf.valueAndGrads((...xs: Tensor[]) => {
          const [U, I, bias] = xs;
          const pu = tf.gather(U, tLu); // [B, D]
          const qi = tf.gather(I, tLi); // [B, D]
          const qj = tf.reshape(tf.gather(I, tLj), [B, K, D]);
          let sPos = tf.sum(tf.mul(pu, qi), 1, true); // [B, 1]
          let sNeg = tf.sum(tf.mul(tf.expandDims(pu, 1), qj), 2); // [B, K]
          let reg = tf.add(
            tf.add(tf.sum(tf.square(pu)), tf.sum(tf.square(qi))),
            tf.div(tf.sum(tf.square(qj)), K),
          );
          if (bias) {
            const bi = tf.gather(bias, tLi);
            const bj = tf.reshape(tf.gather(bias, tLj), [B, K]);
            sPos = tf.add(sPos, tf.reshape(bi, [B, 1]));
            sNeg = tf.add(sNeg, bj);
            reg = tf.add(reg, tf.add(tf.sum(tf.square(bi)), tf.div(tf.sum(tf.square(bj)), K)));
          }
          const perPair = tf.softplus(tf.neg(tf.sub(sPos, sNeg))); // [B, K]
          const data = tf.mul(tf.sum(tf.mul(perPair, tW)), invBK);
          return tf.add(data, tf.mul(reg, l2 * invB)) as Scalar;
        })(inputs),
      );
      const loss = value.dataSync()[0];
      const out = new Map<string, Grad>();
      out.set('user', { kind: 'sparse', rows: uRows, values: grads[0].dataSync() as Float32Array });
      out.set('item', { kind: 'sparse', rows: iRows, values: grads[1].dataSync() as Float32Array });
      if (useBias)
        out.set('itemBias', { kind: 'sparse', rows: iRows, values: grads[2].dataSync() as Float32Array });
      value.dispose();
      grads.forEach((g) => g.dispose());
      return { loss, grads: out };
    } finally {
      tf.dispose([subU, subI, tLu, tLi, tLj, tW]);
      if (subB) subB.dispose();
    }
  }

  view(): MFModel {
    return mfFromWeights(this.params.weights);
  }
}

/** The trainable tables of an MF model (shared by the plain and the DP-SGD trainer). */
export function mfParamDefs(numUsers: number, numItems: number, cfg: MFConfig): ParamDef[] {
  const defs: ParamDef[] = [
    { name: 'user', shape: [numUsers, cfg.dim], sparse: true },
    { name: 'item', shape: [numItems, cfg.dim], sparse: true },
  ];
  if (cfg.itemBias) defs.push({ name: 'itemBias', shape: [numItems], sparse: true });
  return defs;
}

/** The config fields that define the run (compared on resume); excludes pure reporting knobs. */
function runIdentity(cfg: MFConfig): Record<string, unknown> {
  const { progressIntervalMs: _p, checkpointEvery: _c, ...rest } = cfg;
  return rest;
}

/**
 * The model training starts from: a copy of `initialWeights` (warm start; tables already grown to this data's
 * ids with growEmbeddings) or a fresh initialisation.
 */
export function startingModel(
  data: { numUsers: number; numItems: number },
  cfg: MFConfig,
  initialWeights?: MFModel,
): MFModel {
  if (!initialWeights) return initMF(data.numUsers, data.numItems, cfg);
  const w = initialWeights;
  if (w.numUsers !== data.numUsers || w.numItems !== data.numItems || w.dim !== cfg.dim) {
    throw new Error(
      `initialWeights are ${w.numUsers}x${w.numItems}x${w.dim}, data/config need ${data.numUsers}x${data.numItems}x${cfg.dim} (use growEmbeddings)`,
    );
  }
  return {
    ...w,
    userFactors: w.userFactors.slice(),
    itemFactors: w.itemFactors.slice(),
    itemBias: cfg.itemBias ? (w.itemBias?.slice() ?? new Float32Array(w.numItems)) : undefined,
  };
}

/**
 * Trains BPR-MF (selects the 'auto' backend if none was selected). Resume with opts.resumeFrom (a state from hooks.onCheckpoint, same data
 * and config); warm start with opts.initialWeights (shapes must match data.numUsers/numItems; see growEmbeddings).
 */
export async function trainMF(
  data: Interactions,
  config: Partial<MFConfig> = {},
  hooks: TrainHooks<MFModel> = {},
  opts: TrainMFOptions = {},
): Promise<TrainResult<MFModel>> {
  const cfg: MFConfig = {
    ...DEFAULT_MF_CONFIG,
    ...config,
    adam: { ...DEFAULT_MF_CONFIG.adam, ...config.adam },
  };
  validate(data, cfg);
  await ensureBackend();
  const model = startingModel(data, cfg, opts.initialWeights);
  const params = new ParamStore(mfParamDefs(data.numUsers, data.numItems, cfg), mfToWeights(model));
  const step = new BprStep(data, cfg, params, runIdentity(cfg));
  const adam = new Adam({ lr: cfg.lr, ...cfg.adam }, params);
  const loop: TrainLoopConfig = {
    epochs: cfg.epochs,
    batchSize: cfg.batchSize,
    seed: cfg.seed,
    patience: cfg.patience,
    minDelta: cfg.minDelta,
    checkpointEvery: cfg.checkpointEvery,
    progressIntervalMs: cfg.progressIntervalMs,
  };
  return runTraining(step, adam, loop, hooks, opts.resumeFrom);
}

/** Continue a checkpointed BPR-MF run; `data` and `config` must be the ones the checkpoint was made with. */
export function resumeMF(
  state: TrainingState,
  data: Interactions,
  config: Partial<MFConfig> = {},
  hooks: TrainHooks<MFModel> = {},
): Promise<TrainResult<MFModel>> {
  return trainMF(data, config, hooks, { resumeFrom: state });
}
