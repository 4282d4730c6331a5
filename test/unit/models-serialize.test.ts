import { mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { selectBackend } from '../../models/backend';
import { initMF, MFModel, trainMF } from '../../models/mf';
import {
  loadMFModel,
  loadTrainingState,
  loadTwoTowerModel,
  saveMFModel,
  saveTrainingState,
  saveTwoTowerModel,
  writeBundle,
} from '../../models/serialize';
import { plantedClusters } from '../../models/synthetic';
import type { TrainingState } from '../../models/trainer';
import { initTwoTower } from '../../models/two-tower';

let dir: string;

beforeAll(async () => {
  await selectBackend('wasm');
  dir = mkdtempSync(path.join(tmpdir(), 'recforge-models-'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function bytes(a: Float32Array | Uint8Array | undefined): Buffer {
  return a ? Buffer.from(a.buffer, a.byteOffset, a.byteLength) : Buffer.alloc(0);
}

test('MF model round trip is bit-exact and keeps metadata; overwrite is atomic and leaves no debris', async () => {
  const m = initMF(50, 30, { dim: 8, initStd: 0.1, seed: 1, itemBias: true });
  (m.itemBias as Float32Array).set([1.5, -2.25, 3], 0);
  const target = path.join(dir, 'mf');
  await saveMFModel(target, m, { recallAt10: 0.31, snapshot: 'abc' });
  const { model, metadata } = await loadMFModel(target);
  expect(metadata).toEqual({ recallAt10: 0.31, snapshot: 'abc' });
  expect(model).toMatchObject({ kind: 'mf', numUsers: 50, numItems: 30, dim: 8 });
  expect(bytes(model.userFactors).equals(bytes(m.userFactors))).toBe(true);
  expect(bytes(model.itemFactors).equals(bytes(m.itemFactors))).toBe(true);
  expect(bytes(model.itemBias).equals(bytes(m.itemBias))).toBe(true);

  const m2: MFModel = { ...initMF(60, 30, { dim: 8, initStd: 0.1, seed: 2, itemBias: false }) };
  await saveMFModel(target, m2);
  const again = await loadMFModel(target);
  expect(again.model.numUsers).toBe(60);
  expect(again.model.itemBias).toBeUndefined();
  expect(readdirSync(dir).sort()).toEqual(['mf']);
  expect(readdirSync(target).sort()).toEqual(['model.json', 'weights.bin']);
});

test('a failed write leaves the previous version in place; corruption is detected on load', async () => {
  const target = path.join(dir, 'mf2');
  const m = initMF(10, 10, { dim: 4, initStd: 0.1, seed: 3, itemBias: false });
  await saveMFModel(target, m);
  await expect(
    writeBundle(target, 'recforge-model', {}, { bad: { shape: [3, 3], data: new Float32Array(4) } }),
  ).rejects.toThrow(/shape/);
  expect((await loadMFModel(target)).model.numUsers).toBe(10);
  expect(readdirSync(dir).filter((n) => n.startsWith('mf2'))).toEqual(['mf2']);

  const bin = path.join(target, 'weights.bin');
  const buf = readFileSync(bin);
  buf[7] ^= 0xff;
  writeFileSync(bin, buf);
  await expect(loadMFModel(target)).rejects.toThrow(/checksum/);
});

test('two-tower model round trip', async () => {
  const arch = {
    numUsers: 7,
    numItems: 9,
    embDim: 4,
    outDim: 3,
    historyLength: 5,
    numCategories: 2,
    numPriceBuckets: 3,
    numTokenBuckets: 16,
    maxTitleTokens: 4,
  };
  const m = initTwoTower(arch, 0.05, 1);
  m.itemSeen[2] = 1;
  const target = path.join(dir, 'tt');
  await saveTwoTowerModel(target, m, { note: 'x' });
  const { model, metadata } = await loadTwoTowerModel(target);
  expect(metadata).toEqual({ note: 'x' });
  expect(model.arch).toEqual(arch);
  expect(Array.from(model.itemSeen)).toEqual(Array.from(m.itemSeen));
  expect(Object.keys(model.weights).sort()).toEqual(Object.keys(m.weights).sort());
  for (const k of Object.keys(m.weights)) {
    expect(model.weights[k].shape).toEqual(m.weights[k].shape);
    expect(bytes(model.weights[k].data).equals(bytes(m.weights[k].data))).toBe(true);
  }
  await expect(loadMFModel(target)).rejects.toThrow(/expected an 'mf' model/);
});

test('training state round trip (weights, Adam moments, rng, best weights, history)', async () => {
  const ds = plantedClusters({ numUsers: 40, numItems: 30, numClusters: 3, perUser: 5, seed: 1 });
  const states: TrainingState[] = [];
  let calls = 0;
  await trainMF(
    { ...ds.train, numUsers: 40, numItems: 30 },
    { dim: 4, epochs: 3, batchSize: 64, checkpointEvery: 2, patience: 5 },
    { evaluate: () => [0.2, 0.5, 0.4][calls++], onCheckpoint: (s) => void states.push(s) },
  );
  const withBest = states[states.length - 1];
  expect(withBest.best.weights).not.toBeNull();
  const noBest = states[0];
  expect(noBest.best.weights).toBeNull();
  for (const s of [noBest, withBest]) {
    const target = path.join(dir, `state-${s.globalStep}`);
    await saveTrainingState(target, s);
    const loaded = await loadTrainingState(target);
    expect(loaded).toEqual(s);
  }
});
