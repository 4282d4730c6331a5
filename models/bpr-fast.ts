/**
 * Fast BPR matrix factorisation: hogwild SGD with hand-derived gradients (bpr-kernel.ts) on worker threads that
 * share the factor tables through SharedArrayBuffers, instead of trainMF's tfjs autograd step per mini-batch.
 * An epoch draws as many samples as there are distinct (user, item) positives; each sample is one dot product and
 * three axpys, so the trainer runs at memory speed on every backend (tfjs is not used at all).
 *
 * Same contract as trainMF: an MFModel (item bias optional), TrainHooks (evaluate per epoch with early stopping and
 * best-epoch restore, onProgress, onCheckpoint at epoch ends, signal), warm start from given factors, resume from
 * a checkpoint. Determinism: with threads = 0 or 1 a seed gives bit-identical results; with more threads the
 * lock-free updates interleave differently from run to run (hogwild), so results vary within noise.
 *
 * Popularity: with uniformly sampled negatives BPR gains most by learning item popularity (every popular item is a
 * frequent positive and a rare negative), which is how the tfjs BPR of issue #14 ended up recommending the top 5% of
 * items 99.8% of the time. Negatives here default to popularity-proportional ones (as in `implicit`), which cancels
 * that advantage and leaves the personal signal.
 */
import { runFactorEpochs, sharedFloat32 } from './factor-loop';
import { KernelPool } from './kernel-pool';
import type { BprArrays } from './bpr-kernel';
import type { SimdBprArgs } from './kernels';
import { SimdArena } from './simd-arena';
import { simdSupported } from './simd-kernels';
import type { Interactions, MFModel } from './mf';
import { mixSeed, Rng } from './rng';
import { buildCSR } from './sparse';
import { fingerprintArrays, type TrainHooks, type TrainingState, type TrainResult } from './trainer';
import { nextTurn } from './turns';

export interface BPRConfig {
  factors: number;
  epochs: number;
  lr: number;
  /** L2 weight decay per update on the rows a sample touches. */
  reg: number;
  itemBias: boolean;
  negatives: 'popularity' | 'uniform';
  /** Skip samples whose negative is a positive of the user. */
  verifyNegatives: boolean;
  /** Multiply each sample's gradient by its interaction weight (summed per pair); else every positive counts 1. */
  weighted: boolean;
  initStd: number;
  seed: number;
  /** Worker threads (default: the machine's cores; 0: the calling thread). */
  threads?: number;
  /** 'simd' (WebAssembly f32x4), 'js', or 'auto' (simd where the runtime has it and factors % 8 === 0). */
  kernel?: 'auto' | 'simd' | 'js';
  patience: number;
  minDelta: number;
}

export const DEFAULT_BPR_CONFIG: BPRConfig = {
  factors: 64,
  epochs: 30,
  lr: 0.05,
  reg: 0.002,
  // With popularity negatives a bias only random-walks (its expected gradient is zero) and hurt on planted data.
  itemBias: false,
  negatives: 'popularity',
  verifyNegatives: true,
  weighted: false,
  initStd: 0.01,
  seed: 42,
  patience: 3,
  minDelta: 0,
};

export interface TrainBPROptions {
  initialWeights?: MFModel;
  resumeFrom?: TrainingState;
  /** The compiled kernel worker (default: beside kernel-pool.js), or false for the calling thread. */
  workerScript?: string | false;
  /** Samples per kernel call (progress, cancellation and the event loop get a turn between calls). */
  stepSamples?: number;
}

