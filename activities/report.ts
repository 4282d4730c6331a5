import type { RecforgeConfig } from '../lib/config';
import { readDocument } from '../lib/storage';
import type { RunPlan, RunSummary } from '../contracts/stages';
import { writeRunIndex, writeRunReport, type RunReportPaths } from '../analytics/run-report/write';
import type { ActivityDeps } from './support/context';
import { RunIO } from './support/run-io';
import { storageOf } from './support/storage';

/**
 * The run report where the run's artifacts are. The report builders read files (analytics/run-report/load.ts);
 * on a bucket the activity may run on a worker that produced none of them, so it first brings into its mirror
 * what they read — this run's documents, training histories, clean events and items, the published version's
 * parts, and every run's summary, plan and evaluation for the dataset's index — builds the pages there and
 * uploads summary.json (when given), report.html and the index. Returns where they are on the run's storage.
 */
export async function writeStoredRunReport(
  deps: Pick<ActivityDeps, 'dataDir'>,
  plan: RunPlan,
  summary: RunSummary | null,
): Promise<RunReportPaths> {
  const io = new RunIO(plan.run, deps.dataDir);
  if (io.isLocal) return writeRunReport(io.runDir, { summary, storageRoot: io.mirror });
  const own = new Set(
    [
      'plan.json',
      'profile.json',
      'profile.html',
      'evaluation.json',
      'events.parquet',
      'raw/items.parquet',
      ...(summary ? [] : ['summary.json']),
    ].map((f) => io.key(f)),
  );
  const wanted = (await indexInputs(io)).filter(
    (k) => k !== io.key('report.html') && (summary === null || k !== io.key('summary.json')),
  );
  for (const k of await io.store.list(io.run.runKey))
    if (own.has(k) || (k.startsWith(`${io.key('models')}/`) && k.endsWith('.history.json'))) wanted.push(k);
  // The published parts the report samples a few users from (not the underscore folders).
  const published = summary?.published ?? null;
  if (published) {
    const v = published.versionKey;
    for (const k of await io.store.list(v))
      if (/^[^_/][^/]*\.parquet$/.test(k.slice(v.length + 1))) wanted.push(k);
  }
  await io.fetch([...new Set(wanted)]);
  // Written at the mirror's reports/<ds>/index.html, i.e. the key below; its links are relative
  // (reports/<ds>/ → runs/<ds>/<run>/report.html), so they hold in the bucket too.
  await writeRunReport(io.runDir, { summary, storageRoot: io.mirror });
  const indexKey = indexKeyOf(plan.run.datasetId);
  await io.push([...(summary ? [io.key('summary.json')] : []), io.key('report.html'), indexKey]);
  return { html: io.store.uri(io.key('report.html')), index: io.store.uri(indexKey) };
}

const indexKeyOf = (datasetId: string) => `reports/${datasetId}/index.html`;

/** Every run's index inputs on the storage: summary, plan, evaluation and whether it has a report. */
async function indexInputs(io: RunIO): Promise<string[]> {
  const pattern = /^runs\/[^/]+\/[^/]+\/(summary\.json|plan\.json|evaluation\.json|report\.html)$/;
  return (await io.store.list(`runs/${io.run.datasetId}`)).filter((k) => pattern.test(k));
}

/**
 * `recforge report` against a bucket (storage.root): the run named, or the dataset's most recently started one,
 * rebuilt in this machine's mirror from its stored artifacts, and uploaded. With `indexOnly`, only the index.
 */
export async function rebuildStoredReport(
  config: RecforgeConfig,
  datasetId: string,
  o: { runId?: string; indexOnly?: boolean } = {},
): Promise<{ html?: string; index: string }> {
  const store = storageOf(config);
  const plans = (await store.list(`runs/${datasetId}`)).filter((k) =>
    /^runs\/[^/]+\/[^/]+\/plan\.json$/.test(k),
  );
  const read = async (k: string) => (await readDocument<RunPlan>(store, k))?.value;
  let plan: RunPlan | undefined;
  if (o.runId) {
    plan = await read(`runs/${datasetId}/${o.runId}/plan.json`);
    if (!plan)
      throw new Error(`no run ${o.runId} of dataset '${datasetId}' under ${store.uri(`runs/${datasetId}`)}`);
  } else {
    for (const k of plans) {
      const p = await read(k);
      if (p && (!plan || p.run.startedAt > plan.run.startedAt)) plan = p;
    }
    if (!plan) throw new Error(`no runs of dataset '${datasetId}' under ${store.uri(`runs/${datasetId}`)}`);
  }
  if (o.indexOnly) {
    const io = new RunIO(plan.run, config.dataDir);
    await io.fetch(await indexInputs(io));
    await writeRunIndex(io.mirror, datasetId);
    await io.push([indexKeyOf(datasetId)]);
    return { index: io.store.uri(indexKeyOf(datasetId)) };
  }
  const summary = (await readDocument<RunSummary>(store, `${plan.run.runKey}/summary.json`))?.value ?? null;
  return writeStoredRunReport({ dataDir: config.dataDir }, plan, summary);
}
