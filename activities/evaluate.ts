import * as path from 'node:path';
import { withDb } from '../lib/duckdb';
import { writeJsonAtomic } from '../lib/fs-atomic';
import { recommendSql, maxSeenSql } from '../analytics/baselines.sql';
import { metricsSql } from '../analytics/metrics.sql';
import type { EvaluateResult, GateCheck, ModelMetrics, RunPlan, TrainResult } from '../workflows/types';
import { limitsOf, progress } from './context';

/** Renames `…@k` metric keys to the configured K, e.g. `ndcg@k` → `ndcg@10`. */
function withK(row: Record<string, unknown>, k: number): ModelMetrics {
  const out: ModelMetrics = {};
  for (const [key, v] of Object.entries(row)) {
    if (key === 'model') continue;
    out[key.replace('@k', `@${k}`)] = Number(v);
  }
  return out;
}

/**
 * Pure: picks the model to publish and records the checks. The personalised model must not be worse than
 * MostPop on NDCG@K; otherwise MostPop is published (issue #7 adds champion-based gates).
 */
export function decide(
  metrics: Record<string, ModelMetrics>,
  k: number,
): EvaluateResult['gate'] & { chosen: string } {
  const ndcg = `ndcg@${k}`;
  const pop = metrics['mostpop']?.[ndcg] ?? 0;
  const ii = metrics['itemitem']?.[ndcg] ?? 0;
  const checks: GateCheck[] = [
    { name: `itemitem ${ndcg} >= mostpop ${ndcg}`, value: ii, threshold: pop, passed: ii >= pop },
    { name: `chosen ${ndcg} > 0`, value: Math.max(ii, pop), threshold: 0, passed: Math.max(ii, pop) > 0 },
  ];
  const chosen = checks[0].passed ? 'itemitem' : 'mostpop';
  return { decision: checks[1].passed ? 'promote' : 'reject', checks, chosen };
}

/**
 * Evaluates every trained model on the time-based holdout: users active in the holdout period who have
 * training history; relevant items are their holdout items not already seen in training.
 */
export async function evaluate(plan: RunPlan, trained: TrainResult): Promise<EvaluateResult> {
  const k = plan.config.evaluation.k;
  const mostPop = trained.models.find((m) => m.name === 'mostpop')!;
  return withDb(plan.dbPath, limitsOf(plan), async (db) => {
    await db.run(`
      CREATE OR REPLACE TEMP TABLE eval_users AS
        SELECT DISTINCT user_id FROM holdout_events WHERE user_id IN (SELECT user_id FROM train_events);
      CREATE OR REPLACE TEMP TABLE relevant AS
        SELECT DISTINCT h.user_id, h.item_id FROM holdout_events h
        WHERE h.user_id IN (SELECT user_id FROM eval_users)
          AND NOT EXISTS (SELECT 1 FROM train_events t WHERE t.user_id = h.user_id AND t.item_id = h.item_id);
      CREATE OR REPLACE TEMP TABLE eval_targets AS SELECT DISTINCT user_id FROM relevant;
      CREATE OR REPLACE TEMP TABLE recs (model VARCHAR, user_id VARCHAR, rank INTEGER, item_id VARCHAR, score DOUBLE);`);
    const maxSeen = await db.scalar<number>(maxSeenSql('train_events', 'eval_targets'));
    for (const m of trained.models.filter((x) => !x.name.endsWith('-full'))) {
      progress({ stage: 'evaluate', model: m.name });
      await db.run(
        recommendSql(
          {
            kind: m.kind,
            modelFile: m.path,
            mostPopFile: mostPop.path,
            targets: 'eval_targets',
            history: 'train_events',
            k,
            maxHistory: plan.config.training.itemItem.maxHistoryPerUser,
            into: 'model_recs',
          },
          maxSeen,
        ),
      );
      await db.run(`INSERT INTO recs SELECT '${m.name}', user_id, rank, item_id, score FROM model_recs`);
    }
    const catalogue = await db.scalar<number>(`SELECT count(DISTINCT item_id) FROM train_events`);
    const rows = await db.all(metricsSql(k, Math.max(1, catalogue)));
    const metrics: Record<string, ModelMetrics> = {};
    for (const r of rows) metrics[String(r.model)] = withK(r, k);
    const evaluatedUsers = await db.scalar<number>(`SELECT count(*) FROM eval_targets`);
    const { chosen, ...gate } = decide(metrics, k);
    const reportPath = path.join(plan.runDir, 'evaluation.json');
    writeJsonAtomic(reportPath, { k, evaluatedUsers, catalogue, metrics, gate, chosen });
    return { k, evaluatedUsers, metrics, chosenModel: chosen, gate, reportPath };
  });
}
