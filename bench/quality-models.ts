/**
 * recforge's model library (models/: EASE, iALS, fast BPR) called in-process against the quality benchmark's
 * protocol and reference EASE, before the pipeline wires them in:
 *
 *   npm run build && node dist/bench/quality-models.js [--models ease,ials,bpr,blend] [--quick]
 *     [--dataset movielens-small] [--no-reference] [--reuse-tuning numpy-ease,ease,ials]
 *     → bench/results/quality-models.json
 * --reuse-tuning takes the named families' choices from the previous results file instead of searching again.
 *
 * Same split, metrics and numpy EASE as bench/quality.ts (bench/quality/*: per-user time-ordered holdout of the
 * latest 20% of positives, NDCG@10 / Recall@10 with min(|rel|, 10), seen items excluded). Every model, reference
 * and recforge alike, is tuned on the validation split carved from the training rows with the same protocol and
 * refit on all training rows; recforge's models are tuned with models/tuning.ts (successive halving) and the
 * reference with the quality bench's coordinate search. Wall time = fit + score of the chosen configuration.
 * `blend` (models/blend.ts) is EASE + beta * iALS with both tuned settings, beta and EASE's recency tau tuned on
 * validation; every family's per-user NDCG difference to numpy EASE gets a paired bootstrap interval.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { findProjectRoot } from '../lib/config';
import { parseCsv } from '../datasets/csv';
import { selectBackend } from '../models/backend';
import { trainBPR } from '../models/bpr-fast';
import { fitEASE, type EASEModel } from '../models/ease';
import { easeHistoryRows, scoreEASE } from '../models/ease-score';
import { easeBlendScorer } from '../models/blend';
import { concentration } from '../models/concentration';
import { trainIALS } from '../models/ials';
import { buildUserItemsCSR, type MFModel } from '../models/mf';
import { scoreAll, scoreLinear, type ScoreBlock } from '../models/score';
import { grid, successiveHalving, type TrialRecord } from '../models/tuning';
import { writeResults, type BenchResult } from './common';
import { loadSource, unavailableItems, type DatasetId } from './quality/data';
import { pairedBootstrap, scoreLists, userOrder, type Scores } from './quality/metrics';
import {
  CoordinateSearch,
  ensureVenv,
  readListsCsv,
  referenceSpaces,
  runJob,
  type RunSpec,
  type SearchSpace,
} from './quality/references';
import { parseInteractions, toContractCsv } from './quality/rows';
import { isPositive, seenItems, splitByUser, type PositiveRule, type Row, type Split } from './quality/split';

const K = 10;
type Signal = 'all' | 'positive';

/** One split's training data in dense ids, and the users to recommend for. */
interface Fold {
  rows: readonly Row[];
  idx: readonly number[];
  split: Split;
  targets: string[];
  seen: Map<string, Set<string>>;
  catalogue: number;
}

class Ids {
  readonly users = new Map<string, number>();
  readonly items = new Map<string, number>();
  readonly itemIds: string[] = [];
  constructor(rows: readonly Row[]) {
    for (const r of rows) {
      if (!this.users.has(r.user)) this.users.set(r.user, this.users.size);
      if (!this.items.has(r.item)) {
        this.items.set(r.item, this.items.size);
        this.itemIds.push(r.item);
      }
    }
  }
}

function interactions(f: Fold, ids: Ids, signal: Signal, rule: PositiveRule) {
  const use = signal === 'all' ? f.idx : f.idx.filter((i) => isPositive(f.rows[i], rule));
  return {
    userIdx: Int32Array.from(use, (i) => ids.users.get(f.rows[i].user) as number),
    itemIdx: Int32Array.from(use, (i) => ids.items.get(f.rows[i].item) as number),
    timestamps: Float64Array.from(use, (i) => f.rows[i].ts),
    numUsers: ids.users.size,
    numItems: ids.items.size,
  };
}

