import * as path from 'node:path';
import * as fs from 'node:fs';
import { lit, type Db } from '../lib/duckdb';
import { writeJsonAtomic } from '../lib/fs-atomic';
import { pairedDifferenceInterval, meanInterval } from '../evaluation/bootstrap';

import { decideGates, EXACT_MOSTPOP } from '../evaluation/gates';
import { mostPopSql, type RecommendParams } from '../analytics/baselines.sql';
import {
  perUserMetricsSql,
  aggregateMetricsSql,
  listAgreementSql,
  segmentMetricsSql,
  PER_USER_NDCG_SQL,
} from '../evaluation/metrics.sql';
import { itemItemLimitsOf } from '../contracts/stages';
import type {
  CleanArtifacts,
  EvaluateResult,
  ModelMetrics,
  TrainResult,
  GateCheck,
  StageRun,
} from '../contracts/stages';
import type { RecforgeConfig } from '../lib/config';
import type { ModelRecord } from '../contracts/registry';
import { progress, type ActivityDeps } from './support/context';
import { rankInBatches } from './support/scoring-batches';
import { RunIO } from './support/run-io';
import { openCleanViews, RAW_ITEMS_FILE } from './support/artifacts';
import type { ColdStartParams } from '../analytics/cold-start.sql';
import { kindOfFamily } from '../registry/families';
import { positiveRuleOf, positiveSql } from '../analytics/positive.sql';

/** Users with fewer training events than this form the "new users" segment. */
const NEW_USER_EVENTS = 5;

/** Renames `…@k` metric keys to the configured K, e.g. `ndcg@k` → `ndcg@10`. */
function withK(row: Record<string, unknown>, k: number): ModelMetrics {
  const out: ModelMetrics = {};
  for (const [key, v] of Object.entries(row)) {
    if (key === 'model') continue;
    out[key.replace('@k', `@${k}`)] = Number(v);
  }
  return out;
}

interface Candidate {
  name: string;
  kind: RecommendParams['kind'];
  modelFile: string;
  mostPopFile: string;
}

/**
 * The cold start publishing applies (publish.coldStart, analytics/cold-start.sql.ts), so the evaluation judges the
 * lists that are published. MostPop models are scored without it: they are the gates' plain-popularity reference.
 */
function coldStartFor(c: { kind: Candidate['kind'] }, config: RecforgeConfig): ColdStartParams | undefined {
  if (c.kind === 'mostpop') return undefined;
  return { ...config.publish.coldStart, privacy: config.privacy.enabled, items: 'raw_items' };
}

async function recommendInto(
  db: Db,
  plan: { config: RecforgeConfig },
  io: RunIO,
  maxHistory: number,
  c: Candidate,
): Promise<void> {
  await rankInBatches(
    db,
    {
      coldStart: coldStartFor(c, plan.config),
      kind: c.kind,
      modelFile: c.modelFile,
      mostPopFile: c.mostPopFile,
      targets: 'eval_targets',
      history: 'train_events',
      k: plan.config.evaluation.k,
      maxHistory,
      into: 'model_recs',
    },
    io.run.duckdb.memoryLimit,
  );
  await db.run(`INSERT INTO recs SELECT ${lit(c.name)}, user_id, rank, item_id, score FROM model_recs`);
}

/**
 * How far the published variant of the challenger (refit on all clean events) agrees with the evaluated one: both
 * score the evaluated users from the same history (all clean events) and their top-k lists are compared
 * (listAgreementSql). The gate bounds the difference between what was judged and what ships.
 */
async function refitAgreement(
  db: Db,
  config: RecforgeConfig,
  io: RunIO,
  trained: TrainResult,
  challenger: string,
  maxHistory: number,
): Promise<{ agreement: number; users: number }> {
  const find = (name: string) => trained.models.find((m) => m.name === name);
  const [evalModel, fullModel] = [find(challenger), find(`${challenger}-full`)];
  const [evalPop, fullPop] = [find('mostpop'), find('mostpop-full')];
  if (!evalModel || !fullModel || !evalPop || !fullPop) return { agreement: 0, users: 0 };
  for (const [into, model, pop] of [
    ['refit_evaluated', evalModel, evalPop],
    ['refit_published', fullModel, fullPop],
  ] as const) {
    await rankInBatches(
      db,
      {
        coldStart: coldStartFor(model, config),
        kind: model.kind,
        modelFile: io.local(model.key),
        mostPopFile: io.local(pop.key),
        targets: 'eval_targets',
        history: 'events',
        k: config.evaluation.k,
        maxHistory,
        into,
      },
      io.run.duckdb.memoryLimit,
    );
  }
  return db.one<{ agreement: number; users: number }>(listAgreementSql('refit_evaluated', 'refit_published'));
}

