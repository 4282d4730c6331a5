import { selectBackend } from '../../models/backend';
import { confidenceMatrix, trainIALS } from '../../models/ials';
import { spdInverseF64 } from '../../models/linalg';
import { popularityRecallAtK, recallAtK } from '../../models/metrics';
import type { Interactions, MFModel } from '../../models/mf';
import { Rng } from '../../models/rng';
import type { TrainingState } from '../../models/trainer';
import { compileKernelWorker } from '../helpers/compile-worker';
import { data, ds, seen } from '../helpers/planted';

let worker: string;
beforeAll(async () => {
  await selectBackend('wasm');
  worker = compileKernelWorker();
});

function tiny(): Interactions {
  const rng = new Rng(2);
  const u: number[] = [];
  const i: number[] = [];
  const w: number[] = [];
  for (let k = 0; k < 160; k++) {
    u.push(rng.nextInt(25));
    i.push(rng.nextInt(18));
    w.push(1 + rng.nextInt(4));
  }
  return {
    userIdx: Int32Array.from(u),
    itemIdx: Int32Array.from(i),
    weight: Float32Array.from(w),
    numUsers: 25,
    numItems: 18,
  };
}

/** The exact iALS user solve in float64: (Y^T C_u Y + lambda I) x = Y^T C_u p_u. */
function exactUsers(
  data: Interactions,
  y: Float32Array,
  dim: number,
  lambda: number,
  alpha: number,
): Float64Array {
  const m = confidenceMatrix(data, { alpha, transform: 'linear' });
  const out = new Float64Array(data.numUsers * dim);
  for (let u = 0; u < data.numUsers; u++) {
    const a = new Float64Array(dim * dim);
    const b = new Float64Array(dim);
    for (let i = 0; i < data.numItems; i++)
      for (let d = 0; d < dim; d++)
        for (let e = 0; e < dim; e++) a[d * dim + e] += y[i * dim + d] * y[i * dim + e];
    for (let d = 0; d < dim; d++) a[d * dim + d] += lambda;
    for (let q = m.ptr[u]; q < m.ptr[u + 1]; q++) {
      const i = m.idx[q];
      const c = m.val[q];
      for (let d = 0; d < dim; d++) {
        b[d] += c * y[i * dim + d];
        for (let e = 0; e < dim; e++) a[d * dim + e] += (c - 1) * y[i * dim + d] * y[i * dim + e];
      }
    }
    const inv = spdInverseF64(a, dim);
    for (let d = 0; d < dim; d++) {
      let s = 0;
      for (let e = 0; e < dim; e++) s += inv[d * dim + e] * b[e];
      out[u * dim + d] = s;
    }
  }
  return out;
}

test('with as many CG steps as factors, a user half-sweep is the exact least-squares solution', async () => {
  const d = tiny();
  const dim = 5;
  const rng = new Rng(5);
  const start: MFModel = {
    kind: 'mf',
    numUsers: d.numUsers,
    numItems: d.numItems,
    dim,
    userFactors: Float32Array.from({ length: d.numUsers * dim }, () => rng.nextFloat() - 0.5),
    itemFactors: Float32Array.from({ length: d.numItems * dim }, () => rng.nextFloat() - 0.5),
  };
  // One iteration solves users given the start's item factors, then items given those users: the users it
  // returns are the user half-sweep's.
  const res = await trainIALS(
    d,
    {
      factors: dim,
      iterations: 1,
      cgSteps: 8,
      regularization: 0.3,
      alpha: 2,
      threads: 0,
      transform: 'linear',
    },
    {},
    { initialWeights: start },
  );
  const exact = exactUsers(d, start.itemFactors, dim, 0.3, 2);
  let err = 0;
  for (let k = 0; k < exact.length; k++) err = Math.max(err, Math.abs(res.model.userFactors[k] - exact[k]));
  expect(err).toBeLessThan(1e-3);
  // Three steps (the default) are an approximation: measurably off, yet close.
  const three = await trainIALS(
    d,
    {
      factors: dim,
      iterations: 1,
      cgSteps: 3,
      regularization: 0.3,
      alpha: 2,
      threads: 0,
      transform: 'linear',
    },
    {},
    { initialWeights: start },
  );
  let err3 = 0;
  for (let k = 0; k < exact.length; k++)
    err3 = Math.max(err3, Math.abs(three.model.userFactors[k] - exact[k]));
  expect(err3).toBeGreaterThan(err);
});

