/**
 * Host-side batch assembly: which rows of each table a batch touches (sub-tables), the local indices the towers
 * gather with, and the upload of those rows (plus the dense layers) as tensors. See params.ts for why master
 * weights stay on the host and only a batch's rows travel.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import type { Tf } from '../backend';
import { gatherRows, ParamStore, RowIndexer } from '../params';
import type { Rng } from '../rng';
import type { TwoTowerArch, TwoTowerData } from './config';
import type { ItemFeatures } from './features';
import { CausalIndex, causalHistory, historyWeights, recentWeights } from './history';

/** Collects sub-table rows for one batch; index -1 maps to the zero pad row (local id = count, resolved later). */
export class SubTables {
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

export const PAD = -1;

/** Replaces PAD placeholders with the pad row index (= number of real rows). */
export function resolvePads(local: Int32Array, padRow: number): Int32Array {
  for (let k = 0; k < local.length; k++) if (local[k] === PAD) local[k] = padRow;
  return local;
}

export interface ItemSide {
  item: Int32Array;
  cat: Int32Array;
  price: Int32Array;
  /** B x T local token rows, PAD (later the pad row) where the title has fewer tokens. */
  tok: Int32Array;
  /** Number of real tokens per row (at least 1), the title mean's denominator. */
  tokDenom: Float32Array;
}

/** Fills item-tower local indices for the given global items (one per row). */
export function fillItemSide(st: SubTables, f: ItemFeatures, items: ArrayLike<number>): ItemSide {
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

/** One training batch in local (sub-table) indices, with everything random already drawn. */
export interface TrainingBatch {
  B: number;
  /** Local user row per example. */
  user: Int32Array;
  /** 1, or 0 where user dropout drops the user-id embedding. */
  userKeep: Float32Array;
  /** B x H local item rows of the causal history (pad row past its end). */
  hist: Int32Array;
  histWeight: Float32Array;
  recentWeight?: Float32Array;
  /** 1, or 0 where id dropout drops the positive item's id embedding. */
  idKeep: Float32Array;
  /** Interaction weight per example. */
  weight: Float32Array;
  /** Global item id of each example's positive. */
  targets: Int32Array;
  side: ItemSide;
}

/** What a gradient computation needs besides the batch: widths and the loss's hyper-parameters. */
export interface StepShape {
  E: number;
  H: number;
  T: number;
  invT: number;
  l2: number;
  itemBias: boolean;
}

export interface BatchOptions {
  historyLength: number;
  recentLength: number;
  historyDecay: number;
  historyGapSeconds: number;
  idDropout: number;
  userDropout: number;
}

/**
 * Assembles the examples `batch` (ids into data) into local indices of `st` (reset first). Random draws, per
 * example in batch order: id dropout, then user dropout only when it is on.
 */
export function assembleTrainingBatch(
  st: SubTables,
  data: TwoTowerData,
  causal: CausalIndex,
  o: BatchOptions,
  batch: Int32Array,
  rng: Rng,
): TrainingBatch {
  const { userIdx, itemIdx, weight } = data;
  const B = batch.length;
  const H = o.historyLength;
  const R = o.recentLength;
  st.reset();
  const user = new Int32Array(B);
  const hist = new Int32Array(B * H);
  const histWeight = new Float32Array(B * H);
  const recentWeight = R > 0 ? new Float32Array(B * H) : undefined;
  const idKeep = new Float32Array(B);
  const userKeep = new Float32Array(B);
  const past = new Int32Array(H);
  const w = new Float32Array(B);
  const targets = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    const e = batch[b];
    const u = userIdx[e];
    user[b] = st.user.add(u);
    targets[b] = itemIdx[e];
    w[b] = weight ? weight[e] : 1;
    idKeep[b] = rng.nextFloat() < o.idDropout ? 0 : 1;
    // Drawn only when on, so runs without user dropout replay the same random stream as before it existed.
    userKeep[b] = o.userDropout > 0 && rng.nextFloat() < o.userDropout ? 0 : 1;
    const c = causalHistory(
      causal.sortedItems,
      causal.sortedTimes,
      causal.userStart[u],
      causal.pos[e],
      H,
      o.historyGapSeconds,
      past,
    );
    for (let q = 0; q < H; q++) hist[b * H + q] = q < c ? st.item.add(past[q]) : PAD;
    historyWeights(c, H, o.historyDecay, histWeight, b * H);
    if (recentWeight) recentWeights(c, H, R, recentWeight, b * H);
  }
  const side = fillItemSide(st, data.items, targets);
  resolvePads(hist, st.item.count);
  resolvePads(side.tok, st.tok.count);
  return { B, user, userKeep, hist, histWeight, recentWeight, idKeep, weight: w, targets, side };
}

export interface Uploaded {
  tensors: Tensor[];
  subs: Record<string, { tensor: Tensor; rows: Int32Array }>;
}

/** Uploads the sub-tables (with a zero pad row where padding is used) and the dense params. */
export function uploadParams(
  tf: Tf,
  params: ParamStore,
  st: SubTables,
  E: number,
  need: Set<string>,
): Uploaded {
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
