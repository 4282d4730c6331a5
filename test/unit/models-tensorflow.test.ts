/**
 * The tfjs-node ('tensorflow') backend — the code path tfjs-node-gpu shares — against wasm and exact references:
 * native kernels the trainers rely on, MF and two-tower training, blocked scoring. Runs where `npm run setup` built
 * tfjs-node (CI requires it: models-backend-auto.test.ts); elsewhere the suite is skipped.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import { getTf, selectBackend } from '../../models/backend';
import { popularityRecallAtK, recallAtK } from '../../models/metrics';
import { trainMF } from '../../models/mf';
import { Rng } from '../../models/rng';
import { trainTwoTower, twoTowerEmbeddings, buildUserHistory } from '../../models/two-tower';
import { data, ds, plantedItems, seen, smallMF } from '../helpers/planted';
import { collect, intFactors, randomExclusion, reference } from '../helpers/scoring';
import { tfjsNodeProbe } from '../helpers/tfjs-node';

const maybe = tfjsNodeProbe.ok ? describe : describe.skip;

maybe('tfjs-node backend', () => {
  beforeEach(async () => {
    await selectBackend('tensorflow');
  });

  test('native UnsortedSegmentSum and the gradient of gather match a JS reference', () => {
    const tf = getTf();
    expect(tf.getBackend()).toBe('tensorflow');
    const rng = new Rng(1);
    const x = Float32Array.from({ length: 40 * 3 }, () => rng.nextFloat() * 2 - 1);
    const ids = Int32Array.from({ length: 40 }, (_, i) => (i * 7) % 9);
    const summed = tf.unsortedSegmentSum(tf.tensor2d(x, [40, 3]), tf.tensor1d(ids, 'int32'), 9);
    const want = new Float64Array(27);
    ids.forEach((s, r) => {
      for (let c = 0; c < 3; c++) want[s * 3 + c] += x[r * 3 + c];
    });
    Array.from(summed.dataSync()).forEach((v, k) => expect(v).toBeCloseTo(want[k], 5));
    const table = tf.tensor2d(x.subarray(0, 30), [10, 3]);
    const idx = tf.tensor1d([4, 4, 0, 9, 4], 'int32');
    const grad = tf.grad((t: Tensor) => tf.sum(tf.mul(tf.gather(t, idx), tf.scalar(2))))(table);
    const g = Array.from(grad.dataSync());
    const rowsHit = [4, 4, 0, 9, 4].reduce(
      (m, r) => m.set(r, (m.get(r) ?? 0) + 2),
      new Map<number, number>(),
    );
    g.forEach((v, k) => expect(v).toBe(rowsHit.get(Math.floor(k / 3)) ?? 0));
    tf.dispose([summed, table, idx, grad]);
  });

  test('BPR matrix factorisation learns the planted clusters, and tracks the wasm run of the same seed', async () => {
    const cfg = { ...smallMF, epochs: 4 };
    const onTf = await trainMF(data, cfg, { evaluate: (m) => recallAtK(m, ds.test, 10, seen) });
    const pop = popularityRecallAtK(ds.train.itemIdx, ds.numItems, ds.test, 10, seen);
    expect(onTf.bestMetric as number).toBeGreaterThan(2.5 * pop);
    await selectBackend('wasm');
    const onWasm = await trainMF(data, cfg, { evaluate: (m) => recallAtK(m, ds.test, 10, seen) });
    // Same sampling and initialisation; only float rounding inside the kernels differs.
    expect(onTf.history.map((h) => h.loss)).toHaveLength(onWasm.history.length);
    onTf.history.forEach((h, e) =>
      expect(Math.abs(h.loss - onWasm.history[e].loss)).toBeLessThan(1e-3 * h.loss),
    );
    let worst = 0;
    onTf.model.itemFactors.forEach(
      (v, k) => (worst = Math.max(worst, Math.abs(v - onWasm.model.itemFactors[k]))),
    );
    expect(worst).toBeLessThan(1e-3);
  });

  test('two-tower training (in-batch softmax, metadata towers) beats popularity', async () => {
    const items = plantedItems(4);
    const history = buildUserHistory(ds.train.userIdx, ds.train.itemIdx, 300, 10);
    const res = await trainTwoTower(
      { ...ds.train, numUsers: 300, numItems: 200, items },
      { epochs: 3, batchSize: 128, historyLength: 10, embDim: 16, outDim: 16, lr: 0.01, seed: 4 },
      { evaluate: (m) => recallAtK(twoTowerEmbeddings(m, history, items), ds.test, 10, seen) },
    );
    expect(res.history.every((h) => Number.isFinite(h.loss))).toBe(true);
    const pop = popularityRecallAtK(ds.train.itemIdx, 200, ds.test, 10, seen);
    expect(res.bestMetric as number).toBeGreaterThan(2.5 * pop);
  });

  test('blocked scoring with both selectors equals brute force exactly (integer factors)', async () => {
    const f = intFactors(53, 700, 6, 21, true);
    const exclude = randomExclusion(53, 700, 40, 22);
    const ref = reference(f, 12, exclude);
    for (const selector of ['js', 'tf'] as const) {
      for (const blockSize of [1, 16, 53]) {
        const { got } = await collect(f, { topN: 12, exclude, blockSize, selector, selectionWorker: false });
        // tf.topk breaks ties by lower index too, and integer factors make every score exact in float32.
        for (let u = 0; u < 53; u++) expect(got[u]).toEqual(ref[u]);
      }
    }
  });
});