/** Top-2K lists (seen items excluded) for the fold's target users, as item-id strings. */
async function lists(
  f: Fold,
  ids: Ids,
  score: (opts: {
    users: Int32Array;
    exclude: ReturnType<typeof buildUserItemsCSR>;
    onBlock: (b: ScoreBlock) => void;
  }) => Promise<unknown>,
): Promise<Map<string, string[]>> {
  const all = interactions(f, ids, 'all', { kind: 'implicit', eventTypes: [] });
  const exclude = buildUserItemsCSR(all.userIdx, all.itemIdx, all.numUsers);
  const users = Int32Array.from(f.targets, (u) => ids.users.get(u) as number);
  const byIdx = new Map<number, string>(f.targets.map((u) => [ids.users.get(u) as number, u]));
  const out = new Map<string, string[]>();
  await score({
    users,
    exclude,
    onBlock: (b) =>
      b.users.forEach((u, r) => {
        const l: string[] = [];
        for (let q = 0; q < b.topN; q++)
          if (b.items[r * b.topN + q] >= 0) l.push(ids.itemIds[b.items[r * b.topN + q]]);
        out.set(byIdx.get(u) as string, l);
      }),
  });
  return out;
}

function evaluate(f: Fold, l: Map<string, string[]>, unavailable: Set<string>): Scores {
  return scoreLists(l, f.split.holdout, { seen: f.seen, unavailable }, { k: K, catalogueSize: f.catalogue });
}

/** Share of the first K slots of the lists that hold one of the 5% most interacted items (the collapse check). */
function headShare(f: Fold, ids: Ids, l: Map<string, string[]>): number {
  const counts = new Int32Array(ids.items.size);
  for (const i of f.idx) counts[ids.items.get(f.rows[i].item) as number]++;
  const flat: number[] = [];
  for (const items of l.values()) for (const it of items.slice(0, K)) flat.push(ids.items.get(it) as number);
  return concentration(flat, counts, 0.05).headShare;
}

