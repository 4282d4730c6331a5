import type { TopLevelSpec } from 'vega-lite';
import type { ProfileDocument } from '../profile-model';
import type { EvaluationDocument, PrivacyBudgetView, RunIndexEntry, TrainingCurve } from './model';

/**
 * Vega-Lite specifications of the report's charts: pure functions from report data to a spec (./svg.ts renders
 * them to static SVG). Data values are inlined; nothing is fetched. Each returns null when it has nothing to
 * show, so the page can say so instead of drawing an empty frame.
 */

export type ChartSpec = TopLevelSpec;

const WIDTH = 520;
const ROLE_COLORS = {
  domain: ['challenger', 'champion', 'baseline'],
  range: ['#1f6fd1', '#6a3d9a', '#9aa3ad'],
};
const DECISION_COLORS = { domain: ['promote', 'reject', 'failed'], range: ['#2e7d32', '#c62828', '#777777'] };

const base = {
  $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
  // Server-side text measurement only estimates label widths; the margin keeps legends from being clipped.
  padding: { left: 5, top: 5, bottom: 5, right: 40 },
  config: {
    font: 'system-ui, -apple-system, Segoe UI, Roboto, sans-serif',
    axis: { labelFontSize: 11, titleFontSize: 11, gridColor: '#e3e6ea' },
    legend: { labelFontSize: 11, titleFontSize: 11, labelLimit: 240 },
    view: { stroke: null },
  },
} as const;

export function roleOf(model: string, challenger: string | null): 'challenger' | 'champion' | 'baseline' {
  if (model === challenger) return 'challenger';
  if (model === 'champion') return 'champion';
  return 'baseline';
}

export function eventsPerDayChart(p: ProfileDocument): ChartSpec | null {
  const days = p.interactions.time.eventsPerDay;
  if (!days.length) return null;
  return {
    ...base,
    width: WIDTH,
    height: 160,
    data: { values: days.map((d) => ({ day: d.day, events: d.n })) },
    mark: { type: 'bar', color: '#4472c4' },
    encoding: {
      x: { field: 'day', type: 'temporal', timeUnit: 'utcyearmonthdate', title: null },
      y: { field: 'events', type: 'quantitative', title: 'events' },
      tooltip: [
        { field: 'day', type: 'temporal', timeUnit: 'utcyearmonthdate' },
        { field: 'events', type: 'quantitative', format: ',' },
      ],
    },
  } as ChartSpec;
}

export function eventTypesChart(p: ProfileDocument): ChartSpec | null {
  const types = p.interactions.eventTypes;
  if (!types.length) return null;
  return {
    ...base,
    width: WIDTH - 120,
    height: { step: 20 },
    data: { values: types.map((t) => ({ type: t.key, events: t.n, share: t.share })) },
    mark: { type: 'bar', color: '#4472c4' },
    encoding: {
      y: { field: 'type', type: 'nominal', sort: '-x', title: null },
      x: { field: 'events', type: 'quantitative', title: 'events' },
      tooltip: [
        { field: 'type', type: 'nominal' },
        { field: 'events', type: 'quantitative', format: ',' },
        { field: 'share', type: 'quantitative', format: '.1%' },
      ],
    },
  } as ChartSpec;
}

export function quarantineChart(byReason: Record<string, number>): ChartSpec | null {
  const rows = Object.entries(byReason)
    .filter(([, n]) => n > 0)
    .map(([reason, n]) => ({ reason, rows: n }));
  if (!rows.length) return null;
  return {
    ...base,
    width: WIDTH - 120,
    height: { step: 20 },
    data: { values: rows },
    mark: { type: 'bar', color: '#ed7d31' },
    encoding: {
      y: { field: 'reason', type: 'nominal', sort: '-x', title: null },
      x: { field: 'rows', type: 'quantitative', title: 'rows quarantined' },
      tooltip: [
        { field: 'reason', type: 'nominal' },
        { field: 'rows', type: 'quantitative', format: ',' },
      ],
    },
  } as ChartSpec;
}

