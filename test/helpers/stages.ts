import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { findProjectRoot, type RecforgeConfig } from '../../lib/config';
import type { Db } from '../../lib/duckdb';
import { isRecforgeError } from '../../contracts/errors';
import type { CleanArtifacts, IncrementalPlan, RawArtifacts, StageRun } from '../../contracts/stages';
import type { ActivityDeps } from '../../activities/support/context';
import { directRun } from '../../activities/support/direct';
import { RunIO } from '../../activities/support/run-io';
import { openCleanViews, openRawViews } from '../../activities/support/artifacts';

const ROOT = findProjectRoot(__dirname);

/**
 * Stage activities called directly (no workflow): a run over `files` on the config's storage, and the
 * dependencies a worker would give them.
 */
export function directStage(
  config: RecforgeConfig,
  files: string[],
  o: {
    datasetId?: string;
    runId?: string;
    startedAt?: string;
    runDate?: string;
    itemsFile?: string | null;
    incremental?: IncrementalPlan | null;
  } = {},
): { run: StageRun; deps: ActivityDeps; runDir: string } {
  const run = directRun({ config, interactionFiles: files, ...o });
  const deps: ActivityDeps = { root: ROOT, dataDir: config.dataDir };
  const runDir = path.join(config.dataDir, ...run.plan.run.runKey.split('/'));
  fs.mkdirSync(runDir, { recursive: true });
  return { run, deps, runDir };
}

/** Runs SQL over a stage's artifacts in a fresh scratch DuckDB: the raw views, the clean views, or both. */
export async function queryArtifacts<T extends Record<string, unknown>>(
  s: { run: StageRun; deps: ActivityDeps },
  a: { raw?: RawArtifacts; clean?: CleanArtifacts },
  sql: string,
): Promise<T[]> {
  const io = new RunIO(s.run.plan.run, s.deps.dataDir);
  return io.withDb('test-query', async (db: Db) => {
    if (a.raw) await openRawViews(db, io, a.raw);
    if (a.clean) await openCleanViews(db, io, a.clean);
    return db.all<T>(sql);
  });
}

/**
 * The failure a stage call ends with: an ApplicationFailure (what ingest throws) or the domain error the activity
 * boundary turns into one (contracts/errors.ts), as { type, nonRetryable, message }. Fails the test on success.
 */
export async function stageFailure(
  p: Promise<unknown>,
): Promise<{ type: string; nonRetryable: boolean; message: string }> {
  const err = await p.then(
    () => new Error('expected a failure, got success'),
    (e: unknown) => e,
  );
  if (err instanceof ApplicationFailure)
    return { type: err.type ?? '', nonRetryable: err.nonRetryable === true, message: err.message };
  if (isRecforgeError(err)) return { type: err.type, nonRetryable: !err.retryable, message: err.message };
  throw err;
}

/** Where an artifact (a storage key, or a reference holding one) lies on this machine, for local storage. */
export function artifactFile(s: { deps: ActivityDeps }, ref: string | { key: string }): string {
  const key = typeof ref === 'string' ? ref : ref.key;
  return path.join(s.deps.dataDir, ...key.split('/'));
}
