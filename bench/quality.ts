/**
 * Recommendation quality benchmark: `npm run bench -- --only quality` (or `npm run bench -- quality`) →
 * bench/results/quality.json. recforge end to end against reference recommenders, same split, same metric code,
 * same run, so ratios to EASE are comparable across machines and days.
 *
 * Datasets (nothing is committed; data/ is git-ignored):
 * - movielens-small: MovieLens latest-small via datasets/ (Debian's r-cran-dslabs export: 100,004 ratings,
 *   671 users, the 2016 issue of ml-latest-small); a clear error names the packages to install when R is missing.
 * - ml-1m: GroupLens ML-1M from data/datasets/ml-1m/ or a download; skipped, with the reason, when neither works.
 * - synthetic: the bundled generator (datasets/synthetic) with configs/default.yaml's `dataset.generate` options; the
 *   rows it deliberately breaks (malformed, null ids, unknown types, bad or future timestamps, exact duplicates)
 *   are dropped before the split (bench/quality/rows.ts), so every model sees the same valid rows.
 *
 * Protocol (bench/quality/split.ts; deterministic, no sampling):
 * - Positives: ratings >= 4 on MovieLens; every interaction (view, click, cart, purchase) on the synthetic data.
 * - Each user with >= 5 distinct positive items has the latest 20% of them (by first positive time; at least
 *   one; ties at the cutoff second held out too) held out. The user's training rows are their rows strictly before
 *   the first held-out positive; nothing of the user's own future is trained on. Other users' rows are cut at
 *   their own cutoffs only. Relevant = held-out items the user has no training row for.
 * - The training rows of all users form train.csv (the input contract: user_id,item_id,event_type,rating,
 *   timestamp) for every model; the dataset's items file goes to recforge as `--items`.
 * - Scoring (bench/quality/metrics.ts, the only metric implementation): NDCG@10 (binary gains), Recall@10 with
 *   denominator min(|relevant|, 10), HitRate@10, catalogue coverage (distinct recommended items / items in
 *   train.csv). Every list loses the user's training items and the items file's out-of-stock items (recforge's
 *   publish rule) before the cut at 10; users without a list count as zeros (recforge's published popular
 *   fallback is used for users its output has no row for, as its README documents).
 * - References (bench/reference/references.py, numpy/scipy/implicit in .bench-venv/, installed by the bench from
 *   PyPI): MostPop, item-kNN (cosine), implicit ALS, EASE. Each is tuned on a validation split carved from
 *   train.csv with the same protocol (coordinate search over wide grids, bench/quality/references.ts; on explicit
 *   data the input signal, all ratings or positives only, is tuned too), then refit on all of train.csv. Wall
 *   time = fit + score of the chosen configuration, the faster of two runs (load from other processes on a shared
 *   machine swings these few-second timings); tuning time is reported apart.
 * - recforge: `node dist/scripts/pipeline.js --input train.csv --items ... --config <variant overlay> --dataset
 *   <id> --summary-json ...` in a fresh RECFORGE_DATA_DIR per run (no warm start); the published Parquet is read
 *   through `_current.json`. Wall time = the whole command (Temporal dev server start included). A run its gates
 *   reject publishes nothing and is recorded so; its challenger is then force-promoted through recforge's own
 *   `promoteModel` workflow and scored under `recforge-<variant>-unpublished`.
 * - Ratios: every quality metric and wall time to EASE's, measured in the same run; a paired bootstrap interval
 *   of the per-user NDCG@10 difference to EASE goes into params.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { findProjectRoot } from '../lib/config';
import { parseCsv } from '../datasets/csv';
import { writeResults, type BenchResult } from './common';
import { DATASET_IDS, loadSource, unavailableItems, type DatasetId, type Source } from './quality/data';
import { pairedBootstrap, scoreLists, userOrder, type Scores } from './quality/metrics';
import { runRecforge, type RecforgeOutcome, type Variant } from './quality/recforge';
import { CoordinateSearch, ensureVenv, readListsCsv, referenceSpaces, runJob } from './quality/references';
import { parseInteractions, toContractCsv } from './quality/rows';
import { DEFAULT_SPLIT, seenItems, splitByUser, type Row, type Split } from './quality/split';

export const K = 10;
const REFERENCE_MODELS = ['mostpop', 'itemknn', 'als', 'ease'] as const;

export interface QualityOptions {
  datasets: DatasetId[];
  /** Variants for every dataset; undefined = each dataset's defaults. */
  variants?: Variant[];
  recforge: boolean;
  quick: boolean;
  movielensSource: 'dslabs' | 'auto';
  forceRejected: boolean;
  threads: number;
  /** bench/results/<resultsName>.json; another name keeps an exploratory run from replacing quality.json. */
  resultsName: string;
}