export function driftChart(p: ProfileDocument): ChartSpec | null {
  const d = p.drift;
  if (!d) return null;
  const rows = Object.entries(d.psi).map(([key, psi]) => ({ key, psi }));
  if (!rows.length) return null;
  return {
    ...base,
    width: WIDTH - 120,
    height: { step: 22 },
    layer: [
      {
        data: { values: rows },
        mark: { type: 'bar', color: '#4472c4' },
        encoding: {
          y: { field: 'key', type: 'nominal', title: null },
          x: { field: 'psi', type: 'quantitative', title: 'PSI against the previous run' },
          tooltip: [
            { field: 'key', type: 'nominal' },
            { field: 'psi', type: 'quantitative', format: '.4f' },
          ],
        },
      },
      {
        // The conventional PSI thresholds: below 0.1 stable, above 0.25 a significant shift.
        data: {
          values: [
            { x: 0.1, label: 'warn' },
            { x: 0.25, label: 'alert' },
          ],
        },
        mark: { type: 'rule', strokeDash: [4, 3] },
        encoding: {
          x: { field: 'x', type: 'quantitative' },
          color: {
            field: 'label',
            type: 'nominal',
            scale: { domain: ['warn', 'alert'], range: ['#b26a00', '#c62828'] },
            title: 'threshold',
          },
        },
      },
    ],
  } as ChartSpec;
}

/** Loss per epoch and, where evaluated, the validation score per epoch: one panel each, a line per variant. */
export function trainingCurvesChart(curves: TrainingCurve[]): ChartSpec | null {
  const points = curves.flatMap((c) =>
    c.epochs.map((e) => ({ variant: c.variant, epoch: e.epoch + 1, loss: e.loss, metric: e.metric ?? null })),
  );
  if (!points.length) return null;
  const metricName = curves.find((c) => c.metric)?.metric ?? 'validation';
  const hasMetric = points.some((p) => p.metric !== null);
  const panel = (field: 'loss' | 'metric', title: string) => ({
    width: hasMetric ? 250 : WIDTH,
    height: 170,
    mark: { type: 'line', point: true },
    transform: field === 'metric' ? [{ filter: 'datum.metric !== null' }] : [],
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1, format: 'd' } },
      y: { field, type: 'quantitative', title, scale: { zero: false } },
      color: { field: 'variant', type: 'nominal', title: 'variant' },
      tooltip: [
        { field: 'variant', type: 'nominal' },
        { field: 'epoch', type: 'quantitative' },
        { field, type: 'quantitative', format: '.4f' },
      ],
    },
  });
  return {
    ...base,
    data: { values: points },
    hconcat: hasMetric
      ? [panel('loss', 'training loss'), panel('metric', `validation ${metricName}`)]
      : [panel('loss', 'training loss')],
  } as ChartSpec;
}

/** NDCG@K per model with its 95% bootstrap interval, challenger / champion / baselines coloured by role. */
export function modelComparisonChart(ev: EvaluationDocument): ChartSpec | null {
  const key = `ndcg@${ev.k}`;
  const rows = Object.entries(ev.metrics)
    .filter(([, m]) => m[key] !== undefined)
    .map(([model, m]) => ({
      model,
      role: roleOf(model, ev.challenger),
      ndcg: m[key],
      low: ev.ndcgInterval95?.[model]?.low ?? m[key],
      high: ev.ndcgInterval95?.[model]?.high ?? m[key],
    }));
  if (!rows.length) return null;
  const y = { field: 'model', type: 'nominal', title: null, sort: { field: 'ndcg', order: 'descending' } };
  return {
    ...base,
    width: WIDTH - 120,
    height: { step: 26 },
    data: { values: rows },
    layer: [
      {
        mark: { type: 'rule', strokeWidth: 2 },
        encoding: {
          y,
          x: { field: 'low', type: 'quantitative', title: `NDCG@${ev.k} (95% bootstrap interval)` },
          x2: { field: 'high' },
          color: { field: 'role', type: 'nominal', scale: ROLE_COLORS, title: 'role' },
        },
      },
      {
        mark: { type: 'point', filled: true, size: 80 },
        encoding: {
          y,
          x: { field: 'ndcg', type: 'quantitative' },
          color: { field: 'role', type: 'nominal', scale: ROLE_COLORS },
          tooltip: [
            { field: 'model', type: 'nominal' },
            { field: 'ndcg', type: 'quantitative', format: '.4f', title: `NDCG@${ev.k}` },
            { field: 'low', type: 'quantitative', format: '.4f' },
            { field: 'high', type: 'quantitative', format: '.4f' },
          ],
        },
      },
    ],
  } as ChartSpec;
}

