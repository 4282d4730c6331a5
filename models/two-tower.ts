/**
 * Two-tower retrieval model.
 *
 * user tower: [ userEmb[u] * keepU ; sum_h w_h itemEmb[h] over the user's last H items ] -> dense -> L2-normalise,
 *             w_h = historyDecay^age(h) normalised to sum 1 (age 0 = the latest item; historyDecay 1 = plain mean)
 * item tower: [ itemEmb[i] * keep ; catEmb[c] ; priceEmb[p] ; mean(tokenEmb[t] for hashed title tokens) ] -> dense
 *             -> L2-normalise
 *             (recentLength > 0: a second, plain mean over the last recentLength items joins the concatenation)
 * score(u, i) = <user, item> (cosine); training logits are divided by a temperature. With itemBias a learned
 * per-item bias b_i is added to the training logit; serving ranks by <user, item> + T * b_i (ScoringFactors.itemBias).
 *
 * Why the bias: the cosine score is bounded (|logit| <= 1/T), and on popularity-skewed logs it otherwise has to
 * spend that range on popularity as well as on taste.
 *
 * Loss: in-batch sampled softmax. For a batch of B positives (u_b, i_b), logits[a, b] = <u_a, i_b> / T - log q(i_b),
 * cross-entropy with the diagonal as label, each row weighted by the interaction weight. Why in-batch: negatives are
 * free (the other B-1 items) and no item-side sampler has to be maintained. Because items enter batches in proportion
 * to their popularity, the softmax would over-penalise popular items; the log q(i) term (q = training frequency of
 * the item, "logQ correction", Yi et al. 2019) removes that bias. Batch columns holding the same item as the row's
 * positive are masked (they are not negatives).
 *
 * Cold start: items without interactions have an untrained id embedding; the item tower can still place them from
 * category/price/title. During training the id embedding of each example is dropped with probability `idDropout` so
 * the metadata path learns to stand alone, and at inference items never seen in training get keep = 0 (id embedding
 * ignored). Users without history get only their id embedding (new users: none) -- callers should fall back to
 * popularity for them; see hasHistory().
 *
 * The history pooling is what lets the model express "people who just had these items have those next" (the
 * signal item-item co-occurrence lives on, FISM/YouTube-DNN style); the recency decay lets recent items dominate
 * when tastes drift. `userDropout` drops the user-id embedding per example (like idDropout for items), so the
 * user vector cannot lean on a per-user memorised offset that does not carry into the future.
 *
 * Training history is causal: for an interaction, the user tower sees the H interactions *before* it (input order
 * within a user is taken as chronological unless timestamps are given), optionally only those at least
 * historyGapSeconds earlier (causalHistory); inference uses the last H items.
 */
import type { GradSaveFunc, Scalar, Tensor, Tensor2D } from '@tensorflow/tfjs-core';
import { Adam, AdamConfig } from './adam';
import { ensureBackend, getTf, Tf } from './backend';
import { glorotUniform, randomNormalArray } from './init';
import type { Interactions } from './mf';
import { gatherRows, Grad, ParamDef, ParamStore, RowIndexer, Weights } from './params';
import { mixSeed, Rng } from './rng';
import type { ScoringFactors } from './score';
import {
  fingerprintArrays,
  runTraining,
  StepProvider,
  TrainHooks,
  TrainingState,
  TrainResult,
} from './trainer';

// ---------------------------------------------------------------------------------------------------------------
// Item features

export interface ItemFeatures {
  /** Category per item, in [0, numCategories). */
  category: Int32Array;
  numCategories: number;
  /** Price bucket per item, in [0, numPriceBuckets) (see priceBuckets: 0 = unknown price). */
  priceBucket: Int32Array;
  numPriceBuckets: number;
  /** numItems x maxTitleTokens hashed token ids in [0, numTokenBuckets), -1 = padding. */
  titleTokens: Int32Array;
  maxTitleTokens: number;
  numTokenBuckets: number;
}

/** FNV-1a (32-bit) of a string's UTF-16 code units, modulo numBuckets. */
export function hashToken(token: string, numBuckets: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < token.length; i++) h = Math.imul(h ^ token.charCodeAt(i), 0x01000193);
  return (h >>> 0) % numBuckets;
}

/** Lower-cased word tokens (letters/digits, any script), first maxTokens distinct ones, hashed; -1 padded. */
export function hashTitleTokens(
  titles: readonly (string | null | undefined)[],
  numBuckets: number,
  maxTokens: number,
): Int32Array {
  const out = new Int32Array(titles.length * maxTokens).fill(-1);
  titles.forEach((title, i) => {
    if (!title) return;
    const seen = new Set<number>();
    for (const tok of title.toLowerCase().split(/[^\p{L}\p{N}]+/u)) {
      if (!tok) continue;
      const h = hashToken(tok, numBuckets);
      if (seen.has(h)) continue;
      seen.add(h);
      out[i * maxTokens + seen.size - 1] = h;
      if (seen.size === maxTokens) break;
    }
  });
  return out;
}

/**
 * Log-price quantile buckets: bucket 0 is reserved for missing/invalid prices, 1..numBuckets-1 split the valid log
 * prices at quantiles. Returns the boundaries so new items can be bucketed identically (applyPriceBuckets).
 */
