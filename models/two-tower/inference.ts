/**
 * Inference: user and item vectors for scoring, computed block by block with the same towers as training.
 * Serving differs from training in three ways: the user's history is the last H items (buildUserHistory), no
 * dropout, and items never trained on are embedded from metadata alone (their id embedding is untrained).
 */
import type { Tensor2D } from '@tensorflow/tfjs-core';
import { getTf } from '../backend';
import { ParamStore } from '../params';
import type { ScoringFactors } from '../score';
import { fillItemSide, PAD, resolvePads, SubTables, uploadParams } from './batch';
import { TwoTowerModel, twoTowerParamDefs } from './config';
import { ItemFeatures, validateFeatures } from './features';
import { historyWeights, recentWeights, UserHistory } from './history';
import { ItemTowerInputs, itemTower, UserTowerInputs, userTower } from './towers';

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
