/**
 * iALS: implicit-feedback matrix factorisation by alternating least squares (Hu, Koren & Volinsky 2008), each
 * half-sweep solved approximately by a few conjugate-gradient steps per row warm-started from the current factors
 * (Takacs, Pilaszy & Tikk 2011; what the `implicit` library does by default).
 *   minimise sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + lambda (|x_u|^2 + |y_i|^2),
 *   p_ui = 1 where (u, i) was observed, else 0;  c_ui = 1 + alpha w_ui (observed), 1 (unobserved).
 * Unobserved pairs are folded into G = Y^T Y + lambda I, so every CG step is one dense matmul for all rows at once
 * [rows, d] x [d, d] in the backend (the dense half) plus, per row, a pass over its observed entries in typed-array
 * kernels on worker threads sharing the factor tables (the sparse half, ials-kernels.ts). Rows move in lockstep:
 * step s of every row runs before step s + 1 of any, which is the same arithmetic as solving row by row.
 * The model is an MFModel without item bias (score = x_u . y_i), so scoreAll, growEmbeddings and saveMFModel apply.
 */
import { ensureBackend, getTf } from './backend';
import { runFactorEpochs, sharedFloat32 } from './factor-loop';
import { KernelPool } from './kernel-pool';
import type { SimdCGArgs } from './kernels';
import type { CGArrays } from './ials-kernels';
import { SimdArena } from './simd-arena';
import { simdSupported } from './simd-kernels';
import { initMF, type Interactions, type MFModel } from './mf';
import { mixSeed } from './rng';
import { balancedRanges, buildCSR, transposeCSR, type CSR, type ValueTransform } from './sparse';
import { fingerprintArrays, type TrainHooks, type TrainingState, type TrainResult } from './trainer';

export interface IALSConfig {
  factors: number;
  iterations: number;
  /** lambda, added to Y^T Y's diagonal (not scaled by counts, as in `implicit`). */
  regularization: number;
  /** Confidence c = 1 + alpha * w for an observed pair. */
  alpha: number;
  cgSteps: number;
  /** How a pair's repeated rows and weights become w (sparse.ts). */
  transform: ValueTransform;
  /** Std of the N(0, std) initial factors. */
  initStd: number;
  seed: number;
  /** Worker threads for the sparse half (default: the machine's cores; 0: the calling thread). */
  threads?: number;
  /**
   * The sparse half's kernels: 'simd' (WebAssembly f32x4, simd-kernels.ts), 'js' (typed-array loops), or 'auto':
   * simd where the runtime has it and factors % 8 === 0.
   */
  kernel?: 'auto' | 'simd' | 'js';
  /** Early stopping on hooks.evaluate, as trainMF. */
  patience: number;
  minDelta: number;
}

/**
 * Defaults from successive halving on MovieLens-small's validation split (bench/quality-models.ts): lambda
 * matters most there (15 iterations, 64 factors: lambda 0.05 -> NDCG@10 0.101, 10 -> 0.105, 50 -> 0.118; 128
 * factors, lambda 50, alpha 16 -> 0.124). Unscaled lambda grows with the data's confidences and counts, so tune
 * it per dataset (models/tuning.ts) where the budget allows.
 */
export const DEFAULT_IALS_CONFIG: IALSConfig = {
  factors: 128,
  iterations: 15,
  regularization: 50,
  alpha: 16,
  cgSteps: 3,
  transform: 'binary',
  initStd: 0.01,
  seed: 42,
  patience: 3,
  minDelta: 0,
};

export interface TrainIALSOptions {
  /** Warm start (e.g. growEmbeddings of the champion; no item bias is used). */
  initialWeights?: MFModel;
  resumeFrom?: TrainingState;
  /** The compiled kernel worker (default: beside kernel-pool.js), or false for the calling thread. */
  workerScript?: string | false;
}

/** One side's CG state: the CSR whose rows are solved, the factors and CG vectors on shared memory. */
interface Side {
  csr: CSR;
  x: Float32Array;
  r: Float32Array;
  p: Float32Array;
  ap: Float32Array;
  rs: Float64Array;
  bounds: Int32Array;
  /** With SIMD kernels: where the same arrays sit in the arena. */
  off?: { ptr: number; idx: number; conf: number; x: number; r: number; p: number; ap: number; rs: number };
}

