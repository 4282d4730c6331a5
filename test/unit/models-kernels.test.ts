/**
 * Kernels registered for wasm (and the ported gradients) against tfjs-backend-cpu's *own* kernels and against finite
 * differences. cpu keeps its original kernels in this file because it is activated with tf.setBackend, not
 * selectBackend (which would swap in the faster replacements).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { selectBackend } from '../../models/backend';
import { Rng } from '../../models/rng';

beforeAll(async () => {
  await selectBackend('wasm');
});

function randArray(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => (rng.nextFloat() * 2 - 1) * scale);
}

/** Runs f on the named backend and returns plain arrays (tensors are disposed). */
async function on<T>(backend: 'wasm' | 'cpu', f: () => T): Promise<T> {
  await tf.setBackend(backend);
  return f();
}

function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number): void {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  expect(worst).toBeLessThanOrEqual(tol);
}

describe('UnsortedSegmentSum on wasm', () => {
  test('matches the cpu kernel (float32 and int32, repeated and out-of-range ids)', async () => {
    const x = randArray(60 * 7, 1);
    const ids = Int32Array.from({ length: 60 }, (_, i) => ((i * 7) % 13) - 1); // includes -1 and 11 (>= 11 segments)
    const run = (): { values: Float32Array[]; intDtype: string } => {
      const a = tf.unsortedSegmentSum(tf.tensor2d(x, [60, 7]), tf.tensor1d(ids, 'int32'), 11);
      const b = tf.unsortedSegmentSum(tf.tensor1d(x.subarray(0, 60)), tf.tensor1d(ids, 'int32'), 11);
      const c = tf.unsortedSegmentSum(
        tf.tensor1d(
          Int32Array.from(ids, (v) => v * 3),
          'int32',
        ),
        tf.tensor1d(ids, 'int32'),
        11,
      );
      const values = [a, b, c].map((t) => Float32Array.from(t.dataSync()));
      expect(a.shape).toEqual([11, 7]);
      const intDtype = c.dtype;
      tf.dispose([a, b, c]);
      return { values, intDtype };
    };
    const w = await on('wasm', run);
    const c = await on('cpu', run);
    w.values.forEach((arr, k) => expectClose(arr, c.values[k], 1e-5));
    // TF keeps the input dtype; tfjs-backend-cpu's kernel returns float32 for int32 input, ours keeps int32.
    expect(w.intDtype).toBe('int32');
  });

  test('rank-2 segment ids follow TF semantics (JS reference)', async () => {
    await tf.setBackend('wasm');
    const x = randArray(3 * 4 * 5, 2);
    const ids = Int32Array.from([0, 1, 0, 2, 2, 2, 1, 0, 3, 3, 0, 1]);
    const out = tf.unsortedSegmentSum(
      tf.tensor3d(x, [3, 4, 5]),
      tf.tensor2d(ids, [3, 4], 'int32') as unknown as tf.Tensor1D,
      4,
    );
    const ref = new Float32Array(4 * 5);
    for (let k = 0; k < 12; k++) for (let d = 0; d < 5; d++) ref[ids[k] * 5 + d] += x[k * 5 + d];
    expect(out.shape).toEqual([4, 5]);
    expectClose(out.dataSync(), ref, 1e-6);
    out.dispose();
  });
});

