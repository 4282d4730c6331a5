import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { selectBackend } from '../../models/backend';
import { recallAtK, popularityRecallAtK } from '../../models/metrics';
import { eventTypeWeights, Interactions, MFConfig, MFModel, resumeMF, trainMF } from '../../models/mf';
import { loadTrainingState, saveTrainingState } from '../../models/serialize';
import { randomInteractions } from '../../models/synthetic';
import type { TrainingState, TrainProgress } from '../../models/trainer';
import { growEmbeddings } from '../../models/warm-start';
import { data, ds, seen, smallMF as small } from '../helpers/planted';

beforeAll(async () => {
  await selectBackend('wasm');
});

function sameArrays(a: MFModel, b: MFModel): boolean {
  const eq = (x?: Float32Array, y?: Float32Array): boolean =>
    x === undefined
      ? y === undefined
      : y !== undefined && Buffer.compare(Buffer.from(x.buffer), Buffer.from(y.buffer)) === 0;
  return eq(a.userFactors, b.userFactors) && eq(a.itemFactors, b.itemFactors) && eq(a.itemBias, b.itemBias);
}

test('BPR recovers planted clusters far better than popularity', async () => {
  const pop = popularityRecallAtK(ds.train.itemIdx, ds.numItems, ds.test, 10, seen);
  const res = await trainMF(
    data,
    { ...small, epochs: 12, patience: 3 },
    { evaluate: (m) => recallAtK(m, ds.test, 10, seen) },
  );
  expect(res.bestMetric).not.toBeNull();
  const recall = await recallAtK(res.model, ds.test, 10, seen);
  expect(recall).toBe(res.bestMetric); // best weights are the ones returned
  expect(recall).toBeGreaterThan(0.25);
  expect(recall).toBeGreaterThan(2.5 * pop);
});

test('same seed gives bit-identical weights; another seed does not', async () => {
  const a = await trainMF(data, { ...small, epochs: 2, negatives: 2, negativeSampling: 'popularity' });
  const b = await trainMF(data, { ...small, epochs: 2, negatives: 2, negativeSampling: 'popularity' });
  const c = await trainMF(data, {
    ...small,
    epochs: 2,
    negatives: 2,
    negativeSampling: 'popularity',
    seed: 6,
  });
  expect(sameArrays(a.model, b.model)).toBe(true);
  expect(sameArrays(a.model, c.model)).toBe(false);
});

