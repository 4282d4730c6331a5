import type { MetricMeter, MetricTags } from '@temporalio/common';
import type { CleanResult, EvaluateResult, IngestResult, PublishResult } from '../../contracts/stages';
import type { PrivacyReservation } from '../../contracts/privacy';

/**
 * recforge's own Prometheus metrics, exported through the Temporal SDK's metric meter: they appear on the same
 * endpoint as the SDK's (telemetry `metrics.prometheus.bindAddress`), so one scrape job covers a worker.
 *
 * Derived from what the stage activities take and return (an activity interceptor, ./interceptor.ts), not from
 * calls inside the activities: the activities stay free of metrics code, and a retried activity records the
 * attempt that succeeded. Gauges hold the latest run's value per dataset, which is what a dashboard of a nightly
 * batch job plots; the stage histogram accumulates every attempt, failures included.
 */

export const METRIC = {
  stageSeconds: 'recforge_stage_seconds',
  rows: 'recforge_rows',
  quarantinedRows: 'recforge_quarantined_rows',
  quarantineShare: 'recforge_quarantine_share',
  epsilonSpent: 'recforge_privacy_epsilon_spent',
  metric: 'recforge_model_metric',
  ndcg: 'recforge_ndcg',
  gateDecisions: 'recforge_gate_decisions',
  publishedRows: 'recforge_published_rows',
} as const;

/** Stage seconds span a sub-second plan to an hour-long training run. */
export const STAGE_SECONDS_BUCKETS = [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200];

/** Activity type → pipeline stage, for the activities worth timing. */
export const STAGE_OF: Readonly<Record<string, string>> = {
  planRun: 'plan',
  ingest: 'ingest',
  profile: 'profile',
  clean: 'clean',
  trainBaselines: 'train',
  trainLearned: 'train',
  evaluate: 'evaluate',
  registerCandidate: 'register',
  reservePrivacyBudget: 'privacy',
  scorePublishShard: 'publish',
  publishVersion: 'publish',
  promoteCandidate: 'promote',
  commitRun: 'commit',
};

export type MetricPoint =
  | { kind: 'gauge'; name: string; value: number; tags: MetricTags }
  | { kind: 'counter'; name: string; value: number; tags: MetricTags }
  | { kind: 'histogram'; name: string; value: number; tags: MetricTags };

/** The dataset an activity worked on: its first argument is the plan, or the run (a StageRun) holding it. */
function datasetOf(x: unknown): string {
  const o = x as {
    run?: { datasetId?: unknown };
    plan?: { run?: { datasetId?: unknown } };
    datasetId?: unknown;
  };
  const id = o?.run?.datasetId ?? o?.plan?.run?.datasetId ?? o?.datasetId;
  return typeof id === 'string' ? id : 'unknown';
}

