/**
 * Training/scoring throughput benchmark for models/.
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/training.js [--out bench/results/training.json] [--quick]
 *     [--models-only | --skip-models]
 *
 * Last (bench/training-models.ts, on the 'auto' backend): recforge's EASE, iALS and hogwild BPR against Python's
 * implicit ALS / BPR and a numpy EASE on the same data, same run (--models-only runs just that part).
 * Measures (synthetic data, 70k users x 10k items, 1M interactions, dim 64, batch 8192):
 * Each of wasm and, where `npm run setup` built it, tfjs-node ('tensorflow'):
 * - BPR examples/s: host-table lazy Adam (models/mf.ts), its dense-Adam mode, and the baseline it replaces:
 *   tf.Variable tables + tf.train.adam (dense) with the same loss, same backend.
 * - two-tower examples/s: the fused step (hand-derived gradients) against the autograd step, alternated runs,
 *   per wall second and per CPU second of this process.
 * - scoring GFLOP/s (matmul + exclusion + top-N) vs plain tf.matMul GFLOP/s of one block's shape, same backend
 *   (bench/scoring-kernels.ts: every backend, each placement of selection, and the EASE blend).
 * Then BPR on the plain-JS cpu backend (the last resort), and peak RSS.
 * Timings are best-of-N where cheap; the machine may be shared, so treat them as indicative.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { findProjectRoot } from '../lib/config';
import { getTf, selectBackend } from '../models/backend';
import { buildUserItemsCSR, initMF, trainMF } from '../models/mf';
import { matmulGflops, scoreAll } from '../models/score';
import { randomInteractions } from '../models/synthetic';
import { hashTitleTokens, trainTwoTower, type StepGradients } from '../models/two-tower';
import { benchModels } from './training-models';

interface Result {
  metric: string;
  value: number;
  unit: string;
  baseline?: string;
  baselineValue?: number;
  ratio?: number;
}

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const modelsOnly = args.includes('--models-only');
const skipModels = args.includes('--skip-models');
const outIdx = args.indexOf('--out');
const outPath = outIdx >= 0 ? args[outIdx + 1] : path.join('bench', 'results', 'training.json');

const NUM_USERS = 70_000;
const NUM_ITEMS = 10_000;
const N = quick ? 200_000 : 1_000_000;
const DIM = 64;
const BATCH = 8192;

const results: Result[] = [];
const loadAvgAtStart = os.loadavg();
function record(r: Result): void {
  results.push(r);
  console.log(JSON.stringify(r));
}

function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** Trains BPR for at most maxSeconds and returns steady-state examples/s (first step excluded as warm-up). */
async function bprThroughput(
  data: ReturnType<typeof randomInteractions>,
  maxSeconds: number,
  lazy: boolean,
): Promise<number> {
  const ac = new AbortController();
  let examples = 0;
  let t0 = 0;
  let t1 = 0;
  let steps = 0;
  const stop = setTimeout(() => ac.abort(new Error('time budget reached')), maxSeconds * 1000);
  try {
    await trainMF(
      { ...data, numUsers: NUM_USERS, numItems: NUM_ITEMS },
      {
        dim: DIM,
        batchSize: BATCH,
        epochs: 1,
        negatives: 1,
        adam: { lazy },
        progressIntervalMs: 0,
        patience: Infinity,
      },
      {
        signal: ac.signal,
        onProgress: (p) => {
          steps++;
          const now = performance.now();
          if (steps === 1) {
            t0 = now;
            return;
          }
          examples += Math.min(BATCH, N - (p.step - 1) * BATCH);
          t1 = now;
        },
      },
    );
  } catch (e) {
    if (!ac.signal.aborted) throw e;
  } finally {
    clearTimeout(stop);
  }
  return (examples * 1000) / Math.max(1, t1 - t0);
}