function makeSide(csr: CSR, init: Float32Array, dim: number, threads: number, arena?: SimdArena): Side {
  const n = csr.numRows * dim;
  // Dense work per row (the vector updates) costs about as much as a few entries.
  const bounds = balancedRanges(csr.ptr, Math.max(1, threads * 2), 4);
  if (!arena) {
    return {
      csr,
      x: sharedFloat32(n, init),
      r: sharedFloat32(n),
      p: sharedFloat32(n),
      ap: sharedFloat32(n),
      rs: new Float64Array(new SharedArrayBuffer(Math.max(1, csr.numRows) * 8)).subarray(0, csr.numRows),
      bounds,
    };
  }
  const ptr = arena.i32(csr.ptr.length, csr.ptr);
  const idx = arena.i32(csr.idx.length, csr.idx);
  const conf = arena.f32(csr.val.length, csr.val);
  const [x, r, p, ap] = [arena.f32(n, init), arena.f32(n), arena.f32(n), arena.f32(n)];
  const rs = arena.f64(csr.numRows);
  return {
    csr: { ...csr, ptr: ptr.view, idx: idx.view, val: conf.view },
    x: x.view,
    r: r.view,
    p: p.view,
    ap: ap.view,
    rs: rs.view,
    bounds,
    off: { ptr: ptr.off, idx: idx.off, conf: conf.off, x: x.off, r: r.off, p: p.off, ap: ap.off, rs: rs.off },
  };
}

/** Arena bytes for both sides' arrays. */
function arenaBytes(users: CSR, items: CSR, dim: number): number {
  const side = (m: CSR) => [
    m.ptr.length * 4,
    m.idx.length * 4,
    m.val.length * 4,
    ...Array(4).fill(m.numRows * dim * 4),
    m.numRows * 8,
  ];
  return SimdArena.size(...side(users), ...side(items));
}

/** out[rows, d] = v[rows, d] x g[d, d] in the backend, written into `out`. */
function denseTimes(v: Float32Array, rows: number, dim: number, g: Float32Array, out: Float32Array): void {
  const tf = getTf();
  const t = tf.tidy(() => tf.matMul(tf.tensor2d(v, [rows, dim]), tf.tensor2d(g, [dim, dim])));
  out.set(t.dataSync() as Float32Array);
  t.dispose();
}

/** G = Y^T Y + lambda I for the other side's factors y [rows, d]. */
function gramPlusReg(y: Float32Array, rows: number, dim: number, lambda: number): Float32Array {
  const tf = getTf();
  // Y^T built here: tfjs-wasm's matmul with a transposed operand is ~20x slower than a plain one.
  const yt = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) for (let d = 0; d < dim; d++) yt[d * rows + r] = y[r * dim + d];
  const t = tf.tidy(() =>
    tf.add(tf.matMul(tf.tensor2d(yt, [dim, rows]), tf.tensor2d(y, [rows, dim])), tf.mul(tf.eye(dim), lambda)),
  );
  const g = (t.dataSync() as Float32Array).slice();
  t.dispose();
  return g;
}

/** Solves `side` given the other side (its factors `other.x`) with cgSteps CG steps per row. */
async function solveSide(
  pool: KernelPool,
  side: Side,
  other: Side,
  dim: number,
  cfg: IALSConfig,
  arena?: SimdArena,
) {
  const g = gramPlusReg(other.x, other.csr.numRows, dim, cfg.regularization);
  const rows = side.csr.numRows;
  const js = (): CGArrays => ({
    ptr: side.csr.ptr,
    idx: side.csr.idx,
    conf: side.csr.val,
    y: other.x,
    x: side.x,
    r: side.r,
    p: side.p,
    ap: side.ap,
    rs: side.rs,
    dim,
  });
  const simd = (): SimdCGArgs => {
    const o = side.off as NonNullable<Side['off']>;
    const a = arena as SimdArena;
    return {
      id: a.id,
      module: a.module,
      memory: a.memory,
      ...o,
      y: (other.off as NonNullable<Side['off']>).x,
      dimBytes: dim * 4,
    };
  };
  denseTimes(side.x, rows, dim, g, side.ap);
  if (arena) await pool.run('simdCgInit', side.bounds, simd);
  else await pool.run('cgInit', side.bounds, js);
  for (let s = 0; s < cfg.cgSteps; s++) {
    denseTimes(side.p, rows, dim, g, side.ap);
    if (arena) await pool.run('simdCgStep', side.bounds, simd);
    else await pool.run('cgStep', side.bounds, js);
  }
}

