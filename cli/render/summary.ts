import type { RunSummary } from '../../contracts/stages';
import { botsLine } from '../../analytics/adaptive';

/** The run summary as the pipeline has always printed it; rejected runs say so in the first line. Pure. */
export function summaryLines(s: RunSummary): string[] {
  const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(4));
  const lines = [`${s.status.toUpperCase()}  model ${s.modelVersion}  (${s.backend})`];
  lines.push(`  rows: ${s.rows.ingested} ingested, ${s.rows.kept} kept, ${s.rows.quarantined} quarantined`);
  for (const [reason, n] of Object.entries(s.rows.byReason)) lines.push(`    ${reason}: ${n}`);
  const ch = s.choices;
  if (ch) {
    lines.push(`  chosen for this data:`);
    lines.push(
      `    split: ${ch.split.chosen}${ch.split.configured === 'auto' ? ' (auto)' : ''} — ${ch.split.reason}`,
    );
    lines.push(`    bots: ${botsLine(ch.bots)}`);
    lines.push(
      `    item-item: history ${ch.itemItem.maxHistoryPerUser} (${ch.itemItem.source.maxHistoryPerUser}), neighbours ${ch.itemItem.neighbours} (${ch.itemItem.source.neighbours}) — ${ch.itemItem.reason}`,
    );
  }
  for (const [model, m] of Object.entries(s.metrics)) {
    lines.push(
      `  ${model.padEnd(10)} ${Object.entries(m)
        .map(([k, v]) => `${k}=${fmt(v)}`)
        .join('  ')}`,
    );
  }
  const t = s.training?.tuning;
  if (t)
    lines.push(
      `  tuned ${t.family}: ${t.description} (validation ${t.metric} ${Number.isFinite(t.validationScore) ? fmt(t.validationScore) : '–'}, ${t.trials} trials in ${t.seconds.toFixed(1)} s${t.warmStarted ? ', from the champion’s parameters' : ''}${t.stoppedByTime ? ', stopped by the time budget' : ''})`,
    );
  lines.push(`  gate: ${s.gate.decision}`);
  for (const c of s.gate.checks)
    lines.push(
      `    ${c.passed ? 'ok  ' : 'FAIL'} ${c.name}: ${fmt(c.value)} (threshold ${fmt(c.threshold)})`,
    );
  if (s.privacy) {
    lines.push(
      `  privacy: unit ${s.privacy.unit ?? '?'}, ε=${s.privacy.epsilon} δ=${s.privacy.delta} (${s.privacy.mechanism}), window ${s.privacy.window}`,
    );
    const u = s.privacy.utility;
    if (u) lines.push(`    planned utility: ${u.verdict} — ${u.note}`);
  }
  if (s.published) {
    lines.push(`  published ${s.published.rows} rows for ${s.published.users} users`);
    lines.push(`  output: ${s.published.outputDir} (live: versions/${s.published.version})`);
    const l = s.published.lists;
    if (l)
      lines.push(
        `  lists: ${l.personal} personalised, ${l.category} category fallback, ${l.popular} popular fallback` +
          (l.newItems ? `; ${l.newItems} with a new item` : ''),
      );
    else if (s.published.fallbackUsers)
      lines.push(
        `  ${s.published.fallbackUsers} users got the popular fallback only (no personalised candidate)`,
      );
  }
  if (s.status === 'rejected') {
    const live = s.registry?.champion;
    lines.push(
      `  nothing published: the gates rejected this run's challenger; ${live ? `version ${live} stays live` : 'no version is live yet'}`,
    );
  }
  if (s.report) lines.push(`  report: ${s.report.html}`, `  runs:   ${s.report.index}`);
  return lines;
}