/** Headline metrics side by side per model (grouped bars, one panel per metric). */
export function metricsChart(ev: EvaluationDocument): ChartSpec | null {
  const wanted = [`precision@${ev.k}`, `recall@${ev.k}`, `hitrate@${ev.k}`, `map@${ev.k}`, 'coverage'];
  const rows = Object.entries(ev.metrics).flatMap(([model, m]) =>
    wanted
      .filter((k) => m[k] !== undefined)
      .map((k) => ({ model, metric: k, value: m[k], role: roleOf(model, ev.challenger) })),
  );
  if (!rows.length) return null;
  return {
    ...base,
    data: { values: rows },
    facet: { column: { field: 'metric', type: 'nominal', title: null, sort: wanted } },
    spec: {
      width: 90,
      height: 140,
      mark: 'bar',
      encoding: {
        x: { field: 'model', type: 'nominal', title: null, axis: { labelAngle: -40 } },
        y: { field: 'value', type: 'quantitative', title: null },
        color: { field: 'role', type: 'nominal', scale: ROLE_COLORS, title: 'role' },
        tooltip: [
          { field: 'model', type: 'nominal' },
          { field: 'metric', type: 'nominal' },
          { field: 'value', type: 'quantitative', format: '.4f' },
        ],
      },
    },
    resolve: { scale: { y: 'independent' } },
  } as ChartSpec;
}

/** Segment metrics: NDCG for new vs returning users, recall on head vs tail items, per model. */
export function segmentsChart(ev: EvaluationDocument): ChartSpec | null {
  const k = ev.k;
  const labels: Record<string, string> = {
    [`ndcg@${k}_new_users`]: `NDCG@${k} new users`,
    [`ndcg@${k}_returning_users`]: `NDCG@${k} returning users`,
    [`recall@${k}_head_items`]: `recall@${k} head items`,
    [`recall@${k}_tail_items`]: `recall@${k} tail items`,
  };
  const rows = Object.entries(ev.segments ?? {}).flatMap(([model, m]) =>
    Object.entries(labels)
      .filter(([key]) => m[key] !== undefined && Number.isFinite(m[key]))
      .map(([key, label]) => ({ model, segment: label, value: m[key], role: roleOf(model, ev.challenger) })),
  );
  if (!rows.length) return null;
  return {
    ...base,
    data: { values: rows },
    facet: { column: { field: 'segment', type: 'nominal', title: null, sort: Object.values(labels) } },
    spec: {
      width: 110,
      height: 140,
      mark: 'bar',
      encoding: {
        x: { field: 'model', type: 'nominal', title: null, axis: { labelAngle: -40 } },
        y: { field: 'value', type: 'quantitative', title: null },
        color: { field: 'role', type: 'nominal', scale: ROLE_COLORS, title: 'role' },
        tooltip: [
          { field: 'model', type: 'nominal' },
          { field: 'segment', type: 'nominal' },
          { field: 'value', type: 'quantitative', format: '.4f' },
        ],
      },
    },
  } as ChartSpec;
}

