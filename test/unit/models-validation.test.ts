import { selectBackend } from '../../models/backend';
import { ndcgAtK, rankingMetricAtK, recallAtK } from '../../models/metrics';
import { buildUserItemsCSR } from '../../models/mf';
import type { ScoringFactors } from '../../models/score';
import { plantedClusters } from '../../models/synthetic';
import { earlyStopping } from '../../models/trainer';
import {
  buildUserHistory,
  hashTitleTokens,
  historyWeights,
  trainTwoTower,
  twoTowerEmbeddings,
  type ItemFeatures,
} from '../../models/two-tower';
import { splitValidation, takeRows, userDraw } from '../../models/validation';

const DAY = 86400;

beforeAll(async () => {
  await selectBackend('wasm');
});

describe('earlyStopping', () => {
  test('first metric improves; patience counts evaluated epochs without improvement beyond minDelta', () => {
    let s: { best: number | null; sinceImprovement: number } = { best: null, sinceImprovement: 0 };
    const seq = [0.1, 0.2, 0.2, 0.205, 0.19, 0.3];
    const out: string[] = [];
    for (const m of seq) {
      const d = earlyStopping(s, m, 3, 0.01);
      out.push(`${d.improved ? 'I' : '-'}${d.sinceImprovement}${d.stop ? 'S' : ''}`);
      s = { best: d.improved ? m : s.best, sinceImprovement: d.sinceImprovement };
    }
    // 0.2 -> 0.2 and 0.205 are within minDelta; the third miss (0.19) stops.
    expect(out).toEqual(['I0', 'I0', '-1', '-2', '-3S', 'I0']);
  });

  test('a NaN metric never counts as an improvement', () => {
    expect(earlyStopping({ best: null, sinceImprovement: 0 }, NaN, 1, 0)).toEqual({
      improved: false,
      sinceImprovement: 1,
      stop: true,
    });
  });
});

describe('splitValidation', () => {
  // user 0: items 1..4 on days 1..4; user 1: items 5..7 on days 8..10 (all inside the period);
  // user 2: item 8 first on day 2 (repeated later: the pair's first time is what counts), item 9 on day 9.
  const userIdx = Int32Array.from([0, 0, 0, 0, 1, 1, 1, 2, 2]);
  const itemIdx = Int32Array.from([4, 2, 3, 1, 5, 6, 7, 8, 9]);
  const first = Float64Array.from([9, 2, 8, 1, 8, 9, 10, 2, 9].map((d) => d * DAY));

  test('time mode holds out the pairs new in the last `days` of users that keep some history', () => {
    const s = splitValidation(
      { userIdx, itemIdx, timestamps: first },
      { mode: 'time', days: 3, fraction: 0, userShare: 1, seed: 1 },
    );
    // Cut at day 7: user 0 gives up items 4 and 3, user 1 has nothing before the cut (kept whole), user 2 item 9.
    expect(Array.from(s.trainRows)).toEqual([1, 3, 4, 5, 6, 7]);
    expect(Array.from(s.heldOut.userIdx)).toEqual([0, 0, 2]);
    expect(Array.from(s.heldOut.itemIdx)).toEqual([3, 4, 9]);
  });

  test('user-time mode holds out each user latest fraction', () => {
    const s = splitValidation(
      { userIdx, itemIdx, timestamps: first },
      { mode: 'user-time', days: 0, fraction: 0.5, userShare: 1, seed: 1 },
    );
    // user 0: latest 2 of 4 (items 3, 4); user 1: latest 1 of 3 (item 7); user 2: latest 1 of 2 (item 9).
    expect(Array.from(s.heldOut.userIdx)).toEqual([0, 0, 1, 2]);
    expect(Array.from(s.heldOut.itemIdx)).toEqual([3, 4, 7, 9]);
    expect(Array.from(s.trainRows)).toEqual([1, 3, 4, 5, 7]);
  });

  test('only a seeded share of users is sampled, deterministically', () => {
    const n = 2000;
    const u = Int32Array.from({ length: 2 * n }, (_, k) => k >> 1);
    const i = Int32Array.from({ length: 2 * n }, (_, k) => k & 1);
    const t = Float64Array.from({ length: 2 * n }, (_, k) => (k & 1 ? 10 : 1) * DAY);
    const cfg = { mode: 'time' as const, days: 5, fraction: 0, userShare: 0.2, seed: 7 };
    const a = splitValidation({ userIdx: u, itemIdx: i, timestamps: t }, cfg);
    const b = splitValidation({ userIdx: u, itemIdx: i, timestamps: t }, cfg);
    expect(a).toEqual(b);
    expect(a.heldOut.userIdx.length / n).toBeGreaterThan(0.17);
    expect(a.heldOut.userIdx.length / n).toBeLessThan(0.23);
    for (const user of a.heldOut.userIdx) expect(userDraw(user, 7)).toBeLessThan(0.2);
    expect(a.trainRows.length + a.heldOut.userIdx.length).toBe(2 * n);
    expect(Array.from(takeRows(Float64Array.from([5, 6, 7]), Int32Array.from([2, 0])))).toEqual([7, 5]);
  });
});

