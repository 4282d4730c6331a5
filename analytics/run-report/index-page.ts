import { esc, int } from '../report';
import { historyChart, rowsHistoryChart } from './charts';
import { REPORT_CSS } from './html';
import type { RunIndexEntry } from './model';
import { renderAll } from './svg';
import type { RunSummary } from '../../contracts/stages';

/**
 * The index of a dataset's finished runs: NDCG@K of challenger and baselines over time with each run's gate
 * decision, row counts over time, and a table linking every run's report. Pure builders; ./load.ts finds the runs.
 */

/** One index row from a run's summary (pure). */
export function indexEntryOf(
  summary: RunSummary,
  startedAt: string,
  challenger: string | null,
  k: number | null,
  href: string | null,
): RunIndexEntry {
  const key = k === null ? null : `ndcg@${k}`;
  const ndcg: Record<string, number> = {};
  if (key)
    for (const [model, m] of Object.entries(summary.metrics)) if (m[key] !== undefined) ndcg[model] = m[key];
  return {
    runId: summary.runId,
    datasetId: summary.datasetId,
    startedAt,
    status: summary.status,
    decision: summary.gate?.decision ?? null,
    modelVersion: summary.modelVersion,
    challenger,
    k,
    ndcg,
    rows: { ingested: summary.rows.ingested, kept: summary.rows.kept, quarantined: summary.rows.quarantined },
    epsilon: summary.privacy?.epsilon ?? null,
    href,
  };
}

export async function buildRunIndex(
  datasetId: string,
  entries: RunIndexEntry[],
  generatedAt: string,
): Promise<string> {
  const sorted = [...entries].sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  const charts = await renderAll({ ndcg: historyChart(sorted), rows: rowsHistoryChart(sorted) });
  return renderRunIndex(datasetId, sorted, charts, generatedAt);
}

export function renderRunIndex(
  datasetId: string,
  entries: RunIndexEntry[],
  charts: { ndcg: string | null; rows: string | null },
  generatedAt: string,
): string {
  const newestFirst = [...entries].reverse();
  const rows = newestFirst.map((e) => {
    const outcome = e.status === 'rejected' ? 'rejected' : e.status;
    const main = e.challenger && e.ndcg[e.challenger] !== undefined ? e.ndcg[e.challenger].toFixed(4) : '–';
    return [
      esc(e.startedAt),
      `<span class="badge ${esc(outcome)}">${esc(outcome)}</span>`,
      e.decision ? esc(e.decision) : '–',
      e.href ? `<a href="${esc(e.href)}">${esc(e.modelVersion)}</a>` : esc(e.modelVersion),
      esc(e.challenger ?? '–'),
      main,
      int(e.rows.ingested),
      int(e.rows.quarantined),
      e.epsilon === null ? 'no DP' : esc(e.epsilon),
    ];
  });
  const head = [
    'started',
    'outcome',
    'gate',
    'model version (report)',
    'challenger',
    'NDCG@K',
    'ingested',
    'quarantined',
    'ε',
  ];
  const chart = (svg: string | null) =>
    svg ? `<figure class="chart">${svg}</figure>` : '<p class="muted">No runs yet.</p>';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Runs — ${esc(datasetId)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>${REPORT_CSS}</style></head><body>
<h1>Runs — ${esc(datasetId)}</h1>
<div class="muted">${entries.length} finished runs · built ${esc(generatedAt)} · failed runs are in the Temporal UI (saved view "failed")</div>
<h2>NDCG@K over time</h2>
${chart(charts.ndcg)}
<h2>Rows per run</h2>
${chart(charts.rows)}
<h2>Runs</h2>
<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>
</body></html>
`;
}