/** The window's privacy budget: spent by other runs, by this run, and what remains. */
export function privacyChart(p: PrivacyBudgetView): ChartSpec | null {
  const total = p.budget.epsilon;
  if (!(total > 0)) return null;
  const used = Math.min(total, Math.max(p.usedEpsilon ?? p.spend.epsilon, p.spend.epsilon));
  const rows = [
    { part: 'other runs in the window', epsilon: Math.max(0, used - p.spend.epsilon), order: 0 },
    { part: 'this run', epsilon: Math.min(p.spend.epsilon, total), order: 1 },
    { part: 'remaining', epsilon: Math.max(0, total - used), order: 2 },
  ];
  return {
    ...base,
    width: WIDTH,
    height: 46,
    data: { values: rows },
    mark: 'bar',
    encoding: {
      x: {
        field: 'epsilon',
        type: 'quantitative',
        stack: 'zero',
        title: `ε of the ${p.budget.window} budget (${total})`,
        scale: { domain: [0, total] },
      },
      color: {
        field: 'part',
        type: 'nominal',
        title: null,
        scale: { domain: rows.map((r) => r.part), range: ['#9aa3ad', '#1f6fd1', '#d9e7f7'] },
      },
      order: { field: 'order' },
      tooltip: [
        { field: 'part', type: 'nominal' },
        { field: 'epsilon', type: 'quantitative', format: '.3f', title: 'ε' },
      ],
    },
  } as ChartSpec;
}

/** NDCG@K of each run over time: challenger and baselines as lines, each run's gate decision as the point colour. */
export function historyChart(entries: RunIndexEntry[]): ChartSpec | null {
  const rows = entries.flatMap((e) =>
    Object.entries(e.ndcg).map(([model, ndcg]) => ({
      startedAt: e.startedAt,
      model: model === e.challenger ? `${model} (challenger)` : model,
      ndcg,
      decision: e.decision ?? 'failed',
      runId: e.runId,
    })),
  );
  if (!rows.length) return null;
  return {
    ...base,
    width: WIDTH + 120,
    height: 220,
    data: { values: rows },
    layer: [
      {
        mark: { type: 'line', strokeWidth: 1.5 },
        encoding: {
          x: { field: 'startedAt', type: 'temporal', title: 'run start', axis: { format: '%Y-%m-%d %H:%M' } },
          y: { field: 'ndcg', type: 'quantitative', title: 'NDCG@K', scale: { zero: false } },
          color: { field: 'model', type: 'nominal', title: 'model' },
        },
      },
      {
        mark: { type: 'point', filled: true, size: 60 },
        encoding: {
          x: { field: 'startedAt', type: 'temporal' },
          y: { field: 'ndcg', type: 'quantitative' },
          color: { field: 'model', type: 'nominal' },
          shape: { field: 'decision', type: 'nominal', title: 'gate', scale: DECISION_COLORS_SHAPES },
          tooltip: [
            { field: 'runId', type: 'nominal' },
            { field: 'model', type: 'nominal' },
            { field: 'ndcg', type: 'quantitative', format: '.4f' },
            { field: 'decision', type: 'nominal' },
          ],
        },
      },
    ],
  } as ChartSpec;
}

const DECISION_COLORS_SHAPES = { domain: DECISION_COLORS.domain, range: ['circle', 'cross', 'square'] };

/** Row counts per run over time (ingested, kept, quarantined). */
export function rowsHistoryChart(entries: RunIndexEntry[]): ChartSpec | null {
  const rows = entries.flatMap((e) =>
    (['ingested', 'kept', 'quarantined'] as const).map((kind) => ({
      startedAt: e.startedAt,
      kind,
      rows: e.rows[kind],
    })),
  );
  if (!rows.length) return null;
  return {
    ...base,
    width: WIDTH + 120,
    height: 160,
    data: { values: rows },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'startedAt', type: 'temporal', title: 'run start', axis: { format: '%Y-%m-%d %H:%M' } },
      y: { field: 'rows', type: 'quantitative', title: 'rows' },
      color: { field: 'kind', type: 'nominal', title: null },
      tooltip: [
        { field: 'kind', type: 'nominal' },
        { field: 'rows', type: 'quantitative', format: ',' },
      ],
    },
  } as ChartSpec;
}