export function priceBuckets(
  prices: ArrayLike<number>,
  numBuckets: number,
): { bucket: Int32Array; boundaries: number[] } {
  const logs: number[] = [];
  for (let i = 0; i < prices.length; i++)
    if (prices[i] > 0 && Number.isFinite(prices[i])) logs.push(Math.log(prices[i]));
  logs.sort((a, b) => a - b);
  const boundaries: number[] = [];
  const k = numBuckets - 1;
  for (let b = 1; b < k && logs.length > 0; b++) boundaries.push(logs[Math.floor((b * logs.length) / k)]);
  return { bucket: applyPriceBuckets(prices, boundaries), boundaries };
}

export function applyPriceBuckets(prices: ArrayLike<number>, boundaries: readonly number[]): Int32Array {
  const out = new Int32Array(prices.length);
  for (let i = 0; i < prices.length; i++) {
    const p = prices[i];
    if (!(p > 0) || !Number.isFinite(p)) continue;
    const lp = Math.log(p);
    let lo = 0;
    let hi = boundaries.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (boundaries[mid] <= lp) lo = mid + 1;
      else hi = mid;
    }
    out[i] = 1 + lo;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// History

export interface UserHistory {
  /** H: slots per user. */
  length: number;
  /** numUsers x H item ids, oldest first, -1 padded at the end. */
  items: Int32Array;
  /** Valid entries per user. */
  count: Int32Array;
}

/** Stable order of interactions by (user, timestamp or input position). */
function chronologicalOrder(userIdx: Int32Array, timestamps?: ArrayLike<number>): Int32Array {
  const order = Int32Array.from({ length: userIdx.length }, (_, i) => i);
  order.sort((a, b) => userIdx[a] - userIdx[b] || (timestamps ? timestamps[a] - timestamps[b] : 0) || a - b);
  return order;
}

/** Last H items per user (for inference). Input order within a user is chronological unless timestamps are given. */
export function buildUserHistory(
  userIdx: Int32Array,
  itemIdx: Int32Array,
  numUsers: number,
  H: number,
  timestamps?: ArrayLike<number>,
): UserHistory {
  const items = new Int32Array(numUsers * H).fill(-1);
  const count = new Int32Array(numUsers);
  const order = chronologicalOrder(userIdx, timestamps);
  // Walk backwards so the first H seen per user are its most recent; then place them oldest-first.
  const tmp = new Int32Array(H);
  let k = order.length - 1;
  while (k >= 0) {
    const u = userIdx[order[k]];
    let c = 0;
    while (k >= 0 && userIdx[order[k]] === u) {
      if (c < H) tmp[c++] = itemIdx[order[k]];
      k--;
    }
    if (u >= 0 && u < numUsers) {
      for (let q = 0; q < c; q++) items[u * H + q] = tmp[c - 1 - q];
      count[u] = c;
    }
  }
  return { length: H, items, count };
}

/**
 * Causal training history of the interaction at position `p` of the (user, time)-sorted arrays, whose user's first
 * position is `userStart`: the up to H items at positions [userStart, p) with time <= time[p] - gap, written oldest
 * first into out[offset, offset + count); returns count. Without times (or gap <= 0) it is the H items right before
 * p. Example (H 2, gap 10): times [0, 5, 20, 25], p = 3 -> positions 0..1 (times <= 15) -> items [s0, s1].
 */
export function causalHistory(
  sortedItems: ArrayLike<number>,
  sortedTimes: ArrayLike<number> | undefined,
  userStart: number,
  p: number,
  H: number,
  gap: number,
  out: Int32Array,
  offset = 0,
): number {
  let end = p;
  if (sortedTimes && gap > 0) {
    const limit = sortedTimes[p] - gap;
    let lo = userStart;
    let hi = p;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sortedTimes[mid] <= limit) lo = mid + 1;
      else hi = mid;
    }
    end = lo;
  }
  const from = Math.max(userStart, end - H);
  for (let q = from; q < end; q++) out[offset + q - from] = sortedItems[q];
  return end - from;
}

