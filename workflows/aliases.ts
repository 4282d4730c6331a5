import { proxyActivities } from '@temporalio/workflow';
import type { CpuActivities } from '../activities';
import { NON_RETRYABLE } from '../contracts/errors';
import type { AliasInput, AliasResult } from '../contracts/stages';

const registry = proxyActivities<CpuActivities>({
  startToCloseTimeout: '5m',
  // The activities heartbeat: a worker that dies mid-move is noticed in seconds, not after 5 minutes.
  heartbeatTimeout: '30s',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: [...NON_RETRYABLE] },
});

/**
 * Makes a registered model version champion and points the published recommendations at it, without
 * retraining. Input: `{"version": "<model version>", "datasetId"?, "reason"?, "force"?}`.
 */
export async function promoteModel(input: AliasInput): Promise<AliasResult> {
  return registry.setChampion(input);
}

/** Rolls the champion back to `previous` and re-points the published output. Input: `{"datasetId"?, "reason"?}`. */
export async function rollbackModel(input: AliasInput = {}): Promise<AliasResult> {
  return registry.rollbackChampion(input);
}