describe('GatherV2 row-copy kernel', () => {
  test('matches the upstream cpu kernel for several axes, ranks and dtypes', async () => {
    const x3 = randArray(4 * 6 * 3, 3);
    const run = (): Array<{ shape: number[]; data: number[] }> => {
      const cases = [
        tf.gather(tf.tensor2d(x3.subarray(0, 24), [8, 3]), tf.tensor1d([7, 0, 0, 3], 'int32')),
        tf.gather(tf.tensor2d(x3.subarray(0, 24), [8, 3]), tf.tensor1d([2, 1], 'int32'), 1),
        tf.gather(tf.tensor3d(x3, [4, 6, 3]), tf.tensor2d([5, 0, 2, 2], [2, 2], 'int32'), 1),
        tf.gather(tf.tensor1d([10, 20, 30], 'int32'), tf.tensor1d([2, 2, 0], 'int32')),
        tf.gather(tf.tensor3d(x3, [4, 6, 3]), tf.tensor1d([1, 0], 'int32'), -1),
      ];
      const out = cases.map((t) => ({ shape: t.shape, data: Array.from(t.dataSync()) }));
      tf.dispose(cases);
      return out;
    };
    const w = await on('wasm', run);
    const c = await on('cpu', run);
    expect(w.map((o) => o.shape)).toEqual(c.map((o) => o.shape));
    w.forEach((o, k) => expectClose(o.data, c[k].data, 0));
  });

  test('rejects out-of-range indices like the upstream kernels', async () => {
    await tf.setBackend('wasm');
    expect(() => tf.gather(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor1d([2], 'int32'))).toThrow(
      /not in \[0, 1\]/,
    );
  });
});

/** A BPR-style loss over gathered embeddings, returning gradients for both tables. */
function bprGrads(
  U: Float32Array,
  I: Float32Array,
  D: number,
): { loss: number; gU: Float32Array; gI: Float32Array } {
  const u = tf.tensor1d([0, 3, 3, 1, 4], 'int32');
  const i = tf.tensor1d([2, 2, 5, 0, 1], 'int32');
  const j = tf.tensor1d([1, 4, 4, 5, 5], 'int32');
  const w = tf.tensor1d([1, 2, 1, 0.5, 3]);
  const Ut = tf.tensor2d(U, [5, D]);
  const It = tf.tensor2d(I, [6, D]);
  const { value, grads } = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) => {
    const pu = tf.gather(a, u);
    const x = tf.sub(tf.sum(tf.mul(pu, tf.gather(b, i)), 1), tf.sum(tf.mul(pu, tf.gather(b, j)), 1));
    const reg = tf.mul(tf.add(tf.sum(tf.square(pu)), tf.sum(tf.square(tf.gather(b, j)))), 0.01);
    return tf.add(tf.mean(tf.mul(tf.softplus(tf.neg(x)), w)), reg) as tf.Scalar;
  })([Ut, It]);
  const out = {
    loss: value.dataSync()[0],
    gU: Float32Array.from(grads[0].dataSync()),
    gI: Float32Array.from(grads[1].dataSync()),
  };
  tf.dispose([u, i, j, w, Ut, It, value, ...grads]);
  return out;
}