interface Family<P> {
  name: string;
  candidates: P[];
  minBudget?: number;
  order?: 'seeded' | 'given';
  /** Fits on the fold and returns its lists; budget in (0, 1]. */
  run: (f: Fold, p: P, budget: number) => Promise<Map<string, string[]>>;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'reuse-tuning': { type: 'string' },
      models: { type: 'string' },
      quick: { type: 'boolean' },
      dataset: { type: 'string' },
      'no-reference': { type: 'boolean' },
    },
  });
  const root = findProjectRoot();
  const log = (s: string) => console.log(`[quality-models] ${s}`);
  const quick = values.quick ?? false;
  const want = new Set((values.models ?? 'ease,ials,bpr,blend').split(','));
  const ds = (values.dataset ?? 'movielens-small') as DatasetId;
  const backend = await selectBackend('auto');
  const got = await loadSource(root, ds, { movielensSource: 'dslabs', log });
  if (!got.ok) throw new Error(got.reason);
  const src = got.source;
  const rows = parseInteractions(fs.readFileSync(src.interactions, 'utf8'), src.parse).rows;
  const ids = new Ids(rows);
  const rule = src.positive;
  const unavailable = unavailableItems(src.items ? fs.readFileSync(src.items, 'utf8') : undefined, parseCsv);
  const split = splitByUser(rows, rule);
  const trainRows = split.trainIdx.map((i) => rows[i]);
  const val = splitByUser(trainRows, rule);
  const fold = (r: readonly Row[], idx: readonly number[], s: Split): Fold => ({
    rows: r,
    idx,
    split: s,
    targets: userOrder(s.holdout),
    seen: seenItems(r, idx),
    catalogue: new Set(idx.map((i) => r[i].item)).size,
  });
  const test = fold(rows, split.trainIdx, split);
  const valid = fold(trainRows, val.trainIdx, val);
  const signals: Signal[] = rule.kind === 'explicit' ? ['all', 'positive'] : ['all'];
  log(
    `${ds}: ${rows.length} rows, ${test.targets.length} test users, ${valid.targets.length} validation users; backend ${backend.name}`,
  );

  // --- recforge families
  const easeCache = new Map<string, EASEModel>();
  const ease: Family<{ signal: Signal; lambda: number; tauDays: number }> = {
    name: 'ease',
    candidates: grid({
      signal: signals,
      lambda: quick ? [100, 300] : [30, 100, 300, 1000, 3000],
      tauDays: quick ? [Infinity, 180] : [Infinity, 1000, 365, 180, 60, 20],
    }),
    // Closed form: no partial budget. Candidates run in grid order (tau fastest) and the last fit is kept, so each
    // (signal, lambda) is fitted once and its tau settings only rescore.
    minBudget: 1,
    order: 'given',
    run: async (f, p) => {
      const key = `${f === test}:${p.signal}:${p.lambda}`;
      const data = interactions(f, ids, p.signal, rule);
      let model = easeCache.get(key);
      if (!model) {
        easeCache.clear();
        model = (await fitEASE(data, { lambda: p.lambda })).model;
        easeCache.set(key, model);
      }
      const m = model;
      return lists(f, ids, (o) => scoreEASE(m, data, { ...o, topN: 2 * K, tauDays: p.tauDays }));
    },
  };
  const mfLists = (f: Fold, m: MFModel) => lists(f, ids, (o) => scoreAll(m, { ...o, topN: 2 * K }));
  const ials: Family<{ signal: Signal; factors: number; regularization: number; alpha: number }> = {
    name: 'ials',
    candidates: grid({
      signal: signals,
      factors: quick ? [64] : [32, 64, 128],
      regularization: quick ? [1, 10] : [0.1, 1, 10, 50],
      alpha: quick ? [4, 16] : [1, 4, 16, 64],
    }),
    run: async (f, p, budget) => {
      const data = interactions(f, ids, p.signal, rule);
      const iterations = Math.max(1, Math.round(15 * budget));
      const r = await trainIALS(data, {
        factors: p.factors,
        regularization: p.regularization,
        alpha: p.alpha,
        iterations,
        transform: 'binary',
        seed: 7,
      });
      return mfLists(f, r.model);
    },
  };
  const bpr: Family<{
    signal: Signal;
    factors: number;
    lr: number;
    reg: number;
    negatives: 'popularity' | 'uniform';
    itemBias: boolean;
  }> = {
    name: 'bpr',
    candidates: grid({
      signal: signals,
      factors: [64],
      lr: quick ? [0.05] : [0.02, 0.05, 0.1],
      reg: quick ? [0.002] : [0.0005, 0.002, 0.01],
      negatives: ['popularity', 'uniform'],
      itemBias: [false, true],
    }),
    run: async (f, p, budget) => {
      const data = interactions(f, ids, p.signal, rule);
      const epochs = Math.max(1, Math.round((quick ? 20 : 60) * budget));
      const { signal: _s, ...cfg } = p;
      const r = await trainBPR(data, { ...cfg, epochs, seed: 7 });
      return mfLists(f, r.model);
    },
  };

  const results: BenchResult[] = [];
  const details: Record<string, unknown> = {};
  let reference: { scores: Scores; wall: number; id: string } | undefined;
  // --reuse-tuning numpy-ease,ease,...: those families' choices from the previous results file stand (one trial
  // instead of a search).
  const reuse = new Set((values['reuse-tuning'] ?? '').split(',').filter((x) => x !== ''));
  const previous = values['reuse-tuning']
    ? ((
        JSON.parse(fs.readFileSync(path.join(root, 'bench', 'results', 'quality-models.json'), 'utf8')) as {
          params: { details: Record<string, { chosen: unknown }> };
        }
      ).params.details ?? {})
    : {};
  if (!values['no-reference'])
    reference = await numpyEase(
      root,
      ds,
      { rows, split, trainRows, val, test, valid, unavailable, signals, rule },
      quick,
      log,
      reuse.has('numpy-ease') && typeof previous['numpy-ease']?.chosen === 'string'
        ? previous['numpy-ease'].chosen
        : undefined,
    );
  const tune = async <P>(fam: Family<P>): Promise<P> => {
    const t0 = performance.now();
    const prior = reuse.has(fam.name)
      ? (previous[fam.name]?.chosen as Record<string, unknown> | undefined)
      : undefined;
    // JSON has no Infinity: a saved tau of null was Infinity.
    const reused = prior
      ? [Object.fromEntries(Object.entries(prior).map(([k, v]) => [k, v === null ? Infinity : v])) as P]
      : undefined;
    if (reused) log(`${fam.name}: reusing ${JSON.stringify(prior)}`);
    const tuning = await successiveHalving({
      candidates: reused ?? fam.candidates,
      minBudget: fam.minBudget,
      order: fam.order,
      seed: 11,
      trial: async (p: P, b) => evaluate(valid, await fam.run(valid, p, b), unavailable).ndcg,
    });
    const tuneSeconds = (performance.now() - t0) / 1000;
    const best = tuning.best as TrialRecord<P>;
    log(
      `${fam.name}: tuned in ${tuneSeconds.toFixed(1)}s (${tuning.trials.length} trials): ${JSON.stringify(best.params)} val NDCG ${best.score.toFixed(4)}`,
    );
    easeCache.clear();
    const t1 = performance.now();
    const l = await fam.run(test, best.params, 1);
    const wall = (performance.now() - t1) / 1000;
    const s = evaluate(test, l, unavailable);
    const head = headShare(test, ids, l);
    log(
      `${fam.name}: test NDCG@10 ${s.ndcg.toFixed(4)} Recall@10 ${s.recall.toFixed(4)} coverage ${s.coverage.toFixed(4)} top-5%-items share ${head.toFixed(3)} fit+score ${wall.toFixed(1)}s`,
    );
    const name = `${ds}/recforge-${fam.name}`;
    const rel = (metric: string, v: number, ref?: number, unit = 'score') =>
      results.push({
        metric: `${name}/${metric}`,
        value: v,
        unit,
        ...(ref !== undefined ? { baseline: 'numpy ease (tuned)', baselineValue: ref, ratio: v / ref } : {}),
      });
    rel('ndcg@10', s.ndcg, reference?.scores.ndcg);
    rel('recall@10', s.recall, reference?.scores.recall);
    rel('coverage', s.coverage, reference?.scores.coverage, 'share');
    rel('wall', wall, reference?.wall, 's');
    rel('head5_share', head, undefined, 'share');
    const vsEase = reference ? pairedBootstrap(s.perUserNdcg, reference.scores.perUserNdcg) : undefined;
    if (vsEase)
      log(
        `${fam.name}: NDCG@10 - numpy EASE per user: ${vsEase.mean.toFixed(4)} [${vsEase.lo.toFixed(4)}, ${vsEase.hi.toFixed(4)}]`,
      );
    details[fam.name] = {
      ndcgMinusNumpyEase95: vsEase,
      reused: reused !== undefined,
      chosen: best.params,
      validationNdcg: best.score,
      tuneSeconds,
      trials: tuning.trials,
    };
    return best.params;
  };
  const bestEase = want.has('ease') || want.has('blend') ? await tune(ease) : undefined;
  const bestIals = want.has('ials') || want.has('blend') ? await tune(ials) : undefined;
  if (want.has('bpr')) await tune(bpr);
  if (bestEase && bestIals) {
    // EASE + beta iALS with both models' tuned settings; beta and EASE's recency tau tuned on validation. The two
    // fits are kept per fold, so every candidate only rescores.
    const fits = new Map<boolean, { ease: EASEModel; mf: MFModel }>();
    const blend: Family<{ beta: number; tauDays: number }> = {
      name: 'blend',
      candidates: grid({
        beta: [0, 0.03, 0.05, 0.1, 0.15, 0.25, 0.5, 1],
        tauDays: [...new Set([bestEase.tauDays, Infinity, 365])],
      }),
      minBudget: 1,
      run: async (f, p) => {
        let fit = fits.get(f === test);
        if (!fit) {
          fits.clear();
          const easeData = interactions(f, ids, bestEase.signal, rule);
          const mfData = interactions(f, ids, bestIals.signal, rule);
          const { signal: _s, ...ialsCfg } = bestIals;
          fit = {
            ease: (await fitEASE(easeData, { lambda: bestEase.lambda })).model,
            mf: (await trainIALS(mfData, { ...ialsCfg, iterations: 15, transform: 'binary', seed: 7 })).model,
          };
          fits.set(f === test, fit);
        }
        const data = interactions(f, ids, bestEase.signal, rule);
        const rows = easeHistoryRows(fit.ease, data, { tauDays: p.tauDays });
        const scorer = easeBlendScorer(fit.ease, rows, fit.mf, p.beta);
        return lists(f, ids, (o) => scoreLinear(scorer, { ...o, topN: 2 * K }));
      },
    };
    await tune(blend);
  }
  if (reference) {
    for (const [m, v] of [
      ['ndcg@10', reference.scores.ndcg],
      ['recall@10', reference.scores.recall],
      ['coverage', reference.scores.coverage],
      ['wall', reference.wall],
    ] as const)
      results.push({ metric: `${ds}/numpy-ease/${m}`, value: v, unit: m === 'wall' ? 's' : 'score' });
    details['numpy-ease'] = { chosen: reference.id };
  }
  const file = writeResults(root, 'quality-models', results, {
    dataset: ds,
    quick,
    backend: backend.device,
    loadAverageEnd: os.loadavg(),
    details,
  });
  log(`wrote ${file}`);
}