/** The metric points one finished activity yields (pure). */
export function metricsOfActivity(
  activityType: string,
  args: readonly unknown[],
  outcome: { ok: true; result: unknown; seconds: number } | { ok: false; seconds: number },
): MetricPoint[] {
  const stage = STAGE_OF[activityType];
  if (!stage) return [];
  // planRun returns the plan; every later stage takes it (or the run holding it) as its first argument.
  const dataset = datasetOf(activityType === 'planRun' ? (outcome.ok ? outcome.result : undefined) : args[0]);
  const points: MetricPoint[] = [
    {
      kind: 'histogram',
      name: METRIC.stageSeconds,
      value: outcome.seconds,
      tags: { stage, activity: activityType, dataset, outcome: outcome.ok ? 'ok' : 'failed' },
    },
  ];
  if (!outcome.ok) return points;
  const gauge = (name: string, value: number, tags: MetricTags = {}) => {
    if (Number.isFinite(value)) points.push({ kind: 'gauge', name, value, tags: { dataset, ...tags } });
  };
  switch (activityType) {
    case 'reservePrivacyBudget': {
      const p = outcome.result as PrivacyReservation;
      gauge(METRIC.epsilonSpent, p.spend.epsilon);
      break;
    }
    case 'ingest': {
      const r = outcome.result as IngestResult;
      gauge(METRIC.rows, r.rows + r.rejectedLines, { kind: 'ingested' });
      gauge(METRIC.rows, r.rejectedLines, { kind: 'malformed' });
      break;
    }
    case 'clean': {
      const r = outcome.result as CleanResult;
      gauge(METRIC.rows, r.kept, { kind: 'kept' });
      gauge(METRIC.rows, r.quarantined, { kind: 'quarantined' });
      const total = r.kept + r.quarantined;
      gauge(METRIC.quarantineShare, total ? r.quarantined / total : 0);
      for (const [reason, n] of Object.entries(r.byReason)) gauge(METRIC.quarantinedRows, n, { reason });
      break;
    }
    case 'evaluate': {
      const r = outcome.result as EvaluateResult;
      for (const [model, m] of Object.entries(r.metrics)) {
        const role = model === r.chosenModel ? 'challenger' : model === 'champion' ? 'champion' : 'baseline';
        const ndcg = m[`ndcg@${r.k}`];
        if (ndcg !== undefined) gauge(METRIC.ndcg, ndcg, { model, role });
        for (const [name, value] of Object.entries(m))
          gauge(METRIC.metric, value, { model, role, metric: name });
      }
      points.push({
        kind: 'counter',
        name: METRIC.gateDecisions,
        value: 1,
        tags: { dataset, decision: r.gate.decision },
      });
      break;
    }
    case 'publishVersion': {
      const r = outcome.result as PublishResult;
      gauge(METRIC.publishedRows, r.rows);
      break;
    }
  }
  return points;
}

const DESCRIPTIONS: Record<string, { unit: string; description: string; type: 'int' | 'float' }> = {
  [METRIC.stageSeconds]: { unit: 's', description: 'Wall time of one stage activity attempt', type: 'float' },
  [METRIC.rows]: { unit: '', description: "Rows of the dataset's latest run by kind", type: 'int' },
  [METRIC.quarantinedRows]: {
    unit: '',
    description: 'Rows quarantined in the latest run by reason',
    type: 'int',
  },
  [METRIC.quarantineShare]: {
    unit: '',
    description: 'Share of ingested rows quarantined (latest run)',
    type: 'float',
  },
  [METRIC.epsilonSpent]: { unit: '', description: 'Privacy ε reserved by the latest run', type: 'float' },
  [METRIC.metric]: {
    unit: '',
    description: 'Offline evaluation metrics of the latest run per model',
    type: 'float',
  },
  [METRIC.ndcg]: { unit: '', description: 'NDCG@K of the latest run per model', type: 'float' },
  [METRIC.gateDecisions]: { unit: '', description: 'Gate decisions (promote/reject)', type: 'int' },
  [METRIC.publishedRows]: {
    unit: '',
    description: 'Recommendation rows published by the latest run',
    type: 'int',
  },
};

/** Records metric points on a meter, creating each instrument once. */
export class MetricRecorder {
  private readonly instruments = new Map<
    string,
    {
      set?: (v: number, t: MetricTags) => void;
      add?: (v: number, t: MetricTags) => void;
      record?: (v: number, t: MetricTags) => void;
    }
  >();

  constructor(private readonly meter: MetricMeter) {}

  record(points: readonly MetricPoint[]): void {
    for (const p of points) {
      const d = DESCRIPTIONS[p.name] ?? { unit: '', description: p.name, type: 'float' as const };
      let inst = this.instruments.get(p.name);
      if (!inst) {
        if (p.kind === 'gauge') {
          const g = this.meter.createGauge(p.name, d.type, d.unit, d.description);
          inst = { set: (v, t) => g.set(d.type === 'int' ? Math.round(v) : v, t) };
        } else if (p.kind === 'counter') {
          const c = this.meter.createCounter(p.name, d.unit, d.description);
          inst = { add: (v, t) => c.add(v, t) };
        } else {
          const h = this.meter.createHistogram(p.name, d.type, d.unit, d.description);
          inst = { record: (v, t) => h.record(v, t) };
        }
        this.instruments.set(p.name, inst);
      }
      if (p.kind === 'gauge') inst.set?.(p.value, p.tags);
      else if (p.kind === 'counter') inst.add?.(p.value, p.tags);
      else inst.record?.(p.value, p.tags);
    }
  }
}