/** The approach models/ replaces: tf.Variable tables, gather-based BPR loss, tf.train.adam (dense). */
function variableAdamThroughput(data: ReturnType<typeof randomInteractions>, steps: number): number {
  const tf = getTf();
  const init = initMF(NUM_USERS, NUM_ITEMS, { dim: DIM, initStd: 0.1, seed: 1, itemBias: false });
  const U = tf.variable(tf.tensor2d(init.userFactors, [NUM_USERS, DIM]));
  const I = tf.variable(tf.tensor2d(init.itemFactors, [NUM_ITEMS, DIM]));
  const opt = tf.train.adam(0.01);
  let t0 = 0;
  for (let s = 0; s <= steps; s++) {
    if (s === 1) t0 = performance.now(); // step 0 is warm-up (creates Adam slots)
    const lo = (s * BATCH) % (N - BATCH);
    const u = tf.tensor1d(data.userIdx.subarray(lo, lo + BATCH), 'int32');
    const i = tf.tensor1d(data.itemIdx.subarray(lo, lo + BATCH), 'int32');
    const j = tf.tensor1d(
      Int32Array.from({ length: BATCH }, (_, k) => (k * 7919 + s) % NUM_ITEMS),
      'int32',
    );
    const cost = opt.minimize(
      () => {
        const pu = tf.gather(U, u);
        const x = tf.sub(tf.sum(tf.mul(pu, tf.gather(I, i)), 1), tf.sum(tf.mul(pu, tf.gather(I, j)), 1));
        return tf.mean(tf.softplus(tf.neg(x))) as Scalar;
      },
      true,
      [U, I],
    ) as Tensor;
    cost.dataSync();
    tf.dispose([cost, u, i, j]);
  }
  const dt = performance.now() - t0;
  opt.dispose();
  tf.dispose([U, I]);
  return (steps * BATCH * 1000) / dt;
}

/** Plain matmuls of one scoring block's shape, `blocks` times in a row (fresh user block each time, no read-back). */
function sustainedMatmulGflops(m: number, k: number, n: number, blocks: number): number {
  const tf = getTf();
  const b = tf.randomNormal([k, n], 0, 1, 'float32', 3);
  const a = tf.randomNormal([m, k], 0, 1, 'float32', 4);
  const t0 = performance.now();
  for (let i = 0; i < blocks; i++) tf.matMul(a, b).dispose();
  const ms = performance.now() - t0;
  tf.dispose([a, b]);
  return (2 * m * k * n * blocks) / (ms * 1e6);
}

interface TwoTowerRate {
  /** Examples per wall-clock second. */
  wall: number;
  /** Examples per second of this process's CPU time (user + system, all threads). */
  cpu: number;
}

/** Two-tower steady-state throughput for one gradient method (the first progress report is warm-up). */
async function twoTowerThroughput(
  data: ReturnType<typeof randomInteractions>,
  seconds: number,
  gradients: StepGradients,
): Promise<TwoTowerRate> {
  const numCat = 200;
  const titles = Array.from(
    { length: NUM_ITEMS },
    (_, i) => `brand${i % 97} model ${i % 1013} colour${i % 11}`,
  );
  const items = {
    category: Int32Array.from({ length: NUM_ITEMS }, (_, i) => i % numCat),
    numCategories: numCat,
    priceBucket: Int32Array.from({ length: NUM_ITEMS }, (_, i) => 1 + (i % 15)),
    numPriceBuckets: 16,
    titleTokens: hashTitleTokens(titles, 1 << 14, 8),
    maxTitleTokens: 8,
    numTokenBuckets: 1 << 14,
  };
  const batchSize = 1024;
  const cpuMs = (): number => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  let first: { t: number; cpu: number; step: number } | undefined;
  let last = first;
  const ac = new AbortController();
  const stop = setTimeout(() => ac.abort(new Error('time budget reached')), seconds * 1000);
  try {
    await trainTwoTower(
      { ...data, numUsers: NUM_USERS, numItems: NUM_ITEMS, items },
      { batchSize, epochs: 1, progressIntervalMs: 1000, patience: Infinity },
      {
        signal: ac.signal,
        onProgress: (p) => {
          last = { t: performance.now(), cpu: cpuMs(), step: p.step };
          first ??= last;
        },
      },
      { gradients },
    );
  } catch (e) {
    if (!ac.signal.aborted) throw e;
  } finally {
    clearTimeout(stop);
  }
  if (!first || !last || last.step === first.step) return { wall: NaN, cpu: NaN };
  const examples = (last.step - first.step) * batchSize;
  return { wall: (examples * 1000) / (last.t - first.t), cpu: (examples * 1000) / (last.cpu - first.cpu) };
}

