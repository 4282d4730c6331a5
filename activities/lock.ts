import { ApplicationFailure } from '@temporalio/common';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Client } from '@temporalio/client';
import {
  readLockSnapshot,
  removeLockIfUnchanged,
  replaceLockIfUnchanged,
  tryCreateLock,
} from '../lib/file-lock';

/**
 * One retrain per dataset at a time. Workflow ids already make the CLI's and the schedule's runs unique, but a
 * run started from the Web UI may use any id, so the dataset itself is locked with an exclusive-create file.
 * A lock whose holder workflow is no longer running is stale and taken over.
 */
export interface LockHolder {
  workflowId: string;
  runId: string;
  acquiredAt: string;
}

/** A lock file that has stayed unparseable this long was cut short by a crash (its write takes microseconds). */
const UNREADABLE_STALE_MS = 5_000;

export function lockFile(dataDir: string, datasetId: string): string {
  return path.join(dataDir, 'locks', `${datasetId}.lock.json`);
}

async function holderIsRunning(client: Client | undefined, holder: LockHolder): Promise<boolean> {
  if (!client) return true; // Without a client we cannot prove it stale: refuse rather than risk two writers.
  try {
    const d = await client.workflow.getHandle(holder.workflowId, holder.runId).describe();
    return d.status.name === 'RUNNING';
  } catch (err) {
    // Only "not found" proves the holder gone (history deleted); a network error must not steal a live lock.
    if ((err as Error).name === 'WorkflowNotFoundError') return false;
    throw err;
  }
}

export async function acquireDatasetLock(
  dataDir: string,
  datasetId: string,
  me: LockHolder,
  client: Client | undefined,
): Promise<void> {
  const file = lockFile(dataDir, datasetId);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  for (let attempt = 0; attempt < 3; attempt++) {
    if (tryCreateLock(file, JSON.stringify(me))) return;
    const seen = readLockSnapshot(file);
    if (!seen) continue; // Released between our attempts.
    let holder: LockHolder;
    try {
      holder = JSON.parse(seen.text) as LockHolder;
    } catch {
      // Caught between the holder's create and write: look again shortly. Still unreadable after a while, it is
      // what a crash between create and write leaves behind: take it over, or the dataset stays blocked.
      if (Date.now() - seen.mtimeMs > UNREADABLE_STALE_MS) {
        if (await replaceLockIfUnchanged(file, seen, JSON.stringify(me))) return;
      } else await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    if (holder.workflowId === me.workflowId && holder.runId === me.runId) return; // Activity retry.
    if (await holderIsRunning(client, holder)) {
      throw ApplicationFailure.nonRetryable(
        `dataset '${datasetId}' is already being retrained by workflow ${holder.workflowId} (run ${holder.runId}, ` +
          `since ${holder.acquiredAt}); wait for it to finish or cancel it in the Temporal UI`,
        'DatasetBusy',
      );
    }
    // Stale: take it over, unless it changed since we judged it (released, or taken by another run).
    if (await replaceLockIfUnchanged(file, seen, JSON.stringify(me))) return;
  }
  throw ApplicationFailure.retryable(
    `could not acquire the lock for dataset '${datasetId}'`,
    'LockContention',
  );
}

export async function releaseDatasetLock(
  dataDir: string,
  datasetId: string,
  me: { workflowId: string; runId: string },
): Promise<boolean> {
  const file = lockFile(dataDir, datasetId);
  const seen = readLockSnapshot(file);
  if (!seen) return false;
  let holder: LockHolder | undefined;
  try {
    holder = JSON.parse(seen.text) as LockHolder;
  } catch {
    return false; // mid-write by another acquirer: not ours
  }
  if (holder.workflowId !== me.workflowId || holder.runId !== me.runId) return false;
  return removeLockIfUnchanged(file, seen);
}