describe('gradients through gather', () => {
  test('wasm forward and gradients equal cpu within 1e-5', async () => {
    const D = 8;
    const U = randArray(5 * D, 11, 0.5);
    const I = randArray(6 * D, 12, 0.5);
    const w = await on('wasm', () => bprGrads(U, I, D));
    const c = await on('cpu', () => bprGrads(U, I, D));
    expect(Math.abs(w.loss - c.loss)).toBeLessThanOrEqual(1e-5);
    expectClose(w.gU, c.gU, 1e-5);
    expectClose(w.gI, c.gI, 1e-5);
    // Rows never gathered get exactly zero gradient.
    expect(Array.from(w.gU.subarray(2 * D, 3 * D))).toEqual(new Array(D).fill(0));
    expect(Array.from(w.gI.subarray(3 * D, 4 * D))).toEqual(new Array(D).fill(0));
  });

  test('gradients match central finite differences (float64 reference loss)', async () => {
    await tf.setBackend('wasm');
    const D = 4;
    const U = randArray(5 * D, 21, 0.5);
    const I = randArray(6 * D, 22, 0.5);
    const { gU, gI } = bprGrads(U, I, D);
    // Reference loss in float64 JS.
    const ref = (Uv: ArrayLike<number>, Iv: ArrayLike<number>): number => {
      const us = [0, 3, 3, 1, 4];
      const is = [2, 2, 5, 0, 1];
      const js = [1, 4, 4, 5, 5];
      const ws = [1, 2, 1, 0.5, 3];
      let loss = 0;
      let reg = 0;
      for (let b = 0; b < 5; b++) {
        let x = 0;
        for (let d = 0; d < D; d++) {
          x += Uv[us[b] * D + d] * (Iv[is[b] * D + d] - Iv[js[b] * D + d]);
          reg += Uv[us[b] * D + d] ** 2 + Iv[js[b] * D + d] ** 2;
        }
        loss += Math.log1p(Math.exp(-x)) * ws[b];
      }
      return loss / 5 + 0.01 * reg;
    };
    const eps = 1e-4;
    const U64 = Float64Array.from(U);
    const I64 = Float64Array.from(I);
    for (let k = 0; k < U.length; k++) {
      const p = U64.slice();
      const m = U64.slice();
      p[k] += eps;
      m[k] -= eps;
      expect(Math.abs((ref(p, I64) - ref(m, I64)) / (2 * eps) - gU[k])).toBeLessThan(1e-4);
    }
    for (let k = 0; k < I.length; k++) {
      const p = I64.slice();
      const m = I64.slice();
      p[k] += eps;
      m[k] -= eps;
      expect(Math.abs((ref(U64, p) - ref(U64, m)) / (2 * eps) - gI[k])).toBeLessThan(1e-4);
    }
  });

  test('two-tower ops (concat, matmul, l2-normalise, logSumExp, broadcasting) match finite differences', async () => {
    await tf.setBackend('wasm');
    const A = randArray(3 * 4, 31, 0.8);
    const W = randArray(8 * 2, 32, 0.8);
    const f = (a: tf.Tensor, w: tf.Tensor): tf.Scalar => {
      const x = tf.concat([a, tf.mul(a, a)], 1); // [3, 8]
      const h = tf.add(tf.matMul(x, w), tf.tensor1d([0.1, -0.2])); // [3, 2]
      const n = tf.div(h, tf.sqrt(tf.add(tf.sum(tf.square(h), 1, true), 1e-12)));
      const logits = tf.matMul(n, tf.transpose(n));
      // relu on h + 2 keeps inputs away from the kink so finite differences are valid.
      return tf.add(tf.sum(tf.logSumExp(tf.mul(logits, 3), 1)), tf.mean(tf.relu(tf.add(h, 2)))) as tf.Scalar;
    };
    const At = tf.tensor2d(A, [3, 4]);
    const Wt = tf.tensor2d(W, [8, 2]);
    const g = tf.grads(f)([At, Wt]);
    const gA = g[0].dataSync();
    const gW = g[1].dataSync();
    const evalAt = (a: Float32Array, w: Float32Array): number =>
      tf.tidy(() => f(tf.tensor2d(a, [3, 4]), tf.tensor2d(w, [8, 2])).dataSync()[0]);
    const eps = 3e-3;
    const check = (arr: Float32Array, grad: ArrayLike<number>, which: 0 | 1): void => {
      for (let k = 0; k < arr.length; k++) {
        const p = arr.slice();
        const m = arr.slice();
        p[k] += eps;
        m[k] -= eps;
        const fd =
          which === 0 ? (evalAt(p, W) - evalAt(m, W)) / (2 * eps) : (evalAt(A, p) - evalAt(A, m)) / (2 * eps);
        if (Math.abs(fd - grad[k]) >= 2e-2 * Math.max(1, Math.abs(fd))) {
          throw new Error(`param ${which} index ${k}: finite difference ${fd} vs gradient ${grad[k]}`);
        }
      }
    };
    check(A, gA, 0);
    check(W, gW, 1);
    tf.dispose([At, Wt, ...g]);
  });

  test('logSigmoid backprop works on wasm once gradients are registered', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor1d([-3, -0.5, 0, 2]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.logSigmoid(t)))(x);
    const expected = [-3, -0.5, 0, 2].map((v) => 1 / (1 + Math.exp(v)));
    expectClose(g.dataSync(), expected, 1e-6);
    tf.dispose([x, g]);
  });
});
