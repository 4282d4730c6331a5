import * as fs from 'node:fs';
import * as path from 'node:path';
import { withDb, lit, type Db } from '../../lib/duckdb';
import { readJsonIfExists } from '../../lib/fs-atomic';
import { PrivacyLedger } from '../../privacy/ledger';
import { openStorage } from '../../lib/storage';
import { budgetLimits } from '../../privacy/budget-limits';
import type { ProfileDocument } from '../profile-model';
import type { RunPlan, RunSummary } from '../../contracts/stages';
import type {
  EvaluationDocument,
  ItemInfo,
  PrivacyBudgetView,
  RunReportInput,
  SampleRecommendations,
  TrainingCurve,
  TuningDocument,
} from './model';

/**
 * Gathers a run's report data from its artifacts: plan.json, summary.json (written when the run finished),
 * profile.json, evaluation.json, models/*.history.json, the privacy ledger, and a few users' published
 * recommendations joined with the item catalogue. Reads only; every missing piece becomes null or empty.
 */

export const runFiles = (runDir: string) => ({
  plan: path.join(runDir, 'plan.json'),
  summary: path.join(runDir, 'summary.json'),
  profile: path.join(runDir, 'profile.json'),
  profileHtml: path.join(runDir, 'profile.html'),
  evaluation: path.join(runDir, 'evaluation.json'),
  events: path.join(runDir, 'events.parquet'),
  items: path.join(runDir, 'raw', 'items.parquet'),
  models: path.join(runDir, 'models'),
  report: path.join(runDir, 'report.html'),
});

/** Where a dataset's index of runs lives: beside the run folders' parent, so links stay relative. */
export function indexPathOf(dataDir: string, datasetId: string): string {
  return path.join(dataDir, 'reports', datasetId, 'index.html');
}

export function readTrainingCurves(runDir: string, plan: RunPlan | undefined): TrainingCurve[] {
  const dir = runFiles(runDir).models;
  if (!fs.existsSync(dir)) return [];
  const metric = validationMetricOf(plan);
  return fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.history.json'))
    .sort()
    .flatMap((n) => {
      const h = readJsonIfExists<{
        variant: string;
        bestEpoch: number;
        stoppedEarly: boolean;
        epochs: Array<{ epoch: number; loss: number; metric?: number }>;
      }>(path.join(dir, n));
      if (!h || !Array.isArray(h.epochs)) return [];
      return [
        {
          variant: h.variant,
          metric,
          bestEpoch: Number.isFinite(h.bestEpoch) ? h.bestEpoch : null,
          stoppedEarly: !!h.stoppedEarly,
          epochs: h.epochs.map((e) => ({
            epoch: e.epoch,
            loss: e.loss,
            ...(e.metric !== undefined && e.metric !== null ? { metric: e.metric } : {}),
          })),
        },
      ];
    });
}

function validationMetricOf(plan: RunPlan | undefined): string | null {
  const t = plan?.config.training as unknown as Record<string, { validationMetric?: string }> | undefined;
  const family = plan?.config.training.challenger;
  if (!t || !family) return null;
  const key = family === 'two-tower' ? 'twoTower' : family;
  return t[key]?.validationMetric ?? null;
}

export async function privacyView(
  plan: RunPlan | undefined,
  summary: RunSummary | null,
): Promise<PrivacyBudgetView | null> {
  if (!plan || !summary?.privacy) return null;
  const budget = plan.config.privacy.budget;
  let usedEpsilon: number | null = null;
  {
    try {
      const ledger = new PrivacyLedger(openStorage(plan.run.storage), { prefix: 'privacy-ledger' });
      const usage = await ledger.usage(
        summary.privacy.unit ?? plan.config.privacy.unit ?? plan.run.datasetId,
        plan.run.startedAt,
        budgetLimits(plan.config),
      );
      usedEpsilon = usage.window.composed.best.epsilon;
    } catch {
      usedEpsilon = null; // An unreadable ledger leaves the figure out rather than failing the report.
    }
  }
  return { spend: summary.privacy, budget: { ...budget, window: summary.privacy.window }, usedEpsilon };
}

const SAMPLE_USERS = 4;
const SAMPLE_HISTORY = 5;

/**
 * A few users' published recommendations with item titles and categories, and their latest clean events. Users
 * are picked by a hash of their id (deterministic, and not just the alphabetically first, often atypical, ids).
 */
