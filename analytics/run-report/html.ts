import { esc, int, pct } from '../report';
import type { DataChoices } from '../../contracts/stages';
import { botsLine } from '../adaptive';
import {
  driftChart,
  eventsPerDayChart,
  eventTypesChart,
  metricsChart,
  modelComparisonChart,
  privacyChart,
  quarantineChart,
  roleOf,
  segmentsChart,
  trainingCurvesChart,
  type ChartSpec,
} from './charts';
import type { RunReportInput, SampleRecommendations } from './model';
import { renderAll } from './svg';

/**
 * The run report: one self-contained HTML page (inline CSS and SVG, no scripts, no external assets) per run, for
 * operators deciding whether to trust a model: what arrived, what was thrown away and why, what privacy it cost,
 * how training went, how the challenger compares with the champion and the baselines, what the gates decided,
 * and what users will actually see. `renderRunReport` is pure (data and rendered charts in, HTML out).
 */

export type ChartKey =
  | 'eventsPerDay'
  | 'eventTypes'
  | 'quarantine'
  | 'drift'
  | 'privacy'
  | 'training'
  | 'comparison'
  | 'metrics'
  | 'segments';

export function runReportCharts(r: RunReportInput): Record<ChartKey, ChartSpec | null> {
  const ev = r.evaluation;
  return {
    eventsPerDay: r.profile ? eventsPerDayChart(r.profile) : null,
    eventTypes: r.profile ? eventTypesChart(r.profile) : null,
    quarantine: r.summary ? quarantineChart(r.summary.rows.byReason) : null,
    drift: r.profile ? driftChart(r.profile) : null,
    privacy: r.privacy ? privacyChart(r.privacy) : null,
    training: r.training.length ? trainingCurvesChart(r.training) : null,
    comparison: ev ? modelComparisonChart(ev) : null,
    metrics: ev ? metricsChart(ev) : null,
    segments: ev ? segmentsChart(ev) : null,
  };
}

/** Builds the page: chart specs from the data, rendered to SVG, laid into the HTML. */
export async function buildRunReport(r: RunReportInput): Promise<string> {
  return renderRunReport(r, await renderAll(runReportCharts(r)));
}

const num4 = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(4);

function chart(svg: string | null, missing: string): string {
  return svg ? `<figure class="chart">${svg}</figure>` : `<p class="muted">${esc(missing)}</p>`;
}

