import type { GateCheck } from '../../contracts/stages';
import { duration } from './progress';

/**
 * `recforge runs`: one row per retrainPipeline execution from what the list call returns (status, search
 * attributes, memo). A completed run whose gates rejected the challenger is shown as `rejected`, not
 * `completed`: it published nothing. Pure.
 */

/** The memo retrainPipeline writes when it finishes (workflows/retrain.ts, upsertMemo). */
export interface RunMemo {
  summary?: {
    status?: 'completed' | 'rejected' | 'failed';
    modelVersion?: string;
    rows?: { ingested: number; kept: number; quarantined: number };
    metrics?: Record<string, Record<string, number>>;
    outputDir?: string | null;
    challenger?: string;
    k?: number;
    gate?: { decision: 'promote' | 'reject'; checks: GateCheck[] };
    report?: string | null;
  };
}

export interface ListedRun {
  workflowId: string;
  runId: string;
  status: string;
  startTime: Date;
  closeTime?: Date;
  memo?: Record<string, unknown>;
  searchAttributes: Record<string, unknown>;
}

export interface RunRow {
  workflowId: string;
  runId: string;
  /** running, completed, rejected, failed, cancelled, terminated, timed_out */
  outcome: string;
  startedAt: string;
  seconds: number | null;
  dataset: string | null;
  stage: string | null;
  decision: string | null;
  modelVersion: string | null;
  challenger: string | null;
  metricName: string | null;
  metric: number | null;
  rowsIngested: number | null;
  report: string | null;
}

function sa(attrs: Record<string, unknown>, key: string): unknown {
  const v = attrs[key];
  return Array.isArray(v) ? v[0] : v;
}

export function runRow(r: ListedRun): RunRow {
  const memo = (r.memo ?? {}) as RunMemo;
  const s = memo.summary;
  const decision =
    s?.gate?.decision ?? (sa(r.searchAttributes, 'RecforgeGateDecision') as string | undefined) ?? null;
  const status = r.status.toLowerCase();
  const outcome =
    status === 'completed' && (s?.status === 'rejected' || decision === 'reject') ? 'rejected' : status;
  const k = s?.k ?? null;
  const metricName = k !== null ? `ndcg@${k}` : 'ndcg';
  const fromMemo = s?.challenger && k !== null ? s.metrics?.[s.challenger]?.[`ndcg@${k}`] : undefined;
  const fromSa = sa(r.searchAttributes, 'RecforgeNdcg') as number | undefined;
  const metric = fromMemo ?? (status === 'completed' ? fromSa : undefined) ?? null;
  return {
    workflowId: r.workflowId,
    runId: r.runId,
    outcome,
    startedAt: r.startTime.toISOString(),
    seconds: r.closeTime ? (r.closeTime.getTime() - r.startTime.getTime()) / 1000 : null,
    dataset: (sa(r.searchAttributes, 'RecforgeDataset') as string | undefined) ?? null,
    stage: (sa(r.searchAttributes, 'RecforgeStage') as string | undefined) ?? null,
    decision,
    modelVersion:
      s?.modelVersion ?? (sa(r.searchAttributes, 'RecforgeModelVersion') as string | undefined) ?? null,
    challenger: s?.challenger ?? null,
    metricName,
    metric: typeof metric === 'number' ? metric : null,
    rowsIngested:
      s?.rows?.ingested ?? (sa(r.searchAttributes, 'RecforgeRowsIngested') as number | undefined) ?? null,
    report: s?.report ?? null,
  };
}

export function formatRunsTable(rows: RunRow[]): string {
  const head = [
    'STARTED (UTC)',
    'OUTCOME',
    'DATASET',
    'STAGE',
    'GATE',
    'METRIC',
    'TIME',
    'MODEL VERSION',
    'RUN ID',
  ];
  const body = rows.map((r) => [
    r.startedAt.slice(0, 19).replace('T', ' '),
    r.outcome,
    r.dataset ?? '–',
    r.outcome === 'running' ? (r.stage ?? '–') : r.stage === 'done' ? 'done' : (r.stage ?? '–'),
    r.decision ?? '–',
    r.metric !== null
      ? `${r.challenger ? `${r.challenger} ` : ''}${r.metricName}=${r.metric.toFixed(4)}`
      : '–',
    r.seconds !== null ? duration(r.seconds) : '–',
    r.modelVersion ?? '–',
    r.runId,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [line(head), ...body.map(line)].join('\n');
}
