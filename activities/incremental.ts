import * as fs from 'node:fs';
import { RecforgeError, badInput } from '../contracts/errors';
import { openStorage, readDocument, updateDocument, type Storage } from '../lib/storage';
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
} from '../analytics/incremental';
import type {
  CleanResult,
  IncrementalPlan,
  IngestResult,
  PreparedInput,
  RunInputReport,
  RunPlan,
  StageRun,
} from '../contracts/stages';
import { RunIO } from './support/run-io';
import { partitionKey, watermarkKey } from './support/layout';
import type { ActivityDeps } from './support/context';
import { digestFile, digestPrefix, formatOf } from './support/files';
import { compressionOf } from '../lib/csv-header';
import { log, progress } from './support/context';

/**
 * Incremental runs, the I/O part: the watermark log and store partitions under `state/<dataset>/` on the run's
 * storage, file selection under the dataset lock, and the commit at the end of a completed run. The log is a
 * state document changed only by compare-and-swap (lib/storage), like the live pointer and the ledger.
 */

export async function readWatermark(store: Storage, datasetId: string): Promise<Watermark> {
  const key = watermarkKey(datasetId);
  try {
    const v = (await readDocument<unknown>(store, key))?.value;
    return v === undefined ? emptyWatermark(datasetId) : checkWatermark(v, datasetId);
  } catch (err) {
    // A damaged log must not silently turn into "nothing consumed yet" (that would re-read everything).
    throw badInput(`${store.uri(key)}: ${(err as Error).message}`);
  }
}

/**
 * Selects this run's files among the prepared inputs (under the dataset lock: no other run of the dataset can
 * commit meanwhile). No new file is a non-retryable NoNewData failure: the run stops before reading anything,
 * so the champion and the published output stay as they are.
 */
export async function selectIncrementalInput(
  plan: RunPlan,
  prepared: PreparedInput,
): Promise<{ input: PreparedInput; incremental: IncrementalPlan }> {
  const { config, runDate } = plan;
  const { datasetId, runId } = plan.run;
  const wm = await readWatermark(openStorage(plan.run.storage), datasetId);
  const problem = runDateProblem(wm, runDate);
  if (problem) throw badInput(`dataset ${datasetId}: ${problem}`);
  const stats: FileStat[] = prepared.interactionFiles.map((f) => {
    const st = fs.statSync(f);
    return { path: f, size: st.size, mtimeMs: st.mtimeMs };
  });
  const toHash = new Set(needsDigest(wm, runDate, stats));
  for (const s of stats) {
    if (!toHash.has(s.path)) continue;
    progress({ stage: 'input', step: 'digest', file: s.path });
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
    throw new RecforgeError(
      'NoNewData',
      `dataset ${datasetId}, runDate ${runDate}: no new input files since the last successful run` +
        `${last ? ` (${last})` : ''}; all ${sel.skipped.length} file(s) were already consumed. ` +
        'Nothing was read; the champion and the published output are unchanged',
    );
  }
  log('incremental selection', { runDate, read: sel.read.length, skipped: sel.skipped.length });
  return {
    input: { ...prepared, interactionFiles: sel.read },
    incremental: {
      runDate,
      historyDays: config.dataset.incremental.historyDays,
      skipped: sel.skipped,
      history,
      partition: partitionKey(datasetId, runDate, runId),
      appended,
    },
  };
}

/**
 * Commits a completed run's input: for incremental runs, the watermark entry of its date (replacing an earlier
 * run of the same date, by compare-and-swap) and removes other partitions of that date (failed or superseded
 * runs). Idempotent: a retry writes the same entry.
 */
export async function commitRun(
  deps: ActivityDeps,
  run: StageRun,
  ingested: IngestResult,
  cleaned: CleanResult,
): Promise<RunInputReport> {
  const report: RunInputReport = {
    files: ingested.files.map((f) => f.path),
    skipped: run.incremental?.skipped ?? [],
    warnings: ingested.warnings ?? [],
    schemaDrift: ingested.schemaDrift ?? [],
    watermark: null,
  };
  const inc = run.incremental;
  if (!inc) return report;
  const io = new RunIO(run.plan.run, deps.dataDir);
  const { datasetId, runId } = run.plan.run;
  if (!(await io.store.exists(inc.partition))) {
    // Without its partition the entry would mark files consumed whose events are nowhere: refuse.
    throw badInput(
      `${io.store.uri(inc.partition)}: the run's store partition is missing; not committing the watermark`,
    );
  }
  const entry: WatermarkEntry = {
    runDate: inc.runDate,
    runId,
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
  await updateDocument<Watermark, void>(io.store, watermarkKey(datasetId), (cur) => {
    const current = cur ? checkWatermark(cur, datasetId) : emptyWatermark(datasetId);
    const existing = current.entries.find((e) => e.runDate === inc.runDate);
    // A retry of this commit keeps the first commit time, so the log is byte-stable across retries.
    const e = existing?.runId === runId ? { ...entry, committedAt: existing.committedAt } : entry;
    return { write: withEntry(current, e), result: undefined };
  });
  const dateDir = inc.partition.slice(0, inc.partition.lastIndexOf('/'));
  for (const key of await io.store.list(dateDir)) if (key !== inc.partition) await io.store.delete(key);
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
