import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { selectBackend } from '../../models/backend';
import {
  easeMatrix,
  easeWeightsFromInverse,
  fitEASE,
  gramDense,
  gramDenseAsync,
  gramSparse,
  gramSparseAsync,
  selectItems,
  type EASEInteractions,
  type EASEModel,
} from '../../models/ease';
import { easeHistoryRows, scoreEASE } from '../../models/ease-score';
import { NotPositiveDefiniteError, spdInverse, spdInverseF64 } from '../../models/linalg';
import { popularityRecallAtK } from '../../models/metrics';
import { buildUserItemsCSR } from '../../models/mf';
import { Rng } from '../../models/rng';
import { loadEASEModel, saveEASEModel } from '../../models/serialize';
import { countTurns } from '../helpers/event-loop';
import { buildCSR } from '../../models/sparse';
import { ds, seen } from '../helpers/planted';

beforeAll(async () => {
  await selectBackend('wasm');
});

/** A random SPD matrix: Z^T Z + shift I, Z with `rows` rows (float64 reference input). */
function randomSpd(n: number, rows: number, shift: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  const z = Float64Array.from({ length: rows * n }, () => rng.nextFloat() * 2 - 1);
  const a = new Float64Array(n * n);
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] += z[r * n + i] * z[r * n + j];
  for (let i = 0; i < n; i++) a[i * n + i] += shift;
  return a;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k] - b[k]));
  return m;
}

/** max |A P - I| in float64. */
function identityError(a: ArrayLike<number>, p: ArrayLike<number>, n: number): number {
  let m = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += a[i * n + k] * p[k * n + j];
      m = Math.max(m, Math.abs(s - (i === j ? 1 : 0)));
    }
  }
  return m;
}

test('float64 reference inverse: A A^-1 = I to rounding; indefinite input is refused', () => {
  const a = randomSpd(40, 10, 0.5, 1);
  expect(identityError(a, spdInverseF64(a, 40), 40)).toBeLessThan(1e-10);
  const bad = Float64Array.from([1, 2, 2, 1]); // eigenvalues 3 and -1
  expect(() => spdInverseF64(bad, 2)).toThrow(NotPositiveDefiniteError);
});

test('blocked inverse (tfjs matmuls) matches the float64 reference at several recursion depths and odd sizes', async () => {
  for (const [n, leaf] of [
    [50, 128],
    [301, 32],
    [200, 7],
  ]) {
    const a = randomSpd(n, 3 * n, 1, n);
    const ref = spdInverseF64(a, n);
    const got = await spdInverse(Float32Array.from(a), n, { leafSize: leaf });
    const scale = Math.max(...Array.from(ref, Math.abs));
    expect(maxAbsDiff(got, ref) / scale).toBeLessThan(1e-4);
    // symmetric to the last bit (re-symmetrised at every level)
    for (let i = 0; i < n; i += 17)
      for (let j = 0; j < i; j += 13) expect(got[i * n + j]).toBe(got[j * n + i]);
  }
});

test('property: G P = I for Gram matrices of sparse 0/1 data (the EASE case), with progress reported', async () => {
  const rng = new Rng(9);
  for (const n of [257, 640]) {
    const users = 3 * n;
    const u: number[] = [];
    const i: number[] = [];
    for (let r = 0; r < users; r++) {
      const len = 1 + rng.nextInt(30);
      for (let q = 0; q < len; q++) {
        u.push(r);
        i.push(Math.floor(Math.pow(rng.nextFloat(), 2) * n)); // popularity skew
      }
    }
    const x = buildCSR(Int32Array.from(u), Int32Array.from(i), undefined, users, n, { transform: 'binary' });
    const g = gramSparse(x);
    for (let d = 0; d < n; d++) g[d * n + d] += 50;
    const fractions: number[] = [];
    const p = await spdInverse(g, n, {
      leafSize: 64,
      onProgress: (done, total) => void fractions.push(done / total),
    });
    expect(identityError(g, p, n)).toBeLessThan(2e-4);
    expect(fractions.length).toBeGreaterThan(3);
    expect(fractions[fractions.length - 1]).toBeCloseTo(1, 10);
  }
});

test('an aborted inversion stops with the signal reason', async () => {
  const a = Float32Array.from(randomSpd(300, 300, 1, 3));
  const ac = new AbortController();
  ac.abort(new Error('cancelled by test'));
  await expect(spdInverse(a, 300, { leafSize: 32, signal: ac.signal })).rejects.toThrow('cancelled by test');
});

