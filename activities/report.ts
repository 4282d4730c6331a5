import type { RunPlan, RunSummary } from '../contracts/stages';
import { writeRunReport, type RunReportPaths } from '../analytics/run-report/write';
import type { ActivityDeps } from './support/context';
import { RunIO } from './support/run-io';

/**
 * The run report where the run's artifacts are. The report builders read files (analytics/run-report/load.ts);
 * on a bucket the activity may run on a worker that produced none of them, so it first brings into its mirror
 * what they read — this run's documents, training histories, clean events and items, the published version's
 * parts, and every run's summary, plan and evaluation for the dataset's index — builds the pages there and
 * uploads summary.json, report.html and the index. Returns where they are on the run's storage.
 */
export async function writeStoredRunReport(
  deps: ActivityDeps,
  plan: RunPlan,
  summary: RunSummary,
): Promise<RunReportPaths> {
  const io = new RunIO(plan.run, deps.dataDir);
  if (io.isLocal) return writeRunReport(io.runDir, { summary, storageRoot: io.mirror });
  const datasetId = plan.run.datasetId;
  const runsPrefix = `runs/${datasetId}`;
  const own = new Set(
    [
      'plan.json',
      'profile.json',
      'profile.html',
      'evaluation.json',
      'events.parquet',
      'raw/items.parquet',
    ].map((f) => io.key(f)),
  );
  // Every run's index inputs (this run's summary is written here, so it is not fetched).
  const indexFiles = /^runs\/[^/]+\/[^/]+\/(summary\.json|plan\.json|evaluation\.json|report\.html)$/;
  const wanted = (await io.store.list(runsPrefix)).filter(
    (k) =>
      (own.has(k) ||
        (k.startsWith(`${io.key('models')}/`) && k.endsWith('.history.json')) ||
        indexFiles.test(k)) &&
      k !== io.key('summary.json') &&
      k !== io.key('report.html'),
  );
  // The published parts the report samples a few users from (not the underscore folders).
  if (summary.published) {
    const v = summary.published.versionKey;
    for (const k of await io.store.list(v))
      if (/^[^_/][^/]*\.parquet$/.test(k.slice(v.length + 1))) wanted.push(k);
  }
  await io.fetch(wanted);
  const indexKey = `reports/${datasetId}/index.html`;
  // Written at the mirror's reports/<ds>/index.html, i.e. the key below; its links are relative
  // (reports/<ds>/ → runs/<ds>/<run>/report.html), so they hold in the bucket too.
  await writeRunReport(io.runDir, { summary, storageRoot: io.mirror });
  await io.push([io.key('summary.json'), io.key('report.html'), indexKey]);
  return { html: io.store.uri(io.key('report.html')), index: io.store.uri(indexKey) };
}