/** Every measurement except the cpu fallback, on one backend; metric names carry the backend's name. */
async function backendPhases(
  name: 'wasm' | 'tensorflow',
  data: ReturnType<typeof randomInteractions>,
): Promise<{ lazyBpr: number }> {
  const base = { unit: 'examples/s' };
  const maxSeconds = quick ? 8 : 25;

  // --- BPR (trainer first, so its peak RSS is not inflated by the baseline's tensors)
  const lazy = await bprThroughput(data, maxSeconds, true);
  record({ metric: `peak_rss_after_bpr_${name}_trainer`, value: peakRssMiB(), unit: 'MiB' });
  const baselineSteps = quick ? 3 : 8;
  const variable = variableAdamThroughput(data, baselineSteps);
  // The baseline's dense tf.Variable/Adam tensors grow the wasm heap, which never shrinks: attribute RSS separately.
  record({ metric: `peak_rss_after_variable_adam_baseline_${name}`, value: peakRssMiB(), unit: 'MiB' });
  record({
    metric: `bpr_examples_per_sec_${name}`,
    value: lazy,
    ...base,
    baseline: `tf.Variable tables + tf.train.adam (dense), same loss, ${name}`,
    baselineValue: variable,
    ratio: lazy / variable,
  });
  const dense = await bprThroughput(data, maxSeconds / 2, false);
  record({ metric: `bpr_examples_per_sec_${name}_dense_adam_mode`, value: dense, ...base });

  // --- two-tower (in-batch softmax, batch 1024, H=20, T=8): the fused step against the autograd step it replaced
  {
    const seconds = quick ? 6 : 15;
    const best: Record<StepGradients, TwoTowerRate> = {
      fused: { wall: 0, cpu: 0 },
      autograd: { wall: 0, cpu: 0 },
    };
    // Alternated, best of two each, so both methods see the same spells of machine load.
    for (let rep = 0; rep < 2; rep++) {
      for (const gradients of ['autograd', 'fused'] as const) {
        const r = await twoTowerThroughput(data, seconds, gradients);
        best[gradients] = {
          wall: Math.max(best[gradients].wall, r.wall),
          cpu: Math.max(best[gradients].cpu, r.cpu),
        };
      }
    }
    record({
      metric: `two_tower_examples_per_sec_${name}`,
      value: best.fused.wall,
      ...base,
      baseline: `autograd step (tf.valueAndGrads through both towers), same data, ${name}`,
      baselineValue: best.autograd.wall,
      ratio: best.fused.wall / best.autograd.wall,
    });
    // Examples per second of this process's CPU time: steadier than wall time on a shared machine (for wasm,
    // which runs on one thread, it is the wall rate of an idle machine; libtensorflow's threads all count).
    record({
      metric: `two_tower_examples_per_cpu_sec_${name}`,
      value: best.fused.cpu,
      unit: 'examples/CPU-s',
      baseline: `autograd step, same data, ${name}`,
      baselineValue: best.autograd.cpu,
      ratio: best.fused.cpu / best.autograd.cpu,
    });
    record({ metric: `peak_rss_after_two_tower_${name}`, value: peakRssMiB(), unit: 'MiB' });
  }

  // --- scoring
  {
    const model = initMF(NUM_USERS, NUM_ITEMS, { dim: DIM, initStd: 0.1, seed: 2, itemBias: true });
    const users = Int32Array.from({ length: quick ? 5000 : 20000 }, (_, i) => i);
    const seen = buildUserItemsCSR(data.userIdx, data.itemIdx, NUM_USERS);
    for (const selector of ['js', 'tf'] as const) {
      // Interleave scoring runs with equally long plain-matmul runs (same block shape, same number of blocks) so
      // both sides see the same machine load; report the best of each.
      let best = { gflops: 0, blockSize: 0 };
      let bestPlain = 0;
      for (let rep = 0; rep < 3; rep++) {
        const st = await scoreAll(model, {
          topN: 100,
          users,
          exclude: seen,
          selector,
          onBlock: () => undefined,
        });
        if (st.gflops > best.gflops) best = st;
        bestPlain = Math.max(bestPlain, sustainedMatmulGflops(st.blockSize, DIM + 1, NUM_ITEMS, st.blocks));
      }
      record({
        metric: `scoring_gflops_${name}_${selector}_topk`,
        value: best.gflops,
        unit: 'GFLOP/s',
        baseline: `plain tf.matMul [${best.blockSize},${DIM + 1}]x[${DIM + 1},${NUM_ITEMS}], same number of blocks, ${name}`,
        baselineValue: bestPlain,
        ratio: best.gflops / bestPlain,
      });
    }
    record({
      metric: `matmul_gflops_${name}_single_best`,
      value: matmulGflops(209, DIM + 1, NUM_ITEMS, 5),
      unit: 'GFLOP/s',
    });
  }
  record({ metric: `peak_rss_after_${name}_phases`, value: peakRssMiB(), unit: 'MiB' });
  return { lazyBpr: lazy };
}