function initialTables(data: Interactions, cfg: BPRConfig, initial?: MFModel) {
  const D = cfg.factors;
  if (initial) {
    if (initial.numUsers !== data.numUsers || initial.numItems !== data.numItems || initial.dim !== D)
      throw new Error(
        `initialWeights are ${initial.numUsers}x${initial.numItems}x${initial.dim}, need ${data.numUsers}x${data.numItems}x${D} (use growEmbeddings)`,
      );
    return {
      user: sharedFloat32(data.numUsers * D, initial.userFactors),
      item: sharedFloat32(data.numItems * D, initial.itemFactors),
      bias: cfg.itemBias ? sharedFloat32(data.numItems, initial.itemBias) : undefined,
    };
  }
  const rng = new Rng(mixSeed(cfg.seed, 0xb9));
  // Uniform with the configured std (half-width std * sqrt(3)) from an inline xorshift seeded by the Rng: one cheap
  // draw per value, where Box-Muller normals through Rng calls took most of the setup at 5M values; SGD does not
  // care about the initial distribution's shape.
  const half = cfg.initStd * Math.sqrt(3);
  let x = rng.nextU32() | 1;
  const fill = (rows: number) => {
    const t = sharedFloat32(rows * D);
    for (let k = 0; k < t.length; k++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      t[k] = ((x >>> 0) / 4294967296 - 0.5) * 2 * half;
    }
    return t;
  };
  return {
    user: fill(data.numUsers),
    item: fill(data.numItems),
    bias: cfg.itemBias ? sharedFloat32(data.numItems) : undefined,
  };
}