/** Small weighted data with duplicates, for the float64 EASE reference. */
function smallData(): EASEInteractions {
  const rng = new Rng(4);
  const u: number[] = [];
  const i: number[] = [];
  const w: number[] = [];
  for (let k = 0; k < 900; k++) {
    u.push(rng.nextInt(80));
    i.push(Math.floor(Math.pow(rng.nextFloat(), 1.5) * 60));
    w.push(1 + rng.nextInt(3));
  }
  return {
    userIdx: Int32Array.from(u),
    itemIdx: Int32Array.from(i),
    weight: Float32Array.from(w),
    numUsers: 80,
    numItems: 60,
  };
}

/** EASE in float64 from its definition, on the dense matrix X of the given kept items. */
function referenceEASE(
  data: EASEInteractions,
  items: Int32Array,
  lambda: number,
  transform: 'binary' | 'linear' | 'log',
) {
  const k = items.length;
  const x = easeMatrix(data, items, transform);
  const dense = new Float64Array(data.numUsers * k);
  for (let r = 0; r < data.numUsers; r++)
    for (let q = x.ptr[r]; q < x.ptr[r + 1]; q++) dense[r * k + x.idx[q]] = x.val[q];
  const g = new Float64Array(k * k);
  for (let r = 0; r < data.numUsers; r++)
    for (let a = 0; a < k; a++)
      for (let b = 0; b < k; b++) g[a * k + b] += dense[r * k + a] * dense[r * k + b];
  for (let a = 0; a < k; a++) g[a * k + a] += lambda;
  const p = spdInverseF64(g, k);
  const B = new Float64Array(k * k);
  for (let a = 0; a < k; a++)
    for (let b = 0; b < k; b++) B[a * k + b] = a === b ? 0 : -p[a * k + b] / p[b * k + b];
  return { B, dense };
}

test('EASE matches its float64 definition (binary and weighted X, sparse and dense Gram); diag(B) = 0', async () => {
  const data = smallData();
  for (const transform of ['binary', 'linear', 'log'] as const) {
    for (const gram of ['sparse', 'dense'] as const) {
      const { model, stats } = await fitEASE(data, { lambda: 7, transform, gram });
      expect(stats.gram).toBe(gram);
      const ref = referenceEASE(data, model.items, 7, transform);
      const k = model.items.length;
      expect(maxAbsDiff(model.weights, ref.B)).toBeLessThan(1e-5);
      for (let a = 0; a < k; a++) expect(model.weights[a * k + a]).toBe(0);
    }
  }
});

test('sparse and dense Gram agree; the dense path in several user blocks', () => {
  const data = smallData();
  const x = easeMatrix(
    data,
    Int32Array.from({ length: 60 }, (_, i) => i),
    'linear',
  );
  expect(maxAbsDiff(gramSparse(x), gramDense(x, 7))).toBeLessThan(1e-3);
});

test('the sliced Gram (turns of the event loop between slices) is the one-piece Gram to the bit', async () => {
  const data = smallData();
  const x = easeMatrix(
    data,
    Int32Array.from({ length: 60 }, (_, i) => i),
    'linear',
  );
  const fractions: number[] = [];
  const { value: sliced, turns } = await countTurns(() => gramSparseAsync(x, (f) => void fractions.push(f)));
  expect(Buffer.from(sliced.buffer).equals(Buffer.from(gramSparse(x).buffer))).toBe(true);
  expect(fractions.length).toBeGreaterThan(1);
  expect(fractions[fractions.length - 1]).toBe(1);
  expect(turns).toBeGreaterThanOrEqual(fractions.length - 1);
  expect(maxAbsDiff(await gramDenseAsync(x), gramDense(x))).toBe(0);
});

