import type { Client } from '@temporalio/client';
import { RecforgeError } from '../contracts/errors';
import type { RunRef } from '../contracts/run';
import { openStorage, updateDocument, type Storage } from '../lib/storage';

/**
 * One retrain per dataset at a time. Workflow ids already make the CLI's and the schedule's runs unique, but a
 * run started from the Web UI may use any id, so the dataset itself is locked: a small document on the run's
 * storage (`locks/<dataset>.json`) naming its holder, changed only by compare-and-swap — the same commit protocol
 * as the live pointer and the privacy ledger, so it holds on a bucket shared by workers on several machines.
 * A holder whose workflow is no longer running is replaced in the same swap that judged it: there is no moment
 * when two runs both hold it, and no lock file a crashed process could leave behind for others to break.
 */
export interface LockHolder {
  workflowId: string;
  runId: string;
  acquiredAt: string;
}

interface LockDocument {
  holder: LockHolder | null;
  /** The last moves, for whoever wonders who held it (bounded). */
  history: { at: string; event: 'acquired' | 'released' | 'taken-over'; workflowId: string; runId: string }[];
}

export const lockKey = (datasetId: string) => `locks/${datasetId}.json`;

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

const entry = (event: LockDocument['history'][number]['event'], h: LockHolder, at: string) => ({
  at,
  event,
  workflowId: h.workflowId,
  runId: h.runId,
});
const HISTORY = 50;

/** Takes the dataset for this run. Idempotent for the same run (an activity retry). Throws DatasetBusy. */
export async function acquireDatasetLock(
  run: RunRef,
  client: Client | undefined,
  store?: Storage,
): Promise<void> {
  const s = store ?? openStorage(run.storage);
  const me: LockHolder = {
    workflowId: run.workflowId,
    runId: run.runId,
    acquiredAt: new Date().toISOString(),
  };
  // Whether the holder still runs is asked outside the swap (it is I/O); the swap re-checks that the holder
  // is still the one judged, so a release and re-take in between is never mistaken for a dead holder.
  let judged: { holder: LockHolder; running: boolean } | null = null;
  for (let round = 0; round < 5; round++) {
    const outcome = await updateDocument<LockDocument, 'taken' | 'busy' | 'judge'>(
      s,
      lockKey(run.datasetId),
      (cur) => {
        const holder = cur?.holder ?? null;
        const history = cur?.history ?? [];
        if (!holder)
          return {
            write: {
              holder: me,
              history: [...history, entry('acquired', me, me.acquiredAt)].slice(-HISTORY),
            },
            result: 'taken',
          };
        if (holder.workflowId === me.workflowId && holder.runId === me.runId)
          return { keep: true, result: 'taken' };
        if (
          judged &&
          judged.holder.runId === holder.runId &&
          judged.holder.workflowId === holder.workflowId
        ) {
          if (judged.running) return { keep: true, result: 'busy' };
          return {
            write: {
              holder: me,
              history: [...history, entry('taken-over', me, me.acquiredAt)].slice(-HISTORY),
            },
            result: 'taken',
          };
        }
        return { keep: true, result: 'judge' };
      },
    );
    if (outcome === 'taken') return;
    const doc = await readHolder(s, run.datasetId);
    if (!doc) continue;
    if (outcome === 'busy') {
      throw new RecforgeError(
        'DatasetBusy',
        `dataset '${run.datasetId}' is already being retrained by workflow ${doc.workflowId} (run ${doc.runId}, ` +
          `since ${doc.acquiredAt}); wait for it to finish or cancel it in the Temporal UI`,
      );
    }
    judged = { holder: doc, running: await holderIsRunning(client, doc) };
  }
  throw new RecforgeError('StateConflict', `could not acquire the lock of dataset '${run.datasetId}'`);
}

async function readHolder(s: Storage, datasetId: string): Promise<LockHolder | null> {
  const obj = await s.get(lockKey(datasetId));
  return obj ? ((JSON.parse(obj.body.toString('utf8')) as LockDocument).holder ?? null) : null;
}

/** Gives the dataset back if this run holds it (idempotent). True when it was released by this call. */
export async function releaseDatasetLock(run: RunRef, store?: Storage): Promise<boolean> {
  const s = store ?? openStorage(run.storage);
  return updateDocument<LockDocument, boolean>(s, lockKey(run.datasetId), (cur) => {
    const h = cur?.holder;
    if (!cur || !h || h.workflowId !== run.workflowId || h.runId !== run.runId)
      return { keep: true, result: false };
    const at = new Date().toISOString();
    return {
      write: { holder: null, history: [...cur.history, entry('released', h, at)].slice(-HISTORY) },
      result: true,
    };
  });
}