test('worker threads give bit-identical factors to the calling thread (CG rows are independent)', async () => {
  const cfg = { factors: 8, iterations: 3, seed: 3 };
  const inline = await trainIALS(data, { ...cfg, threads: 0 });
  const threaded = await trainIALS(data, { ...cfg, threads: 2 }, {}, { workerScript: worker });
  expect(
    Buffer.compare(
      Buffer.from(inline.model.userFactors.buffer),
      Buffer.from(threaded.model.userFactors.buffer),
    ),
  ).toBe(0);
  expect(
    Buffer.compare(
      Buffer.from(inline.model.itemFactors.buffer),
      Buffer.from(threaded.model.itemFactors.buffer),
    ),
  ).toBe(0);
});

test('iALS recovers planted clusters far better than popularity; early stopping keeps the best iteration', async () => {
  const pop = popularityRecallAtK(ds.train.itemIdx, ds.numItems, ds.test, 10, seen);
  const metrics: number[] = [];
  const res = await trainIALS(
    data,
    { factors: 16, iterations: 12, regularization: 0.1, alpha: 5, patience: 2, threads: 0 },
    {
      evaluate: async (m) => (
        metrics.push(await recallAtK(m, ds.test, 10, seen)),
        metrics[metrics.length - 1]
      ),
    },
  );
  const recall = await recallAtK(res.model, ds.test, 10, seen);
  expect(recall).toBe(res.bestMetric);
  expect(recall).toBe(Math.max(...metrics));
  expect(recall).toBeGreaterThan(0.25);
  expect(recall).toBeGreaterThan(2.5 * pop);
});

test('resume from an iteration checkpoint reproduces the uninterrupted run; different config is refused', async () => {
  const cfg = { factors: 8, iterations: 4, seed: 9, threads: 0 };
  const states: TrainingState[] = [];
  const full = await trainIALS(data, cfg, { onCheckpoint: (s) => void states.push(s) });
  expect(states.map((s) => s.epoch)).toEqual([1, 2, 3, 4]);
  const resumed = await trainIALS(data, cfg, {}, { resumeFrom: states[1] });
  expect(Array.from(resumed.model.userFactors)).toEqual(Array.from(full.model.userFactors));
  expect(resumed.history.length).toBe(4);
  await expect(trainIALS(data, { ...cfg, alpha: 3 }, {}, { resumeFrom: states[1] })).rejects.toThrow(
    'config differs',
  );
});

test('warm start continues from given factors (one more sweep keeps quality); wrong shapes are refused', async () => {
  const first = await trainIALS(data, {
    factors: 16,
    iterations: 6,
    regularization: 0.1,
    alpha: 5,
    threads: 0,
  });
  const base = await recallAtK(first.model, ds.test, 10, seen);
  const more = await trainIALS(
    data,
    { factors: 16, iterations: 1, regularization: 0.1, alpha: 5, threads: 0 },
    {},
    { initialWeights: first.model },
  );
  expect(await recallAtK(more.model, ds.test, 10, seen)).toBeGreaterThan(base - 0.05);
  // One sweep from random factors is far worse than one from the trained ones.
  const cold = await trainIALS(data, {
    factors: 16,
    iterations: 1,
    regularization: 0.1,
    alpha: 5,
    threads: 0,
  });
  expect(await recallAtK(more.model, ds.test, 10, seen)).toBeGreaterThan(
    await recallAtK(cold.model, ds.test, 10, seen),
  );
  await expect(
    trainIALS(data, { factors: 8, iterations: 1 }, {}, { initialWeights: first.model }),
  ).rejects.toThrow('growEmbeddings');
});