/** Trains BPR-MF with hogwild SGD (see header). */
export async function trainBPR(
  data: Interactions,
  config: Partial<BPRConfig> = {},
  hooks: TrainHooks<MFModel> = {},
  opts: TrainBPROptions = {},
): Promise<TrainResult<MFModel>> {
  const cfg: BPRConfig = { ...DEFAULT_BPR_CONFIG, ...config };
  const D = cfg.factors;
  if (!(D >= 1) || !(cfg.lr > 0) || !(cfg.reg >= 0))
    throw new Error('BPR needs factors >= 1, lr > 0, reg >= 0');
  const csr = buildCSR(data.userIdx, data.itemIdx, data.weight, data.numUsers, data.numItems, {
    transform: cfg.weighted ? 'linear' : 'binary',
    shared: true,
  });
  const nnz = csr.idx.length;
  if (nnz === 0) throw new Error('training data is empty');
  const rowOf = new Int32Array(new SharedArrayBuffer(nnz * 4));
  for (let u = 0; u < data.numUsers; u++) rowOf.fill(u, csr.ptr[u], csr.ptr[u + 1]);
  const pool = new KernelPool(cfg.threads, opts.workerScript);
  const chunks = Math.max(1, pool.threads);
  const stepSamples = Math.max(chunks, opts.stepSamples ?? 1 << 20);
  const kernel = cfg.kernel ?? 'auto';
  const useSimd = kernel === 'simd' || (kernel === 'auto' && D % 8 === 0 && simdSupported());
  if (useSimd && D % 8 !== 0) throw new Error('BPR SIMD kernel needs factors % 8 === 0');
  let tables = initialTables(data, cfg, opts.initialWeights);
  let simd: ((epoch: number, step: number, chunk: number) => SimdBprArgs) | undefined;
  if (useSimd) {
    // Everything the kernel touches moves into one shared wasm memory (simd-arena.ts).
    const weighted = cfg.weighted;
    const arena = new SimdArena(
      SimdArena.size(
        csr.ptr.length * 4,
        nnz * 4,
        nnz * 4,
        weighted ? nnz * 4 : 0,
        tables.user.length * 4,
        tables.item.length * 4,
        tables.bias ? tables.bias.length * 4 : 0,
        8 * chunks,
      ),
    );
    const ptr = arena.i32(csr.ptr.length, csr.ptr);
    const idx = arena.i32(nnz, csr.idx);
    const rows = arena.i32(nnz, rowOf);
    const weight = weighted ? arena.f32(nnz, csr.val) : undefined;
    const user = arena.f32(tables.user.length, tables.user);
    const item = arena.f32(tables.item.length, tables.item);
    const bias = tables.bias ? arena.f32(tables.bias.length, tables.bias) : undefined;
    const out = arena.i32(2 * chunks);
    tables = { user: user.view, item: item.view, bias: bias?.view };
    simd = (epoch, step, chunk) => ({
      id: arena.id,
      module: arena.module,
      memory: arena.memory,
      ptr: ptr.off,
      idx: idx.off,
      rowOf: rows.off,
      weight: weight?.off ?? 0,
      P: user.off,
      Q: item.off,
      bias: bias?.off ?? 0,
      nnz,
      numItems: data.numItems,
      dimBytes: D * 4,
      lr: cfg.lr,
      reg: cfg.reg,
      popular: cfg.negatives === 'popularity' ? 1 : 0,
      verify: cfg.verifyNegatives,
      seed: mixSeed(cfg.seed, epoch, step, chunk),
      out: out.off + 8 * chunk,
    });
  }
  try {
    const weights: Record<string, { shape: number[]; data: Float32Array }> = {
      user: { shape: [data.numUsers, D], data: tables.user },
      item: { shape: [data.numItems, D], data: tables.item },
    };
    if (tables.bias) weights['itemBias'] = { shape: [data.numItems], data: tables.bias };
    const view = (): MFModel => ({
      kind: 'mf',
      numUsers: data.numUsers,
      numItems: data.numItems,
      dim: D,
      userFactors: tables.user,
      itemFactors: tables.item,
      itemBias: tables.bias,
    });
    const args = (epoch: number, step: number, chunk: number): BprArrays => ({
      ptr: csr.ptr,
      idx: csr.idx,
      rowOf,
      weight: cfg.weighted ? csr.val : undefined,
      userFactors: tables.user,
      itemFactors: tables.item,
      itemBias: tables.bias,
      numItems: data.numItems,
      dim: D,
      lr: cfg.lr,
      reg: cfg.reg,
      popularityNegatives: cfg.negatives === 'popularity' ? 1 : 0,
      verify: cfg.verifyNegatives,
      seed: mixSeed(cfg.seed, epoch, step, chunk),
    });
    const { threads: _t, patience: _p, minDelta: _m, kernel: _k, ...identity } = cfg;
    const result = await runFactorEpochs(
      weights,
      async (epoch) => {
        let correct = 0;
        let used = 0;
        let done = 0;
        for (let step = 0; done < nnz; step++) {
          if (hooks.signal?.aborted) throw hooks.signal.reason ?? new Error('training aborted');
          const n = Math.min(stepSamples, nnz - done);
          const bounds = Int32Array.from({ length: chunks + 1 }, (_, c) => Math.round((n * c) / chunks));
          const out = simd
            ? await pool.run('simdBpr', bounds, (c) => (simd as NonNullable<typeof simd>)(epoch, step, c))
            : await pool.run('bpr', bounds, (c) => args(epoch, step, c));
          for (const r of out) {
            correct += r.correct;
            used += r.samples - r.skipped;
          }
          done += n;
          // Timers (heartbeats) run between calls even when the kernels run on this thread.
          await nextTurn();
        }
        // The share of sampled pairs the model still misordered before its update: BPR's error rate.
        return { loss: used > 0 ? 1 - correct / used : NaN, examples: nnz };
      },
      view,
      {
        kind: 'bpr-hogwild',
        epochs: cfg.epochs,
        patience: cfg.patience,
        minDelta: cfg.minDelta,
        seed: cfg.seed,
        config: identity,
        dataFingerprint:
          fingerprintArrays(data.userIdx, data.itemIdx, data.weight) + `:${data.numUsers}x${data.numItems}`,
      },
      hooks,
      opts.resumeFrom,
    );
    const m = result.model;
    result.model = {
      ...m,
      userFactors: m.userFactors.slice(),
      itemFactors: m.itemFactors.slice(),
      itemBias: m.itemBias?.slice(),
    };
    return result;
  } finally {
    await pool.close();
  }
}