test('resuming from a mid-epoch checkpoint (also via disk) reproduces the uninterrupted run exactly', async () => {
  const cfg: Partial<MFConfig> = { ...small, epochs: 4, patience: 10, checkpointEvery: 5 };
  const evaluate = (m: MFModel): Promise<number> => recallAtK(m, ds.test, 10, seen);
  const states: TrainingState[] = [];
  const full = await trainMF(data, cfg, { evaluate, onCheckpoint: (s) => void states.push(s) });
  // 4500 examples / 256 = 18 steps per epoch; checkpoints every 5 steps plus one per epoch end.
  const mid = states.find((s) => s.epoch === 1 && s.stepInEpoch > 0);
  expect(mid).toBeDefined();
  const resumed = await resumeMF(mid as TrainingState, data, cfg, { evaluate });
  expect(sameArrays(resumed.model, full.model)).toBe(true);
  expect(resumed.history).toEqual(
    full.history.map((h) => ({ ...h, ms: expect.any(Number), examplesPerSec: expect.any(Number) })),
  );

  const dir = mkdtempSync(path.join(tmpdir(), 'recforge-ckpt-'));
  try {
    await saveTrainingState(path.join(dir, 'ckpt'), states[states.length - 3]);
    const loaded = await loadTrainingState(path.join(dir, 'ckpt'));
    const fromDisk = await resumeMF(loaded, data, cfg, { evaluate });
    expect(sameArrays(fromDisk.model, full.model)).toBe(true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('resume refuses different data or config', async () => {
  const states: TrainingState[] = [];
  await trainMF(data, { ...small, epochs: 1 }, { onCheckpoint: (s) => void states.push(s) });
  const other = { ...data, itemIdx: data.itemIdx.map((i) => (i + 1) % ds.numItems) };
  await expect(resumeMF(states[0], other, { ...small, epochs: 1 })).rejects.toThrow(/fingerprint/);
  await expect(resumeMF(states[0], data, { ...small, epochs: 1, lr: 0.1 })).rejects.toThrow(/config differs/);
});

test('early stopping stops after `patience` bad epochs and restores the best weights', async () => {
  const metrics = [0.5, 0.9, 0.4, 0.3, 0.2, 0.1];
  let bestCopy: Float32Array | undefined;
  const res = await trainMF(
    data,
    { ...small, epochs: 6, patience: 2 },
    {
      evaluate: (m, epoch) => {
        if (epoch === 1) bestCopy = m.userFactors.slice();
        return metrics[epoch];
      },
    },
  );
  expect(res.stoppedEarly).toBe(true);
  expect(res.epochsRun).toBe(4);
  expect(res.bestEpoch).toBe(1);
  expect(res.bestMetric).toBe(0.9);
  expect(
    Buffer.compare(Buffer.from(res.model.userFactors.buffer), Buffer.from((bestCopy as Float32Array).buffer)),
  ).toBe(0);
});

test('progress heartbeats, event-type weights and cancellation', async () => {
  const codes = Uint8Array.from(ds.train.userIdx, (u, k) => (u + k) % 4);
  const weight = eventTypeWeights(codes, ['view', 'click', 'cart', 'purchase'], {
    view: 1,
    click: 2,
    cart: 4,
    purchase: 8,
  });
  expect(Array.from(weight.subarray(0, 4))).toEqual(Array.from(codes.subarray(0, 4), (c) => [1, 2, 4, 8][c]));
  expect(() => eventTypeWeights(codes, ['view', 'click', 'cart', 'purchase'], { view: 1 })).toThrow(/click/);

  const progress: TrainProgress[] = [];
  await trainMF(
    { ...data, weight },
    { ...small, epochs: 2, progressIntervalMs: 0 },
    { onProgress: (p) => void progress.push(p) },
  );
  expect(progress).toHaveLength(36);
  expect(progress[35]).toMatchObject({
    epoch: 1,
    step: 36,
    totalSteps: 36,
    stepInEpoch: 18,
    stepsPerEpoch: 18,
  });
  expect(progress.every((p) => Number.isFinite(p.loss) && p.examplesPerSec > 0)).toBe(true);

  const ac = new AbortController();
  ac.abort(new Error('cancelled by test'));
  await expect(trainMF(data, { ...small, epochs: 1 }, { signal: ac.signal })).rejects.toThrow(
    'cancelled by test',
  );
});

test('warm start keeps the champion rows, grows the tables and trains from there', async () => {
  const champion = (await trainMF(data, { ...small, epochs: 2 })).model;
  const newUsers = ds.numUsers + 20;
  const newItems = ds.numItems + 10;
  const category = Int32Array.from({ length: newItems }, (_, i) => i % 5);
  const grown = growEmbeddings(champion, newUsers, newItems, 9, { itemCategory: category });
  expect(grown.numUsers).toBe(newUsers);
  expect(grown.userFactors.length).toBe(newUsers * 16);
  expect(Array.from(grown.userFactors.subarray(0, champion.userFactors.length))).toEqual(
    Array.from(champion.userFactors),
  );
  expect(Array.from(grown.itemFactors.subarray(0, champion.itemFactors.length))).toEqual(
    Array.from(champion.itemFactors),
  );
  // New users: small noise; new items: near the mean of their category's old rows.
  const newUserRows = grown.userFactors.subarray(champion.userFactors.length);
  expect(Math.max(...Array.from(newUserRows, Math.abs))).toBeLessThan(0.06);
  const mean0 = new Float64Array(16);
  let n0 = 0;
  for (let i = 0; i < ds.numItems; i++) {
    if (i % 5 !== 0) continue;
    n0++;
    for (let d = 0; d < 16; d++) mean0[d] += champion.itemFactors[i * 16 + d];
  }
  const newItem = ds.numItems; // category 0
  for (let d = 0; d < 16; d++)
    expect(Math.abs(grown.itemFactors[newItem * 16 + d] - mean0[d] / n0)).toBeLessThan(0.06);
  expect(grown.itemBias?.length).toBe(newItems);
  expect(growEmbeddings(champion, newUsers, newItems, 9, { itemCategory: category })).toEqual(grown); // seeded

  const more = randomInteractions(500, newUsers, newItems, 4);
  const bigger: Interactions = {
    userIdx: Int32Array.from([...data.userIdx, ...more.userIdx]),
    itemIdx: Int32Array.from([...data.itemIdx, ...more.itemIdx]),
    numUsers: newUsers,
    numItems: newItems,
  };
  const warm = await trainMF(bigger, { ...small, epochs: 1 }, {}, { initialWeights: grown });
  expect(warm.model.numItems).toBe(newItems);
  expect(warm.model.userFactors).not.toBe(grown.userFactors); // initial weights are copied, not mutated
  await expect(trainMF(bigger, { ...small, epochs: 1 }, {}, { initialWeights: champion })).rejects.toThrow(
    /growEmbeddings/,
  );
  expect(() => growEmbeddings(champion, 10, 10, 1)).toThrow(/shrink/);
});
