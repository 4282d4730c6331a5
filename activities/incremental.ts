import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { RecforgeConfig } from '../contracts/config';
import { readJsonIfExists, writeJsonAtomic } from '../lib/fs-atomic';
import {
  checkWatermark,
  emptyWatermark,
  needsDigest,
  entriesInWindow,
  appendCandidates,
  priorEntries,
  runDateProblem,
  selectFiles,
  withEntry,
  type FileStat,
  type Watermark,
  type WatermarkEntry,
} from '../lib/incremental';
import type { SchemaRecord } from '../analytics/schema-drift';
import type {
  CleanResult,
  IncrementalPlan,
  IngestResult,
  RunInputReport,
  RunPlan,
} from '../contracts/stages';
import { digestFile, digestPrefix, formatOf } from './files';
import { compressionOf } from '../lib/csv-header';
import { log, progress } from './context';

/**
 * Incremental runs, the I/O part: the watermark log and store partitions under
 * <dataDir>/state/<dataset>/, file selection at planning, and the commit at the end of a successful run.
 */

const stateOf = (config: RecforgeConfig, datasetId: string) => path.join(config.dataDir, 'state', datasetId);
export const watermarkPath = (config: RecforgeConfig, datasetId: string) =>
  path.join(stateOf(config, datasetId), 'watermark.json');
/** One file per run of a date: a failed re-run never touches the partition the committed entry points at. */
export const partitionPath = (config: RecforgeConfig, datasetId: string, runDate: string, runId: string) =>
  path.join(stateOf(config, datasetId), 'events', `date=${runDate}`, `${runId}.parquet`);
const schemaPath = (config: RecforgeConfig, datasetId: string) =>
  path.join(stateOf(config, datasetId), 'last_schema.json');

export function readWatermark(config: RecforgeConfig, datasetId: string): Watermark {
  const file = watermarkPath(config, datasetId);
  try {
    const v = readJsonIfExists<unknown>(file);
    return v === undefined ? emptyWatermark(datasetId) : checkWatermark(v, datasetId);
  } catch (err) {
    // A damaged log must not silently turn into "nothing consumed yet" (that would re-read everything).
    throw ApplicationFailure.nonRetryable(
      `${file}: ${(err as Error).message.replace(`${file}: `, '')}`,
      'BadInput',
    );
  }
}

/**
 * Selects this run's files among the resolved inputs. No new file is a non-retryable NoNewData failure: the
 * run stops before reading anything, so the champion and the published output stay as they are.
 */
export async function planIncremental(
  config: RecforgeConfig,
  datasetId: string,
  runId: string,
  runDate: string,
  files: string[],
): Promise<{ files: string[]; incremental: IncrementalPlan }> {
  const wm = readWatermark(config, datasetId);
  const problem = runDateProblem(wm, runDate);
  if (problem) throw ApplicationFailure.nonRetryable(`dataset ${datasetId}: ${problem}`, 'BadInput');
  const stats: FileStat[] = files.map((f) => {
    const st = fs.statSync(f);
    return { path: f, size: st.size, mtimeMs: st.mtimeMs };
  });
  const toHash = new Set(needsDigest(wm, runDate, stats));
  for (const s of stats) {
    if (!toHash.has(s.path)) continue;
    progress({ stage: 'plan', step: 'digest', file: s.path });
    s.sha256 = (await digestFile(s.path).catch(() => ({ sha256: undefined }))).sha256;
  }
  const sel = selectFiles(wm, runDate, stats);
  // A plain-text log that grew by appending is read whole again (DuckDB cannot start mid-file); knowing how
  // many lines were delivered before lets the quality gate judge only the new ones.
  const appended: NonNullable<IncrementalPlan['appended']> = [];
  for (const c of appendCandidates(wm, runDate, stats)) {
    if (compressionOf(c.path) !== 'none' || formatOf(c.path) === 'parquet') continue;
    const prefix = await digestPrefix(c.path, c.previous.size).catch(() => undefined);
    if (prefix?.sha256 === c.previous.sha256)
      appended.push({ path: c.path, previousLines: prefix.lines, consumedOn: c.consumedOn });
  }
  // With privacy on, which partitions are read must not depend on the data either (clean-history cuts the window
  // at the same public instant).
  const publicStart = config.privacy.enabled
    ? new Date(
        Date.parse(`${runDate}T00:00:00Z`) - config.dataset.incremental.historyDays * 86_400_000,
      ).toISOString()
    : undefined;
  const history = entriesInWindow(
    priorEntries(wm, runDate),
    config.dataset.incremental.historyDays,
    publicStart,
  ).map((e) => ({ runDate: e.runDate, partition: e.partition }));
  if (sel.read.length === 0) {
    const last = history.at(-1)?.runDate;
    throw ApplicationFailure.nonRetryable(
      `dataset ${datasetId}, runDate ${runDate}: no new input files since the last successful run` +
        `${last ? ` (${last})` : ''}; all ${sel.skipped.length} file(s) were already consumed. ` +
        'Nothing was read; the champion and the published output are unchanged',
      'NoNewData',
    );
  }
  log('incremental selection', { runDate, read: sel.read.length, skipped: sel.skipped.length });
  return {
    files: sel.read,
    incremental: {
      runDate,
      historyDays: config.dataset.incremental.historyDays,
      skipped: sel.skipped,
      history,
      partition: partitionPath(config, datasetId, runDate, runId),
      appended,
    },
  };
}

