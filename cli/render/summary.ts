import type { RunSummary } from '../../contracts/stages';

/** The run summary as the pipeline has always printed it; rejected runs say so in the first line. Pure. */
export function summaryLines(s: RunSummary): string[] {
  const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(4));
  const lines = [`${s.status.toUpperCase()}  model ${s.modelVersion}  (${s.backend})`];
  lines.push(`  rows: ${s.rows.ingested} ingested, ${s.rows.kept} kept, ${s.rows.quarantined} quarantined`);
  for (const [reason, n] of Object.entries(s.rows.byReason)) lines.push(`    ${reason}: ${n}`);
  for (const [model, m] of Object.entries(s.metrics)) {
    lines.push(
      `  ${model.padEnd(10)} ${Object.entries(m)
        .map(([k, v]) => `${k}=${fmt(v)}`)
        .join('  ')}`,
    );
  }
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
  if (s.report) lines.push(`  report: ${s.report.html}`, `  runs:   ${s.report.index}`);
  return lines;
}
