import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { getTf, selectBackend } from '../../models/backend';
import { clipAndSumByUser, type DpNoise } from '../../models/dp-sgd';
import { createDpBprStep, dpSgdSteps, trainMFDp } from '../../models/mf-dp';
import type { Interactions, MFConfig } from '../../models/mf';
import { Rng } from '../../models/rng';
import { plantedClusters } from '../../models/synthetic';
import type { TrainingState } from '../../models/trainer';
import { secureDpSgdRandomness } from '../../privacy/dp-sgd';
import { createSeededRng } from '../../privacy/rng';

beforeAll(async () => {
  await selectBackend('wasm');
});

const ds = plantedClusters({ numUsers: 120, numItems: 60, numClusters: 4, perUser: 8, seed: 11 });
const data: Interactions = { ...ds.train, numUsers: ds.numUsers, numItems: ds.numItems };
const cfg: Partial<MFConfig> = { dim: 8, lr: 0.05, l2: 1e-3, negatives: 3, seed: 3, initStd: 0.3 };
const noiseless: DpNoise = {
  sampleUsers: () => {
    throw new Error('the test passes users explicitly');
  },
  addNoise: (_out, std) => expect(std).toBe(0),
};

function norm(a: Float32Array | Float64Array): number {
  let s = 0;
  for (const v of a) s += v * v;
  return Math.sqrt(s);
}

/** Random slots with many repeated (user, row) pairs, as BPR produces (a negative equal to a positive). */
function randomSlots(rng: Rng, users: number, rows: number, slots: number, width: number) {
  const slotUser = Int32Array.from({ length: slots }, () => rng.nextInt(users));
  const slotRow = Int32Array.from({ length: slots }, () => rng.nextInt(rows));
  const grads = Float32Array.from({ length: slots * width }, () => (rng.nextFloat() - 0.5) * 4);
  return { slotUser, slotRow, grads };
}

describe('per-user clipping (clipAndSumByUser)', () => {
  test('property: removing any one user changes the clipped sum by at most C; norms are exact', () => {
    const tf = getTf();
    const rng = new Rng(7);
    for (let trial = 0; trial < 25; trial++) {
      const U = 1 + rng.nextInt(8);
      const Rn = 1 + rng.nextInt(6);
      const S = 1 + rng.nextInt(40);
      const W = 1 + rng.nextInt(5);
      const C = [0.1, 1, 3, 1e6][trial % 4];
      const { slotUser, slotRow, grads } = randomSlots(rng, U, Rn, S, W);
      const run = (keep: (s: number) => boolean) => {
        const idx = [...Array(S).keys()].filter(keep);
        const g = tf.tensor2d(
          idx.flatMap((s) => Array.from(grads.subarray(s * W, (s + 1) * W))),
          [idx.length, W],
        );
        try {
          return clipAndSumByUser(
            tf,
            g,
            {
              slotUser: Int32Array.from(idx, (s) => slotUser[s]),
              slotRow: Int32Array.from(idx, (s) => slotRow[s]),
              numUsers: U,
              numRows: Rn,
            },
            C,
          );
        } finally {
          g.dispose();
        }
      };
      const all = run(() => true);
      for (let u = 0; u < U; u++) {
        // Reference: the user's summed (unclipped) contribution, row by row.
        const contrib = new Float64Array(Rn * W);
        for (let s = 0; s < S; s++) {
          if (slotUser[s] !== u) continue;
          for (let c = 0; c < W; c++) contrib[slotRow[s] * W + c] += grads[s * W + c];
        }
        expect(all.userNorms[u]).toBeCloseTo(norm(contrib), 3);
        const without = run((s) => slotUser[s] !== u);
        const diff = all.rowSum.map((v, i) => v - without.rowSum[i]);
        expect(norm(diff)).toBeLessThanOrEqual(C * (1 + 1e-5) + 1e-6);
        // Below the bound, a contribution passes unchanged.
        if (norm(contrib) < C) diff.forEach((v, i) => expect(v).toBeCloseTo(contrib[i], 4));
        else expect(norm(diff)).toBeCloseTo(C, 3);
      }
    }
  });
});

