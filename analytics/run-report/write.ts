import * as fs from 'node:fs';
import * as path from 'node:path';
import { readJsonIfExists, writeFileAtomic, writeJsonAtomic } from '../../lib/fs-atomic';
import type { RunPlan, RunSummary } from '../../contracts/stages';
import { buildRunReport } from './html';
import { buildRunIndex, indexEntryOf } from './index-page';
import { indexPathOf, loadRunReportInput, runFiles } from './load';
import type { EvaluationDocument, RunIndexEntry } from './model';

/** Where a run's report and its dataset's index were written. */
export interface RunReportPaths {
  html: string;
  index: string;
}

/**
 * Writes the run's summary.json, its report.html and the dataset's index of runs. Idempotent (every file is
 * rewritten whole, atomically), so a retried activity or a `recforge report` re-run gives the same pages.
 */
export async function writeRunReport(
  runDir: string,
  o: { summary?: RunSummary | null; now?: () => Date; storageRoot?: string } = {},
): Promise<RunReportPaths> {
  const f = runFiles(runDir);
  if (o.summary) writeJsonAtomic(f.summary, o.summary);
  const input = await loadRunReportInput(runDir, o);
  writeFileAtomic(f.report, await buildRunReport(input));
  const plan = readJsonIfExists<RunPlan>(f.plan);
  const dataDir = o.storageRoot ?? plan?.config.dataDir ?? path.resolve(runDir, '..', '..', '..');
  const index = await writeRunIndex(dataDir, input.run.datasetId, o.now);
  return { html: f.report, index };
}

/** The index entries of every finished run of a dataset (those with a summary.json). */
export function indexEntries(dataDir: string, datasetId: string): RunIndexEntry[] {
  const runsDir = path.join(dataDir, 'runs', datasetId);
  if (!fs.existsSync(runsDir)) return [];
  const indexDir = path.dirname(indexPathOf(dataDir, datasetId));
  return fs.readdirSync(runsDir).flatMap((runId) => {
    const f = runFiles(path.join(runsDir, runId));
    const summary = readJsonIfExists<RunSummary>(f.summary);
    if (!summary) return [];
    const plan = readJsonIfExists<RunPlan>(f.plan);
    const ev = readJsonIfExists<EvaluationDocument>(f.evaluation);
    return [
      indexEntryOf(
        summary,
        plan?.run.startedAt ?? fs.statSync(f.summary).mtime.toISOString(),
        ev?.challenger ?? plan?.config.training.challenger ?? null,
        ev?.k ?? plan?.config.evaluation.k ?? null,
        fs.existsSync(f.report) ? path.relative(indexDir, f.report) : null,
      ),
    ];
  });
}

export async function writeRunIndex(dataDir: string, datasetId: string, now?: () => Date): Promise<string> {
  const file = indexPathOf(dataDir, datasetId);
  const html = await buildRunIndex(
    datasetId,
    indexEntries(dataDir, datasetId),
    (now ?? (() => new Date()))().toISOString(),
  );
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic(file, html);
  return file;
}