function table(head: string[], rows: string[][], cls = ''): string {
  return `<table class="${cls}"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((row) => `<tr>${row.map((c) => `<td>${c}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

function card(label: string, value: string, cls = ''): string {
  return `<div class="card ${cls}"><div class="v">${value}</div><div class="l">${esc(label)}</div></div>`;
}

const decisionBadge = (d: string) => `<span class="badge ${esc(d)}">${esc(d)}</span>`;

/** Rejected runs are a model decision, shown as such — never as a plain "completed". */
export function runOutcome(r: RunReportInput): string {
  if (r.run.status === 'rejected' || r.summary?.gate.decision === 'reject') return 'rejected';
  return r.run.status;
}

function header(r: RunReportInput): string {
  const s = r.summary;
  const outcome = runOutcome(r);
  const ev = r.evaluation;
  const key = ev ? `ndcg@${ev.k}` : null;
  const challengerNdcg = ev && key ? ev.metrics[ev.challenger]?.[key] : undefined;
  const links = [
    r.indexHref ? `<a href="${esc(r.indexHref)}">all runs of ${esc(r.run.datasetId)}</a>` : '',
    r.profileHref ? `<a href="${esc(r.profileHref)}">full data profile</a>` : '',
  ].filter(Boolean);
  return `<h1>Run report — ${esc(r.run.datasetId)} <span class="badge ${esc(outcome)}">${esc(outcome)}</span></h1>
<div class="muted">run <code>${esc(r.run.runId)}</code>${r.run.workflowId ? ` · workflow <code>${esc(r.run.workflowId)}</code>` : ''} · model
<code>${esc(r.run.modelVersion ?? '–')}</code> · started ${esc(r.run.startedAt ?? '–')} · report built ${esc(r.generatedAt)}</div>
${links.length ? `<nav>${links.join(' · ')}</nav>` : ''}
<p class="muted"><b>Internal: not for release.</b> Built from raw counts and holdout metrics inside the trust boundary
(see docs/privacy.md); the report published with the recommendations is <code>_report/report.html</code>.</p>
<div class="cards">
${card('gate decision', s ? decisionBadge(s.gate.decision) : '–')}
${card(key ? `challenger ${key}` : 'challenger', ev ? `${esc(ev.challenger)} ${num4(challengerNdcg)}` : '–')}
${card('rows ingested', int(s?.rows.ingested))}${card('kept', int(s?.rows.kept))}
${card('quarantined', s ? `${int(s.rows.quarantined)} <span class="muted">(${pct(s.rows.ingested ? s.rows.quarantined / s.rows.ingested : 0)})</span>` : '–')}
${card('ε spent', s?.privacy ? esc(String(s.privacy.epsilon)) : 'no DP')}
${card('published rows', s?.published ? int(s.published.rows) : 'nothing published')}
${card('wall time', s ? `${s.stages.reduce((a, st) => a + st.seconds, 0).toFixed(1)} s` : '–')}
</div>`;
}

function stagesTable(r: RunReportInput): string {
  if (!r.summary) return '<p class="muted">No run summary: the run did not finish.</p>';
  return table(
    ['stage', 'seconds'],
    r.summary.stages.map((st) => [esc(st.name), st.seconds.toFixed(1)]),
    'narrow',
  );
}

function dataSection(r: RunReportInput, c: Record<ChartKey, string | null>): string {
  const p = r.profile;
  if (!p) return '<p class="muted">No data profile for this run.</p>';
  const i = p.interactions;
  const driftNote = p.drift
    ? `Drift against run <code>${esc(p.drift.previousRunId)}</code>: ${decisionBadge(p.drift.status)} · volume ${pct(p.drift.volumeChange)} · new users ${pct(p.drift.newUsersShare)} · new items ${pct(p.drift.newItemsShare)}`
    : esc(p.driftNote ?? 'no previous run to compare with');
  return `<div class="cards">${card('rows', int(p.rows))}${card('malformed lines', int(p.rejectedLines))}${card('users', int(i.users))}${card('items', int(i.items))}${card('days', int(i.time.days))}${card('long-tail share', pct(i.longTailShare))}</div>
<div class="grid">
<div class="panel"><h3>Events per day</h3>${chart(c.eventsPerDay, 'no plausible timestamps')}</div>
<div class="panel"><h3>Event types</h3>${chart(c.eventTypes, 'no event types')}</div>
<div class="panel"><h3>Drift</h3><p>${driftNote}</p>${chart(c.drift, 'no drift measured (first run of the dataset)')}</div>
</div>`;
}

function qualitySection(r: RunReportInput, c: Record<ChartKey, string | null>): string {
  const s = r.summary;
  if (!s) return '<p class="muted">No quality results: the run did not reach the cleaning stage summary.</p>';
  const rows = Object.entries(s.rows.byReason)
    .sort((a, b) => b[1] - a[1])
    .map(([reason, n]) => [esc(reason), int(n), pct(s.rows.ingested ? n / s.rows.ingested : 0, 2)]);
  return `<div class="grid"><div class="panel"><h3>Quarantine by reason</h3>${chart(c.quarantine, 'nothing quarantined')}</div>
<div class="panel">${table(['reason', 'rows', 'share of ingested'], rows)}
<p class="muted">Every quarantined row is kept in <code>quarantine.parquet</code> with its reason, file and line. The
quality gates passed (a failed gate fails the run before training).</p></div></div>${choicesTable(s.choices)}`;
}

/** What cleaning chose for this data (`auto` settings) and why: the holdout, bots, item-item limits. */
function choicesTable(ch: DataChoices | null | undefined): string {
  if (!ch) return '';
  const i = ch.itemItem;
  const rows = [
    [
      'evaluation split',
      `${esc(ch.split.chosen)}${ch.split.configured === 'auto' ? ' <span class="muted">(auto)</span>' : ''}`,
      esc(ch.split.reason),
    ],
    ['bot detection', esc(String(ch.bots.configured)), esc(botsLine(ch.bots))],
    [
      'item-item limits',
      `history ${int(i.maxHistoryPerUser)} (${esc(i.source.maxHistoryPerUser)}), neighbours ${int(i.neighbours)} (${esc(i.source.neighbours)})`,
      esc(i.reason),
    ],
  ];
  return `<h3>Chosen for this data</h3>${table(['setting', 'chosen', 'why'], rows)}`;
}

function privacySection(r: RunReportInput, c: Record<ChartKey, string | null>): string {
  const p = r.privacy;
  if (!p) return '<p class="muted">Differential privacy was off for this run.</p>';
  const used = p.usedEpsilon;
  const remaining = used === null ? null : Math.max(0, p.budget.epsilon - used);
  const params = Object.entries(p.spend.params)
    .map(([k, v]) => `${esc(k)}=${esc(v)}`)
    .join(', ');
  return `<div class="cards">${card('ε this run', esc(p.spend.epsilon))}${card('δ', esc(p.spend.delta))}${card(`ε used in ${p.spend.window} (composed)`, used === null ? '–' : used.toFixed(3))}${card('ε remaining', remaining === null ? '–' : remaining.toFixed(3))}${card('rows removed by caps', int(p.spend.rowsRemovedByCaps))}</div>
${chart(c.privacy, 'no budget configured')}
<p class="muted">Mechanism ${esc(p.spend.mechanism)}${p.spend.rho !== null ? `, ρ = ${esc(p.spend.rho)}` : ''}; budget ε = ${esc(p.budget.epsilon)}, δ = ${esc(p.budget.delta)} per ${esc(p.budget.window)}; the window's runs compose
under zCDP (the ledger's accounting), so their ε together can be less than the sum of each run's ε. ${params ? `Parameters: ${params}.` : ''}</p>`;
}

/** The in-run tuning: what was chosen and the best trials of each phase. */
function tuningSection(r: RunReportInput): string {
  const t = r.tuning;
  if (!t) return '';
  const score = (x: number | null) => (x === null || !Number.isFinite(x) ? '–' : x.toFixed(4));
  const byPhase = new Map<string, number>();
  for (const x of t.trials) byPhase.set(x.phase, (byPhase.get(x.phase) ?? 0) + 1);
  const best = [...t.trials]
    .filter((x) => x.budget === 1 && x.score !== null)
    .sort((a, b) => (b.score as number) - (a.score as number))
    .slice(0, 8);
  const rows = best
    .map(
      (x) =>
        `<tr><td>${esc(x.phase)}</td><td><code>${esc(JSON.stringify(x.params))}</code></td><td>${score(x.score)}</td><td>${x.seconds.toFixed(1)}</td></tr>`,
    )
    .join('');
  return `<h3>Tuning</h3>
<p>Chosen: <b>${esc(t.description)}</b> · validation ${esc(t.metric)}@K ${score(t.validationScore)} on ${int(t.validationUsers)} users ·
${int(t.trials.length)} trials (${[...byPhase].map(([p, n]) => `${esc(p)} ${n}`).join(', ')}) in ${t.seconds.toFixed(1)} s${t.startedFrom ? ' · started from the champion’s parameters' : ''}${t.stoppedByTime ? ' · <b>stopped by the time budget</b>' : ''}</p>
${rows ? `<table><tr><th>phase</th><th>parameters</th><th>validation</th><th>s</th></tr>${rows}</table>` : ''}`;
}

function trainingSection(r: RunReportInput, c: Record<ChartKey, string | null>): string {
  const t = r.summary?.training;
  const facts = t
    ? `<p>Device ${esc(t.device)} · ${int(t.examplesPerSec)} examples/s · ${int(t.epochs)} epochs${t.resumed.length ? ` · resumed ${t.resumed.map((x) => `${esc(x.variant)} from step ${int(x.fromStep)}`).join(', ')}` : ''}</p>`
    : '';
  const best = r.training
    .map(
      (cv) =>
        `${esc(cv.variant)}: ${cv.epochs.length} epochs${cv.bestEpoch !== null && cv.bestEpoch >= 0 ? `, best epoch ${cv.bestEpoch + 1}` : ''}${cv.stoppedEarly ? ', stopped early' : ''}`,
    )
    .join(' · ');
  const curves = r.tuning
    ? ''
    : chart(
        c.training,
        'No training curves: the challenger is not a learned model (item-item and MostPop are computed in SQL, no epochs).',
      );
  return `${facts}${curves}${best ? `<p class="muted">${best}</p>` : ''}${tuningSection(r)}`;
}

function evaluationSection(r: RunReportInput, c: Record<ChartKey, string | null>): string {
  const ev = r.evaluation;
  if (!ev) return '<p class="muted">No evaluation for this run.</p>';
  const keys = Object.keys(Object.values(ev.metrics)[0] ?? {});
  const rows = Object.entries(ev.metrics).map(([model, m]) => [
    `<b>${esc(model)}</b> <span class="muted">${roleOf(model, ev.challenger)}</span>`,
    ...keys.map((k) => (k === 'users' ? int(m[k]) : num4(m[k]))),
  ]);
  const vs = ev.vsChampion
    ? `<p>Challenger − champion <code>${esc(ev.vsChampion.version)}</code>, paired bootstrap of the per-user NDCG@${ev.k}
difference: ${num4(ev.vsChampion.diff.mean)} [${num4(ev.vsChampion.diff.low)}, ${num4(ev.vsChampion.diff.high)}] (95%).</p>`
    : '<p class="muted">No champion yet: this dataset had no promoted model to compare with.</p>';
  return `<p>${int(ev.evaluatedUsers)} users evaluated on the time-based holdout, K = ${ev.k}${ev.catalogue ? `, catalogue ${int(ev.catalogue)} items` : ''}.</p>
<div class="grid"><div class="panel"><h3>Challenger vs champion vs baselines</h3>${chart(c.comparison, 'no NDCG')}${vs}</div>
<div class="panel"><h3>Segments</h3>${chart(c.segments, 'no segment metrics')}<p class="muted">New users: fewer than 5 training events. Head items: the most popular items carrying most of the events.</p></div></div>
<h3>All metrics</h3>${chart(c.metrics, 'no metrics')}
${table(['model', ...keys], rows, 'metrics')}`;
}

function gateSection(r: RunReportInput): string {
  const gate = r.summary?.gate ?? r.evaluation?.gate;
  if (!gate) return '<p class="muted">No gate decision: the run did not reach evaluation.</p>';
  const rows = gate.checks.map((ch) => [
    ch.passed ? '<span class="ok">pass</span>' : '<span class="fail">FAIL</span>',
    esc(ch.name),
    num4(ch.value),
    num4(ch.threshold),
    ch.ci ? `[${num4(ch.ci[0])}, ${num4(ch.ci[1])}]` : '',
  ]);
  const what =
    gate.decision === 'promote'
      ? 'Every check passed: the challenger was published and became champion.'
      : 'At least one check failed: nothing was published and the champion stays current.';
  return `<p>${decisionBadge(gate.decision)} ${esc(what)}</p>${table(['', 'check', 'value', 'threshold', '95% interval'], rows, 'gates')}`;
}

function sampleBlock(s: SampleRecommendations): string {
  const item = (i: { itemId: string; title: string | null; category: string | null }) =>
    `${esc(i.title ?? i.itemId)} <span class="muted">${esc(i.category ?? '')} · <code>${esc(i.itemId)}</code></span>`;
  return `<div class="panel sample"><h3>user <code>${esc(s.userId)}</code></h3>
<div class="muted">recently: ${s.history.length ? s.history.map((h) => esc(h.title ?? h.itemId)).join(' · ') : '–'}</div>
<ol>${s.recs.map((rec) => `<li>${item(rec)} <span class="muted">score ${num4(rec.score)}</span></li>`).join('')}</ol></div>`;
}

function samplesSection(r: RunReportInput): string {
  if (!r.samples.length)
    return `<p class="muted">${r.summary?.published ? 'No sample users could be read from the published output.' : 'Nothing was published by this run, so there are no recommendations to show.'}</p>`;
  return `<div class="samples">${r.samples.map(sampleBlock).join('')}</div>`;
}

export const REPORT_CSS = `
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#333;margin:24px auto;max-width:1180px;padding:0 16px;line-height:1.4}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:30px 0 8px;border-bottom:1px solid #e3e6ea;padding-bottom:4px}
h3{font-size:14px;margin:0 0 6px}nav{margin:6px 0}a{color:#1f6fd1}
.muted{color:#777}.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{border:1px solid #e3e6ea;border-radius:6px;padding:8px 12px;min-width:110px}.card .v{font-size:17px;font-weight:600}.card .l{font-size:12px;color:#777}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(540px,1fr));gap:18px}
.panel{border:1px solid #e3e6ea;border-radius:6px;padding:10px 12px;overflow-x:auto}
figure.chart{margin:6px 0;overflow-x:auto}figure.chart svg{overflow:visible}
table{border-collapse:collapse;font-size:13px;width:100%;margin:8px 0}table.narrow{width:auto}
th,td{border-bottom:1px solid #eceff2;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f6f7f9;font-weight:600}
code{font-size:12px;background:#f3f4f6;padding:0 3px;border-radius:3px}
.badge{color:#fff;border-radius:10px;padding:1px 9px;font-size:12px;font-weight:600;background:#777;vertical-align:middle}
.badge.promote,.badge.completed,.badge.ok{background:#2e7d32}.badge.reject,.badge.rejected,.badge.alert,.badge.failed{background:#c62828}.badge.warn{background:#b26a00}
.ok{color:#2e7d32;font-weight:600}.fail{color:#c62828;font-weight:700}
.samples{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,1fr));gap:14px}.sample ol{margin:6px 0 0 18px;padding:0;font-size:13px}
`;

export function renderRunReport(r: RunReportInput, c: Record<ChartKey, string | null>): string {
  const title = `Run report — ${r.run.datasetId} — ${r.run.modelVersion ?? r.run.runId}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>${REPORT_CSS}</style></head><body>
${header(r)}
<h2>Gate decision</h2>
${gateSection(r)}
<h2>Evaluation</h2>
${evaluationSection(r, c)}
<h2>Training</h2>
${trainingSection(r, c)}
<h2>Data profile and drift</h2>
${dataSection(r, c)}
<h2>Quality gates and quarantine</h2>
${qualitySection(r, c)}
<h2>Privacy</h2>
${privacySection(r, c)}
<h2>Sample recommendations</h2>
${samplesSection(r)}
<h2>Stages</h2>
${stagesTable(r)}
</body></html>
`;
}