describe('DP BPR step', () => {
  test('with C huge and σ = 0 the privatised gradients equal autodiff of the summed loss / (q·N)', async () => {
    const tf = getTf();
    const dp = { clipNorm: 1e9, noiseMultiplier: 0, samplingRate: 0.25, epochs: 1 };
    const { step } = await createDpBprStep(data, cfg, dp, noiseless);
    const users = Int32Array.from([0, 3, 4, 17, 50, 51, 99]);
    const out = step.gradientsFor(users, new Rng(5));
    const K = 3;
    const B = out.examples.length;
    expect(B).toBeGreaterThan(20);
    const w = step.params.weights;
    const U = tf.tensor2d(w.user.data, w.user.shape as [number, number]);
    const I = tf.tensor2d(w.item.data, w.item.shape as [number, number]);
    const Bi = tf.tensor1d(w.itemBias.data);
    const eu = tf.tensor1d(
      Int32Array.from(out.examples, (e) => data.userIdx[e]),
      'int32',
    );
    const ei = tf.tensor1d(
      Int32Array.from(out.examples, (e) => data.itemIdx[e]),
      'int32',
    );
    const ej = tf.tensor1d(out.negatives, 'int32');
    const l2 = cfg.l2!;
    // Reference: the plain per-example BPR loss summed over the examples, on the full tables.
    const [gU, gI, gB] = tf.grads((...xs: Tensor[]) => {
      const [u, it, b] = xs;
      const pu = tf.gather(u, eu);
      const qi = tf.gather(it, ei);
      const qj = tf.reshape(tf.gather(it, ej), [B, K, 8]);
      const bi = tf.gather(b, ei);
      const bj = tf.reshape(tf.gather(b, ej), [B, K]);
      const sPos = tf.add(tf.sum(tf.mul(pu, qi), 1, true), tf.reshape(bi, [B, 1]));
      const sNeg = tf.add(tf.sum(tf.mul(tf.expandDims(pu, 1), qj), 2), bj);
      const data_ = tf.div(tf.sum(tf.softplus(tf.neg(tf.sub(sPos, sNeg)))), K);
      const reg = tf.addN([
        tf.sum(tf.square(pu)),
        tf.sum(tf.square(qi)),
        tf.div(tf.sum(tf.square(qj)), K),
        tf.sum(tf.square(bi)),
        tf.div(tf.sum(tf.square(bj)), K),
      ]);
      return tf.div(tf.add(data_, tf.mul(reg, l2)), dp.samplingRate * data.numUsers) as Scalar;
    })([U, I, Bi]);
    const close = (got: Float32Array, want: Float32Array) => {
      const scale = Math.max(...Array.from(want, Math.abs));
      expect(scale).toBeGreaterThan(0);
      want.forEach((v, i) => expect(Math.abs(got[i] - v)).toBeLessThan(1e-4 * scale));
    };
    const item = out.grads.get('item')!;
    const bias = out.grads.get('itemBias')!;
    expect(item.kind).toBe('dense');
    close(item.values, gI.dataSync() as Float32Array);
    close(bias.values, gB.dataSync() as Float32Array);
    const user = out.grads.get('user')!;
    if (user.kind !== 'sparse') throw new Error('user gradient should be sparse');
    const denseUser = new Float32Array(w.user.data.length);
    user.rows.forEach((r, k) => denseUser.set(user.values.subarray(k * 8, (k + 1) * 8), r * 8));
    close(denseUser, gU.dataSync() as Float32Array);
    tf.dispose([U, I, Bi, eu, ei, ej, gU, gI, gB]);
  });

  test('each user moves the shared table by at most C / (q·N) per step', async () => {
    const dp = { clipNorm: 0.05, noiseMultiplier: 0, samplingRate: 0.1, epochs: 1 };
    const { step } = await createDpBprStep(data, cfg, dp, noiseless);
    const qN = dp.samplingRate * data.numUsers;
    let clipped = 0;
    for (let u = 0; u < 30; u++) {
      const out = step.gradientsFor(Int32Array.of(u), new Rng(u));
      const g = out.grads.get('item')!.values;
      const b = out.grads.get('itemBias')!.values;
      const total = Math.sqrt(norm(g) ** 2 + norm(b) ** 2) * qN;
      expect(total).toBeLessThanOrEqual(dp.clipNorm * (1 + 1e-4));
      if (out.userNorms[0] > dp.clipNorm) {
        clipped++;
        expect(total).toBeCloseTo(dp.clipNorm, 4);
      }
    }
    expect(clipped).toBeGreaterThan(20); // the bound was actually exercised
  });

  test("one user's contribution does not depend on which other users were sampled (negatives included)", async () => {
    const dp = { clipNorm: 0.05, noiseMultiplier: 0, samplingRate: 0.1, epochs: 1 };
    const { step } = await createDpBprStep(data, cfg, dp, noiseless);
    const item = (users: number[]) =>
      step.gradientsFor(Int32Array.from(users), new Rng(9)).grads.get('item')!.values;
    for (const [u, v] of [
      [3, 40],
      [7, 8],
      [100, 2],
    ]) {
      const both = item([u, v]);
      const onlyU = item([u]);
      const onlyV = item([v]);
      both.forEach((x, i) => expect(x).toBeCloseTo(onlyU[i] + onlyV[i], 6));
    }
  });

  test('every row of the shared table gets N(0, (σC)²)/(q·N) noise, touched or not (fixed seed)', async () => {
    const dp = { clipNorm: 0.5, noiseMultiplier: 1.3, samplingRate: 0.2, epochs: 1 };
    const noise = secureDpSgdRandomness(createSeededRng('step-noise'), dp.samplingRate);
    const { step } = await createDpBprStep({ ...data, numItems: 2000 }, { ...cfg }, dp, noise);
    // No user sampled: the gradient is pure noise, on all 2000 x (8 + 1) entries.
    const out = step.gradientsFor(new Int32Array(0), new Rng(1));
    const g = out.grads.get('item')!.values;
    const b = out.grads.get('itemBias')!.values;
    expect(g.length).toBe(2000 * 8);
    expect(b.length).toBe(2000);
    const all = Float64Array.from([...g, ...b]);
    const want = (dp.noiseMultiplier * dp.clipNorm) / (dp.samplingRate * data.numUsers);
    const sd = norm(all) / Math.sqrt(all.length);
    expect(Math.abs(sd / want - 1)).toBeLessThan(0.02); // SE ≈ 0.5%
    expect(all.every((v) => v !== 0)).toBe(true);
    expect(out.grads.has('user')).toBe(false);
  });
});