export function hasHistory(h: UserHistory, user: number): boolean {
  return user >= 0 && user < h.count.length && h.count[user] > 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Model

export interface TwoTowerConfig {
  embDim: number;
  outDim: number;
  historyLength: number;
  temperature: number;
  /** Probability of dropping the item-id embedding per training example (teaches the metadata path). */
  idDropout: number;
  /** Probability of dropping the user-id embedding per training example (the history path must stand alone). */
  userDropout: number;
  /** History pooling weight per step back in time (1: plain mean; 0.8: the latest item counts 1, the one before 0.8, ...). */
  historyDecay: number;
  /**
   * Training only: a positive at time t sees the user's history up to t - gap (seconds; needs timestamps). 0 = the
   * items right before it (same session included). Serving predicts items in later sessions from the history up
   * to a cutoff, so a gap of about a session makes the training examples look like the serving question.
   */
  historyGapSeconds: number;
  /**
   * Items in a second, short history pool (0: off): the mean of the user's last `recentLength` items, beside the
   * mean of the last `historyLength`, so the user tower sees both long-run taste and what the user just did.
   */
  recentLength: number;
  /** A learned per-item bias added to the logit (score = <user, item> / T + b_i); serves as itemBias = T * b_i. */
  itemBias: boolean;
  logQCorrection: boolean;
  /**
   * Multiplier of the log q(i) correction (1: unbiased sampled softmax). Above 1 the model keeps some of the
   * popularity prior, which the ranking metrics reward on popularity-skewed logs.
   */
  logQScale: number;
  /** L2 on the id embeddings used by a batch. */
  l2: number;
  initStd: number;
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  adam: Omit<AdamConfig, 'lr'>;
  patience: number;
  minDelta: number;
  checkpointEvery: number;
  progressIntervalMs: number;
}

export const DEFAULT_TWO_TOWER_CONFIG: TwoTowerConfig = {
  embDim: 32,
  outDim: 32,
  historyLength: 20,
  temperature: 0.1,
  idDropout: 0.2,
  userDropout: 0,
  historyDecay: 1,
  historyGapSeconds: 0,
  recentLength: 0,
  itemBias: false,
  logQCorrection: true,
  logQScale: 1,
  l2: 0,
  initStd: 0.05,
  epochs: 10,
  batchSize: 512,
  lr: 0.005,
  seed: 42,
  adam: { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, lazy: true },
  patience: 3,
  minDelta: 0,
  checkpointEvery: 0,
  progressIntervalMs: 1000,
};

/** What defines the shapes of a two-tower model. */
export interface TwoTowerArch {
  numUsers: number;
  numItems: number;
  embDim: number;
  outDim: number;
  historyLength: number;
  numCategories: number;
  numPriceBuckets: number;
  numTokenBuckets: number;
  maxTitleTokens: number;
  /** History pooling decay (see TwoTowerConfig.historyDecay); absent in models saved before it existed: 1. */
  historyDecay?: number;
  /** Short recent-history pool (TwoTowerConfig.recentLength); absent in models saved before it existed: 0. */
  recentLength?: number;
  /** Per-item logit bias (absent in models saved before it existed: none), and the temperature it is scaled by. */
  itemBias?: boolean;
  temperature?: number;
}

export interface TwoTowerModel {
  kind: 'two-tower';
  arch: TwoTowerArch;
  /** userEmb, itemEmb, catEmb, priceEmb, tokenEmb, userW, userB, itemW, itemB. */
  weights: Weights;
  /** 1 for items that had training interactions (their id embedding is used at inference). */
  itemSeen: Uint8Array;
}

/** Width of the user tower's input: user id, history mean and (recentLength > 0) the recent-items mean. */
function userInputWidth(a: TwoTowerArch): number {
  return ((a.recentLength ?? 0) > 0 ? 3 : 2) * a.embDim;
}

export function twoTowerParamDefs(a: TwoTowerArch): ParamDef[] {
  const E = a.embDim;
  const O = a.outDim;
  return [
    { name: 'userEmb', shape: [a.numUsers, E], sparse: true },
    { name: 'itemEmb', shape: [a.numItems, E], sparse: true },
    { name: 'catEmb', shape: [a.numCategories, E], sparse: true },
    { name: 'priceEmb', shape: [a.numPriceBuckets, E], sparse: true },
    { name: 'tokenEmb', shape: [a.numTokenBuckets, E], sparse: true },
    { name: 'userW', shape: [userInputWidth(a), O], sparse: false },
    { name: 'userB', shape: [O], sparse: false },
    { name: 'itemW', shape: [4 * E, O], sparse: false },
    { name: 'itemB', shape: [O], sparse: false },
    ...(a.itemBias ? [{ name: 'itemBias', shape: [a.numItems, 1], sparse: true }] : []),
  ];
}

export function initTwoTower(a: TwoTowerArch, initStd: number, seed: number): TwoTowerModel {
  const E = a.embDim;
  const O = a.outDim;
  const w: Weights = {};
  let s = 0;
  for (const d of twoTowerParamDefs(a)) {
    const size = d.shape.reduce((x, y) => x * y, 1);
    s++;
    let data: Float32Array;
    if (d.name === 'userW') data = glorotUniform(userInputWidth(a), O, mixSeed(seed, s));
    else if (d.name === 'itemW') data = glorotUniform(4 * E, O, mixSeed(seed, s));
    else if (d.name === 'userB' || d.name === 'itemB' || d.name === 'itemBias') data = new Float32Array(size);
    else data = randomNormalArray(size, initStd, mixSeed(seed, s));
    w[d.name] = { shape: d.shape.slice(), data };
  }
  return { kind: 'two-tower', arch: { ...a }, weights: w, itemSeen: new Uint8Array(a.numItems) };
}

// ---------------------------------------------------------------------------------------------------------------
// Towers (shared by training and inference). All index tensors are *local* to the uploaded sub-tables; padding
// indices point at an extra all-zero row appended to the sub-table, so masked means need no mask multiply.

interface UserTowerInputs {
  user: Tensor; // int32 [B]
  userKeep: Tensor; // float [B, 1]: 0 drops the user-id embedding
  hist: Tensor; // int32 [B*H]
  histWeight: Tensor; // float [B, H]: pooling weights (0 on padding), summing to 1 where there is history
  recentWeight?: Tensor; // float [B, H]: 1/r on the last r = min(recentLength, count) slots (recentLength > 0)
}

/** Recent-pool weights of a `count`-item history in an H-slot row: 1/r on the last r = min(R, count) valid slots. */
export function recentWeights(count: number, H: number, R: number, out: Float32Array, offset: number): void {
  const r = Math.min(R, count);
  for (let q = 0; q < H; q++) out[offset + q] = q < count && q >= count - r ? 1 / r : 0;
}

/**
 * Pooling weights of a history of `count` items in slots [0, count) (oldest first) of an H-slot row:
 * decay^age normalised to sum 1, age 0 for the latest; padding slots get 0. Written into out[offset..offset+H).
 */
export function historyWeights(
  count: number,
  H: number,
  decay: number,
  out: Float32Array,
  offset: number,
): void {
  let sum = 0;
  for (let q = 0; q < H; q++) {
    const w = q < count ? Math.pow(decay, count - 1 - q) : 0;
    out[offset + q] = w;
    sum += w;
  }
  if (sum > 0) for (let q = 0; q < count; q++) out[offset + q] /= sum;
}

interface ItemTowerInputs {
  item: Tensor; // int32 [B]
  idKeep: Tensor; // float [B, 1]
  cat: Tensor; // int32 [B]
  price: Tensor; // int32 [B]
  tok: Tensor; // int32 [B*T]
  tokDenom: Tensor; // float [B, 1]
}

/**
 * Row-wise log-sum-exp with an analytic gradient (dy * softmax(x)). tf.logSumExp differentiates through max/exp/log
 * piecewise (a B x B max-mask and extra exps per step); the closed form needs one Softmax kernel.
 */
function rowLogSumExp(tf: Tf, x: Tensor): Tensor {
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

function l2normalize(tf: Tf, x: Tensor): Tensor {
  return tf.div(x, tf.sqrt(tf.add(tf.sum(tf.square(x), 1, true), 1e-12)));
}

function userTower(
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

function itemTower(
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

/** Collects sub-table rows for one batch; index -1 maps to the zero pad row (local id = count, resolved later). */
class SubTables {
  readonly user: RowIndexer;
  readonly item: RowIndexer;
  readonly cat: RowIndexer;
  readonly price: RowIndexer;
  readonly tok: RowIndexer;

  constructor(a: TwoTowerArch) {
    this.user = new RowIndexer(a.numUsers);
    this.item = new RowIndexer(a.numItems);
    this.cat = new RowIndexer(a.numCategories);
    this.price = new RowIndexer(a.numPriceBuckets);
    this.tok = new RowIndexer(a.numTokenBuckets);
  }

  reset(): void {
    for (const r of [this.user, this.item, this.cat, this.price, this.tok]) r.reset();
  }
}

const PAD = -1;

/** Replaces PAD placeholders with the pad row index (= number of real rows). */
function resolvePads(local: Int32Array, padRow: number): Int32Array {
  for (let k = 0; k < local.length; k++) if (local[k] === PAD) local[k] = padRow;
  return local;
}

function validateFeatures(f: ItemFeatures, numItems: number): void {
  if (f.category.length !== numItems || f.priceBucket.length !== numItems) {
    throw new Error('item features must have one entry per item');
  }
  if (f.titleTokens.length !== numItems * f.maxTitleTokens)
    throw new Error('titleTokens must be numItems x maxTitleTokens');
  for (let i = 0; i < numItems; i++) {
    if (f.category[i] < 0 || f.category[i] >= f.numCategories)
      throw new RangeError(`item ${i}: category out of range`);
    if (f.priceBucket[i] < 0 || f.priceBucket[i] >= f.numPriceBuckets)
      throw new RangeError(`item ${i}: price bucket out of range`);
  }
  for (let k = 0; k < f.titleTokens.length; k++) {
    const t = f.titleTokens[k];
    if (t !== -1 && (t < 0 || t >= f.numTokenBuckets)) throw new RangeError(`title token ${t} out of range`);
  }
}

/** Fills item-tower local indices for the given global items (one per row). */
function fillItemSide(
  st: SubTables,
  f: ItemFeatures,
  items: ArrayLike<number>,
): { item: Int32Array; cat: Int32Array; price: Int32Array; tok: Int32Array; tokDenom: Float32Array } {
  const B = items.length;
  const T = f.maxTitleTokens;
  const item = new Int32Array(B);
  const cat = new Int32Array(B);
  const price = new Int32Array(B);
  const tok = new Int32Array(B * T);
  const tokDenom = new Float32Array(B);
  for (let b = 0; b < B; b++) {
    const i = items[b];
    item[b] = st.item.add(i);
    cat[b] = st.cat.add(f.category[i]);
    price[b] = st.price.add(f.priceBucket[i]);
    let c = 0;
    for (let t = 0; t < T; t++) {
      const h = f.titleTokens[i * T + t];
      tok[b * T + t] = h < 0 ? PAD : st.tok.add(h);
      if (h >= 0) c++;
    }
    tokDenom[b] = Math.max(1, c);
  }
  return { item, cat, price, tok, tokDenom };
}

interface Uploaded {
  tensors: Tensor[];
  subs: Record<string, { tensor: Tensor; rows: Int32Array }>;
}

/** Uploads the sub-tables (with a zero pad row where padding is used) and the dense params. */
function uploadParams(tf: Tf, params: ParamStore, st: SubTables, E: number, need: Set<string>): Uploaded {
  const tensors: Tensor[] = [];
  const subs: Uploaded['subs'] = {};
  const table = (name: string, idx: RowIndexer, pad: boolean, width = E): void => {
    if (!need.has(name)) return;
    const rows = idx.takeRows();
    const data = gatherRows(params.get(name).data, width, rows, pad ? 1 : 0);
    const t = tf.tensor2d(data, [rows.length + (pad ? 1 : 0), width]);
    tensors.push(t);
    subs[name] = { tensor: t, rows };
  };
  table('userEmb', st.user, false);
  table('itemEmb', st.item, true);
  table('catEmb', st.cat, false);
  table('priceEmb', st.price, false);
  table('tokenEmb', st.tok, true);
  table('itemBias', st.item, true, 1);
  for (const name of ['userW', 'userB', 'itemW', 'itemB']) {
    if (!need.has(name)) continue;
    const p = params.get(name);
    const t = tf.tensor(p.data, p.shape);
    tensors.push(t);
    subs[name] = { tensor: t, rows: new Int32Array(0) };
  }
  return { tensors, subs };
}

// ---------------------------------------------------------------------------------------------------------------
// Training

export interface TwoTowerData extends Interactions {
  items: ItemFeatures;
  /** Optional event times (any monotone unit) to order each user's history; default: input order. */
  timestamps?: Float64Array;
}

export interface TrainTwoTowerOptions {
  resumeFrom?: TrainingState;
  /** Warm start (shapes must match the data); optimizer starts fresh. */
  initialWeights?: TwoTowerModel;
}

class InBatchSoftmaxStep implements StepProvider<TwoTowerModel> {
  readonly kind = 'two-tower-inbatch';
  readonly numExamples: number;
  readonly dataFingerprint: string;
  private readonly st: SubTables;
  private readonly sortedItems: Int32Array;
  private readonly sortedTimes: Float64Array | undefined;
  private readonly pos: Int32Array;
  private readonly userStart: Int32Array;
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
    // Causal history: position of each example in (user, time) order.
    const order = chronologicalOrder(data.userIdx, data.timestamps);
    this.sortedItems = new Int32Array(n);
    this.sortedTimes = data.timestamps ? new Float64Array(n) : undefined;
    this.pos = new Int32Array(n);
    this.userStart = new Int32Array(data.numUsers).fill(-1);
    for (let p = 0; p < n; p++) {
      const e = order[p];
      this.sortedItems[p] = data.itemIdx[e];
      if (this.sortedTimes && data.timestamps) this.sortedTimes[p] = data.timestamps[e];
      this.pos[e] = p;
      const u = data.userIdx[e];
      if (this.userStart[u] < 0) this.userStart[u] = p;
    }
    const counts = new Float64Array(data.numItems);
    for (let k = 0; k < n; k++) counts[data.itemIdx[k]]++;
    this.logQ = new Float32Array(data.numItems);
    this.itemSeen = new Uint8Array(data.numItems);
    for (let i = 0; i < data.numItems; i++) {
      this.logQ[i] = counts[i] > 0 ? Math.log(counts[i] / n) : 0;
      // Warm start: items trained by the previous model keep their (trained) id embedding at inference.
      this.itemSeen[i] = counts[i] > 0 || initialSeen?.[i] === 1 ? 1 : 0;
    }
  }

  computeGradients(batch: Int32Array, rng: Rng): { loss: number; grads: Map<string, Grad> } {
    const tf = this.tf;
    const { userIdx, itemIdx, weight, items: f } = this.data;
    const B = batch.length;
    const H = this.arch.historyLength;
    const T = f.maxTitleTokens;
    const E = this.arch.embDim;
    const st = this.st;
    st.reset();
    const lu = new Int32Array(B);
    const hist = new Int32Array(B * H);
    const histWeight = new Float32Array(B * H);
    const R = this.arch.recentLength ?? 0;
    const recentWeight = R > 0 ? new Float32Array(B * H) : undefined;
    const keep = new Float32Array(B);
    const userKeep = new Float32Array(B);
    const decay = this.cfg.historyDecay;
    const gap = this.cfg.historyGapSeconds;
    const past = new Int32Array(H);
    const w = new Float32Array(B);
    const targets = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      const e = batch[b];
      const u = userIdx[e];
      lu[b] = st.user.add(u);
      targets[b] = itemIdx[e];
      w[b] = weight ? weight[e] : 1;
      keep[b] = rng.nextFloat() < this.cfg.idDropout ? 0 : 1;
      // Drawn only when on, so runs without user dropout replay the same random stream as before it existed.
      userKeep[b] = this.cfg.userDropout > 0 && rng.nextFloat() < this.cfg.userDropout ? 0 : 1;
      const c = causalHistory(
        this.sortedItems,
        this.sortedTimes,
        this.userStart[u],
        this.pos[e],
        H,
        gap,
        past,
      );
      for (let q = 0; q < H; q++) hist[b * H + q] = q < c ? st.item.add(past[q]) : PAD;
      historyWeights(c, H, decay, histWeight, b * H);
      if (recentWeight) recentWeights(c, H, R, recentWeight, b * H);
    }
    const side = fillItemSide(st, f, targets);
    resolvePads(hist, st.item.count);
    resolvePads(side.tok, st.tok.count);

    // Logit offsets: -log q(item) per column (logQ) and -1e9 where a column repeats the row's positive.
    const colOffset = new Float32Array(B);
    if (this.cfg.logQCorrection)
      for (let b = 0; b < B; b++) colOffset[b] = -this.cfg.logQScale * this.logQ[targets[b]];
    let dupMask: Float32Array | undefined;
    const firstAt = new Map<number, number>();
    for (let b = 0; b < B; b++) {
      const prev = firstAt.get(targets[b]);
      if (prev === undefined) {
        firstAt.set(targets[b], b);
        continue;
      }
      dupMask ??= new Float32Array(B * B);
      for (let a = 0; a < B; a++) {
        if (a !== b && targets[a] === targets[b]) {
          dupMask[a * B + b] = -1e9;
          dupMask[b * B + a] = -1e9;
        }
      }
    }

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
      user: c(tf.tensor1d(lu, 'int32')),
      userKeep: c(tf.tensor2d(userKeep, [B, 1])),
      hist: c(tf.tensor1d(hist, 'int32')),
      histWeight: c(tf.tensor2d(histWeight, [B, H])),
      ...(recentWeight ? { recentWeight: c(tf.tensor2d(recentWeight, [B, H])) } : {}),
    };
    const iIn: ItemTowerInputs = {
      item: c(tf.tensor1d(side.item, 'int32')),
      idKeep: c(tf.tensor2d(keep, [B, 1])),
      cat: c(tf.tensor1d(side.cat, 'int32')),
      price: c(tf.tensor1d(side.price, 'int32')),
      tok: c(tf.tensor1d(side.tok, 'int32')),
      tokDenom: c(tf.tensor2d(side.tokDenom, [B, 1])),
    };
    const colOff = c(tf.tensor2d(colOffset, [1, B]));
    const mask = dupMask ? c(tf.tensor2d(dupMask, [B, B])) : undefined;
    const wT = c(tf.tensor1d(w));
    const invT = 1 / this.cfg.temperature;
    const l2 = this.cfg.l2;
    const inputs = names.map((n) => up.subs[n].tensor);
    try {
      const { value, grads } = tf.tidy(() =>
        tf.valueAndGrads((...xs: Tensor[]) => {
          const [U, I, C, P, Tk, uW, uB, iW, iB, Ib] = xs;
          const uv = userTower(tf, U, I, uW, uB, uIn, B, H, E);
          const iv = itemTower(tf, I, C, P, Tk, iW, iB, iIn, B, T, E);
          // Column offsets: -log q and, with itemBias, the item's learned bias.
          const off = Ib ? tf.add(colOff, tf.reshape(tf.gather(Ib, iIn.item), [1, B])) : colOff;
          // Explicit transpose: tfjs-wasm's matmul with transposeB measured ~5x slower.
          let logits = tf.add(tf.mul(tf.matMul(uv, tf.transpose(iv)), invT), off);
          if (mask) logits = tf.add(logits, mask);
          const diag = tf.add(tf.mul(tf.sum(tf.mul(uv, iv), 1), invT), tf.reshape(off, [B]));
          const perRow = tf.sub(rowLogSumExp(tf, logits), diag);
          let loss = tf.div(tf.sum(tf.mul(perRow, wT)), B);
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

function runIdentity(cfg: TwoTowerConfig): Record<string, unknown> {
  const { progressIntervalMs: _p, checkpointEvery: _c, ...rest } = cfg;
  return rest;
}

/** Trains the two-tower model (selects the 'auto' backend if none was selected). */
export async function trainTwoTower(
  data: TwoTowerData,
  config: Partial<TwoTowerConfig> = {},
  hooks: TrainHooks<TwoTowerModel> = {},
  opts: TrainTwoTowerOptions = {},
): Promise<TrainResult<TwoTowerModel>> {
  const cfg: TwoTowerConfig = {
    ...DEFAULT_TWO_TOWER_CONFIG,
    ...config,
    adam: { ...DEFAULT_TWO_TOWER_CONFIG.adam, ...config.adam },
  };
  const n = data.userIdx.length;
  if (data.itemIdx.length !== n || (data.weight && data.weight.length !== n)) {
    throw new Error('userIdx, itemIdx and weight must have the same length');
  }
  for (let k = 0; k < n; k++) {
    if (
      data.userIdx[k] < 0 ||
      data.userIdx[k] >= data.numUsers ||
      data.itemIdx[k] < 0 ||
      data.itemIdx[k] >= data.numItems
    ) {
      throw new RangeError(`interaction ${k} out of range`);
    }
  }
  validateFeatures(data.items, data.numItems);
  await ensureBackend();
  const f = data.items;
  const arch: TwoTowerArch = {
    numUsers: data.numUsers,
    numItems: data.numItems,
    embDim: cfg.embDim,
    outDim: cfg.outDim,
    historyLength: cfg.historyLength,
    numCategories: f.numCategories,
    numPriceBuckets: f.numPriceBuckets,
    numTokenBuckets: f.numTokenBuckets,
    maxTitleTokens: f.maxTitleTokens,
    historyDecay: cfg.historyDecay,
    ...(cfg.recentLength > 0 ? { recentLength: cfg.recentLength } : {}),
    ...(cfg.itemBias ? { itemBias: true, temperature: cfg.temperature } : {}),
  };
  let weights: Weights;
  if (opts.initialWeights) {
    const a = opts.initialWeights.arch;
    const keys: (keyof TwoTowerArch)[] = [
      'numUsers',
      'numItems',
      'embDim',
      'outDim',
      'numCategories',
      'numPriceBuckets',
      'numTokenBuckets',
    ];
    for (const k of keys) {
      if (a[k] !== arch[k])
        throw new Error(`initialWeights.${k} = ${a[k]}, data/config need ${arch[k]} (use growTwoTower)`);
    }
    weights = Object.fromEntries(
      Object.entries(opts.initialWeights.weights).map(([k, v]) => [
        k,
        { shape: v.shape.slice(), data: v.data.slice() },
      ]),
    );
    // A champion saved without (or with) the item bias: start the bias at zero (or drop it).
    if (arch.itemBias && !weights['itemBias'])
      weights['itemBias'] = { shape: [arch.numItems, 1], data: new Float32Array(arch.numItems) };
    if (!arch.itemBias) delete weights['itemBias'];
    // A champion without (or with another) recent-items pool: the user tower's dense layer is re-initialised.
    if ((opts.initialWeights.arch.recentLength ?? 0) > 0 !== (arch.recentLength ?? 0) > 0) {
      const fresh = initTwoTower(arch, cfg.initStd, cfg.seed).weights;
      weights['userW'] = fresh['userW'];
      weights['userB'] = fresh['userB'];
    }
  } else {
    weights = initTwoTower(arch, cfg.initStd, cfg.seed).weights;
  }
  const params = new ParamStore(twoTowerParamDefs(arch), weights);
  const step = new InBatchSoftmaxStep(
    data,
    cfg,
    arch,
    params,
    runIdentity(cfg),
    opts.initialWeights?.itemSeen,
  );
  const adam = new Adam({ lr: cfg.lr, ...cfg.adam }, params);
  return runTraining(
    step,
    adam,
    {
      epochs: cfg.epochs,
      batchSize: cfg.batchSize,
      seed: cfg.seed,
      patience: cfg.patience,
      minDelta: cfg.minDelta,
      checkpointEvery: cfg.checkpointEvery,
      progressIntervalMs: cfg.progressIntervalMs,
    },
    hooks,
    opts.resumeFrom,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Inference

export interface TwoTowerEmbeddings extends ScoringFactors {
  /** 1 where the user has at least one history item (others should get the popularity fallback). */
  userHasHistory: Uint8Array;
}

/**
 * User and item vectors for scoring (score.ts). Items not seen in training (model.itemSeen = 0), or listed in
 * opts.coldItems, are embedded from metadata only.
 */
export function twoTowerEmbeddings(
  model: TwoTowerModel,
  history: UserHistory,
  items: ItemFeatures,
  opts: { blockSize?: number; coldItems?: Uint8Array } = {},
): TwoTowerEmbeddings {
  const tf = getTf();
  const a = model.arch;
  const E = a.embDim;
  const O = a.outDim;
  const H = a.historyLength;
  const T = items.maxTitleTokens;
  if (history.count.length !== a.numUsers || history.length !== H) {
    throw new Error(`history must cover ${a.numUsers} users with ${H} slots (buildUserHistory)`);
  }
  if (T !== a.maxTitleTokens) throw new Error('maxTitleTokens differs from the model');
  validateFeatures(items, a.numItems);
  const params = new ParamStore(twoTowerParamDefs(a), model.weights);
  const st = new SubTables(a);
  const blockSize = opts.blockSize ?? 4096;
  const userVecs = new Float32Array(a.numUsers * O);
  const itemVecs = new Float32Array(a.numItems * O);
  const userHasHistory = new Uint8Array(a.numUsers);
  const bias = a.itemBias ? model.weights['itemBias'].data : undefined;
  const itemBias = bias ? new Float32Array(a.numItems) : undefined;

  for (let start = 0; start < a.numUsers; start += blockSize) {
    const B = Math.min(blockSize, a.numUsers - start);
    st.reset();
    const lu = new Int32Array(B);
    const hist = new Int32Array(B * H);
    const weight = new Float32Array(B * H);
    const R = a.recentLength ?? 0;
    const recent = R > 0 ? new Float32Array(B * H) : undefined;
    for (let b = 0; b < B; b++) {
      const u = start + b;
      lu[b] = st.user.add(u);
      const c = history.count[u];
      userHasHistory[u] = c > 0 ? 1 : 0;
      for (let q = 0; q < H; q++) hist[b * H + q] = q < c ? st.item.add(history.items[u * H + q]) : PAD;
      historyWeights(c, H, a.historyDecay ?? 1, weight, b * H);
      if (recent) recentWeights(c, H, R, recent, b * H);
    }
    resolvePads(hist, st.item.count);
    const up = uploadParams(tf, params, st, E, new Set(['userEmb', 'itemEmb', 'userW', 'userB']));
    const x: UserTowerInputs = {
      user: tf.tensor1d(lu, 'int32'),
      userKeep: tf.ones([B, 1]),
      hist: tf.tensor1d(hist, 'int32'),
      histWeight: tf.tensor2d(weight, [B, H]),
      ...(recent ? { recentWeight: tf.tensor2d(recent, [B, H]) } : {}),
    };
    const v = tf.tidy(() =>
      userTower(
        tf,
        up.subs['userEmb'].tensor,
        up.subs['itemEmb'].tensor,
        up.subs['userW'].tensor,
        up.subs['userB'].tensor,
        x,
        B,
        H,
        E,
      ),
    );
    userVecs.set(v.dataSync() as Float32Array, start * O);
    tf.dispose([
      v,
      x.user,
      x.userKeep,
      x.hist,
      x.histWeight,
      ...(x.recentWeight ? [x.recentWeight] : []),
      ...up.tensors,
    ]);
  }

  for (let start = 0; start < a.numItems; start += blockSize) {
    const B = Math.min(blockSize, a.numItems - start);
    st.reset();
    const ids = Int32Array.from({ length: B }, (_, b) => start + b);
    const keep = new Float32Array(B);
    for (let b = 0; b < B; b++) {
      const i = start + b;
      keep[b] = model.itemSeen[i] === 1 && !(opts.coldItems && opts.coldItems[i] === 1) ? 1 : 0;
      // Ranking by <u, i> + T b_i is ranking by the training logit; cold items get no (untrained) bias.
      if (itemBias && bias) itemBias[i] = keep[b] * (a.temperature ?? 1) * bias[i];
    }
    const side = fillItemSide(st, items, ids);
    resolvePads(side.tok, st.tok.count);
    const up = uploadParams(
      tf,
      params,
      st,
      E,
      new Set(['itemEmb', 'catEmb', 'priceEmb', 'tokenEmb', 'itemW', 'itemB']),
    );
    const x: ItemTowerInputs = {
      item: tf.tensor1d(side.item, 'int32'),
      idKeep: tf.tensor2d(keep, [B, 1]),
      cat: tf.tensor1d(side.cat, 'int32'),
      price: tf.tensor1d(side.price, 'int32'),
      tok: tf.tensor1d(side.tok, 'int32'),
      tokDenom: tf.tensor2d(side.tokDenom, [B, 1]),
    };
    const s = up.subs;
    const v = tf.tidy(() =>
      itemTower(
        tf,
        s['itemEmb'].tensor,
        s['catEmb'].tensor,
        s['priceEmb'].tensor,
        s['tokenEmb'].tensor,
        s['itemW'].tensor,
        s['itemB'].tensor,
        x,
        B,
        T,
        E,
      ),
    ) as Tensor2D;
    itemVecs.set(v.dataSync() as Float32Array, start * O);
    tf.dispose([v, x.item, x.idKeep, x.cat, x.price, x.tok, x.tokDenom, ...up.tensors]);
  }
  return {
    numUsers: a.numUsers,
    numItems: a.numItems,
    dim: O,
    userFactors: userVecs,
    itemFactors: itemVecs,
    ...(itemBias ? { itemBias } : {}),
    userHasHistory,
  };
}

/**
 * Warm start for two-tower: grows the user/item id tables (rows copied, new rows N(0, initStd^2)); the metadata
 * tables and dense layers are reused as is. itemSeen of new items is 0 until they are trained on.
 */
export function growTwoTower(
  model: TwoTowerModel,
  newNumUsers: number,
  newNumItems: number,
  seed: number,
  initStd = 0.01,
): TwoTowerModel {
  const a = model.arch;
  if (newNumUsers < a.numUsers || newNumItems < a.numItems)
    throw new Error('cannot shrink (ids are append-only)');
  const rng = new Rng(seed);
  const grow = (name: string, oldRows: number, newRows: number): Float32Array => {
    const old = model.weights[name].data;
    const out = new Float32Array(newRows * a.embDim);
    out.set(old);
    for (let k = oldRows * a.embDim; k < out.length; k++) {
      const u1 = 1 - rng.nextFloat();
      const u2 = rng.nextFloat();
      out[k] = initStd * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    }
    return out;
  };
  const weights: Weights = {};
  for (const [k, v] of Object.entries(model.weights))
    weights[k] = { shape: v.shape.slice(), data: v.data.slice() };
  weights['userEmb'] = { shape: [newNumUsers, a.embDim], data: grow('userEmb', a.numUsers, newNumUsers) };
  weights['itemEmb'] = { shape: [newNumItems, a.embDim], data: grow('itemEmb', a.numItems, newNumItems) };
  if (weights['itemBias']) {
    const b = new Float32Array(newNumItems);
    b.set(model.weights['itemBias'].data);
    weights['itemBias'] = { shape: [newNumItems, 1], data: b };
  }
  const itemSeen = new Uint8Array(newNumItems);
  itemSeen.set(model.itemSeen);
  return {
    kind: 'two-tower',
    arch: { ...a, numUsers: newNumUsers, numItems: newNumItems },
    weights,
    itemSeen,
  };
}