describe('ranking metrics', () => {
  // 1 user, 4 items, scores 4 > 3 > 2 > 1 for items 0..3 (1-d factors).
  const f: ScoringFactors = {
    numUsers: 1,
    numItems: 4,
    dim: 1,
    userFactors: Float32Array.from([1]),
    itemFactors: Float32Array.from([4, 3, 2, 1]),
  };
  const heldOut = { userIdx: Int32Array.from([0, 0]), itemIdx: Int32Array.from([1, 3]) };

  test('NDCG@K and recall@K match the evaluation formulas', async () => {
    // top-2 = [0, 1]: hit at rank 2; ideal over min(2, 2) hits.
    expect(await ndcgAtK(f, heldOut, 2)).toBeCloseTo(1 / Math.log2(3) / (1 + 1 / Math.log2(3)), 6);
    expect(await recallAtK(f, heldOut, 2)).toBeCloseTo(0.5, 6);
    // Excluding item 0 (seen): top-2 = [1, 2].
    const exclude = buildUserItemsCSR(Int32Array.from([0]), Int32Array.from([0]), 1);
    expect(await rankingMetricAtK('ndcg', f, heldOut, 2, exclude)).toBeCloseTo(1 / (1 + 1 / Math.log2(3)), 6);
    // K = 3 over all: hits at ranks 2 (item 1); item 3 is 4th.
    expect(await ndcgAtK(f, heldOut, 3)).toBeCloseTo(1 / Math.log2(3) / (1 + 1 / Math.log2(3)), 6);
  });
});

describe('two-tower history pooling', () => {
  test('historyWeights: decay 1 is the plain mean, decay < 1 favours the latest items, padding gets 0', () => {
    const out = new Float32Array(8).fill(9);
    historyWeights(3, 4, 1, out, 0);
    historyWeights(3, 4, 0.5, out, 4);
    expect(Array.from(out.subarray(0, 4))).toEqual([1 / 3, 1 / 3, 1 / 3, 0].map(Math.fround));
    const z = 0.25 + 0.5 + 1;
    Array.from(out.subarray(4)).forEach((w, q) => expect(w).toBeCloseTo([0.25 / z, 0.5 / z, 1 / z, 0][q], 6));
    const empty = new Float32Array(2);
    historyWeights(0, 2, 0.5, empty, 0);
    expect(Array.from(empty)).toEqual([0, 0]);
  });

  test('recency-weighted history and user-id dropout train, and inference applies the saved decay', async () => {
    const ds = plantedClusters({ numUsers: 200, numItems: 100, numClusters: 4, perUser: 12, seed: 5 });
    const items: ItemFeatures = {
      category: ds.itemCluster,
      numCategories: 4,
      priceBucket: new Int32Array(100),
      numPriceBuckets: 2,
      titleTokens: hashTitleTokens(
        Array.from({ length: 100 }, (_, i) => `item ${i}`),
        64,
        2,
      ),
      maxTitleTokens: 2,
      numTokenBuckets: 64,
    };
    const data = { ...ds.train, numUsers: 200, numItems: 100, items };
    const cfg = { epochs: 3, batchSize: 64, historyLength: 6, embDim: 8, outDim: 8, lr: 0.02 };
    const res = await trainTwoTower(data, { ...cfg, historyDecay: 0.7, userDropout: 0.5 });
    expect(res.model.arch.historyDecay).toBe(0.7);
    for (const h of res.history) expect(Number.isFinite(h.loss)).toBe(true);
    expect(res.history[res.history.length - 1].loss).toBeLessThan(res.history[0].loss);
    const again = await trainTwoTower(data, { ...cfg, historyDecay: 0.7, userDropout: 0.5 });
    expect(again.model.weights['userW'].data).toEqual(res.model.weights['userW'].data);

    const history = buildUserHistory(ds.train.userIdx, ds.train.itemIdx, 200, 6);
    const withDecay = twoTowerEmbeddings(res.model, history, items);
    const asMean = twoTowerEmbeddings(
      { ...res.model, arch: { ...res.model.arch, historyDecay: 1 } },
      history,
      items,
    );
    expect(withDecay.itemFactors).toEqual(asMean.itemFactors);
    expect(withDecay.userFactors).not.toEqual(asMean.userFactors);
    // A model saved before historyDecay existed (no field) pools with the plain mean.
    const legacy = twoTowerEmbeddings(
      { ...res.model, arch: { ...res.model.arch, historyDecay: undefined } },
      history,
      items,
    );
    expect(legacy.userFactors).toEqual(asMean.userFactors);
    const test = { userIdx: ds.test.userIdx, itemIdx: ds.test.itemIdx };
    const seen = buildUserItemsCSR(ds.train.userIdx, ds.train.itemIdx, 200);
    expect(await recallAtK(withDecay, test, 10, seen)).toBeGreaterThan(0.2);
  });
});