test('maxItems keeps the most popular items by distinct users (ties: lower id); the rest get no scores', async () => {
  expect(Array.from(selectItems(Int32Array.from([5, 0, 9, 5, 2, 9]), 3, 1))).toEqual([0, 2, 5]);
  expect(Array.from(selectItems(Int32Array.from([5, 0, 9, 5, 2, 9]), 10, 3))).toEqual([0, 2, 3, 5]);
  const data = smallData();
  const { model } = await fitEASE(data, { lambda: 5, maxItems: 20 });
  expect(model.items.length).toBe(20);
  const kept = new Set(model.items);
  // A user whose only history item is outside the model gets an empty list (the caller's popular backfill).
  const outside = [...Array(60).keys()].find((i) => !kept.has(i)) as number;
  const history = {
    userIdx: Int32Array.from([0, 1, 1]),
    itemIdx: Int32Array.from([outside, model.items[0], outside]),
    numUsers: 2,
    numItems: 60,
  };
  const got = new Map<number, number[]>();
  await scoreEASE(model, history, {
    topN: 30,
    onBlock: (b) => b.users.forEach((u, r) => got.set(u, Array.from(b.items.subarray(r * 30, r * 30 + 30)))),
  });
  expect((got.get(0) as number[]).every((i) => i === -1)).toBe(true);
  const user1 = (got.get(1) as number[]).filter((i) => i >= 0);
  expect(user1.length).toBe(20); // only kept items are scored
  expect(user1.every((i) => kept.has(i))).toBe(true);
});

/** Brute-force float64 scores x_u B by global item, excluded items removed. */
function bruteScores(
  model: EASEModel,
  rows: { ptr: Int32Array; idx: Int32Array; val: Float32Array },
  user: number,
  exclude: Set<number>,
) {
  const k = model.items.length;
  const s = new Float64Array(k);
  for (let q = rows.ptr[user]; q < rows.ptr[user + 1]; q++)
    for (let b = 0; b < k; b++) s[b] += rows.val[q] * model.weights[rows.idx[q] * k + b];
  const byItem = new Map<number, number>();
  model.items.forEach((g, c) => !exclude.has(g) && byItem.set(g, s[c]));
  return byItem;
}

/** A long catalogue with short histories: whole blocks go through the sparse product. */
function sparseData(): EASEInteractions {
  const rng = new Rng(8);
  const u: number[] = [];
  const i: number[] = [];
  for (let r = 0; r < 300; r++) {
    for (let q = 0; q < 3; q++) {
      u.push(r);
      i.push(Math.floor(Math.pow(rng.nextFloat(), 1.3) * 600));
    }
  }
  return { userIdx: Int32Array.from(u), itemIdx: Int32Array.from(i), numUsers: 300, numItems: 600 };
}

test('scoring (sparse, compacted and full-width blocks, with exclusions) matches brute force', async () => {
  const paths = { sparse: 0, compact: 0, dense: 0 };
  for (const [data, sizes] of [
    [smallData(), [1, 3, 80]],
    [sparseData(), [300, 7]],
  ] as const) {
    const { model } = await fitEASE(data, { lambda: 3, transform: 'linear' });
    const rows = easeHistoryRows(model, data);
    const excl = buildUserItemsCSR(data.userIdx, data.itemIdx, data.numUsers);
    for (const blockSize of sizes) {
      let checked = 0;
      const stats = await scoreEASE(model, data, {
        topN: 8,
        exclude: excl,
        blockSize,
        selectionWorker: false,
        onBlock: (b) =>
          b.users.forEach((u, r) => {
            const ex = new Set(excl.itemIdx.subarray(excl.userPtr[u], excl.userPtr[u + 1]));
            const ref = bruteScores(model, rows, u, ex);
            const sorted = [...ref.values()].sort((x, y) => y - x);
            for (let q = 0; q < 8; q++) {
              const item = b.items[r * 8 + q];
              // The q-th best score, and an item that really has it (near-ties may swap in float32).
              expect(Math.abs(b.scores[r * 8 + q] - sorted[q])).toBeLessThan(1e-4);
              expect(ref.has(item)).toBe(true);
              expect(Math.abs((ref.get(item) as number) - b.scores[r * 8 + q])).toBeLessThan(1e-4);
            }
            checked++;
          }),
      });
      expect(checked).toBe(data.numUsers);
      for (const k of ['sparse', 'compact', 'dense'] as const) paths[k] += stats.paths?.[k] ?? 0;
    }
  }
  // Every kind of product was exercised.
  expect(paths.sparse).toBeGreaterThan(0);
  expect(paths.compact).toBeGreaterThan(0);
  expect(paths.dense).toBeGreaterThan(0);
});

