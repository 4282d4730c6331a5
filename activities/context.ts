import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { RunPlan } from '../workflows/types';
import type { DuckdbLimits } from '../lib/duckdb';
import * as path from 'node:path';
import { setProgress } from './heartbeat';
import { ConfigError } from '../lib/config';
import { throwIfCancelled } from '../lib/cancellation';

/** What activities need from the process hosting them: the project root and a Temporal client (for locks). */
export interface ActivityDeps {
  root: string;
  client?: Client;
  /**
   * Accept workflow-input `overrides` of protected keys (see PROTECTED_OVERRIDES). Off in production: anyone
   * who can start a workflow could otherwise lift the privacy budget or move the data folder.
   */
  allowProtectedOverrides?: boolean;
}

/** Config keys a workflow input may not override: they guard privacy, state and routing. */
export const PROTECTED_OVERRIDES = ['dataDir', 'privacy', 'temporal', 'registry'] as const;

/** Refuses protected keys in workflow-input overrides, naming them (non-retryable at the caller). */
export function checkOverrides(deps: ActivityDeps, overrides: Record<string, unknown> | undefined): void {
  if (!overrides || deps.allowProtectedOverrides) return;
  const bad = Object.keys(overrides).filter((k) => (PROTECTED_OVERRIDES as readonly string[]).includes(k));
  if (bad.length) {
    throw new ConfigError(
      `workflow input overrides may not change ${bad.join(', ')} (protected: ${PROTECTED_OVERRIDES.join(', ')}); ` +
        'change them in the config file on the workers instead',
    );
  }
}

/** Heartbeat with progress details when running inside an activity; a no-op elsewhere (unit tests). */
export function progress(details: Record<string, unknown>): void {
  // Long loops report progress often: the natural place to stop a cancelled activity.
  throwIfCancelled();
  const tracked = setProgress(details);
  // Between throttled reports the heartbeat timer (activities/heartbeat.ts) repeats the latest details anyway.
  if (tracked && !tracked.due) return;
  try {
    Context.current().heartbeat(tracked?.details ?? details);
  } catch {
    // Not inside an activity context.
  }
}

export function log(message: string, attrs: Record<string, unknown> = {}): void {
  try {
    Context.current().log.info(message, attrs);
  } catch {
    // Outside an activity (unit tests, benchmarks): quiet unless asked for.
    if (process.env.RECFORGE_LOG) console.log(message, attrs);
  }
}

export function limitsOf(plan: RunPlan): DuckdbLimits {
  return {
    memoryLimit: plan.config.duckdb.memoryLimit,
    threads: plan.config.duckdb.threads,
    tempDirectory: path.join(plan.runDir, 'duckdb-tmp'),
  };
}