/** The split as it was computed before the counting sort: one comparator sort of all rows (the reference). */
function splitValidationBySort(
  data: { userIdx: Int32Array; itemIdx: Int32Array; timestamps: ArrayLike<number> },
  cfg: Parameters<typeof splitValidation>[1],
): ReturnType<typeof splitValidation> {
  const n = data.userIdx.length;
  if (data.itemIdx.length !== n || data.timestamps.length !== n)
    throw new Error('splitValidation: userIdx, itemIdx and timestamps must have the same length');
  if (!(cfg.userShare > 0 && cfg.userShare <= 1))
    throw new Error('splitValidation: userShare must be in (0, 1]');
  // Rows grouped by user, each user's rows in time order (ties by input position).
  const order = Int32Array.from({ length: n }, (_, k) => k).sort(
    (a, b) => data.userIdx[a] - data.userIdx[b] || data.timestamps[a] - data.timestamps[b] || a - b,
  );
  let newest = -Infinity;
  for (let k = 0; k < n; k++) newest = Math.max(newest, data.timestamps[k]);
  const cut = newest - cfg.days * 86400;
  const held = new Uint8Array(n);
  const vu: number[] = [];
  const vi: number[] = [];
  for (let start = 0; start < n;) {
    const u = data.userIdx[order[start]];
    let end = start;
    while (end < n && data.userIdx[order[end]] === u) end++;
    if (userDraw(u, cfg.seed) < cfg.userShare) {
      const count = end - start;
      let first: number; // first held-out position in [start, end)
      if (cfg.mode === 'time') {
        first = start;
        while (first < end && data.timestamps[order[first]] <= cut) first++;
      } else {
        first = end - Math.floor(count * cfg.fraction);
      }
      if (first > start && first < end) {
        const seen = new Set<number>();
        for (let p = start; p < first; p++) seen.add(data.itemIdx[order[p]]);
        const targets = new Set<number>();
        for (let p = first; p < end; p++) {
          held[order[p]] = 1;
          const i = data.itemIdx[order[p]];
          if (!seen.has(i)) targets.add(i);
        }
        for (const i of [...targets].sort((a, b) => a - b)) {
          vu.push(u);
          vi.push(i);
        }
      }
    }
    start = end;
  }
  const trainRows: number[] = [];
  for (let k = 0; k < n; k++) if (!held[k]) trainRows.push(k);
  return {
    trainRows: Int32Array.from(trainRows),
    heldOut: { userIdx: Int32Array.from(vu), itemIdx: Int32Array.from(vi) },
  };
}

test.each([1, 2, 3])(
  'the counting-sort split equals the comparator-sort split on tied data (seed %i)',
  (seed) => {
    let x = seed * 7919;
    const rand = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const n = 5000;
    // Rows in no particular order; few distinct timestamps, so ties are everywhere.
    const data = {
      userIdx: Int32Array.from({ length: n }, () => Math.floor(rand() * 300)),
      itemIdx: Int32Array.from({ length: n }, () => Math.floor(rand() * 80)),
      timestamps: Float64Array.from({ length: n }, () => 86400 * Math.floor(rand() * 30)),
    };
    for (const cfg of [
      { mode: 'time' as const, days: 7, fraction: 0.2, userShare: 0.5, seed },
      { mode: 'user-time' as const, days: 7, fraction: 0.3, userShare: 1, seed },
    ]) {
      const got = splitValidation(data, cfg);
      const want = splitValidationBySort(data, cfg);
      expect(Array.from(got.trainRows)).toEqual(Array.from(want.trainRows));
      expect(Array.from(got.heldOut.userIdx)).toEqual(Array.from(want.heldOut.userIdx));
      expect(Array.from(got.heldOut.itemIdx)).toEqual(Array.from(want.heldOut.itemIdx));
      expect(got.heldOut.userIdx.length).toBeGreaterThan(0);
    }
  },
);