test("recency-weighted user rows: tau = Infinity is plain EASE; a finite tau ranks the recent item's neighbours first", async () => {
  // Items 0-1 co-occur, items 2-3 co-occur; one user had item 0 long ago and item 2 yesterday.
  const u: number[] = [];
  const i: number[] = [];
  for (let r = 0; r < 40; r++) {
    u.push(r, r);
    i.push(...(r < 20 ? [0, 1] : [2, 3]));
  }
  // Make item 1 slightly more strongly tied to 0 than 3 to 2, so plain EASE prefers item 1.
  u.push(40, 40);
  i.push(0, 1);
  const data = { userIdx: Int32Array.from(u), itemIdx: Int32Array.from(i), numUsers: 41, numItems: 4 };
  const { model } = await fitEASE(data, { lambda: 1 });
  const day = 86400;
  const history = {
    userIdx: Int32Array.from([0, 0]),
    itemIdx: Int32Array.from([0, 2]),
    numUsers: 1,
    numItems: 4,
    timestamps: [100 * day, 199 * day],
  };
  const exclude = { userPtr: Int32Array.from([0, 2]), itemIdx: Int32Array.from([0, 2]) };
  const top = async (tauDays?: number) => {
    let first = -1;
    await scoreEASE(model, history, {
      topN: 1,
      exclude,
      tauDays,
      onBlock: (b) => void (first = b.items[0]),
    });
    return first;
  };
  expect(await top()).toBe(1);
  expect(await top(Infinity)).toBe(1);
  expect(await top(10)).toBe(3);
  // A history years old with a one-day tau still scores (ages count from the user's latest item: no underflow).
  const old = { ...history, timestamps: [1000 * day, 1003 * day] };
  let oldTop = -1;
  await scoreEASE(model, old, { topN: 1, exclude, tauDays: 1, onBlock: (b) => void (oldTop = b.items[0]) });
  expect(oldTop).toBe(3);
  const plain = easeHistoryRows(model, history);
  const decayed = easeHistoryRows(model, history, { tauDays: 10 });
  expect(Array.from(plain.val)).toEqual([1, 1]);
  expect(decayed.val[0]).toBeCloseTo(Math.exp(-9.9), 6); // 99 days before the user's latest item
  expect(decayed.val[1]).toBe(1);
  await expect(
    scoreEASE(
      model,
      { ...history, timestamps: undefined },
      { topN: 1, tauDays: 5, onBlock: () => undefined },
    ),
  ).rejects.toThrow('timestamps');
});

test('EASE recovers planted clusters far better than popularity', async () => {
  const { model } = await fitEASE(
    { ...ds.train, numUsers: ds.numUsers, numItems: ds.numItems },
    { lambda: 20 },
  );
  const truth = new Map<number, number>();
  ds.test.userIdx.forEach((u, k) => truth.set(u, ds.test.itemIdx[k]));
  let hits = 0;
  await scoreEASE(
    model,
    { ...ds.train, numUsers: ds.numUsers, numItems: ds.numItems },
    {
      topN: 10,
      exclude: seen,
      onBlock: (b) =>
        b.users.forEach(
          (u, r) =>
            void (hits += b.items.subarray(r * 10, r * 10 + 10).includes(truth.get(u) as number) ? 1 : 0),
        ),
    },
  );
  const recall = hits / ds.numUsers;
  const pop = popularityRecallAtK(ds.train.itemIdx, ds.numItems, ds.test, 10, seen);
  expect(recall).toBeGreaterThan(0.25);
  expect(recall).toBeGreaterThan(2.5 * pop);
});

test('save/load round trip keeps weights, items and settings; a corrupt file is refused', async () => {
  const { model } = await fitEASE(smallData(), { lambda: 4, maxItems: 30, transform: 'log' });
  const dir = mkdtempSync(path.join(tmpdir(), 'recforge-ease-'));
  try {
    await saveEASEModel(path.join(dir, 'm'), model, { ndcg: 0.1 });
    const { model: back, metadata } = await loadEASEModel(path.join(dir, 'm'));
    expect(back).toEqual(model);
    expect(metadata).toEqual({ ndcg: 0.1 });
    const { writeFileSync } = await import('node:fs');
    writeFileSync(path.join(dir, 'm', 'weights.bin'), Buffer.alloc(8));
    await expect(loadEASEModel(path.join(dir, 'm'))).rejects.toThrow('checksum');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('easeWeightsFromInverse divides columns by the diagonal and zeroes it', () => {
  const p = Float32Array.from([2, -1, -1, 4]);
  expect(Array.from(easeWeightsFromInverse(p, 2))).toEqual([0, 0.25, 0.5, 0]);
});