async function main(): Promise<void> {
  const data = randomInteractions(N, NUM_USERS, NUM_ITEMS, 1);
  const base = { unit: 'examples/s' };
  const devices: Record<string, string> = {};
  // The model-library phase runs last unless it is all that runs: its EASE needs ~2 GiB, which would mask the
  // peak RSS the earlier phases report.
  const models = async (): Promise<string> => {
    const auto = await selectBackend('auto');
    devices.models = `${auto.device}, ${auto.threads} thread(s)`;
    await benchModels(
      findProjectRoot(),
      { ...data, numUsers: NUM_USERS, numItems: NUM_ITEMS },
      { quick, dim: DIM },
      record,
    );
    record({ metric: 'peak_rss_after_models', value: peakRssMiB(), unit: 'MiB' });
    return auto.tfjsVersion;
  };
  if (modelsOnly) return write(await models(), devices);
  const wasmSel = await selectBackend('wasm');
  devices.wasm = `${wasmSel.device}, ${wasmSel.threads} thread(s)`;
  const { lazyBpr: lazyWasm } = await backendPhases('wasm', data);
  // tfjs-node where `npm run setup` could build it (libtensorflow from PyPI); skipped, and said so, elsewhere.
  try {
    const tfSel = await selectBackend('tensorflow');
    devices.tensorflow = `${tfSel.device}, ${tfSel.threads} thread(s)`;
    await backendPhases('tensorflow', data);
  } catch (e) {
    devices.tensorflow = `unavailable: ${(e as Error).message}`;
    console.log(`tensorflow backend skipped: ${(e as Error).message}`);
  }

  // --- BPR on cpu (plain JS backend; last resort)
  await selectBackend('cpu');
  const cpu = await bprThroughput(data, quick ? 10 : 30, true);
  record({
    metric: 'bpr_examples_per_sec_cpu',
    value: cpu,
    ...base,
    baseline: 'same trainer on wasm',
    baselineValue: lazyWasm,
    ratio: cpu / lazyWasm,
  });
  record({ metric: 'peak_rss', value: peakRssMiB(), unit: 'MiB' });
  if (!skipModels) await models();
  write(wasmSel.tfjsVersion, devices);
}

function write(tfjs: string, devices: Record<string, string>): void {
  const out = {
    name: 'training',
    date: new Date().toISOString(),
    machine: {
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cores: os.cpus().length,
      memGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      tfjs,
      devices,
      loadAvgAtStart,
      loadAvgAtEnd: os.loadavg(),
    },
    config: {
      numUsers: NUM_USERS,
      numItems: NUM_ITEMS,
      interactions: N,
      dim: DIM,
      batch: BATCH,
      quick,
      modelsOnly,
    },
    results,
  };
  mkdirSync(path.dirname(outPath), { recursive: true });
  writeFileSync(outPath, JSON.stringify(out, null, 2) + '\n');
  console.log(`wrote ${outPath}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