/** The quality bench's numpy EASE: coordinate search on validation, refit on all training rows. */
interface Prepared {
  rows: readonly Row[];
  split: Split;
  trainRows: readonly Row[];
  val: Split;
  test: Fold;
  valid: Fold;
  unavailable: Set<string>;
  signals: string[];
  rule: PositiveRule;
}

async function numpyEase(
  root: string,
  ds: string,
  d: Prepared,
  quick: boolean,
  log: (s: string) => void,
  reuseId?: string,
): Promise<{ scores: Scores; wall: number; id: string }> {
  const { rows, split, trainRows, val, test, valid, unavailable, signals } = d;
  const work = path.join(root, 'data', 'bench', 'quality-models', ds);
  fs.mkdirSync(work, { recursive: true });
  const write = (name: string, r: readonly Row[], idx: readonly number[], s: Split) => {
    fs.writeFileSync(path.join(work, `${name}-train.csv`), toContractCsv(r, idx));
    fs.writeFileSync(path.join(work, `${name}-targets.txt`), userOrder(s.holdout).join('\n') + '\n');
  };
  write('test', rows, split.trainIdx, split);
  write('val', trainRows, val.trainIdx, val);
  const py = ensureVenv(root, log);
  const space = referenceSpaces(signals).find((s) => s.model === 'ease');
  if (!space) throw new Error('no ease reference space');
  const search = new CoordinateSearch(space, quick ? 1 : 8);
  if (reuseId) log(`numpy ease: reusing ${reuseId}`);
  const base = {
    unavailable: [...unavailable].sort(),
    positive: d.rule,
    k: 2 * K,
    threads: os.availableParallelism(),
    seed: 42,
  };
  // A reused choice (--reuse-tuning) skips the search: the spec is the one of that id in the same space.
  for (let round = 1; !reuseId; round++) {
    const runs = search.pending();
    if (runs.length === 0) break;
    const outDir = path.join(work, `val-${round}`);
    fs.rmSync(outDir, { recursive: true, force: true });
    runJob(
      root,
      py,
      {
        ...base,
        train: path.join(work, 'val-train.csv'),
        targets: path.join(work, 'val-targets.txt'),
        outDir,
        runs,
      },
      log,
    );
    for (const spec of runs)
      search.report(
        spec.id,
        evaluate(valid, readListsCsv(path.join(outDir, `${spec.id}.csv`)), unavailable).ndcg,
      );
    search.step();
  }
  const chosen = reuseId ? specById(space, reuseId) : search.best().spec;
  const outDir = path.join(work, 'test');
  fs.rmSync(outDir, { recursive: true, force: true });
  const res = runJob(
    root,
    py,
    {
      ...base,
      train: path.join(work, 'test-train.csv'),
      targets: path.join(work, 'test-targets.txt'),
      outDir,
      runs: [chosen],
    },
    log,
  );
  const scores = evaluate(test, readListsCsv(path.join(outDir, `${chosen.id}.csv`)), unavailable);
  const t = res.runs[0];
  log(
    `numpy ease ${chosen.id}: test NDCG@10 ${scores.ndcg.toFixed(4)} Recall@10 ${scores.recall.toFixed(4)} fit+score ${(t.fit_s + t.score_s).toFixed(1)}s`,
  );
  return { scores, wall: t.fit_s + t.score_s, id: chosen.id };
}

/** The run spec of a reference id in its search space (e.g. ease-positive-l300). */
function specById(space: SearchSpace, id: string): RunSpec {
  const search = new CoordinateSearch(space, 1);
  const at = space.dims.map(() => 0);
  const walk = (dim: number): RunSpec | undefined => {
    if (dim === space.dims.length) {
      const spec = search.spec(at);
      return spec.id === id ? spec : undefined;
    }
    for (let v = 0; v < space.dims[dim].values.length; v++) {
      at[dim] = v;
      const found = walk(dim + 1);
      if (found) return found;
    }
    return undefined;
  };
  const spec = walk(0);
  if (!spec) throw new Error(`no reference run ${id} in the ${space.model} space`);
  return spec;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
