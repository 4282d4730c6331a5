/**
 * Scoring against matmul speed (issue #19): the production top-N scoring paths against the same backend's plain
 * matmul of the same shapes, measured in the same run, on every backend that loads.
 *
 *   node dist/bench/scoring-kernels.js [--backends tensorflow,wasm,cpu] [--users 20000] [--items 10000]
 *     [--dim 64] [--topn 100] [--ease-users 20000] [--reps 3] [--no-ease] [--results-name scoring-kernels]
 *   (or npm run bench -- --only scoring-kernels)
 *
 * - mf: scoreAll (models/score.ts) exactly as the trainers' writeRecs calls it — blocked [P | 1] x [Q | b]^T in
 *   the backend, seen items excluded, top-N per user — for `users` users of a
 *   70k-user synthetic data set (1M interactions: ~14 seen items per user) over `items` items, `dim` factors.
 *   Baseline: plain tf.matMul of one block's shape, the same number of blocks in a row (a fresh product each
 *   time, no read-back), alternated with the scoring runs so both see the same machine load; best of `reps`.
 *   Three variants: the production default (scoreAll picks the worker thread only when it can overlap the
 *   matmul, see overlapPays), selection forced onto the worker thread, and forced onto the calling thread; and,
 *   where the bench's Python venv (.bench-venv) has numpy, numpy's sgemm of the same shapes.
 * - ease: the blend the linear family tunes by default (models/linear.ts: EASE B over `items` items plus iALS
 *   factors, scored by scoreLinear through the blend's rows, as writeRecs does) for `ease-users` users. GFLOP/s
 *   count the dense product the scores equal, 2 x users x items x (items + dim + 1), against the backend's plain
 *   matmul of one block of that dense product (a few blocks, extrapolated: the full product takes minutes).
 * The cpu backend (plain JS, the last resort) scores a tenth of the users: its matmul is ~50x slower.
 * Results: bench/results/<results-name>.json. The machine may be shared: compare ratios, not absolute times.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { findProjectRoot } from '../lib/config';
import { getTf, selectBackend, type BackendPreference } from '../models/backend';
import { easeBlendScorer } from '../models/blend';
import type { EASEModel } from '../models/ease';
import { buildUserItemsCSR, initMF } from '../models/mf';
import { Rng } from '../models/rng';
import { scoreAll, scoreLinear, type ScoreStats } from '../models/score';
import { buildCSR } from '../models/sparse';
import { randomInteractions } from '../models/synthetic';
import { defaultWorkerScript } from '../models/top-n-thread';
import { writeResults, type BenchResult } from './common';

const ALL_USERS = 70_000;
const INTERACTIONS = 1_000_000;

interface Opts {
  backends: string[];
  users: number;
  items: number;
  dim: number;
  topN: number;
  easeUsers: number;
  reps: number;
  ease: boolean;
  resultsName: string;
}

/** Plain matmuls of one block's shape, `blocks` times in a row (fresh product each time, no read-back). */
function plainMatmulGflops(m: number, k: number, n: number, blocks: number): number {
  const tf = getTf();
  const b = tf.randomNormal([k, n], 0, 1, 'float32', 3);
  const a = tf.randomNormal([m, k], 0, 1, 'float32', 4);
  tf.matMul(a, b).dispose(); // warm-up (kernel setup, first allocation)
  const t0 = performance.now();
  for (let i = 0; i < blocks; i++) tf.matMul(a, b).dispose();
  const ms = performance.now() - t0;
  tf.dispose([a, b]);
  return (2 * m * k * n * blocks) / (ms * 1e6);
}