export function readSchemaRecord(plan: Pick<RunPlan, 'config' | 'datasetId'>): SchemaRecord | undefined {
  try {
    const r = readJsonIfExists<SchemaRecord>(schemaPath(plan.config, plan.datasetId));
    return r?.formatVersion === 1 && Array.isArray(r.files) ? r : undefined;
  } catch {
    return undefined; // drift reporting is advisory: an unreadable record means "nothing to compare with"
  }
}

/** The run date of any run (incremental or not): the plan's, else the start date. */
const runDateOfPlan = (plan: RunPlan) => plan.incremental?.runDate ?? plan.startedAt.slice(0, 10);

/**
 * Commits a completed run: records its file columns (the next run's schema-drift reference) and, for
 * incremental runs, writes the watermark entry of its date (replacing an earlier run of the same date) and
 * removes other partitions of that date (failed or superseded runs). Idempotent: a retry writes the same
 * entry. The dataset lock held by the run serialises commits.
 */
export async function commitRun(
  plan: RunPlan,
  ingested: IngestResult,
  cleaned: CleanResult,
): Promise<RunInputReport> {
  const record: SchemaRecord = {
    formatVersion: 1,
    runId: plan.runId,
    runDate: runDateOfPlan(plan),
    files: ingested.files.filter((f) => f.columns).map((f) => ({ path: f.path, columns: f.columns! })),
  };
  if (record.files.length) writeJsonAtomic(schemaPath(plan.config, plan.datasetId), record);
  const report: RunInputReport = {
    files: ingested.files.map((f) => f.path),
    skipped: plan.incremental?.skipped ?? [],
    warnings: ingested.warnings ?? [],
    schemaDrift: ingested.schemaDrift ?? [],
    watermark: null,
  };
  const inc = plan.incremental;
  if (!inc) return report;
  if (!fs.existsSync(inc.partition)) {
    // Without its partition the entry would mark files consumed whose events are nowhere: refuse.
    throw ApplicationFailure.nonRetryable(
      `${inc.partition}: the run's store partition is missing; not committing the watermark`,
      'BadInput',
    );
  }
  const entry: WatermarkEntry = {
    runDate: inc.runDate,
    runId: plan.runId,
    committedAt: new Date().toISOString(),
    files: ingested.files.map((f) => ({
      path: f.path,
      size: f.bytes,
      mtimeMs: f.mtimeMs ?? 0,
      sha256: f.sha256,
    })),
    newestEvent: cleaned.history?.newestNewEvent ?? null,
    partition: inc.partition,
    rows: cleaned.newRows ?? 0,
  };
  const current = readWatermark(plan.config, plan.datasetId);
  const existing = current.entries.find((e) => e.runDate === inc.runDate);
  // A retry of this commit keeps the first commit time, so the log is byte-stable across retries.
  if (existing?.runId === plan.runId) entry.committedAt = existing.committedAt;
  writeJsonAtomic(watermarkPath(plan.config, plan.datasetId), withEntry(current, entry));
  const dateDir = path.dirname(inc.partition);
  for (const name of fs.readdirSync(dateDir)) {
    const f = path.join(dateDir, name);
    if (f !== inc.partition) fs.rmSync(f, { force: true });
  }
  log('watermark committed', { runDate: inc.runDate, files: entry.files.length, rows: entry.rows });
  report.watermark = {
    runDate: inc.runDate,
    newestEvent: entry.newestEvent,
    partition: inc.partition,
    historyRunDates: inc.history.map((h) => h.runDate),
    windowStart: cleaned.history?.windowStart ?? null,
  };
  return report;
}