/**
 * Evaluates the challenger beside the baselines and the current champion on the same time-based holdout:
 * users active in the holdout period who have training history; relevant items are their positive holdout items
 * (analytics/positive.sql.ts: implicit events, ratings at or above schema.rating.positive) not already seen in
 * training. The champion is scored from its registry artifact trained on its own training
 * split, so a re-run on the same data does not hand it the holdout.
 */
export async function evaluate(
  deps: ActivityDeps,
  run: StageRun,
  clean: CleanArtifacts,
  trained: TrainResult,
  champion: ModelRecord | null,
): Promise<EvaluateResult> {
  const plan = run.plan;
  const io = new RunIO(plan.run, deps.dataDir);
  const k = plan.config.evaluation.k;
  const mostPop = trained.models.find((m) => m.name === 'mostpop')!;
  const championVersion = champion?.version ?? null;
  // Every model file evaluation reads, this run's and the champion's, present on this worker.
  const modelKeys = [
    ...trained.models.map((m) => m.key),
    ...(trained.champion ? [trained.champion.key] : []),
    ...(champion ? [champion.artifacts.eval, champion.artifacts.mostPopEval] : []),
  ];
  await io.fetch(modelKeys);
  fs.mkdirSync(`${io.runDir}/models`, { recursive: true });
  // The item metadata ingest landed (cold start reads it), fetched like every other artifact of the run.
  const itemsKey = io.key(RAW_ITEMS_FILE);
  await io.fetch([itemsKey]);
  return io.withDb('evaluate', async (db) => {
    await openCleanViews(db, io, clean);
    await db.run(
      `CREATE OR REPLACE VIEW raw_items AS SELECT * FROM read_parquet(${lit(io.local(itemsKey))})`,
    );
    await db.run(`
      CREATE OR REPLACE TEMP TABLE eval_users AS
        SELECT DISTINCT user_id FROM holdout_events WHERE user_id IN (SELECT user_id FROM train_events);
      CREATE OR REPLACE TEMP TABLE relevant AS
        SELECT DISTINCT h.user_id, h.item_id FROM holdout_events h
        WHERE h.user_id IN (SELECT user_id FROM eval_users) AND ${positiveSql(positiveRuleOf(plan.config), 'h')}
          AND NOT EXISTS (SELECT 1 FROM train_events t WHERE t.user_id = h.user_id AND t.item_id = h.item_id);
      CREATE OR REPLACE TEMP TABLE eval_targets AS SELECT DISTINCT user_id FROM relevant;
      CREATE OR REPLACE TEMP TABLE recs (model VARCHAR, user_id VARCHAR, rank INTEGER, item_id VARCHAR, score DOUBLE);`);
    const candidates: Candidate[] = trained.models
      .filter((m) => !m.name.endsWith('-full'))
      .map((m) => ({
        name: m.name,
        kind: m.kind,
        modelFile: io.local(m.key),
        mostPopFile: io.local(mostPop.key),
      }));
    if (plan.config.privacy.enabled) {
      // The gate's reference: MostPop from the exact training counts (an internal model, never published). A DP
      // challenger that cannot beat it is noise, whatever the noisy MostPop beside it scores.
      const exact = path.join(io.runDir, 'models', `${EXACT_MOSTPOP}.parquet`);
      await db.run(mostPopSql('train_events', exact));
      candidates.push({ name: EXACT_MOSTPOP, kind: 'mostpop', modelFile: exact, mostPopFile: exact });
    }
    if (champion) {
      // Learned champions were re-scored by the training activity on this run's history; baselines are
      // re-scored here from their registry artifact.
      const rescored = trained.champion;
      candidates.push({
        name: 'champion',
        kind: rescored ? 'recs' : kindOfFamily(champion.model),
        modelFile: io.local(rescored ? rescored.key : champion.artifacts.eval),
        mostPopFile: io.local(champion.artifacts.mostPopEval),
      });
    }
    for (const [i, c] of candidates.entries()) {
      progress({
        stage: 'evaluate',
        step: 'score',
        model: c.name,
        done: i,
        total: candidates.length,
        unit: 'models',
        statementSpan: 1,
      });
      // Item-item scores from each user's latest items: as many as this run's limit (cleaning's choice).
      await recommendInto(db, plan, io, itemItemLimitsOf(plan.config, clean).maxHistoryPerUser, c);
    }
    const catalogue = await db.scalar<number>(`SELECT count(DISTINCT item_id) FROM train_events`);
    await db.run(perUserMetricsSql(k, Math.max(1, catalogue)));
    const metrics: Record<string, ModelMetrics> = {};
    for (const r of await db.all(aggregateMetricsSql(k, Math.max(1, catalogue)))) {
      metrics[String(r.model)] = withK(r, k);
    }
    // Segments and popularity bias go to the report (not the summary's headline metrics); a segment
    // without users has no value.
    const segments: Record<string, ModelMetrics> = {};
    for (const r of await db.all(segmentMetricsSql(k, NEW_USER_EVENTS))) {
      segments[String(r.model)] = Object.fromEntries(
        Object.entries(withK(r, k)).filter(([, v]) => Number.isFinite(v) && v !== null),
      );
    }
    // 95% bootstrap intervals of the headline metric per model, for the report.
    const perUser = await db.all<{ model: string; user_id: string; ndcg: number }>(PER_USER_NDCG_SQL);
    const intervals: Record<string, { low: number; high: number }> = {};
    for (const model of Object.keys(metrics)) {
      const values = Float64Array.from(perUser.filter((r) => r.model === model).map((r) => r.ndcg));
      const iv = meanInterval(values, plan.config.gates.bootstrapSamples);
      intervals[model] = { low: iv.low, high: iv.high };
    }

    const challenger = plan.config.training.challenger;
    let vsChampion;
    if (champion) {
      progress({ stage: 'evaluate', step: 'bootstrap' });
      const byModel = (m: string) =>
        Float64Array.from(perUser.filter((r) => r.model === m).map((r) => r.ndcg));
      vsChampion = {
        version: champion.version,
        ndcg: metrics['champion']?.[`ndcg@${k}`] ?? 0,
        diff: pairedDifferenceInterval(
          byModel(challenger),
          byModel('champion'),
          plan.config.gates.bootstrapSamples,
        ),
      };
    }
    const evaluatedUsers = await db.scalar<number>(`SELECT count(*) FROM eval_targets`);
    progress({ stage: 'evaluate', step: 'refit agreement' });
    const refit = await refitAgreement(
      db,
      plan.config,
      io,
      trained,
      challenger,
      itemItemLimitsOf(plan.config, clean).maxHistoryPerUser,
    );
    const gate: { decision: 'promote' | 'reject'; checks: GateCheck[] } = decideGates({
      k,
      challenger,
      metrics,
      evaluatedUsers,
      baseline: metrics[EXACT_MOSTPOP] ? EXACT_MOSTPOP : 'mostpop',
      vsChampion,
      // With privacy on, the evaluated and the published models are two releases with independent noise: their
      // lists disagree by design (item-item at ε 4 on the test data: 0.04), so the agreement is recorded in
      // evaluation.json but not gated. The DP model still has to beat the exact MostPop on the holdout.
      refit: plan.config.privacy.enabled ? undefined : refit,
      gates: plan.config.gates,
    });
    const report = io.key('evaluation.json');
    writeJsonAtomic(io.local(report), {
      k,
      evaluatedUsers,
      catalogue,
      metrics,
      ndcgInterval95: intervals,
      segments,
      gate,
      challenger,
      champion: championVersion,
      vsChampion,
      refit,
    });
    await io.push([report]);
    return {
      k,
      evaluatedUsers,
      metrics,
      chosenModel: challenger,
      championVersion: championVersion ?? null,
      gate,
      report,
    };
  });
}