/** numpy sgemm GFLOP/s of `blocks` products [m, k] x [k, n] (best of 3), or undefined without a numpy venv. */
function numpyGflops(root: string, m: number, k: number, n: number, blocks: number): number | undefined {
  const py = path.join(root, '.bench-venv', 'bin', 'python');
  if (!fs.existsSync(py)) return undefined;
  const code = [
    'import numpy as np, time, sys',
    `m, k, n, blocks = ${m}, ${k}, ${n}, ${blocks}`,
    'a = np.random.rand(m, k).astype(np.float32); b = np.random.rand(k, n).astype(np.float32)',
    'best = 1e9',
    'for _ in range(3):',
    '    t = time.perf_counter()',
    '    for _ in range(blocks): c = a @ b',
    '    best = min(best, time.perf_counter() - t)',
    'print(2 * m * k * n * blocks / best / 1e9)',
  ].join('\n');
  const r = spawnSync(py, ['-c', code], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const v = Number(r.stdout.trim());
  return Number.isFinite(v) ? v : undefined;
}

/** A synthetic EASE model over all `items` items: B dense (as fitted EASE's is), zero diagonal. */
function syntheticEase(items: number, seed: number): EASEModel {
  const rng = new Rng(seed);
  const weights = new Float32Array(items * items);
  for (let q = 0; q < weights.length; q++) weights[q] = (rng.nextFloat() - 0.5) * 0.02;
  for (let i = 0; i < items; i++) weights[i * items + i] = 0;
  return {
    kind: 'ease',
    numItems: items,
    items: Int32Array.from({ length: items }, (_, i) => i),
    weights,
    lambda: 500,
    transform: 'binary',
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      backends: { type: 'string' },
      users: { type: 'string' },
      items: { type: 'string' },
      dim: { type: 'string' },
      topn: { type: 'string' },
      'ease-users': { type: 'string' },
      reps: { type: 'string' },
      'no-ease': { type: 'boolean' },
      'results-name': { type: 'string' },
    },
  });
  const o: Opts = {
    backends: (values.backends ?? 'tensorflow,wasm,cpu').split(',').map((s) => s.trim()),
    users: Number(values.users ?? 20_000),
    items: Number(values.items ?? 10_000),
    dim: Number(values.dim ?? 64),
    topN: Number(values.topn ?? 100),
    easeUsers: Number(values['ease-users'] ?? 20_000),
    reps: Number(values.reps ?? 3),
    ease: !values['no-ease'],
    resultsName: values['results-name'] ?? 'scoring-kernels',
  };
  const root = findProjectRoot();
  const results: BenchResult[] = [];
  const record = (r: BenchResult) => {
    results.push(r);
    console.log(JSON.stringify(r));
  };
  const devices: Record<string, string> = {};

  const data = randomInteractions(INTERACTIONS, ALL_USERS, o.items, 1);
  const seen = buildUserItemsCSR(data.userIdx, data.itemIdx, ALL_USERS);
  // Factors drawn once, on the first backend that loads (tfjs's seeded normals), then shared by every backend.
  let mfModel: ReturnType<typeof initMF> | undefined;
  const ease = o.ease ? syntheticEase(o.items, 3) : undefined;
  const rows = ease
    ? buildCSR(data.userIdx, data.itemIdx, undefined, ALL_USERS, o.items, { transform: 'binary' })
    : undefined;
  const inner = o.dim + 1;
  const np = numpyGflops(root, 1024, inner, o.items, Math.ceil(o.users / 1024));
  if (np !== undefined)
    record({
      metric: 'numpy_sgemm_gflops_mf_shape',
      value: np,
      unit: 'GFLOP/s',
      baseline: `numpy [1024,${inner}]x[${inner},${o.items}], ${Math.ceil(o.users / 1024)} products`,
    });

  for (const name of o.backends) {
    try {
      const sel = await selectBackend(name as BackendPreference);
      devices[name] = `${sel.device}, ${sel.threads} thread(s)`;
    } catch (e) {
      devices[name] = `unavailable: ${(e as Error).message}`;
      console.log(`[scoring-kernels] ${name} skipped: ${(e as Error).message}`);
      continue;
    }
    mfModel ??= initMF(ALL_USERS, o.items, { dim: o.dim, initStd: 0.1, seed: 2, itemBias: true });
    const mf = mfModel;
    const nUsers = name === 'cpu' ? Math.ceil(o.users / 10) : o.users;
    const users = Int32Array.from({ length: nUsers }, (_, i) => i);

    // --- factor scoring (MF, two-tower, iALS)
    const variants = [
      { suffix: '', selectionWorker: undefined, what: 'production default (overlapPays decides the worker)' },
      { suffix: '_worker', selectionWorker: defaultWorkerScript(), what: 'selection on the worker thread' },
      { suffix: '_main_thread', selectionWorker: false as const, what: 'selection on the calling thread' },
    ];
    for (const v of variants) {
      let best: ScoreStats | undefined;
      let bestPlain = 0;
      for (let rep = 0; rep < o.reps; rep++) {
        const st = await scoreAll(mf, {
          topN: o.topN,
          users,
          exclude: seen,
          selectionWorker: v.selectionWorker,
          onBlock: () => undefined,
        });
        if (!best || st.gflops > best.gflops) best = st;
        bestPlain = Math.max(bestPlain, plainMatmulGflops(st.blockSize, inner, o.items, st.blocks));
      }
      const b = best as ScoreStats;
      record({
        metric: `scoring_gflops_${name}_mf${v.suffix}`,
        value: b.gflops,
        unit: 'GFLOP/s',
        baseline: `${v.what}; plain tf.matMul [${b.blockSize},${inner}]x[${inner},${o.items}] x ${b.blocks} blocks, ${name}`,
        baselineValue: bestPlain,
        ratio: b.gflops / bestPlain,
      });
      record({
        metric: `scoring_ms_${name}_mf${v.suffix}`,
        value: b.ms,
        unit: 'ms',
        baseline: `of which matmul (and read-back) on the calling thread, ms; ${nUsers} users`,
        baselineValue: b.matmulMs,
      });
    }

    // --- EASE + iALS blend (the linear family's default), scored through scoreLinear as writeRecs does
    if (ease && rows) {
      const easeUsers = Int32Array.from(
        { length: name === 'cpu' ? Math.ceil(o.easeUsers / 10) : o.easeUsers },
        (_, i) => i,
      );
      const scorer = easeBlendScorer(ease, rows, mf, 0.5);
      const width = scorer.dim;
      let best: ScoreStats | undefined;
      for (let rep = 0; rep < Math.min(2, o.reps); rep++) {
        const st = await scoreLinear(scorer, {
          topN: o.topN,
          users: easeUsers,
          exclude: seen,
          onBlock: () => undefined,
        });
        if (!best || st.gflops > best.gflops) best = st;
      }
      const b = best as ScoreStats;
      // The dense product's rate from a few blocks of its shape (the whole of it would take minutes).
      const blocks = name === 'cpu' ? 1 : 3;
      const rowsPlain = name === 'cpu' ? Math.min(16, b.blockSize) : b.blockSize; // cpu: ~1 min a full block
      const plain = plainMatmulGflops(rowsPlain, width, o.items, blocks);
      record({
        metric: `scoring_gflops_${name}_ease_blend`,
        value: b.gflops,
        unit: 'GFLOP/s (dense-equivalent)',
        baseline: `plain tf.matMul [${rowsPlain},${width}]x[${width},${o.items}] (${blocks} blocks), ${name}`,
        baselineValue: plain,
        ratio: b.gflops / plain,
      });
      record({
        metric: `scoring_users_per_sec_${name}_ease_blend`,
        value: (easeUsers.length * 1000) / b.ms,
        unit: 'users/s',
        baseline: `products by kind ${JSON.stringify(b.paths)}; ${easeUsers.length} users, ${b.ms.toFixed(0)} ms`,
      });
    }
  }
  const file = writeResults(root, o.resultsName, results, { ...o, devices });
  console.log(`[scoring-kernels] wrote ${file}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