export async function readSamples(
  versionDir: string,
  itemsFile: string | undefined,
  eventsFile: string | undefined,
  topN: number,
): Promise<SampleRecommendations[]> {
  const recsGlob = path.join(versionDir, '*.parquet');
  if (!fs.existsSync(versionDir)) return [];
  return withDb(':memory:', { memoryLimit: '512MB', threads: 1 }, async (db: Db) => {
    const items =
      itemsFile && fs.existsSync(itemsFile)
        ? `(SELECT item_id, title, category FROM read_parquet(${lit(itemsFile)}))`
        : `(SELECT NULL::VARCHAR AS item_id, NULL::VARCHAR AS title, NULL::VARCHAR AS category WHERE false)`;
    await db.run(`CREATE TEMP TABLE sample_users AS
      SELECT user_id FROM (SELECT DISTINCT user_id FROM read_parquet(${lit(recsGlob)}))
      ORDER BY hash(user_id), user_id LIMIT ${SAMPLE_USERS}`);
    const recs = await db.all<{
      user_id: string;
      rank: number;
      item_id: string;
      score: number;
      title: string | null;
      category: string | null;
    }>(
      `SELECT r.user_id, r.rank, r.item_id, r.score, i.title, i.category
       FROM read_parquet(${lit(recsGlob)}) r LEFT JOIN ${items} i USING (item_id)
       WHERE r.user_id IN (SELECT user_id FROM sample_users) AND r.rank <= ${Math.min(topN, 10)}
       ORDER BY hash(r.user_id), r.user_id, r.rank`,
    );
    const history =
      eventsFile && fs.existsSync(eventsFile)
        ? await db.all<{ user_id: string; item_id: string; title: string | null; category: string | null }>(
            `SELECT e.user_id, e.item_id, i.title, i.category FROM (
               SELECT user_id, item_id, ts, row_number() OVER (PARTITION BY user_id ORDER BY ts DESC, item_id) AS n
               FROM read_parquet(${lit(eventsFile)}) WHERE user_id IN (SELECT user_id FROM sample_users)) e
             LEFT JOIN ${items} i USING (item_id) WHERE n <= ${SAMPLE_HISTORY} ORDER BY e.user_id, n`,
          )
        : [];
    const info = (r: { item_id: string; title: string | null; category: string | null }): ItemInfo => ({
      itemId: r.item_id,
      title: r.title ?? null,
      category: r.category ?? null,
    });
    const users = [...new Set(recs.map((r) => r.user_id))];
    return users.map((u) => ({
      userId: u,
      history: history.filter((h) => h.user_id === u).map(info),
      recs: recs
        .filter((r) => r.user_id === u)
        .map((r) => ({ ...info(r), rank: Number(r.rank), score: Number(r.score) })),
    }));
  });
}

export interface LoadOptions {
  /** The run summary when the caller has it (the workflow's report activity); else summary.json. */
  summary?: RunSummary | null;
  now?: () => Date;
  /**
   * The local folder holding the storage root's runs/ and reports/ (a bucket's mirror on a worker); default the
   * plan's data folder.
   */
  storageRoot?: string;
}

export async function loadRunReportInput(runDir: string, o: LoadOptions = {}): Promise<RunReportInput> {
  const f = runFiles(runDir);
  const plan = readJsonIfExists<RunPlan>(f.plan);
  const summary = o.summary ?? readJsonIfExists<RunSummary>(f.summary) ?? null;
  const profile = readJsonIfExists<ProfileDocument>(f.profile) ?? null;
  const evaluation = readJsonIfExists<EvaluationDocument>(f.evaluation) ?? null;
  const runId = summary?.runId ?? plan?.run.runId ?? path.basename(runDir);
  const datasetId = summary?.datasetId ?? plan?.run.datasetId ?? path.basename(path.dirname(runDir));
  // The samples read the published version and the run's items, in the run's storage (a local folder here).
  const storageRoot = path.resolve(runDir, '..', '..', '..');
  const samples =
    summary?.published && plan
      ? await readSamples(
          path.join(storageRoot, ...summary.published.versionKey.split('/')),
          fs.existsSync(f.items) ? f.items : undefined,
          fs.existsSync(f.events) ? f.events : undefined,
          plan.config.publish.topN,
        ).catch(() => [])
      : [];
  const indexRoot = o.storageRoot ?? plan?.config.dataDir;
  const indexFile = indexRoot ? indexPathOf(indexRoot, datasetId) : null;
  return {
    run: {
      runId,
      workflowId: summary?.workflowId ?? plan?.run.workflowId ?? null,
      datasetId,
      modelVersion: summary?.modelVersion ?? plan?.run.modelVersion ?? null,
      startedAt: plan?.run.startedAt ?? null,
      status: summary?.status ?? 'unknown',
    },
    generatedAt: (o.now ?? (() => new Date()))().toISOString(),
    summary,
    profile,
    profileHref: fs.existsSync(f.profileHtml) ? 'profile.html' : null,
    evaluation,
    training: readTrainingCurves(runDir, plan),
    tuning: readJsonIfExists<TuningDocument>(path.join(runDir, 'models', 'tuning.json')) ?? null,
    privacy: await privacyView(plan, summary),
    samples,
    indexHref: indexFile ? path.relative(runDir, indexFile) : null,
  };
}
