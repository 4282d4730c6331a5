/**
 * The training benchmark's model-library part (called by bench/training.ts): recforge's EASE, iALS and fast BPR
 * against Python references on the same synthetic data, in the same run:
 * - iALS fit (factors, iterations, CG steps, lambda, alpha all equal) vs implicit's AlternatingLeastSquares (CG),
 *   given confidences 1 + alpha w so both solve the same problem;
 * - BPR samples/s vs implicit's BayesianPersonalizedRanking (same factors, lr, reg, verified negatives);
 * - EASE fit (Gram + inverse, binary X, the maxItems most popular items) vs numpy/scipy float32 Cholesky
 *   (potrf + potri, the quality bench's reference).
 * References run before and after recforge (best of the two, so load drifting during the run hurts neither side
 * more); recforge's iALS and BPR run twice (best). Data go to Python through a temp folder of raw little-endian
 * arrays; the references come from the quality bench's venv (.bench-venv, installed from PyPI on first use).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { currentBackend } from '../models/backend';
import { trainBPR } from '../models/bpr-fast';
import { fitEASE } from '../models/ease';
import { trainIALS } from '../models/ials';
import { ensureVenv } from './quality/references';

export interface ModelBenchResult {
  metric: string;
  value: number;
  unit: string;
  baseline?: string;
  baselineValue?: number;
  ratio?: number;
}

export interface ModelBenchData {
  userIdx: Int32Array;
  itemIdx: Int32Array;
  weight: Float32Array;
  numUsers: number;
  numItems: number;
}

interface RefResult {
  task: { kind: string };
  seconds: number;
  samplesPerSec?: number;
  gramSeconds?: number;
  inverseSeconds?: number;
  items?: number;
}

function runReference(root: string, py: string, dir: string, tasks: object[]): RefResult[] {
  const job = path.join(dir, `job-${Date.now()}.json`);
  fs.writeFileSync(
    job,
    JSON.stringify({
      data: JSON.parse(fs.readFileSync(path.join(dir, 'data.json'), 'utf8')) as unknown,
      tasks,
    }),
  );
  const r = spawnSync(py, [path.join(root, 'bench', 'reference', 'training.py'), job], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0)
    throw new Error(`reference/training.py failed (exit ${r.status}): ${r.stderr.slice(-2000)}`);
  const lines = r.stdout.trim().split('\n');
  return (JSON.parse(lines[lines.length - 1]) as { results: RefResult[] }).results;
}

function writeData(dir: string, d: ModelBenchData): void {
  const put = (name: string, a: Int32Array | Float32Array) =>
    fs.writeFileSync(path.join(dir, name), Buffer.from(a.buffer, a.byteOffset, a.byteLength));
  put('users.i32', d.userIdx);
  put('items.i32', d.itemIdx);
  put('weights.f32', d.weight);
  fs.writeFileSync(
    path.join(dir, 'data.json'),
    JSON.stringify({
      users: path.join(dir, 'users.i32'),
      items: path.join(dir, 'items.i32'),
      weights: path.join(dir, 'weights.f32'),
      numUsers: d.numUsers,
      numItems: d.numItems,
    }),
  );
}

export async function benchModels(
  root: string,
  d: ModelBenchData,
  o: { quick: boolean; dim: number },
  record: (r: ModelBenchResult) => void,
): Promise<Record<string, string>> {
  const py = ensureVenv(root, (s) => console.log(`[bench] ${s}`));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-bench-models-'));
  const backend = currentBackend()?.device ?? 'unknown';
  try {
    writeData(dir, d);
    const als = { factors: o.dim, iterations: o.quick ? 3 : 10, regularization: 0.05, alpha: 10, cgSteps: 3 };
    const bpr = { factors: o.dim, iterations: o.quick ? 3 : 10, lr: 0.05, reg: 0.002 };
    const ease = { lambda: 500, maxItems: o.quick ? 2000 : Math.min(d.numItems, 10_000) };
    const tasks = [
      { kind: 'als', ...als },
      { kind: 'bpr', ...bpr },
      { kind: 'ease', ...ease },
    ];
    const before = runReference(root, py, dir, tasks);

    const alsSeconds: number[] = [];
    const bprRates: number[] = [];
    for (let rep = 0; rep < 2; rep++) {
      let t0 = performance.now();
      await trainIALS(d, {
        factors: als.factors,
        iterations: als.iterations,
        regularization: als.regularization,
        alpha: als.alpha,
        cgSteps: als.cgSteps,
        transform: 'linear', // c = 1 + alpha * (summed weight), as the reference gets
        seed: rep + 1,
      });
      alsSeconds.push((performance.now() - t0) / 1000);
      t0 = performance.now();
      const r = await trainBPR(
        { ...d, weight: undefined },
        { factors: bpr.factors, epochs: bpr.iterations, lr: bpr.lr, reg: bpr.reg, seed: rep + 1 },
      );
      const examples = r.history.reduce((a, h) => a + (h.examplesPerSec * h.ms) / 1000, 0);
      bprRates.push(examples / ((performance.now() - t0) / 1000));
    }
    const t0 = performance.now();
    const fit = await fitEASE(d, { lambda: ease.lambda, maxItems: ease.maxItems });
    const easeSeconds = (performance.now() - t0) / 1000;

    const after = runReference(root, py, dir, tasks);
    const ref = (kind: string) => {
      const all = [...before, ...after].filter((x) => x.task.kind === kind);
      return kind === 'bpr'
        ? all.reduce((a, b) => ((a.samplesPerSec ?? 0) >= (b.samplesPerSec ?? 0) ? a : b))
        : all.reduce((a, b) => (a.seconds <= b.seconds ? a : b));
    };
    const alsRef = ref('als');
    const bestAls = Math.min(...alsSeconds);
    record({
      metric: 'ials_fit_seconds',
      value: bestAls,
      unit: 's',
      baseline: `implicit ALS (CG), ${als.iterations} iterations, ${als.factors} factors, ${als.cgSteps} CG steps, same data`,
      baselineValue: alsRef.seconds,
      ratio: bestAls / alsRef.seconds,
    });
    const bprRef = ref('bpr');
    const bestBpr = Math.max(...bprRates);
    record({
      metric: 'bpr_hogwild_samples_per_sec',
      value: bestBpr,
      unit: 'samples/s',
      baseline: `implicit BPR, ${bpr.factors} factors, verified negatives, same data`,
      baselineValue: bprRef.samplesPerSec,
      ratio: bestBpr / (bprRef.samplesPerSec as number),
    });
    const easeRef = ref('ease');
    record({
      metric: 'ease_fit_seconds',
      value: easeSeconds,
      unit: 's',
      baseline: `numpy/scipy float32 Cholesky (potrf+potri), ${easeRef.items} items, same data`,
      baselineValue: easeRef.seconds,
      ratio: easeSeconds / easeRef.seconds,
    });
    record({
      metric: 'ease_gram_seconds',
      value: fit.stats.gramMs / 1000,
      unit: 's',
      baselineValue: easeRef.gramSeconds,
    });
    record({
      metric: 'ease_inverse_seconds',
      value: fit.stats.inverseMs / 1000,
      unit: 's',
      baseline: 'scipy potrf+potri float32',
      baselineValue: easeRef.inverseSeconds,
      ratio: fit.stats.inverseMs / 1000 / (easeRef.inverseSeconds as number),
    });
    record({ metric: 'ease_items', value: fit.stats.items, unit: 'items' });
    return { modelsBackend: backend, referenceRuns: 'before and after recforge; best of each' };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