describe('trainMFDp', () => {
  test('runs exactly epochs·⌈1/q⌉ steps, and a resumed run still runs that many in total', async () => {
    const dp = { clipNorm: 1, noiseMultiplier: 0.8, samplingRate: 0.3, epochs: 3 };
    const steps = dpSgdSteps(dp.epochs, dp.samplingRate);
    expect(steps).toBe(12);
    const noise = () => secureDpSgdRandomness(createSeededRng('train'), dp.samplingRate);
    const full = await trainMFDp(data, cfg, dp, noise());
    expect(full.globalStep).toBe(steps);
    expect(full.history).toHaveLength(3);
    let saved: TrainingState | undefined;
    await expect(
      trainMFDp(data, { ...cfg, checkpointEvery: 5 }, dp, noise(), {
        onCheckpoint: (s) => {
          if (s.globalStep === 5) {
            saved = s;
            throw new Error('crash after step 5');
          }
        },
      }),
    ).rejects.toThrow('crash');
    expect(saved!.globalStep).toBe(5);
    const resumed = await trainMFDp(
      data,
      { ...cfg, checkpointEvery: 5 },
      dp,
      noise(),
      {},
      { resumeFrom: saved },
    );
    expect(resumed.globalStep).toBe(steps);
    // Other DP parameters cannot resume this run (the accounting was done for these).
    await expect(
      trainMFDp(data, cfg, { ...dp, noiseMultiplier: 0.5 }, noise(), {}, { resumeFrom: saved }),
    ).rejects.toThrow(/config differs/);
  });

  test('refuses popularity negatives (they are computed from other users)', async () => {
    const dp = { clipNorm: 1, noiseMultiplier: 1, samplingRate: 0.5, epochs: 1 };
    await expect(
      trainMFDp(
        data,
        { ...cfg, negativeSampling: 'popularity' },
        dp,
        secureDpSgdRandomness(createSeededRng('x'), 0.5),
      ),
    ).rejects.toThrow(/uniform/);
  });
});