/**
 * Each dataset's default recforge variants: the default config (what the done-when of quality is about), the item-item
 * challenger (the default with privacy on) and a learned model per dataset; ML-1M, the largest, runs the default only.
 */
export function defaultVariants(ds: DatasetId): Variant[] {
  const itemitem: Variant = { name: 'itemitem', set: { 'training.challenger': 'itemitem' } };
  if (ds === 'synthetic')
    return [{ name: 'default' }, itemitem, { name: 'two-tower', overlay: 'configs/two-tower.yaml' }];
  if (ds === 'ml-1m') return [{ name: 'default' }];
  return [
    { name: 'default' },
    { name: 'movielens', overlay: 'configs/movielens.yaml' },
    itemitem,
    { name: 'movielens-two-tower', overlay: 'configs/movielens-two-tower.yaml' },
  ];
}

/**
 * `default,movielens,x=path/to.yaml,nodp=configs/movielens.yaml+privacy.enabled=false`: a bare name is
 * configs/<name>.yaml (`default`: no overlay); `+key.path=value` parts set single keys on top of the overlay
 * (values read as YAML scalars), so config variants need no file of their own.
 */
export function parseVariants(spec: string, root: string): Variant[] {
  const variants = spec
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      const [head, ...sets] = s.split('+');
      const eq = head.indexOf('=');
      const name = eq < 0 ? head : head.slice(0, eq);
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new Error(`bad variant name "${name}"`);
      const set: Record<string, unknown> = {};
      for (const kv of sets) {
        const k = kv.indexOf('=');
        if (k <= 0 || !/^[A-Za-z][A-Za-z0-9.]*$/.test(kv.slice(0, k)))
          throw new Error(`variant ${name}: expected +key.path=value, got "+${kv}"`);
        set[kv.slice(0, k)] = parseYaml(kv.slice(k + 1));
      }
      const v: Variant = { name };
      if (Object.keys(set).length > 0) v.set = set;
      let overlay: string | undefined;
      if (eq >= 0) overlay = head.slice(eq + 1);
      else if (
        name !== 'default' &&
        (sets.length === 0 || fs.existsSync(path.resolve(root, `configs/${name}.yaml`)))
      )
        overlay = `configs/${name}.yaml`;
      if (overlay === undefined) return v;
      if (!fs.existsSync(path.resolve(root, overlay)))
        throw new Error(`variant ${name}: overlay ${overlay} does not exist`);
      return { ...v, overlay };
    });
  const names = variants.map((v) => v.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  // Each variant's run folder is named after it: two variants of one name would overwrite each other's run.
  if (dup) throw new Error(`variant name "${dup}" given twice`);
  return variants;
}

interface ModelRow {
  model: string;
  scores?: Scores;
  wallSeconds?: number;
  note: string;
}

function round(x: number, d = 4): number {
  return Number.isFinite(x) ? Number(x.toFixed(d)) : x;
}

function scoreOf(
  lists: Map<string, string[]>,
  split: Split,
  seen: Map<string, Set<string>>,
  unavailable: Set<string>,
  catalogueSize: number,
  fallback?: string[],
): Scores {
  return scoreLists(lists, split.holdout, { seen, unavailable }, { k: K, catalogueSize, fallback });
}

function distinctItems(rows: readonly Row[], idx?: readonly number[]): number {
  const s = new Set<string>();
  if (idx) for (const i of idx) s.add(rows[i].item);
  else for (const r of rows) s.add(r.item);
  return s.size;
}