/** Confidence CSR (c = 1 + alpha w) on shared memory, user x item. */
export function confidenceMatrix(data: Interactions, cfg: Pick<IALSConfig, 'alpha' | 'transform'>): CSR {
  const m = buildCSR(data.userIdx, data.itemIdx, data.weight, data.numUsers, data.numItems, {
    transform: cfg.transform,
    shared: true,
  });
  for (let q = 0; q < m.val.length; q++) m.val[q] = 1 + cfg.alpha * m.val[q];
  return m;
}

/**
 * Trains iALS (selects the 'auto' backend if none was selected). Hooks as trainMF: evaluate per iteration with
 * early stopping and best-iteration restore, onProgress and onCheckpoint per iteration, signal between iterations.
 */
export async function trainIALS(
  data: Interactions,
  config: Partial<IALSConfig> = {},
  hooks: TrainHooks<MFModel> = {},
  opts: TrainIALSOptions = {},
): Promise<TrainResult<MFModel>> {
  const cfg: IALSConfig = { ...DEFAULT_IALS_CONFIG, ...config };
  const dim = cfg.factors;
  if (!(dim >= 1) || !(cfg.cgSteps >= 1) || !(cfg.regularization >= 0) || !(cfg.alpha >= 0))
    throw new Error('iALS needs factors >= 1, cgSteps >= 1, regularization >= 0, alpha >= 0');
  await ensureBackend();
  const users = confidenceMatrix(data, cfg);
  const items = transposeCSR(users, true);
  const init =
    opts.initialWeights ??
    initMF(data.numUsers, data.numItems, { dim, initStd: cfg.initStd, seed: cfg.seed, itemBias: false });
  if (init.numUsers !== data.numUsers || init.numItems !== data.numItems || init.dim !== dim)
    throw new Error(
      `initialWeights are ${init.numUsers}x${init.numItems}x${init.dim}, need ${data.numUsers}x${data.numItems}x${dim} (use growEmbeddings)`,
    );
  const kernel = cfg.kernel ?? 'auto';
  const useSimd = kernel === 'simd' || (kernel === 'auto' && dim % 8 === 0 && simdSupported());
  if (useSimd && dim % 8 !== 0) throw new Error('iALS SIMD kernels need factors % 8 === 0');
  const arena = useSimd ? new SimdArena(arenaBytes(users, items, dim)) : undefined;
  const pool = new KernelPool(cfg.threads, opts.workerScript);
  try {
    const userSide = makeSide(users, init.userFactors, dim, pool.threads, arena);
    const itemSide = makeSide(items, init.itemFactors, dim, pool.threads, arena);
    const weights = {
      user: { shape: [data.numUsers, dim], data: userSide.x },
      item: { shape: [data.numItems, dim], data: itemSide.x },
    };
    const view = (): MFModel => ({
      kind: 'mf',
      numUsers: data.numUsers,
      numItems: data.numItems,
      dim,
      userFactors: userSide.x,
      itemFactors: itemSide.x,
    });
    const { threads: _t, patience: _p, minDelta: _m, kernel: _k, ...identity } = cfg;
    const result = await runFactorEpochs(
      weights,
      async () => {
        await solveSide(pool, userSide, itemSide, dim, cfg, arena);
        await solveSide(pool, itemSide, userSide, dim, cfg, arena);
        return { loss: residualShare(userSide.rs), examples: users.idx.length };
      },
      view,
      {
        kind: 'ials',
        epochs: cfg.iterations,
        patience: cfg.patience,
        minDelta: cfg.minDelta,
        seed: mixSeed(cfg.seed, 0x1a15),
        config: identity,
        dataFingerprint:
          fingerprintArrays(data.userIdx, data.itemIdx, data.weight) + `:${data.numUsers}x${data.numItems}`,
      },
      hooks,
      opts.resumeFrom,
    );
    // Detach the result from shared memory so it outlives nothing it should not.
    const model = result.model as MFModel;
    result.model = {
      ...model,
      userFactors: model.userFactors.slice(),
      itemFactors: model.itemFactors.slice(),
    };
    return result;
  } finally {
    await pool.close();
  }
}

/** Mean squared CG residual over rows after the user half-sweep (reported as the epoch's "loss"). */
function residualShare(rs: Float64Array): number {
  let s = 0;
  for (let k = 0; k < rs.length; k++) s += rs[k];
  return rs.length > 0 ? s / rs.length : 0;
}
