import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { selectBackend } from '../../models/backend';
import { popularityRecallAtK, recallAtK } from '../../models/metrics';
import { buildUserItemsCSR } from '../../models/mf';
import type { TrainingState } from '../../models/trainer';
import {
  applyPriceBuckets,
  buildUserHistory,
  causalHistory,
  growTwoTower,
  hashTitleTokens,
  hasHistory,
  ItemFeatures,
  priceBuckets,
  recentWeights,
  trainTwoTower,
  TwoTowerConfig,
  TwoTowerData,
  TwoTowerModel,
  twoTowerEmbeddings,
} from '../../models/two-tower';
import { loadTwoTowerModel, saveTwoTowerModel } from '../../models/serialize';
import { ds, plantedItems } from '../helpers/planted';

// 300 users / 200 items in 5 clusters; items 190..199 get no training interactions (cold), user 299 none either.
const keep = Array.from(ds.train.itemIdx.keys()).filter(
  (k) => ds.train.itemIdx[k] < 190 && ds.train.userIdx[k] !== 299,
);
const train = {
  userIdx: Int32Array.from(keep, (k) => ds.train.userIdx[k]),
  itemIdx: Int32Array.from(keep, (k) => ds.train.itemIdx[k]),
};
const T = 4;
const items: ItemFeatures = plantedItems(T);
const data: TwoTowerData = { ...train, numUsers: 300, numItems: 200, items };
const seen = buildUserItemsCSR(train.userIdx, train.itemIdx, 300);
const history = buildUserHistory(train.userIdx, train.itemIdx, 300, 10);
const cfg: Partial<TwoTowerConfig> = {
  epochs: 3,
  batchSize: 128,
  historyLength: 10,
  embDim: 16,
  outDim: 16,
  lr: 0.01,
};

beforeAll(async () => {
  await selectBackend('wasm');
});

test('feature helpers: hashed title tokens, price buckets, history', () => {
  const t = hashTitleTokens(['Red red SHOE', null, 'blå sko'], 100, 3);
  expect(t[0]).toBe(t[0]); // deterministic
  expect(Array.from(t.subarray(0, 3)).filter((v) => v >= 0)).toHaveLength(2); // 'red' deduplicated
  expect(Array.from(t.subarray(3, 6))).toEqual([-1, -1, -1]);
  expect(Array.from(hashTitleTokens(['RED'], 100, 1))).toEqual([t[0]]);
  const { bucket, boundaries } = priceBuckets([10, 20, 30, 40, NaN, -1, 0], 3);
  expect(bucket[4]).toBe(0);
  expect(bucket[5]).toBe(0);
  expect(Array.from(bucket.subarray(0, 4))).toEqual([1, 1, 2, 2]);
  expect(Array.from(applyPriceBuckets([15, 35], boundaries))).toEqual([1, 2]);
  const h = buildUserHistory(Int32Array.from([0, 1, 0, 0]), Int32Array.from([5, 6, 7, 8]), 3, 2);
  expect(Array.from(h.items)).toEqual([7, 8, 6, -1, -1, -1]); // last 2 of user 0, oldest first
  expect(hasHistory(h, 0)).toBe(true);
  expect(hasHistory(h, 2)).toBe(false);
});

let trained: TwoTowerModel;

test('beats popularity on planted clusters and embeds cold items from metadata', async () => {
  const pop = popularityRecallAtK(train.itemIdx, 200, ds.test, 10, seen);
  const res = await trainTwoTower(data, cfg, {
    evaluate: (m) => recallAtK(twoTowerEmbeddings(m, history, items), ds.test, 10, seen),
  });
  trained = res.model;
  expect(res.bestMetric as number).toBeGreaterThan(2.5 * pop);
  expect(res.history.every((h) => Number.isFinite(h.loss))).toBe(true);

  const emb = twoTowerEmbeddings(res.model, history, items);
  expect(emb.userHasHistory[299]).toBe(0);
  expect(emb.userHasHistory[0]).toBe(1);
  expect(Array.from(res.model.itemSeen.subarray(188, 192))).toEqual([1, 1, 0, 0]);
  // Each cold item should score highest, on average, with the users of its own cluster.
  let matched = 0;
  for (let i = 190; i < 200; i++) {
    const sum = new Float64Array(5);
    for (let u = 0; u < 299; u++) {
      let s = 0;
      for (let d = 0; d < emb.dim; d++)
        s += emb.userFactors[u * emb.dim + d] * emb.itemFactors[i * emb.dim + d];
      sum[ds.userCluster[u]] += s;
    }
    if (sum.indexOf(Math.max(...sum)) === ds.itemCluster[i]) matched++;
  }
  expect(matched).toBeGreaterThanOrEqual(8);
});

test('deterministic, and checkpoint resume reproduces the run', async () => {
  const states: TrainingState[] = [];
  const a = await trainTwoTower(
    data,
    { ...cfg, epochs: 2, checkpointEvery: 7 },
    { onCheckpoint: (s) => void states.push(s) },
  );
  const b = await trainTwoTower(data, { ...cfg, epochs: 2, checkpointEvery: 7 });
  const mid = states.find((s) => s.epoch === 1 && s.stepInEpoch > 0) as TrainingState;
  const c = await trainTwoTower(data, { ...cfg, epochs: 2, checkpointEvery: 7 }, {}, { resumeFrom: mid });
  for (const k of Object.keys(a.model.weights)) {
    expect(b.model.weights[k].data).toEqual(a.model.weights[k].data);
    expect(c.model.weights[k].data).toEqual(a.model.weights[k].data);
  }
});