function printTable(ds: string, rows: ModelRow[], ease: ModelRow | undefined): void {
  const head = [
    'model',
    'NDCG@10',
    'Recall@10',
    'HR@10',
    'coverage',
    'wall s',
    'NDCG ×EASE',
    'wall ×EASE',
    'note',
  ];
  const body = rows.map((r) => {
    const s = r.scores;
    const e = ease?.scores;
    return [
      r.model,
      s ? s.ndcg.toFixed(4) : '-',
      s ? s.recall.toFixed(4) : '-',
      s ? s.hitrate.toFixed(4) : '-',
      s ? s.coverage.toFixed(4) : '-',
      r.wallSeconds !== undefined ? r.wallSeconds.toFixed(1) : '-',
      s && e && e.ndcg > 0 ? (s.ndcg / e.ndcg).toFixed(3) : '-',
      r.wallSeconds !== undefined && ease?.wallSeconds ? (r.wallSeconds / ease.wallSeconds).toFixed(2) : '-',
      r.note,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  console.log(`\n[quality] ${ds}`);
  console.log(line(head));
  for (const b of body) console.log(line(b));
}

export async function benchQuality(root: string, o: QualityOptions): Promise<string> {
  const log = (s: string) => console.log(`[quality] ${s}`);
  const results: BenchResult[] = [];
  const details: Record<string, unknown> = {};
  const skipped: Record<string, string> = {};
  const loadStart = os.loadavg();
  const started = Date.now();
  for (const ds of o.datasets) {
    const t0 = Date.now();
    const got = await loadSource(root, ds, { movielensSource: o.movielensSource, log });
    if (!got.ok) {
      // MovieLens-small is the benchmark's main real dataset: its absence is an error, not a quiet skip.
      if (ds === 'movielens-small') throw new Error(got.reason);
      log(`${ds}: skipped: ${got.reason}`);
      skipped[ds] = got.reason;
      continue;
    }
    const load0 = os.loadavg();
    const d = await benchDataset(root, got.source, o, results, log);
    details[ds] = {
      ...d,
      seconds: round((Date.now() - t0) / 1000, 1),
      // Wall times on a shared machine are only as good as its load; keep it beside them.
      loadAverage: { start: load0.map((x) => round(x, 2)), end: os.loadavg().map((x) => round(x, 2)) },
    };
  }
  const file = writeResults(root, o.resultsName, results, {
    protocol: {
      positives: 'explicit: rating >= 4; implicit: every interaction',
      holdout: `per user, latest ${DEFAULT_SPLIT.fraction * 100}% of distinct positive items by first positive time (>= 1; ties at the cutoff held out); users with >= ${DEFAULT_SPLIT.minPositives} positives`,
      training: "each user's rows strictly before their first held-out positive",
      metrics: `NDCG@${K}, Recall@${K} (/min(|relevant|, ${K})), HitRate@${K}, coverage (recommended / items in train.csv); training and out-of-stock items excluded from every list`,
      tuning: 'validation split carved from train.csv with the same protocol; chosen by validation NDCG@10',
      baseline: 'ease (fit + score of the tuned configuration, same run)',
    },
    options: { ...o, variants: o.variants ?? 'per-dataset defaults' },
    loadAverage: { start: loadStart.map((x) => round(x, 2)), end: os.loadavg().map((x) => round(x, 2)) },
    seconds: round((Date.now() - started) / 1000, 1),
    skipped,
    datasets: details,
  });
  return file;
}

async function benchDataset(
  root: string,
  src: Source,
  o: QualityOptions,
  results: BenchResult[],
  log: (s: string) => void,
): Promise<Record<string, unknown>> {
  const ds = src.id;
  const work = path.join(root, 'data', 'bench', 'quality', ds);
  fs.mkdirSync(work, { recursive: true });
  const parsed = parseInteractions(fs.readFileSync(src.interactions, 'utf8'), src.parse);
  const rows = parsed.rows;
  const split = splitByUser(rows, src.positive);
  const trainRows = split.trainIdx.map((i) => rows[i]);
  const val = splitByUser(trainRows, src.positive);
  log(
    `${ds}: ${rows.length} rows (${
      Object.entries(parsed.dropped)
        .map(([k, v]) => `${v} ${k}`)
        .join(', ') || 'none'
    } dropped); ${split.stats.evaluatedUsers} test users, ${split.stats.trainRows} train rows; ` +
      `validation: ${val.stats.evaluatedUsers} users`,
  );
  const trainCsv = path.join(work, 'train.csv');
  fs.writeFileSync(trainCsv, toContractCsv(rows, split.trainIdx));
  const targets = path.join(work, 'targets.txt');
  fs.writeFileSync(targets, userOrder(split.holdout).join('\n') + '\n');
  fs.writeFileSync(
    path.join(work, 'holdout.csv'),
    'user_id,item_id\n' +
      userOrder(split.holdout)
        .flatMap((u) => split.holdout.get(u)!.map((i) => `${u},${i}\n`))
        .join(''),
  );
  const valDir = path.join(work, 'validation');
  fs.mkdirSync(valDir, { recursive: true });
  const valTrainCsv = path.join(valDir, 'train.csv');
  fs.writeFileSync(valTrainCsv, toContractCsv(trainRows, val.trainIdx));
  const valTargets = path.join(valDir, 'targets.txt');
  fs.writeFileSync(valTargets, userOrder(val.holdout).join('\n') + '\n');

  const unavailable = unavailableItems(src.items ? fs.readFileSync(src.items, 'utf8') : undefined, parseCsv);
  const seenTest = seenItems(trainRows);
  const seenVal = seenItems(trainRows, val.trainIdx);
  const catalogue = distinctItems(trainRows);
  const catalogueVal = distinctItems(trainRows, val.trainIdx);

  const table: ModelRow[] = [];
  const perModel: Record<string, unknown> = {};

  // References: tune on the validation split, refit the chosen configuration on all of train.csv.
  const py = ensureVenv(root, log);
  const signals = src.positive.kind === 'explicit' ? ['all', 'positive'] : ['all'];
  const base = {
    unavailable: [...unavailable].sort(),
    positive: src.positive,
    k: 2 * K,
    threads: o.threads,
    seed: 42,
  };
  const tuneT0 = Date.now();
  const searches = referenceSpaces(signals).map((sp) => new CoordinateSearch(sp, o.quick ? 1 : 8));
  const runSeconds = new Map<string, number>();
  for (let round = 1; ; round++) {
    const runs = searches.flatMap((se) => se.pending());
    if (runs.length === 0) break;
    const outDir = path.join(work, 'references', `validation-${round}`);
    fs.rmSync(outDir, { recursive: true, force: true });
    const res = runJob(root, py, { ...base, train: valTrainCsv, targets: valTargets, outDir, runs }, log);
    for (const se of searches) {
      for (const spec of se.pending()) {
        const lists = readListsCsv(path.join(outDir, `${spec.id}.csv`));
        se.report(spec.id, scoreOf(lists, val, seenVal, unavailable, catalogueVal).ndcg);
        const t = res.runs.find((r) => r.id === spec.id)!;
        runSeconds.set(spec.id, t.fit_s + t.score_s);
      }
    }
    for (const se of searches) se.step();
  }
  const bestOf = (model: string) => searches.find((se) => se.space.model === model)!.best();
  const chosen = REFERENCE_MODELS.map((m) => bestOf(m).spec);
  const tuningSeconds = (Date.now() - tuneT0) / 1000;
  log(`${ds}: tuned references in ${tuningSeconds.toFixed(1)}s: ${chosen.map((c) => c.id).join(', ')}`);

  const testDir = path.join(work, 'references', 'test');
  fs.rmSync(testDir, { recursive: true, force: true });
  const final = runJob(
    root,
    py,
    { ...base, train: trainCsv, targets, outDir: testDir, runs: chosen, repeat: 2 },
    log,
  );
  const refRows = new Map<string, ModelRow>();
  for (const spec of chosen) {
    const lists = readListsCsv(path.join(testDir, `${spec.id}.csv`));
    const scores = scoreOf(lists, split, seenTest, unavailable, catalogue);
    const t = final.runs.find((r) => r.id === spec.id)!;
    const grid = searches.find((se) => se.space.model === spec.model)!.evaluated();
    const row: ModelRow = {
      model: spec.model,
      scores,
      wallSeconds: t.fit_s + t.score_s,
      note: `${spec.id} (val NDCG ${bestOf(spec.model).score.toFixed(4)})`,
    };
    refRows.set(spec.model, row);
    table.push(row);
    perModel[spec.model] = {
      chosen: spec,
      fitSeconds: round(t.fit_s, 3),
      scoreSeconds: round(t.score_s, 3),
      tuningSeconds: round(
        grid.reduce((a, g) => a + (runSeconds.get(g.id) ?? 0), 0),
        2,
      ),
      validation: grid.map((g) => ({ id: g.id, ndcg: round(g.score) })),
    };
  }
  const ease = refRows.get('ease')!;

  // recforge end to end.
  const recforgeDetails: Record<string, unknown> = {};
  if (o.recforge) {
    for (const v of o.variants ?? defaultVariants(ds)) {
      const out: RecforgeOutcome = await runRecforge(v, {
        root,
        workDir: path.join(work, 'recforge', v.name),
        datasetId: `q-${ds}-${v.name}`.slice(0, 100),
        trainCsv,
        itemsCsv: src.items,
        forceRejected: o.forceRejected,
        log,
      });
      const name = out.listsSource === 'forced' ? `recforge-${v.name}-unpublished` : `recforge-${v.name}`;
      const s = out.summary;
      const gate = s?.gate?.decision ?? 'none';
      let scores: Scores | undefined;
      if (out.lists) {
        scores = scoreOf(out.lists.lists, split, seenTest, unavailable, catalogue, out.lists.fallback);
      }
      const note =
        out.listsSource === 'published'
          ? `published (gate ${gate})`
          : out.listsSource === 'forced'
            ? `NOT published: gate ${gate}; challenger's lists force-promoted for scoring`
            : `NOTHING published: status ${s?.status ?? `exit ${out.exitCode}`}, gate ${gate}` +
              (s?.error ? `: ${s.error}` : '') +
              (out.forcedError ? `; forcing failed: ${out.forcedError}` : '');
      table.push({ model: name, scores, wallSeconds: out.wallSeconds, note });
      results.push({
        metric: `${ds}/recforge-${v.name}/published`,
        value: out.published ? 1 : 0,
        unit: 'bool',
      });
      results.push({
        metric: `${ds}/recforge-${v.name}/wall`,
        value: round(out.wallSeconds, 1),
        unit: 's',
        baseline: 'ease',
        baselineValue: round(ease.wallSeconds!, 2),
        ratio: round(out.wallSeconds / ease.wallSeconds!, 2),
      });
      if (scores) pushScores(results, ds, name, scores, ease.scores!);
      recforgeDetails[v.name] = {
        overlay: v.overlay ?? null,
        set: v.set ?? null,
        exitCode: out.exitCode,
        status: s?.status ?? null,
        error: s?.error ?? null,
        gate: s?.gate ?? null,
        published: out.published,
        listsScored: out.listsSource,
        modelVersion: s?.modelVersion ?? null,
        forcedWallSeconds: out.forcedWallSeconds !== undefined ? round(out.forcedWallSeconds, 1) : null,
        forcedError: out.forcedError ?? null,
        stages: s?.stages ?? null,
        workflowSeconds: s?.stages
          ? round(
              s.stages.reduce((a, x) => a + x.seconds, 0),
              1,
            )
          : null,
        rows: s?.rows ?? null,
        ownMetrics: s?.metrics ?? null,
        backend: s?.backend ?? null,
        training: s?.training ?? null,
        scoring: scores ? scoringDetails(scores, ease.scores!) : null,
        log: path.relative(root, out.log),
      };
    }
  }
  for (const m of REFERENCE_MODELS) {
    const r = refRows.get(m)!;
    pushScores(results, ds, m, r.scores!, ease.scores!);
    results.push({
      metric: `${ds}/${m}/wall`,
      value: round(r.wallSeconds!, 2),
      unit: 's',
      baseline: 'ease',
      baselineValue: round(ease.wallSeconds!, 2),
      ratio: round(r.wallSeconds! / ease.wallSeconds!, 2),
    });
    (perModel[m] as Record<string, unknown>).scoring = scoringDetails(r.scores!, ease.scores!);
  }
  results.push({ metric: `${ds}/references/tuning-wall`, value: round(tuningSeconds, 1), unit: 's' });
  printTable(ds, table, ease);
  return {
    source: src.origin,
    positives: src.positives,
    droppedRows: parsed.dropped,
    split: split.stats,
    validationSplit: val.stats,
    catalogue,
    unavailableItems: unavailable.size,
    pythonEnv: final.env,
    references: perModel,
    recforge: recforgeDetails,
  };
}

function pushScores(results: BenchResult[], ds: string, model: string, s: Scores, ease: Scores): void {
  const add = (metric: string, value: number, baseValue: number, unit: string) =>
    results.push({
      metric: `${ds}/${model}/${metric}`,
      value: round(value),
      unit,
      baseline: 'ease',
      baselineValue: round(baseValue),
      ratio: baseValue > 0 ? round(value / baseValue, 3) : undefined,
    });
  add(`ndcg@${K}`, s.ndcg, ease.ndcg, 'score');
  add(`recall@${K}`, s.recall, ease.recall, 'score');
  add(`hitrate@${K}`, s.hitrate, ease.hitrate, 'share');
  add('coverage', s.coverage, ease.coverage, 'share');
}

function scoringDetails(s: Scores, ease: Scores): Record<string, unknown> {
  const ci = pairedBootstrap(s.perUserNdcg, ease.perUserNdcg);
  return {
    users: s.users,
    usersFallback: s.usersFallback,
    usersWithoutList: s.usersWithoutList,
    usersShortList: s.usersShortList,
    excludedInTopK: s.excludedInTopK,
    ndcgMinusEase: { mean: round(ci.mean), ci95: [round(ci.lo), round(ci.hi)] },
  };
}

/** CLI: `node dist/bench/quality.js [--datasets a,b] [--variants spec] [--no-recforge] [--quick] ...`. */
export function parseQualityArgs(argv: string[], root: string): QualityOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      datasets: { type: 'string' },
      variants: { type: 'string' },
      'no-recforge': { type: 'boolean' },
      'no-force': { type: 'boolean' },
      quick: { type: 'boolean' },
      'movielens-source': { type: 'string' },
      threads: { type: 'string' },
      'results-name': { type: 'string' },
    },
  });
  const resultsName = values['results-name'] ?? 'quality';
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(resultsName))
    throw new Error(`bad --results-name "${resultsName}"`);
  const datasets = (values.datasets ?? DATASET_IDS.join(',')).split(',').map((s) => s.trim());
  for (const d of datasets)
    if (!(DATASET_IDS as readonly string[]).includes(d))
      throw new Error(`unknown dataset "${d}" (known: ${DATASET_IDS.join(', ')})`);
  const ms = values['movielens-source'] ?? 'dslabs';
  if (ms !== 'dslabs' && ms !== 'auto')
    throw new Error(`--movielens-source must be dslabs or auto, got "${ms}"`);
  const threads = Number(values.threads ?? Math.min(2, os.cpus().length));
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`--threads expects a positive integer`);
  return {
    datasets: datasets as DatasetId[],
    variants: values.variants ? parseVariants(values.variants, root) : undefined,
    recforge: !values['no-recforge'],
    quick: values.quick ?? false,
    movielensSource: ms,
    forceRejected: !values['no-force'],
    threads,
    resultsName,
  };
}

if (require.main === module) {
  const root = findProjectRoot();
  benchQuality(root, parseQualityArgs(process.argv.slice(2), root)).then(
    (file) => console.log(`[quality] wrote ${file}`),
    (err) => {
      console.error(`[quality] ${(err as Error).message}`);
      process.exit(1);
    },
  );
}
