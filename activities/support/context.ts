import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { sendProgress, setProgress } from './heartbeat';
import { throwIfCancelled } from '../../lib/cancellation';
import { faultPoint } from '../../lib/faults';

/** What activities need from the process hosting them: the project root and a Temporal client (for locks). */
export interface ActivityDeps {
  root: string;
  client?: Client;
  /**
   * Accept run layers (workflow-input `config` and `overrides`) that change protected keys (lib/config
   * PROTECTED_KEYS). Tests only: anyone who can start a workflow could otherwise lift the privacy budget, choose
   * another ledger or move the data folder.
   */
  allowProtectedOverrides?: boolean;
  /** The worker's environment (RECFORGE_CONFIG, RECFORGE_DATA_DIR, TEMPORAL_*): its config; default process.env. */
  env?: NodeJS.ProcessEnv;
  /**
   * This worker's data folder (its config's dataDir): worker-local scratch, and the mirror of a bucket when a
   * run's storage is S3. Runs on local storage use the storage folder itself.
   */
  dataDir: string;
}

/** Heartbeat with progress details when running inside an activity; a no-op elsewhere (unit tests). */
export function progress(details: Record<string, unknown>): void {
  // Long loops report progress often: the natural place to stop a cancelled activity.
  throwIfCancelled();
  faultPoint('progress', String(details.stage));
  const tracked = setProgress(details);
  // Between throttled reports the heartbeat timer (activities/heartbeat.ts) repeats the latest details anyway.
  if (!tracked) return; // not inside withHeartbeat (unit tests, benchmarks)
  if (tracked.due) sendProgress(tracked.details);
}

export function log(message: string, attrs: Record<string, unknown> = {}): void {
  try {
    Context.current().log.info(message, attrs);
  } catch {
    // Outside an activity (unit tests, benchmarks): quiet unless asked for.
    if (process.env.RECFORGE_LOG) console.log(message, attrs);
  }
}