test('warm start grows user/item tables and keeps trained rows', async () => {
  const grown = growTwoTower(trained, 310, 205, 1);
  expect(grown.arch.numUsers).toBe(310);
  expect(grown.weights['itemEmb'].data.subarray(0, 200 * 16)).toEqual(trained.weights['itemEmb'].data);
  expect(grown.weights['catEmb'].data).toEqual(trained.weights['catEmb'].data);
  expect(grown.itemSeen.length).toBe(205);
  const bigItems: ItemFeatures = {
    ...items,
    category: Int32Array.from({ length: 205 }, (_, i) => i % 5),
    priceBucket: Int32Array.from({ length: 205 }, () => 1),
    titleTokens: hashTitleTokens(
      Array.from({ length: 205 }, (_, i) => `Shade${i % 5}`),
      512,
      T,
    ),
  };
  const res = await trainTwoTower(
    { ...train, numUsers: 310, numItems: 205, items: bigItems },
    { ...cfg, epochs: 1 },
    {},
    { initialWeights: grown },
  );
  expect(res.model.weights['userEmb'].shape).toEqual([310, 16]);
  await expect(
    trainTwoTower(
      { ...train, numUsers: 310, numItems: 205, items: bigItems },
      { ...cfg, epochs: 1 },
      {},
      { initialWeights: trained },
    ),
  ).rejects.toThrow(/growTwoTower/);
});

test('causal training history: only items before the example, at least `gap` earlier, last H', () => {
  // One user's interactions sorted by time: items 10, 11, 12, 13, 14 at t = 0, 5, 20, 25, 100.
  const items = Int32Array.from([10, 11, 12, 13, 14]);
  const times = Float64Array.from([0, 5, 20, 25, 100]);
  const out = new Int32Array(3).fill(-1);
  // No gap: the H = 3 items right before position 3 (t = 25), oldest first.
  expect(causalHistory(items, times, 0, 3, 3, 0, out)).toBe(3);
  expect(Array.from(out)).toEqual([10, 11, 12]);
  // Gap 10: only t <= 15 -> positions 0, 1 (never the example itself or anything after it).
  out.fill(-1);
  expect(causalHistory(items, times, 0, 3, 3, 10, out)).toBe(2);
  expect(Array.from(out)).toEqual([10, 11, -1]);
  // H = 2 at position 4 (t = 100), gap 10: t <= 90 -> positions 0..3, last two.
  expect(causalHistory(items, times, 0, 4, 2, 10, out)).toBe(2);
  expect(Array.from(out.subarray(0, 2))).toEqual([12, 13]);
  // The first interaction has no history; without times the gap is ignored.
  expect(causalHistory(items, times, 0, 0, 3, 0, out)).toBe(0);
  expect(causalHistory(items, undefined, 0, 3, 3, 1000, out)).toBe(3);
  // A second user starting at position 2 never sees the first user's items.
  expect(causalHistory(items, times, 2, 3, 3, 0, out)).toBe(1);
  expect(out[0]).toBe(12);

  const w = new Float32Array(8);
  recentWeights(3, 4, 2, w, 4);
  expect(Array.from(w)).toEqual([0, 0, 0, 0, 0, 0.5, 0.5, 0]);
  recentWeights(1, 4, 2, w, 0);
  expect(Array.from(w.subarray(0, 4))).toEqual([1, 0, 0, 0]);
});

test('item bias and recent-items pool: train, serve, save/load, warm start from an older model', async () => {
  const times = Float64Array.from(train.userIdx, (_, k) => k * 60);
  const res = await trainTwoTower(
    { ...data, timestamps: times },
    { ...cfg, epochs: 2, itemBias: true, recentLength: 3, historyGapSeconds: 120 },
  );
  const m = res.model;
  expect(res.history.every((h) => Number.isFinite(h.loss))).toBe(true);
  expect(m.weights['userW'].shape).toEqual([48, 16]);
  expect(m.weights['itemBias'].shape).toEqual([200, 1]);
  // Trained items move their bias; never-trained ones keep 0.
  expect(m.weights['itemBias'].data.some((v) => v !== 0)).toBe(true);
  expect(m.weights['itemBias'].data[195]).toBe(0);
  const emb = twoTowerEmbeddings(m, history, items);
  expect(emb.itemBias).toHaveLength(200);
  expect(emb.itemBias?.[195]).toBe(0);
  const recall = await recallAtK(emb, ds.test, 10, seen);
  expect(recall).toBeGreaterThan(popularityRecallAtK(train.itemIdx, 200, ds.test, 10, seen));

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tt-bias-'));
  try {
    await saveTwoTowerModel(dir, m);
    const back = (await loadTwoTowerModel(dir)).model;
    expect(back.arch.recentLength).toBe(3);
    expect(twoTowerEmbeddings(back, history, items).userFactors).toEqual(emb.userFactors);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  // Warm start of the new architecture from a model saved before it existed (no bias, 2E-wide user layer).
  const warm = await trainTwoTower(
    data,
    { ...cfg, epochs: 1, itemBias: true, recentLength: 3 },
    {},
    { initialWeights: trained },
  );
  expect(warm.model.weights['userW'].shape).toEqual([48, 16]);
  expect(warm.model.weights['itemEmb'].data).not.toEqual(trained.weights['itemEmb'].data);
  // ... and back: the older architecture from the new one.
  const back = await trainTwoTower(data, { ...cfg, epochs: 1 }, {}, { initialWeights: m });
  expect(back.model.weights['itemBias']).toBeUndefined();
  const grown = growTwoTower(m, 300, 205, 1);
  expect(grown.weights['itemBias'].shape).toEqual([205, 1]);
  expect(grown.weights['itemBias'].data.subarray(0, 200)).toEqual(m.weights['itemBias'].data);
});
